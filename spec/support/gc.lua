-- SPDX-License-Identifier: MIT
-- Collector helpers for the finalizer-safety specs (core_http_spec, core_keys_spec): a finalizer
-- armed to run inside a call, garbage to make the collector run, and a collector that runs often.
local V = require("spec.support.compat")

local M = {}

--- Allocates n small tables and drops them (work for the collector).
function M.make_garbage(n)
  local junk = {}
  for i = 1, n do junk[i] = { i } end
  return #junk
end

--- An unreachable object whose finalizer calls fn (made in a function of its own, so no register
-- of the caller keeps it alive).
function M.arm(fn)
  V.on_gc(fn)
end

--- Runs fn with a collector that runs often and calls pending finalizers at the end of each
-- (5.4's generational mode with a 1% minor multiplier), so a finalizer armed just before a call
-- runs inside it, somewhere in the middle of building its result.
function M.eager_gc(fn)
  local gen = _VERSION == "Lua 5.4"
  if gen then
    collectgarbage("generational", 1, 100)
  else
    collectgarbage("setpause", 1)
    collectgarbage("setstepmul", 1000)
  end
  local ok, err = pcall(fn)
  if gen then
    collectgarbage("incremental", 200, 100, 13)
  else
    collectgarbage("setpause", 200)
    collectgarbage("setstepmul", 200)
  end
  assert(ok, err)
end

return M
