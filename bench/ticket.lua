-- SPDX-License-Identifier: MIT
-- Ticket redeem (`client:redeem_ticket`, the game server's hot path: signature, claims, replay
-- store), next to the state round trip. Tickets are issued in batches outside the timed part.
--   lua5.4 bench/ticket.lua ALG KEYFILE URL SECONDS ROUNDS -> `round N OPS` lines (redeems/s),
-- each round at least SECONDS of redeeming.
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local monotime = require("eternaltwin.core").monotime

local alg, keyfile, url, seconds, rounds = arg[1], arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5])
local text = assert(keys.read_file(keyfile))
local key
if alg == "HS256" then
  key = assert(keys.HS256Key((text:gsub("[\r\n]+$", ""))))
else
  key = assert(keys[alg .. "Key"](nil, text))
end
-- The client's own replay store, as a game server that passes no `store` has. A fresh client every
-- 50,000 redeems keeps that store (100,000 entries) below capacity, the state a game server should
-- run in (size the store above redeems/s x ttl); bench/replay.lua measures a full one.
local function new_client()
  return eternaltwin.new("bench@clients", "secret", "http://localhost/cb", key, { url = url })
end
local client, used = new_client(), 0
local SEGMENT = 50000
local OPTS = { audience = "game.bench" }
local ISSUE = { audience = "game.bench", data = { display_name = "Alice" } }
local ID = "c5020923-b4b2-51a5-8a1d-ee5a10de03a3"

local batch = {}
local ticket = assert(client:issue_ticket(ID, ISSUE))
assert(client:redeem_ticket(ticket, OPTS))
used = 1
io.stderr:write("ticket: ", #ticket, " bytes\n")

for r = 1, rounds do
  local n, dt = 0, 0
  repeat
    if used >= SEGMENT then client, used = new_client(), 0 end
    for i = 1, 256 do batch[i] = client:issue_ticket(ID, ISSUE) end
    local t0 = monotime()
    for i = 1, 256 do
      if not client:redeem_ticket(batch[i], OPTS) then error("ticket refused") end
    end
    dt = dt + (monotime() - t0)
    n, used = n + 256, used + 256
  until dt >= seconds
  io.write(("round %d %.1f\n"):format(r, n / dt))
  io.flush()
end
