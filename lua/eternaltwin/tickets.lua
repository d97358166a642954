-- SPDX-License-Identifier: MIT
--- Internal: game tickets (the client's `issue_ticket` and `redeem_ticket`). Documented with the
-- module `eternaltwin`.
-- @module eternaltwin.tickets
local core = require("eternaltwin.core")
local errors = require("eternaltwin.errors")
local keys = require("eternaltwin.keys")
local check = require("eternaltwin.check")
local claims_check = require("eternaltwin.claims")
local stores = require("eternaltwin.stores")
local sign = require("eternaltwin.state").sign

local type, pairs, tostring, format = type, pairs, tostring, string.format
local math_type = require("eternaltwin.compat").math_type
local argfail, typename, check_client = check.fail, check.typename, check.client
local new_error, builtin_key = errors.new, keys._builtin
local TICKET = claims_check.ticket

local M = {}

local TICKET_MAX_TTL = claims_check.TICKET_MAX_TTL
local TICKET_MAX_LEN = 8192       -- bytes of a ticket redeem reads at all (the JWT bound of the core)
local TICKET_MAX_DATA = 4096      -- bytes of `data` as JSON
local TICKET_MAX_ID = 256         -- bytes of a user id or an audience
local ISSUE_OPTIONS = { audience = true, ttl = true, data = true }
local REDEEM_OPTIONS = { audience = true, store = true, leeway = true }

local function refuse(msg, claims)
  return nil, new_error(errors.InvalidTicketError, "invalid ticket: " .. msg, { ticket = claims })
end

-- The options table both sides take; returns the audience.
local function ticket_audience(fname, opts, allowed)
  if type(opts) ~= "table" then argfail(fname, "options table with 'audience' expected, got " .. typename(opts), 3) end
  for k in pairs(opts) do
    if not allowed[k] then argfail(fname, format("unknown option '%s'", tostring(k)), 3) end
  end
  local aud = opts.audience
  if type(aud) ~= "string" or aud == "" or #aud > TICKET_MAX_ID then
    argfail(fname, format("'audience': string of 1 to %d bytes expected, got %s", TICKET_MAX_ID, typename(aud)), 3)
  end
  return aud
end

function M.issue_ticket(self, user_id, opts)
  check_client(self, "issue_ticket")
  if type(user_id) ~= "string" or user_id == "" or #user_id > TICKET_MAX_ID then
    argfail("issue_ticket", format("user id: string of 1 to %d bytes expected, got %s", TICKET_MAX_ID, typename(user_id)))
  end
  local audience = ticket_audience("issue_ticket", opts, ISSUE_OPTIONS)
  local ttl = opts.ttl
  if ttl == nil then
    ttl = 60
  elseif math_type(ttl) ~= "integer" or ttl < 1 or ttl > TICKET_MAX_TTL then
    argfail("issue_ticket", format("'ttl': whole seconds from 1 to %d expected", TICKET_MAX_TTL))
  end
  local data = opts.data
  if data ~= nil then
    if type(data) ~= "table" then argfail("issue_ticket", "'data': table expected, got " .. typename(data)) end
    local json, msg = core.json_encode(data)
    if not json then argfail("issue_ticket", "'data': " .. msg) end
    if #json > TICKET_MAX_DATA then
      argfail("issue_ticket", format("'data': %d bytes of JSON, at most %d allowed", #json, TICKET_MAX_DATA))
    end
  end
  local nonce, msg = core.random_hex(16)
  if not nonce then return nil, new_error(errors.KeyError, "cannot make a nonce: " .. msg) end
  local now = os.time()
  local claims = { a = "ticket", sub = user_id, aud = audience, iat = now, exp = now + ttl, nonce = nonce,
                   data = data }
  return sign(self.ticket_key or self.state_key, claims)
end

-- The store redeem_ticket uses without `store`: the client's own, made on first use.
function M.ticket_store(self)
  local s = self.ticket_store
  if not s then s = stores.ReplayStore(); self.ticket_store = s end
  return s
end

function M.redeem_ticket(self, ticket, opts)
  check_client(self, "redeem_ticket")
  local audience = ticket_audience("redeem_ticket", opts, REDEEM_OPTIONS)
  local store, leeway = opts.store, opts.leeway
  if store ~= nil and not stores.is_replay_store(store) then
    argfail("redeem_ticket", "'store': replay store expected (an object with check_and_add)")
  end
  if leeway == nil then
    leeway = 0
  elseif not check.seconds(leeway) then
    argfail("redeem_ticket", "'leeway': non-negative finite number of seconds expected")
  end
  if ticket == nil then return refuse("no ticket given") end
  if type(ticket) ~= "string" then argfail("redeem_ticket", "ticket string expected, got " .. typename(ticket)) end
  if #ticket > TICKET_MAX_LEN then return refuse(format("longer than %d bytes", TICKET_MAX_LEN)) end
  local key, claims = self.ticket_key or self.state_key
  local ckey = builtin_key(key)
  if ckey then
    local msg
    claims, msg = ckey:claims(ticket)
    if not claims then return refuse(msg) end
  else
    local err
    claims, err = keys._call(errors.InvalidTicketError, key, "decode", ticket)
    if not claims then
      -- Lua keys and key rings speak of states: say ticket.
      local why = tostring(err and err.message or err):gsub("^invalid state: ", ""):gsub("^state key ", "key ")
      return refuse(why)
    end
    if type(claims) ~= "table" then return refuse("key returned no claims") end
  end
  local now = os.time()
  local bad = claims_check.check(TICKET, claims, now, leeway, audience)
  if bad then return refuse(bad, claims) end
  local ok, why = stores.use_nonce(store or M.ticket_store(self), claims.nonce, claims.exp + leeway, now)
  if not ok then return refuse(why, claims) end
  return claims
end

return M
