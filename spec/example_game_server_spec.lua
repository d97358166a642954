-- examples/game_server.lua, driven over loopback: a ticket from the web side gets the player greeted
-- by name and an echo game; a replayed, expired, foreign, forged or missing ticket gets `ERR reason`
-- and the connection closed. Also the demo mode, from the repository root and from examples/.
local uv = require("luv")
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")

local SECRET = "ticket secret shared by the web site and the game"
local AUD = "game.test"
local ALICE = "c5020923-b4b2-51a5-8a1d-ee5a10de03a3"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local LUA = os.getenv("ETWIN_LUA") or "lua5.4"   -- the Lua under test (tools/run-tests.sh, make check)

-- The web site: knows the player after sign-in, issues tickets with the shared key.
local web = eternaltwin.new{ client_id = "demo@clients", client_secret = "dev_secret",
  redirect_uri = "http://localhost:8000/oauth/callback", state_key = keys.HS256Key("web state secret"),
  ticket_key = keys.HS256Key(SECRET), url = "http://localhost:50320/" }

local function ticket_for(name, opts)
  local o = { audience = AUD, data = name and { display_name = name } or nil }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(web:issue_ticket(ALICE, o))
end

-- Runs the loop until pred() or `secs` pass (a timer keeps run("once") from blocking for ever).
local function wait(pred, secs)
  local timer = uv.new_timer()
  timer:start(20, 20, function() end)
  local deadline = core.monotime() + (secs or 5)
  while not pred() and core.monotime() < deadline do uv.run("once") end
  timer:close()
  uv.run("nowait")
end

-- A blocking line client over luv.
local function connect(port)
  local c = { buf = "", eof = false }
  local tcp = uv.new_tcp()
  local done, cerr = false, nil
  tcp:connect("127.0.0.1", port, function(err) cerr, done = err, true end)
  wait(function() return done end)
  assert(done and not cerr, "connect: " .. tostring(cerr))
  tcp:read_start(function(err, chunk)
    if err or not chunk then c.eof = true else c.buf = c.buf .. chunk end
  end)
  function c.send(_, s) tcp:write(s .. "\n") end
  function c.line(_, secs)
    wait(function() return c.buf:find("\n", 1, true) or c.eof end, secs)
    local l, rest = c.buf:match("^([^\n]*)\n(.*)$")
    if l then c.buf = rest; return l end
    return nil, c.eof and "closed" or "timeout"
  end
  function c.closed(_, secs)
    wait(function() return c.eof end, secs)
    return c.eof
  end
  function c.raw(_, s) tcp:write(s) end
  -- Runs the loop once more so the close completes (luv 1.44 crashes at exit on a handle still closing).
  function c.close()
    if not tcp:is_closing() then tcp:close() end
    uv.run("nowait")
  end
  return c
end

