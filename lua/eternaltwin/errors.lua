-- SPDX-License-Identifier: MIT
--- Error objects returned as the second value of failed calls.
-- Every error has `kind`, `message` and a boolean `retryable`, and kind-specific fields:
-- InvalidStateError `state` (the claims, when the signature held); InvalidTicketError `ticket`
-- (likewise); RequestError `response`, `status_code`, `url`; TransportError `code` (`timeout`,
-- `connect`, `resolve`, `tls`, `too_large`, `reset`, `empty_reply`, `redirects`, `url`,
-- `interrupted`, `transport`) and `url`; DecodeError
-- `response` when a body was at fault. `tostring(err)` and `"failed: " .. err` give the message;
-- `error(err)` works with `pcall`. `print(errors)` lists the kinds.
-- `errors.RequestError == "RequestError"` and so on for every kind, so `err.kind == errors.RequestError`
-- reads well; `pairs(errors)` lists exactly the kinds. Helpers live in the metatable.
-- @module eternaltwin.errors

local setmetatable, type, rawget = setmetatable, type, rawget

local KINDS = {
  "InvalidStateError", -- a state JWT failed validation (`err.state`: claims when the signature held)
  "InvalidTicketError", -- a game ticket was refused (`err.ticket`: claims when the signature held)
  "RequestError",      -- the server answered with a status >= 300 (`err.response`, `status_code`, `url`)
  "TransportError",    -- no usable answer (`err.code`: timeout, connect, resolve, tls, too_large, ...)
  "DecodeError",       -- a body was not the JSON expected
  "KeyError",          -- a key could not be loaded, does not fit its algorithm, or cannot sign
  "Cancelled",         -- a poller task was cancelled
}

local Error = {}
Error.__index = Error
Error.__name = "eternaltwin.Error"

-- The message (never contains a secret).
function Error.__tostring(e) return e.message end

--- Whether this error is of the given kind: `err:is("RequestError")`.
-- @tparam string kind one of the kinds (`errors.RequestError`...)
-- @treturn boolean
function Error:is(kind) return self.kind == kind end

Error.__eq = function(a, b) return a.kind == b.kind and a.message == b.message end

-- `"failed: " .. err` and `err .. "!"` concatenate the message, as `tostring` gives it.
function Error.__concat(a, b)
  return (getmetatable(a) == Error and a.message or a) .. (getmetatable(b) == Error and b.message or b)
end

local helpers = {}

--- Builds an error object (for keys and extensions written in Lua).
-- @tparam string kind one of the kinds
-- @tparam string message the message (keep secrets out of it)
-- @tparam[opt] table fields copied in (`kind` and `message` win; `retryable` defaults to false)
-- @treturn Error
-- @function new
function helpers.new(kind, message, fields)
  local e = { kind = kind, message = message }
  if fields then
    for k, v in pairs(fields) do
      if rawget(e, k) == nil then e[k] = v end
    end
  end
  -- Every error says whether trying again may help (transport hiccups, 429, 502-504); the kinds
  -- that never do (bad state, bad key, bad JSON, cancelled) say false rather than nothing.
  if e.retryable == nil then e.retryable = false end
  return setmetatable(e, Error)
end

--- Whether `v` is an error object of this module.
-- @param v any value
-- @treturn boolean
-- @function is_error
function helpers.is_error(v)
  return type(v) == "table" and getmetatable(v) == Error
end

--- Strips the query string, fragment and any user information from a URL, for messages.
-- @tparam string url any URL
-- @treturn string
-- @function safe_url
helpers.safe_url = require("eternaltwin.url").safe

helpers.kinds = {}
helpers.Error = Error

local M = {}
for i, k in ipairs(KINDS) do
  M[k] = k
  helpers.kinds[i] = k
end

-- `print(eternaltwin.errors)` lists the kinds.
return setmetatable(M, { __index = helpers, __tostring = function()
  return "<eternaltwin.errors " .. table.concat(helpers.kinds, ", ") .. ">"
end })
