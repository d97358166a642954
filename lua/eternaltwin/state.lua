-- SPDX-License-Identifier: MIT
--- Internal: states (the client's `authorization_url`, `generate_state`, `validate_state`) and the
-- signing that tickets share. Documented with the module `eternaltwin`.
-- @module eternaltwin.state
local core = require("eternaltwin.core")
local errors = require("eternaltwin.errors")
local keys = require("eternaltwin.keys")
local check = require("eternaltwin.check")
local claims_check = require("eternaltwin.claims")
local stores = require("eternaltwin.stores")
local form_encode = require("eternaltwin.http").form_encode

local type, pairs, tostring, format = type, pairs, tostring, string.format
local argfail, typename, check_client = check.fail, check.typename, check.client
local new_error, builtin_key, use_nonce = errors.new, keys._builtin, stores.use_nonce
local STATE = claims_check.state

local M = {}

--- Signs claims with a state or ticket key: a JWT, or `nil, err` (KeyError).
function M.sign(key, claims)
  local ckey, kid = builtin_key(key)
  if ckey then
    -- A built-in key: the C key directly (what Key:encode does, without the protected call).
    local tok, msg = ckey:encode(claims, kid)
    if not tok then return nil, new_error(errors.KeyError, "cannot sign: " .. msg) end
    return tok
  end
  return keys._call(errors.KeyError, key, "encode", claims)
end

function M.authorization_url(self, state, scope)
  check_client(self, "authorization_url")
  if type(state) ~= "string" then argfail("authorization_url", "state string expected, got " .. typename(state)) end
  if scope ~= nil and type(scope) ~= "string" then argfail("authorization_url", "scope string expected") end
  return self:resolve("oauth/authorize") .. "?" .. form_encode("authorization_url", {
    { "response_type", "code" }, { "access_type", "offline" }, { "client_id", self.client_id },
    { "scope", scope or "base" }, { "state", state }, { "redirect_uri", self.redirect_uri },
  })
end

function M.generate_state(self, expiration, nonce)
  check_client(self, "generate_state")
  if expiration ~= nil and not check.finite(expiration) then
    argfail("generate_state", "expiration: number of seconds expected")
  end
  if nonce ~= nil and type(nonce) ~= "string" then argfail("generate_state", "nonce: string expected") end
  if nonce == nil then
    local msg
    nonce, msg = core.random_hex(64)
    if not nonce then return nil, new_error(errors.KeyError, "cannot make a nonce: " .. msg) end
  end
  local now = os.time()
  local claims = { a = "authorize", as = self.url, iat = now, rfp = now, exp = now + (expiration or 600),
                   nonce = nonce }
  return M.sign(self.state_key, claims)
end

local function invalid(msg, claims)
  return nil, new_error(errors.InvalidStateError, msg, { state = claims })
end

-- The store `opts.once = true` uses on a client made without replay_protection.
local function default_store(self)
  if not self.replay_store then self.replay_store = stores.ReplayStore() end
  return self.replay_store
end
M.default_store = default_store

function M.validate_state(self, state, expected, opts)
  check_client(self, "validate_state")
  if state == nil then return invalid("invalid state: no state given") end
  if type(state) ~= "string" then argfail("validate_state", "state string expected, got " .. typename(state)) end
  if expected ~= nil and type(expected) ~= "string" then
    argfail("validate_state", "expected state string expected, got " .. typename(expected))
  end
  local leeway = 0
  if opts ~= nil then
    if type(opts) ~= "table" then argfail("validate_state", "options table expected") end
    for k in pairs(opts) do
      if k ~= "leeway" and k ~= "once" then argfail("validate_state", format("unknown option '%s'", tostring(k))) end
    end
    if opts.once ~= nil and type(opts.once) ~= "boolean" and not stores.is_replay_store(opts.once) then
      argfail("validate_state", "once: boolean or replay store expected")
    end
    if opts.leeway ~= nil then
      if not check.seconds(opts.leeway) then
        argfail("validate_state", "leeway: finite non-negative number of seconds expected")
      end
      leeway = opts.leeway
    end
  end
  local key, claims = self.state_key
  local ckey = builtin_key(key)
  local now = os.time()
  if ckey then
    -- A built-in key: decode and the claim checks, in C (the checks of claims.state, same messages).
    local msg, signed
    claims, msg, signed = ckey:state_claims(state, self.url, now, leeway)
    if not claims then return invalid(msg, signed) end
  else
    local err
    claims, err = keys._call(errors.InvalidStateError, key, "decode", state)
    if not claims then return nil, err end
    if type(claims) ~= "table" then return invalid("invalid state: key returned no claims") end
    local bad = claims_check.check(STATE, claims, now, leeway, self.url)
    if bad then return invalid("invalid state: " .. bad, claims) end
  end
  if expected ~= nil and not core.consttime_equal(state, expected) then
    return invalid("invalid state: does not match the expected state", claims)
  end
  local store = self.replay_store
  if opts and opts.once ~= nil then
    if opts.once == true then
      store = store or default_store(self)
    elseif opts.once == false then
      store = nil
    else
      store = opts.once
    end
  end
  if store then
    local ok, why = use_nonce(store, claims.nonce, claims.exp + leeway, now)
    if not ok then return invalid("invalid state: " .. why, claims) end
  end
  return claims
end

return M
