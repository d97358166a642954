-- SPDX-License-Identifier: MIT
-- A game loop at a fixed 20 Hz that never blocks: each tick calls poller:step(0) while 100 user
-- lookups run as poller tasks. Prints how many ticks it took and the longest tick (the poller's
-- step and the game's work, the sleep to the next tick left out).
-- Run (after `make`): `lua5.4 examples/game_tick.lua` from the repository root, or from examples/.
-- The checkout's lua/, build/ and examples/ go first on the module paths (found from this file's
-- own path), so this runs from the repository root or from examples/ without LUA_PATH.
do
  local root = ((arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or ".") .. "/.."
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/?.lua;" .. package.path
  -- The build for the running Lua: build/ for 5.4, build/lua5.1/ ... build/luajit/ for the others.
  local lua = type(jit) == "table" and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
  package.cpath = root .. (lua == "lua5.4" and "/build/" or "/build/" .. lua .. "/") .. "?.so;" .. package.cpath
end
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")
local mockserver = require("examples.mockserver")

local TICK = 1 / 20

local function main(url)
  local client = eternaltwin.new("demo@clients", "dev_secret", "http://localhost:8000/oauth/callback",
    keys.HS256Key("game secret"), { url = url })
  local poller = eternaltwin.poller()

  -- The players to look up: the ids of everyone the server knows, 100 lookups in all.
  local list = assert(assert(client.users:search("")):json())
  local found, failed = 0, 0
  for i = 1, 100 do
    local id = list.items[(i - 1) % #list.items + 1].id
    poller:spawn(function()
      local res, err = client.users:get(id)     -- yields inside the task: the loop keeps ticking
      if res then found = found + 1 else failed = failed + 1; print("lookup failed: " .. tostring(err)) end
    end)
  end

  local ticks, longest, start = 0, 0, core.monotime()
  while true do
    local t0 = core.monotime()
    local live = poller:step(0)               -- the lookups' I/O for this tick: never blocks
    -- ... the game's own work for this tick would go here ...
    local spent = core.monotime() - t0        -- the whole tick: the poller's step and the game's work
    ticks = ticks + 1
    if spent > longest then longest = spent end
    if live == 0 then break end
    if core.monotime() - start > 30 then return nil, "lookups did not finish in 30 s" end
    core.sleep(math.max(0, TICK - spent))
  end
  print(string.format("game_tick: %d lookups done (%d failed) in %d ticks of 50 ms, longest step %.2f ms",
    found, failed, ticks, longest * 1000))
  return failed == 0 and found == 100, "some lookups failed"
end

mockserver.run(main)
