-- SPDX-License-Identifier: MIT
-- `etwin login` end to end against a mock seeded with a client whose callback is a free loopback
-- port: the command listens there and prints the authorization URL; a scripted browser signs in,
-- consents and lands on the callback; a callback with another state is refused while the command
-- keeps waiting; then the code is exchanged and the user and the token's lifetime shown. The token
-- itself shows only with --show-token. Without LuaSocket, the error names lua-socket.
local V = require("spec.support.compat")
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")
local mock = require("spec.support.mock")
local browser = require("examples.browser")

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
local ETWIN = ROOT .. "/bin/etwin"
local SECRET = "cli-login-secret"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local read = mock.read_file

local has_socket, socket = pcall(require, "socket")

-- A port nobody listens on right now (the kernel's pick, released at once).
local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function wait_for(fn, seconds, what)
  local deadline = core.monotime() + seconds
  while core.monotime() < deadline do
    local v = fn()
    if v then return v end
    core.sleep(0.05)
  end
  error("timed out waiting for " .. what)
end

local function alive(pid)
  local stat = read("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() ([ZX])")
end

local run_it = has_socket and it or pending

describe("etwin login", function()
  local inst, port, redirect, cfg
  setup(function()
    if not has_socket then return end
    port = free_port()
    redirect = "http://127.0.0.1:" .. port .. "/callback"
    cfg = os.tmpname()
    local f = assert(io.open(cfg, "w"))
    f:write(([[
[seed.app.cli]
display_name = "etwin CLI"
uri = "http://127.0.0.1:%d/"
oauth_callback = "%s"
secret = "%s"

[seed.user.alice]
username = "alice"
password = "alice-password"
display_name = "Alice"
]]):format(port, redirect, SECRET))
    f:close()
    inst = mock.start{ config = cfg, tls = false }
  end)
  teardown(function()
    if inst then inst.stop() end
    if cfg then os.remove(cfg) end
  end)

  -- Starts `etwin login ARGS` in the background; returns its pid and its stdout and stderr files.
  local function start(args, env)
    local out, err = os.tmpname(), os.tmpname()
    local cmd = ("env -i PATH=/usr/local/bin:/usr/bin:/bin ETERNALTWIN_URL=%s ETERNALTWIN_CLIENT_ID=cli@clients "
      .. "ETERNALTWIN_CLIENT_SECRET=%s ETERNALTWIN_REDIRECT_URI=%s %s %s %s login --no-browser %s >%s 2>%s & echo $!")
      :format(q(inst.url), q(SECRET), q(redirect), env or "", V.lua, q(ETWIN), args or "", q(out), q(err))
    local p = assert(io.popen(cmd))
    local pid = assert(tonumber(p:read("*l")))
    p:close()
    return pid, out, err
  end

  local function client()
    return eternaltwin.new{ client_id = "cli@clients", client_secret = SECRET, redirect_uri = redirect,
                            state_key = keys.HS256Key("spec"), url = inst.url }
  end

  -- The browser: signs in, follows the printed URL to Eternaltwin's consent, returns the callback URL.
  local function consent(url)
    local c = client()
    local b = browser.new(c)
    assert(b:login(c.url, "alice", "alice-password"))
    local params, location = assert(b:authorize(url))
    assert.is_string(params.code)
    return c, location, params
  end

  run_it("signs in: URL printed, wrong state refused, code exchanged, user and lifetime shown, no token", function()
    local pid, out, err = start()
    local url = wait_for(function() return (read(out) or ""):match("(http://%S+/oauth/authorize%?%S+)") end, 30,
      "the authorization URL")
    assert.truthy(url:find("redirect_uri=" .. redirect:gsub("[:/]", function(c)
      return string.format("%%%02X", c:byte()) end), 1, true), url)
    local c, location = consent(url)
    -- Another state on the callback (a forged or stale link): 400, and the command keeps waiting.
    local forged = location:gsub("state=[^&]*", "state=" .. assert(c:generate_state()))
    local res = assert(c:get(forged, { raise_on_error = false }))
    assert.are.equal(400, res.status_code)
    assert.is_true(alive(pid))
    -- The real callback: the command answers the browser, then prints and exits.
    res = assert(c:get(location, { raise_on_error = false }))
    assert.are.equal(200, res.status_code, res.content)
    assert.truthy(res.content:find("Signed in as Alice", 1, true), res.content)
    wait_for(function() return not alive(pid) end, 30, "etwin login to exit")
    local text = read(out)
    assert.truthy(text:find("signed in as%s+Alice\n"), text)
    assert.truthy(text:find("identifier%s+%x+%-"), text)
    assert.truthy(text:find("token%s+Bearer token, valid %d+ s %(until %d%d%d%d%-%d%d%-%d%dT"), text)
    assert.truthy(text:find("--show-token", 1, true), text)
    assert.falsy(text:find("access_token", 1, true), text)
    assert.are.equal("", read(err))
    os.remove(out); os.remove(err)
  end)

  run_it("--json --show-token: the token is printed only when asked, and it works", function()
    local pid, out, err = start("--json --show-token")
    local url = wait_for(function() return (read(err) or ""):match("(http://%S+/oauth/authorize%?%S+)") end, 30,
      "the authorization URL (on stderr with --json)")
    local c, location = consent(url)
    assert.are.equal(200, assert(c:get(location, { raise_on_error = false })).status_code)
    wait_for(function() return not alive(pid) end, 30, "etwin login to exit")
    local j = assert(core.json_decode(read(out)))
    assert.are.equal("Alice", j.user.username)
    assert.are.equal("Bearer", j.token.token_type)
    assert.is_number(j.token.expires_in)
    assert.is_string(j.token.access_token)
    local me = assert(assert(c.users:me(j.token.access_token)):json())
    assert.are.equal("Alice", me.user.display_name.current.value)
    os.remove(out); os.remove(err)
  end)

  run_it("a declined consent ends with the error, exit 1", function()
    local pid, out, err = start()
    local url = wait_for(function() return (read(out) or ""):match("(http://%S+/oauth/authorize%?%S+)") end, 30,
      "the authorization URL")
    local c = client()
    -- What Eternaltwin sends when the player declines: ?error=access_denied&state=...
    local st = url:match("[?&]state=([^&]*)")
    local res = assert(c:get(redirect .. "?error=access_denied&state=" .. st, { raise_on_error = false }))
    assert.are.equal(403, res.status_code)
    wait_for(function() return not alive(pid) end, 30, "etwin login to exit")
    assert.truthy(read(err):find("refused: access_denied", 1, true), read(err))
    os.remove(out); os.remove(err)
  end)

  run_it("a redirect URI that is not a loopback port is a usage error", function()
    local out, code = V.run(("env -i PATH=/usr/bin:/bin %s %s login --no-browser --url http://127.0.0.1:1/ "
      .. "--client-id a@clients --client-secret s --redirect-uri https://example.org/cb 2>&1"):format(V.lua, q(ETWIN)))
    assert.are.equal(2, code)
    assert.truthy(out:find("etwin login: the redirect URI must be http://127.0.0.1:PORT/PATH", 1, true), out)
  end)

  it("without LuaSocket, names lua-socket", function()
    local out, code = V.run(("env -i PATH=/usr/bin:/bin LUA_PATH='/nonexistent/?.lua' LUA_CPATH='/nonexistent/?.so' "
      .. "%s %s login --no-browser --url http://127.0.0.1:1/ --client-id a@clients --client-secret s "
      .. "--redirect-uri http://127.0.0.1:9/cb 2>&1"):format(V.lua, q(ETWIN)))
    assert.are.equal(1, code, out)
    assert.truthy(out:find("needs LuaSocket", 1, true), out)
    assert.truthy(out:find("lua-socket", 1, true), out)
  end)
end)
