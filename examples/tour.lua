-- SPDX-License-Identifier: MIT
-- The README's "A short tour", runnable: the lines after this preamble are the README's block, word
-- for word (spec/examples_spec.lua checks it). Start the mock first (`bin/etwin mock &`), or set
-- ETERNALTWIN_URL; then, after `make LUA=X` for your Lua X (plain `make` is lua5.4), run
-- `X examples/tour.lua` (lua5.4, lua5.1, lua5.2, lua5.3 or luajit) from the repository root, or
-- `X tour.lua` from examples/. The checkout's lua/, build/ (the build for the running Lua) and examples/ go first on
-- the module paths (found from this file's own path), so no LUA_PATH is needed. The block alone,
-- pasted into a file of your own, needs those paths set: see the README's "Install" (or run it with
-- `dofile` inside `make repl LUA=X`).
do
  local root = ((arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or ".") .. "/.."
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/?.lua;" .. package.path
  -- The build for the running Lua: build/ for 5.4, build/lua5.1/ ... build/luajit/ for the others.
  local lua = type(jit) == "table" and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
  package.cpath = root .. (lua == "lua5.4" and "/build/" or "/build/" .. lua .. "/") .. "?.so;" .. package.cpath
end

local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")

-- The bundled mock server (`bin/etwin mock &`, port 50320), or yours in ETERNALTWIN_URL.
local client = eternaltwin.new("demo@clients", "dev_secret", "http://localhost:8000/oauth/callback",
                               keys.HS256Key("a long random secret"),
                               { url = os.getenv("ETERNALTWIN_URL") or "http://localhost:50320/" })

-- 1. Send the player to Eternaltwin, keeping the state in their session.
local state = assert(client:generate_state())
local url = client:authorization_url(state)

-- 2. The player signs in; Eternaltwin redirects the browser to your callback with ?code=..&state=..
--    Your web framework hands you that query. Here a scripted browser plays the player.
local player = require("examples.browser").new(client)
assert(player:login(client.url, "alice", "alice-password"))
local params = assert(player:authorize(url))                 -- { code = "..", state = ".." }

--    On the callback: check the state first, then exchange the code.
local claims, err = client:validate_state(params.state, state)
if not claims then error("bad callback: " .. err) end        -- err.kind == "InvalidStateError"
local token, terr = client:token(params.code)
if not token then error("sign-in failed: " .. terr) end      -- RequestError, TransportError, DecodeError
print(token, claims.nonce:sub(1, 8))

-- 3. Call the API with the player's token. (Without a token, /api/v1/auth/self answers 200 for a
--    Guest: `me.type == "Guest"` and no `me.user`.)
local me = assert(assert(client.users:me(token)):json())
print(me.type, me.user.display_name.current.value, me.user.id)

local found = assert(assert(client.users:search("ali", 10)):json())   -- { count = n, items = {...} }
local user = assert(assert(client.users:get(me.user.id)):json())
print(found.count, user.display_name.current.value)
