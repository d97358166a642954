-- SPDX-License-Identifier: MIT
-- Driving the poller from libuv (Debian's lua-luv): libuv waits on the poller's sockets and timer,
-- and calls poller:step(0) when one is ready. 50 lookups run while a libuv timer keeps ticking.
-- Run (after `make`): `lua5.4 examples/luv_loop.lua` from the repository root, or from examples/.
-- The checkout's lua/, build/ and examples/ go first on the module paths (found from this file's
-- own path), so this runs from the repository root or from examples/ without LUA_PATH.
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
local mockserver = require("examples.mockserver")

-- Keeps one uv poll handle per socket of the poller, and one timer for the poller's timeout.
local function attach(poller, on_idle)
  local polls, timer = {}, uv.new_timer()
  local refresh
  local function drive()
    if poller:step(0) == 0 then
      for fd, h in pairs(polls) do h:close(); polls[fd] = nil end
      timer:close()
      on_idle()
      return
    end
    refresh()
  end
  function refresh()
    local seen = {}
    for _, s in ipairs(poller:sockets()) do
      seen[s.fd] = true
      local h = polls[s.fd]
      if not h then h = uv.new_socket_poll(s.fd); polls[s.fd] = h end
      local ev = (s.read and "r" or "") .. (s.write and "w" or "")
      if ev == "" then ev = "r" end
      h:start(ev, function() drive() end)
    end
    for fd, h in pairs(polls) do
      if not seen[fd] then h:close(); polls[fd] = nil end
    end
    local t = poller:timeout()
    timer:stop()
    if t then timer:start(math.max(0, math.floor(t * 1000)), 0, drive) end
  end
  drive()
end

local function main(url)
  local client = eternaltwin.new("demo@clients", "dev_secret", "http://localhost:8000/oauth/callback",
    keys.HS256Key("luv secret"), { url = url })
  local poller = eternaltwin.poller()
  local ok, ticks = 0, 0
  for i = 1, 50 do
    poller:spawn(function()
      local res = client:get("_mock/delay", { params = { ms = 100 + i } })
      if res and res.status_code == 200 then ok = ok + 1 end
    end)
  end
  local heartbeat = uv.new_timer()
  heartbeat:start(10, 10, function() ticks = ticks + 1 end)
  attach(poller, function() heartbeat:stop(); heartbeat:close() end)
  uv.run()
  print(string.format("luv_loop: %d of 50 requests done while libuv ticked %d times", ok, ticks))
  return ok == 50 and ticks > 5, "requests failed or the loop was blocked"
end

mockserver.run(main)
