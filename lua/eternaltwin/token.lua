-- SPDX-License-Identifier: MIT
--- Internal: the Token class (`eternaltwin.Token`, `eternaltwin.is_token`), and the check of a
-- token response's fields. Documented with the module `eternaltwin`.
-- @module eternaltwin.token
local core = require("eternaltwin.core")
local check = require("eternaltwin.check")

local type, format, setmetatable, getmetatable = type, string.format, setmetatable, getmetatable
local argfail, typename = check.fail, check.typename

local M = {}

local Token = {}
Token.__index = Token
Token.__name = "eternaltwin.Token"
M.Token = Token

-- Shows both clocks: `expires in` counts to `expiration` (the server's expiry less the 60 s margin
-- that has_expired uses, as in Python); `server` counts to the server's own expiry.
function Token.__tostring(t)
  local now = os.time()
  local left, real = t.expiration - now, (t.server_expiration or t.expiration + 60) - now
  local state
  if left > 0 then
    state = format("expires in %d s (server: %d s)", left, real)
  elseif real > 0 then
    state = format("expired (60 s margin; the server accepts it %d s more)", real)
  else
    state = "expired"
  end
  return format("<Token %s %s%s>", t.token_type, state, t.refresh_token and ", refreshable" or "")
end

function Token:has_expired()
  return os.time() >= self.expiration
end

function Token:seconds_left()
  local left = self.server_expiration - os.time()
  return left > 0 and left or 0
end

-- Largest expires_in accepted (ten years): beyond it, or not finite, a server is broken or hostile
-- (an infinite expiration never expires, and a huge one has no integer representation).
local MAX_EXPIRES_IN = 10 * 365 * 24 * 3600

--- The name of the first missing or ill-typed field of a token (response), or nil.
function M.bad_field(t)
  if type(t.access_token) ~= "string" or t.access_token == "" then return "access_token" end
  local e = t.expires_in
  if type(e) ~= "number" or not (e >= -MAX_EXPIRES_IN and e <= MAX_EXPIRES_IN) then return "expires_in" end
  if type(t.token_type) ~= "string" then return "token_type" end
  if t.refresh_token ~= nil and t.refresh_token ~= core.null and type(t.refresh_token) ~= "string" then
    return "refresh_token"
  end
end

--- A Token from checked fields.
function M.make(t)
  local server = math.floor(os.time() + t.expires_in)
  return setmetatable({
    access_token = t.access_token,
    refresh_token = t.refresh_token ~= core.null and t.refresh_token or nil,
    token_type = t.token_type,
    expires_in = t.expires_in,
    expiration = server - 60,
    server_expiration = server,
  }, Token)
end

-- eternaltwin.Token(t) (documented in init.lua).
function M.new(t)
  if type(t) ~= "table" then argfail("Token", "table expected, got " .. typename(t)) end
  local bad = M.bad_field(t)
  if bad then argfail("Token", format("field '%s' is missing or of the wrong type", bad)) end
  return M.make(t)
end

function M.is_token(v) return getmetatable(v) == Token end

return M
