-- SPDX-License-Identifier: MIT
-- busted helper (see .busted): stops the mock instances started by the specs when the suite ends.
local busted = require("busted")
local mock = require("spec.support.mock")

busted.subscribe({ "suite", "end" }, function()
  mock.stop_all()
  return nil, true
end)
