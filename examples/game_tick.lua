-- SPDX-License-Identifier: MIT
-- A game loop at a fixed 20 Hz that never blocks: each tick calls poller:step(0) while 100 user
-- lookups run as poller tasks. Prints how many ticks it took and the longest tick.
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
  while poller:step(0) > 0 do
    local t0 = core.monotime()
    -- ... the game's own work for this tick would go here ...
    ticks = ticks + 1
    local spent = core.monotime() - t0
    if spent > longest then longest = spent end
    if core.monotime() - start > 30 then return nil, "lookups did not finish in 30 s" end
    core.sleep(math.max(0, TICK - spent))
  end
  print(string.format("game_tick: %d lookups done (%d failed) in %d ticks of 50 ms, longest step %.2f ms",
    found, failed, ticks, longest * 1000))
  return failed == 0 and found == 100, "some lookups failed"
end

mockserver.run(main)