describe("examples/game_server.lua --serve", function()
  local proc, port, pidfile

  setup(function()
    pidfile = os.tmpname()
    proc = assert(io.popen(("GAME_TICKET_KEY=%s GAME_AUDIENCE=%s exec timeout 300 %s examples/game_server.lua --serve "
      .. "--port 0 --ticket-timeout 1 --pidfile %s 2>/dev/null"):format(q(SECRET), q(AUD), LUA, q(pidfile))))
    port = tonumber((proc:read("*l") or ""):match("^listening (%d+)$"))
    assert(port, "the game server did not start")
  end)

  teardown(function()
    uv.walk(function(h) if not h:is_closing() then h:close() end end)
    uv.run("nowait")
    local f = io.open(pidfile)
    local pid = f and f:read("*n")
    if f then f:close() end
    if pid then os.execute("kill -TERM " .. math.floor(pid)) end
    if proc then proc:close() end
    os.remove(pidfile)
  end)

  local function refused(ticket, reason)
    local c = connect(port)
    c:send(ticket)
    local line = c:line()
    local want = "ERR invalid ticket: " .. reason
    assert.are.equal(want, (line or ""):sub(1, #want), line)
    assert.is_true(c:closed(), "the server kept the connection open")
    c:close()
  end

  it("greets the player by the name in the ticket and plays the echo game", function()
    local c = connect(port)
    c:send(ticket_for("Alice"))
    assert.are.equal("WELCOME Alice", c:line())
    c:send("hello")
    assert.are.equal("ECHO hello", c:line())
    c:send("jump\r")
    assert.are.equal("ECHO jump", c:line())
    c:send("QUIT")
    assert.are.equal("BYE Alice 2", c:line())
    assert.is_true(c:closed())
    c:close()
  end)

  it("refuses a replayed ticket and closes the connection", function()
    local t = ticket_for("Alice")
    local c = connect(port)
    c:send(t)
    assert.are.equal("WELCOME Alice", c:line())
    refused(t, "already used")
    c:send("still here")
    assert.are.equal("ECHO still here", c:line())    -- the first player plays on
    c:close()
  end)

  it("refuses expired, foreign, forged and state tickets and closes the connection", function()
    local now = os.time()
    local expired = assert(keys.HS256Key(SECRET):encode({ a = "ticket", sub = ALICE, aud = AUD, iat = now - 120,
      exp = now - 60, nonce = "old", data = { display_name = "Alice" } }))
    refused(expired, "expired")
    local foreign = ticket_for("Alice", { audience = "another.game" })
    refused(foreign, "issued for another audience")
    local forger = eternaltwin.new{ client_id = "x@clients", client_secret = "s", redirect_uri = "http://x/",
      state_key = keys.HS256Key("a guess at the secret"), url = "http://localhost:50320/" }
    refused(assert(forger:issue_ticket(ALICE, { audience = AUD, data = { display_name = "Alice" } })),
      "signature does not verify")
    local state = eternaltwin.new{ client_id = "x@clients", client_secret = "s", redirect_uri = "http://x/",
      state_key = keys.HS256Key(SECRET), url = "http://localhost:50320/" }:generate_state()
    refused(state, "this is a state, not a ticket")
    refused("hello", "")
    -- None of those used anything up, and the server still serves.
    refused(foreign, "issued for another audience")
    local d = connect(port)
    d:send(ticket_for("Bob"))
    assert.are.equal("WELCOME Bob", d:line())
    d:close()
  end)

  it("greets by id without a name, and serves two players at once", function()
    local a, b = connect(port), connect(port)
    a:send(ticket_for(nil))
    b:send(ticket_for("Bob\nECHO pwned"))
    assert.are.equal("WELCOME player " .. ALICE, a:line())
    assert.are.equal("WELCOME Bob?ECHO pwned", b:line())    -- a name never breaks the protocol
    b:send("1"); a:send("2")
    assert.are.equal("ECHO 1", b:line())
    assert.are.equal("ECHO 2", a:line())
    a:close(); b:close()
  end)

  it("closes a connection that sends no ticket in time, or too long a line", function()
    local c = connect(port)
    assert.are.equal("ERR no ticket in time", c:line(3))
    assert.is_true(c:closed())
    c:close()
    local d = connect(port)
    d:raw(("x"):rep(20000))
    assert.are.equal("ERR line too long", d:line())
    assert.is_true(d:closed())
    d:close()
    local e = connect(port)                     -- a whole line, too long, while playing
    e:send(ticket_for("Alice"))
    assert.are.equal("WELCOME Alice", e:line())
    e:send(("y"):rep(9000))
    assert.are.equal("ERR line too long", e:line())
    assert.is_true(e:closed())
    e:close()
  end)

  it("stops on SIGTERM, exit status 0", function()
    local f = assert(io.open(pidfile))
    local pid = math.floor(f:read("*n"))
    f:close()
    local c = connect(port)
    c:send(ticket_for("Alice"))
    assert.are.equal("WELCOME Alice", c:line())
    os.execute("kill -TERM " .. pid)
    assert.are.equal("ERR server stopping", c:line())
    assert.is_true(c:closed())
    c:close()
    local ok = proc:close()
    proc = nil
    assert.is_true(ok == true or ok == 0)
  end)
end)

describe("examples/game_server.lua demo", function()
  for _, where in ipairs({ { ".", "examples/game_server.lua" }, { "examples", "game_server.lua" } }) do
    it("runs from " .. where[1] .. " without LUA_PATH", function()
      local f = io.popen(("cd %s && env -u LUA_PATH -u LUA_CPATH timeout 60 %s %s 2>&1; echo rc=$?")
        :format(where[1], LUA, where[2]))
      local out = f:read("*a")
      f:close()
      assert.truthy(out:find("server:  WELCOME Alice", 1, true), out)
      assert.truthy(out:find("server:  ERR invalid ticket: already used", 1, true), out)
      assert.truthy(out:find("rc=0", 1, true), out)
    end)
  end
end)
