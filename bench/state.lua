-- SPDX-License-Identifier: MIT
-- State round trip (`client:generate_state` then `client:validate_state`), the Lua side of the
-- comparison with bench/limit.c.
--   lua5.4 bench/state.lua ALG KEYFILE URL SECONDS ROUNDS -> `round N OPS` lines (round trips/s),
-- each round at least SECONDS long.
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
local client = eternaltwin.new("bench@clients", "secret", "http://localhost/cb", key, { url = url })

local state = assert(client:generate_state())
assert(client:validate_state(state, state))
io.stderr:write("token: ", #state, " bytes\n")

for r = 1, rounds do
  local n, t0, dt = 0, monotime(), 0
  repeat
    for _ = 1, 16 do
      local s = client:generate_state()
      if not client:validate_state(s) then error("state did not validate") end
    end
    n = n + 16
    dt = monotime() - t0
  until dt >= seconds
  io.write(("round %d %.1f\n"):format(r, n / dt))
  io.flush()
end
