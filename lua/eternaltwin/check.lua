-- SPDX-License-Identifier: MIT
--- Internal: argument checks, with one message shape: `bad argument to 'fname' (what)`.
-- `level` counts as `error`'s does, from the function that calls `fail` (default 2: the caller of
-- the function that checks). Not part of the public API.
-- @module eternaltwin.check
local core = require("eternaltwin.core")

local type, format, error = type, string.format, error
local null = core.null

local M = {}

--- Raises `bad argument to 'fname' (what)`, blaming the caller `level` frames up (default 2).
function M.fail(fname, what, level)
  error(format("bad argument to '%s' (%s)", fname, what), (level or 2) + 1)
end

--- The type named in messages: `null` for JSON null, else `type(v)`.
function M.typename(v)
  return v == null and "null" or type(v)
end

-- `client.get(...)` (a dot for a colon) passes no client as `self` (a string, nil...): say how to
-- call it instead of failing further in with "attempt to index a nil value". Any table passes, so
-- a proxy whose __index is a client keeps working where it did.
function M.client(self, name)
  if type(self) ~= "table" then
    error(format("bad self to '%s' (client expected, got %s: call it as client:%s(...), with a colon)",
      name, M.typename(self), name), 3)
  end
end

--- A finite number (not NaN, not an infinity).
function M.finite(v)
  return type(v) == "number" and v > -math.huge and v < math.huge
end

--- A finite non-negative number of seconds.
function M.seconds(v)
  return type(v) == "number" and v >= 0 and v < math.huge
end

return M
