rockspec_format = "3.0"
package = "eternaltwin"
version = "scm-1"
source = {
  url = "git+https://github.com/eternaltwin-lua/eternaltwin-lua.git",
}
description = {
  summary = "Sign players in with Eternaltwin (OAuth 2.0) and call its API, from Lua",
  detailed = [[
Sign players in with Eternaltwin, the OAuth 2.0 provider of the community that preserves Motion
Twin's games, and call its API from a game server, an OpenResty site, a script or a REPL. A Lua
module written in C (libcurl, OpenSSL 3, cJSON, hiredis) with a thin Lua layer, for Lua 5.1 to 5.4
and LuaJIT 2.1: OAuth 2.0 with signed, expiring states (HS/RS/PS/ES/EdDSA keys, key rotation), the
Eternaltwin API and the Python package's connections and User, a curl-multi poller that runs calls
as coroutines, nginx cosockets inside OpenResty, a login gate for nginx and single-use game
tickets. Run-time failures return nil, err; secrets never show in a message.
The rock also installs the `etwin` command (sign-in URLs, states, a sign-in from the terminal,
users; `etwin mock` runs the bundled mock Eternaltwin server, given nginx and its Lua module) and
the API reference (`luarocks doc eternaltwin`).]],
  homepage = "https://github.com/eternaltwin-lua/eternaltwin-lua",
  license = "MIT",
  labels = { "oauth2", "jwt", "http", "eternaltwin", "openresty", "gamedev" },
}
dependencies = {
  "lua >= 5.1, < 5.5",
}
external_dependencies = {
  CURL = { library = "curl" },
  CRYPTO = { library = "crypto" },
  SSL = { library = "ssl" },
  CJSON = { library = "cjson" },
  HIREDIS = { library = "hiredis" },
}
build = {
  type = "builtin",
  modules = {
    ["eternaltwin.core"] = {
      sources = {
        "csrc/l_core.c", "csrc/l_util.c", "csrc/l_json.c", "csrc/l_key.c", "csrc/l_http.c",
        "csrc/l_session.c", "csrc/l_multi.c", "csrc/l_xfer.c", "csrc/l_resp.c",
        "csrc/et_b64.c", "csrc/et_url.c", "csrc/et_jwt.c", "csrc/et_keyload.c",
        "csrc/et_buf.c", "csrc/et_hdr.c", "csrc/et_proto.c", "csrc/et_resp.c", "csrc/et_xfer.c",
        "csrc/et_sigint.c", "csrc/et_session.c", "csrc/et_multi.c", "csrc/l_redis.c", "csrc/et_redis.c", "csrc/et_redis_frame.c", "csrc/et_fork.c",
        "csrc/l_aead.c", "csrc/et_aead.c", "csrc/et_rand.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl", "ssl", "crypto", "cjson", "hiredis" },
      incdirs = { "$(CURL_INCDIR)", "$(CRYPTO_INCDIR)", "$(CJSON_INCDIR)/cjson", "$(HIREDIS_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(CRYPTO_LIBDIR)", "$(CJSON_LIBDIR)", "$(HIREDIS_LIBDIR)" },
    },
    ["eternaltwin"] = "lua/eternaltwin/init.lua",
    ["eternaltwin.compat"] = "lua/eternaltwin/compat.lua",
    ["eternaltwin.errors"] = "lua/eternaltwin/errors.lua",
    ["eternaltwin.keys"] = "lua/eternaltwin/keys.lua",
    ["eternaltwin.poller"] = "lua/eternaltwin/poller.lua",
    ["eternaltwin.runtime"] = "lua/eternaltwin/runtime.lua",
    ["eternaltwin.cosocket"] = "lua/eternaltwin/cosocket.lua",
    ["eternaltwin.check"] = "lua/eternaltwin/check.lua",
    ["eternaltwin.claims"] = "lua/eternaltwin/claims.lua",
    ["eternaltwin.http"] = "lua/eternaltwin/http.lua",
    ["eternaltwin.options"] = "lua/eternaltwin/options.lua",
    ["eternaltwin.response"] = "lua/eternaltwin/response.lua",
    ["eternaltwin.state"] = "lua/eternaltwin/state.lua",
    ["eternaltwin.stores"] = "lua/eternaltwin/stores.lua",
    ["eternaltwin.redis_store"] = "lua/eternaltwin/redis_store.lua",
    ["eternaltwin.tickets"] = "lua/eternaltwin/tickets.lua",
    ["eternaltwin.token"] = "lua/eternaltwin/token.lua",
    ["eternaltwin.transport_cosocket"] = "lua/eternaltwin/transport_cosocket.lua",
    ["eternaltwin.transport_easy"] = "lua/eternaltwin/transport_easy.lua",
    ["eternaltwin.transport_multi"] = "lua/eternaltwin/transport_multi.lua",
    ["eternaltwin.url"] = "lua/eternaltwin/url.lua",
    ["eternaltwin.users"] = "lua/eternaltwin/users.lua",
    ["eternaltwin.user"] = "lua/eternaltwin/user.lua",
    ["eternaltwin.connections"] = "lua/eternaltwin/connections.lua",
    ["eternaltwin.gate"] = "lua/eternaltwin/gate.lua",
    ["eternaltwin.gate_pages"] = "lua/eternaltwin/gate_pages.lua",
    ["eternaltwin.gate_session"] = "lua/eternaltwin/gate_session.lua",
    ["eternaltwin.gate_signin"] = "lua/eternaltwin/gate_signin.lua",
    ["eternaltwin.gate_util"] = "lua/eternaltwin/gate_util.lua",
  },
  install = {
    bin = { etwin = "bin/etwin" },
  },
  -- doc/: the API reference (LDoc's pages in a release tarball or a rock: `luarocks doc eternaltwin`);
  -- mock/: the mock server, which the installed `etwin mock` runs from the rock's folder.
  copy_directories = { "doc", "mock" },
}
test_dependencies = { "busted" }
test = { type = "busted" }
