-- SPDX-License-Identifier: MIT
--- Internal: the few differences between Lua 5.1 (and LuaJIT), 5.2, 5.3 and 5.4 that the Lua layer
-- meets, written once. Not part of the public API.
-- On 5.1, 5.2 and LuaJIT every number is a double: an "integer" there is a number without a
-- fraction inside the 64-bit range, so `3.0` counts as the integer 3 (5.3+ tell them apart).
-- @module eternaltwin.compat
local type, select = type, select

local M = {}

M.pack = table.pack or function(...) return { n = select("#", ...), ... } end
M.unpack = table.unpack or unpack

local TWO63 = 2 ^ 63

--- `math.type`: "integer", "float" or nil.
M.math_type = math.type or function(v)
  if type(v) ~= "number" then return nil end
  if v % 1 == 0 and v >= -TWO63 and v < TWO63 then return "integer" end
  return "float"
end

--- `math.tointeger`: the integer equal to `v`, or nil (5.3+ also accept integral floats).
M.tointeger = math.tointeger or function(v)
  if type(v) == "number" and v % 1 == 0 and v >= -TWO63 and v < TWO63 then return v end
  return nil
end

--- True where a coroutine can yield across `pcall` (5.2+ and LuaJIT; not PUC 5.1).
M.yieldable_pcall = _VERSION ~= "Lua 5.1" or type(jit) == "table"

return M
