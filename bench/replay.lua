-- SPDX-License-Identifier: MIT
-- ReplayStore cost per check once full of live nonces (issue 12: O(log n), was two full passes).
--   lua5.4 bench/replay.lua [SIZE=100000] [CHECKS=100000] -> one line: size, checks, us per check
local eternaltwin = require("eternaltwin")
local monotime = require("eternaltwin.core").monotime

local size, checks = tonumber(arg[1]) or 100000, tonumber(arg[2]) or 100000
local store = eternaltwin.ReplayStore(size)
local now = 1000
for i = 1, size do store:check_and_add("n" .. i, now + 1000000 + i, now) end
local t0 = monotime()
for i = 1, checks do
  if not store:check_and_add("x" .. i, now + 2000000 + i, now) then error("refused a new nonce") end
end
io.write(("size %d checks %d %.2f us/check\n"):format(size, checks, (monotime() - t0) * 1e6 / checks))
