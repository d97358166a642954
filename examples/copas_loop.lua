-- SPDX-License-Identifier: MIT
-- eternaltwin beside copas (Debian's lua-copas, 1.1.7, for Lua 5.1 and 5.2): one outer loop runs
-- copas' sockets and the poller's transfers in turn, so neither ever blocks the other.
--
-- A client call made straight inside a copas handler would block every copas thread until it is
-- done (copas does not know libcurl's sockets, and copas 1.x has no timers a caller could wait on).
-- Instead the handler spawns a poller task for the call; the outer loop alternates
-- `copas.step(<= 10 ms)` and `poller:step(0)`. Here a copas TCP server (the "game server") answers
-- each connection's player id with the player's name, looked up in a task; ten copas client threads
-- ask at once, and each lookup waits 200 ms at the server first: all ten finish in about 200 ms,
-- where blocking calls would take 2 s.
-- Run (after `make LUA=lua5.1`, which builds build/lua5.1/eternaltwin/core.so: plain `make` builds
-- for Lua 5.4 only): `lua5.1 examples/copas_loop.lua` from the repository root, or from examples/.
-- Any Lua whose path finds copas and LuaSocket works, with its own build (`make LUA=luajit` for
-- `luajit examples/copas_loop.lua`); Debian's lua-copas serves 5.1, 5.2 and LuaJIT.
do
  local root = ((arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or ".") .. "/.."
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/?.lua;" .. package.path
  -- The build for the running Lua: build/ for 5.4, build/lua5.1/ ... build/luajit/ for the others.
  local lua = type(jit) == "table" and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
  package.cpath = root .. (lua == "lua5.4" and "/build/" or "/build/" .. lua .. "/") .. "?.so;" .. package.cpath
end
local copas = require("copas")
local socket = require("socket")
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")
local mockserver = require("examples.mockserver")

local N, DELAY_MS = 10, 200

local function main(url)
  local client = eternaltwin.new("demo@clients", "dev_secret", "http://localhost:8000/oauth/callback",
    keys.HS256Key("copas secret"), { url = url })
  local poller = eternaltwin.poller()
  local ids = {}
  for _, u in ipairs(assert(assert(client.users:search("")):json()).items) do ids[#ids + 1] = u.id end

  -- The copas server: read an id, hand the lookup to a poller task, which answers and closes.
  -- (copas closes a connection when its handler returns, unless autoclose is off: the task owns it.)
  copas.autoclose = false
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  copas.addserver(server, function(skt)
    local id = copas.wrap(skt):receive("*l")
    poller:spawn(function()
      local name
      local _, err = client:get("_mock/delay", { params = { ms = DELAY_MS } })  -- yields to the poller
      local res = not err and client.users:get(id)
      if res then name = res:json().display_name.current.value else name = "error: " .. tostring(err) end
      skt:send(name .. "\n")                    -- a short line to a non-blocking socket: no wait
      skt:close()
    end)
  end)

  -- Ten copas clients (the players), all at once.
  local replies = 0
  for i = 1, N do
    copas.addthread(function()
      local conn = copas.wrap(socket.tcp())
      assert(copas.connect(conn.socket, "127.0.0.1", port))
      conn:send(ids[(i - 1) % #ids + 1] .. "\n")
      local name = conn:receive("*l")
      if name and not name:find("^error") then replies = replies + 1 end
      conn.socket:close()
    end)
  end

  -- The outer loop: copas waits on its own sockets at most 10 ms (it cannot see libcurl's), then
  -- the poller advances its transfers without blocking.
  local start = core.monotime()
  while replies < N and core.monotime() - start < 10 do
    local t = poller:timeout()
    copas.step(t and math.min(t, 0.01) or 0.01)
    poller:step(0)
  end
  server:close()
  local ms = (core.monotime() - start) * 1000
  print(string.format("copas_loop: %d of %d replies in %.0f ms (blocking calls would take %d ms)",
    replies, N, ms, N * DELAY_MS))
  return replies == N and ms < N * DELAY_MS, "replies missing, or copas was blocked"
end

mockserver.run(main)
