-- SPDX-License-Identifier: MIT
-- A game server that learns who the player is from a ticket issued by the web site where the player
-- signed in: a TCP line protocol on libuv (Debian's lua-luv). It never calls Eternaltwin and never
-- trusts the game client's word: the ticket is signed, bound to this game (its audience), short-lived
-- and single-use.
--
-- Run it after `make`, from the repository root or from examples/ (it finds lua/ and build/ itself):
--   lua5.4 examples/game_server.lua             demo: serves on a free port, a scripted player signs
--   cd examples && lua5.4 game_server.lua       in and plays, a replayed ticket is refused; then stops
--   lua5.4 examples/game_server.lua --serve [--port 4000] [--host 127.0.0.1] [--ticket-timeout 5]
--                                               serves until SIGINT or SIGTERM; prints `listening PORT`
-- Environment: GATE_TICKET_SECRET, the ticket key shared with the web site (examples/openresty reads
-- the same variable, and both default to the same development secret, so a ticket from the demo's
-- /ticket redeems here as is; set your own in production, 32+ random bytes); GAME_TICKET_KEY is
-- its older name. GAME_AUDIENCE (default "game.example", the demo's ticket_audience).
--
-- The game server needs the ticket key only: eternaltwin.tickets.verifier, no client id or secret.
-- The web site, once the player is signed in (any client of this module, or the OpenResty gate):
--   local ticket = client:issue_ticket(user.id, { audience = "game.example",
--                                                 data = { display_name = user.display_name } })
-- and hands the ticket to the game client. The display name travels in the ticket's `data`: the web
-- side has just read it from Eternaltwin, and the game server then needs no Eternaltwin access at all.
--
-- Protocol, one line each way ("\n" ends a line; at most 8 KiB):
--   client sends the ticket    server: WELCOME <display name>    or ERR <reason>, then it closes
--   client: <text>             server: ECHO <text>
--   client: QUIT               server: BYE <display name> <number of echoes>, then it closes
-- Without a ticket within --ticket-timeout seconds: ERR no ticket in time, then it closes.

------------------------------------------------------------------------------------------------
-- The checkout's lua/ and build/ go first on the module paths (found from this file's own path), so
-- this runs from the repository root or from examples/ without LUA_PATH.
do
  local root = ((arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or ".") .. "/.."
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/?.lua;" .. package.path
  -- The build for the running Lua: build/ for 5.4, build/lua5.1/ ... build/luajit/ for the others.
  local lua = type(jit) == "table" and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
  package.cpath = root .. (lua == "lua5.4" and "/build/" or "/build/" .. lua .. "/") .. "?.so;" .. package.cpath
end

local uv = require("luv")
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")

local MAX_LINE = 8192 + 2

local function usage(msg)
  io.stderr:write("game_server: ", msg, "\nusage: game_server.lua [--serve] [--port N] [--host ADDR]",
    " [--ticket-timeout S] [--pidfile FILE]\n")
  os.exit(2)
end

local opts = { port = 0, host = "127.0.0.1", ticket_timeout = 5 }
do
  local i = 1
  while arg[i] do
    local a, v = arg[i], arg[i + 1]
    if a == "--serve" then opts.serve = true; i = i + 1
    elseif a == "--port" then opts.port = tonumber(v) or usage("--port N"); i = i + 2
    elseif a == "--host" then opts.host = v or usage("--host ADDR"); i = i + 2
    elseif a == "--ticket-timeout" then opts.ticket_timeout = tonumber(v) or usage("--ticket-timeout S"); i = i + 2
    elseif a == "--pidfile" then opts.pidfile = v or usage("--pidfile FILE"); i = i + 2
    else usage("unknown argument " .. a) end
  end
end

local AUDIENCE = os.getenv("GAME_AUDIENCE") or "game.example"
-- The development default is also examples/openresty/run's: keep the two in step.
local DEV_TICKET_SECRET = "development ticket secret, not for production"
local TICKET_SECRET = os.getenv("GATE_TICKET_SECRET") or os.getenv("GAME_TICKET_KEY") or DEV_TICKET_SECRET
local TICKET_KEY = assert(keys.HS256Key(TICKET_SECRET))

-- Tickets without a client: the ticket key and this game's audience (single use in the process).
local verifier = eternaltwin.tickets.verifier{ key = TICKET_KEY, audience = AUDIENCE }

local function log(fmt, ...) io.stderr:write(("game_server: " .. fmt .. "\n"):format(...)) end

-- A name fit for one protocol line: printable, at most 64 bytes.
local function display_name(claims)
  local name = type(claims.data) == "table" and claims.data.display_name
  if type(name) ~= "string" or name == "" then name = "player " .. claims.sub end
  return (name:gsub("[%c]", "?"):sub(1, 64))
end

------------------------------------------------------------------------------------------------
-- The server: one table per connection; a line handler that moves it from "ticket" to "playing".

local conns = {}

local function serve(host, port)
  local server = uv.new_tcp()
  assert(server:bind(host, port))
  assert(server:listen(128, function(err)
    if err then return log("accept: %s", err) end
    local sock = uv.new_tcp()
    if not server:accept(sock) then sock:close(); return end
    local c = { sock = sock, buf = "", echoes = 0, timer = uv.new_timer() }
    conns[c] = true

    local function close()
      if c.closed then return end
      c.closed = true
      conns[c] = nil
      sock:read_stop()
      c.timer:close()
      -- shutdown waits for the queued writes, so the last line reaches the player first.
      local function finish() if not sock:is_closing() then sock:close() end end
      if not sock:shutdown(finish) then finish() end
    end
    local function send(line) sock:write(line .. "\n") end
    local function refuse(reason) send("ERR " .. reason); close() end

    local function on_line(line)
      if not c.name then
        local claims, rerr = verifier:redeem(line)
        if not claims then
          log("refused a ticket: %s", rerr.message)
          return refuse(rerr.message)
        end
        c.timer:stop()
        c.name = display_name(claims)
        log("%s (%s) signed in", c.name, claims.sub)
        return send("WELCOME " .. c.name)
      end
      if line == "QUIT" then
        send(("BYE %s %d"):format(c.name, c.echoes))
        return close()
      end
      c.echoes = c.echoes + 1
      send("ECHO " .. line)
    end

    c.timer:start(math.floor(opts.ticket_timeout * 1000), 0, function() refuse("no ticket in time") end)
    sock:read_start(function(rerr, chunk)
      if rerr or not chunk then return close() end
      c.buf = c.buf .. chunk
      while not c.closed do
        local line, rest = c.buf:match("^([^\n]*)\n(.*)$")
        if not line then break end
        c.buf = rest
        if #line > MAX_LINE then return refuse("line too long") end
        on_line((line:gsub("\r$", "")))
      end
      if not c.closed and #c.buf > MAX_LINE then refuse("line too long") end
    end)
    c.refuse = refuse
  end))
  return server, server:getsockname().port
end

-- Stops listening and says goodbye to every player; uv.run returns once the last one is gone.
local function shutdown(server, signals)
  server:close()
  for _, sig in ipairs(signals) do sig:close() end
  for c in pairs(conns) do c.refuse("server stopping") end
end

------------------------------------------------------------------------------------------------
-- Demo: the web side issues a ticket, a scripted player connects and plays, then replays it.

local function demo(port, done)
  -- The web side: after sign-in it knows the player's id and display name.
  local web = eternaltwin.new{ client_id = "demo@clients", client_secret = "dev_secret",
    redirect_uri = "http://localhost:8000/oauth/callback", state_key = keys.HS256Key("the web site's state secret"),
    ticket_key = TICKET_KEY, url = "http://localhost:50320/" }
  local ticket = assert(web:issue_ticket("c5020923-b4b2-51a5-8a1d-ee5a10de03a3",
    { audience = AUDIENCE, data = { display_name = "Alice" } }))
  print(("web:     issued a ticket for Alice (%d bytes, for %s, 60 s, single use)"):format(#ticket, AUDIENCE))

  local transcript = {}
  local function player(lines, expect, next_step)
    local sock, buf, got = uv.new_tcp(), "", {}
    sock:connect("127.0.0.1", port, function(err)
      assert(not err, err)
      for _, l in ipairs(lines) do sock:write(l .. "\n") end
      sock:read_start(function(rerr, chunk)
        if rerr or not chunk then
          sock:close()
          for i, want in ipairs(expect) do
            if not (got[i] or ""):find(want, 1, true) then
              transcript.failed = ("expected %q, got %q"):format(want, tostring(got[i]))
            end
          end
          return next_step()
        end
        buf = buf .. chunk
        for l in buf:gmatch("([^\n]*)\n") do
          got[#got + 1] = l
          print("server:  " .. l)
        end
        buf = buf:match("([^\n]*)$")
      end)
    end)
  end

  print("player:  sends the ticket, then 'hello', 'jump', QUIT")
  player({ ticket, "hello", "jump", "QUIT" }, { "WELCOME Alice", "ECHO hello", "ECHO jump", "BYE Alice 2" }, function()
    print("player:  sends the same ticket again")
    player({ ticket }, { "ERR invalid ticket: already used" }, function()
      done(not transcript.failed, transcript.failed)
    end)
  end)
end

------------------------------------------------------------------------------------------------

local server, port = serve(opts.host, opts.port)
local rc = 0
if opts.serve then
  if opts.pidfile then
    local f = assert(io.open(opts.pidfile, "w"))
    f:write(uv.os_getpid(), "\n")
    f:close()
  end
  local signals = {}
  for _, name in ipairs({ "sigint", "sigterm" }) do
    local sig = uv.new_signal()
    sig:start(name, function() log("stopping (%s)", name); shutdown(server, signals) end)
    signals[#signals + 1] = sig
  end
  io.stdout:write("listening ", port, "\n")
  io.stdout:flush()
else
  print(("game:    listening on %s:%d, audience %s"):format(opts.host, port, AUDIENCE))
  local guard = uv.new_timer()
  local function finish(ok, why)
    if not ok then rc = 1; io.stderr:write("game_server: demo failed: ", tostring(why), "\n") end
    print(ok and "game_server: the player was greeted by name and the replay refused" or "game_server: FAILED")
    -- Everything closes, so uv.run returns (also what a stuck exchange leaves open).
    uv.walk(function(h) if not h:is_closing() then h:close() end end)
  end
  guard:start(10000, 0, function() finish(false, "no answer within 10 s") end)
  demo(port, finish)
end
uv.run()
if opts.pidfile then os.remove(opts.pidfile) end
os.exit(rc)
