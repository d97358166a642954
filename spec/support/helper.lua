-- SPDX-License-Identifier: MIT
-- busted helper (see .busted): stops the mock instances started by the specs when the suite ends.
local busted = require("busted")
local mock = require("spec.support.mock")

busted.subscribe({ "suite", "end" }, function()
  mock.stop_all()
  return nil, true
end)

-- make check runs the suite against another build (sanitizers): make sure that is the one loaded.
local expect = os.getenv("ETWIN_EXPECT_CORE")
if expect and expect ~= "" then
  local got = package.searchpath("eternaltwin.core", package.cpath)
  local rel = got and got:gsub("^%./", "")
  assert(got and (got == expect or expect:sub(-#rel - 1) == "/" .. rel),
    "eternaltwin.core loads from " .. tostring(got) .. ", expected " .. expect)
end
