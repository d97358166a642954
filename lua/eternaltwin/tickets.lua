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

local type, pairs, tostring, format, pcall, setmetatable, tonumber =
      type, pairs, tostring, string.format, pcall, setmetatable, tonumber
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

-- Where a revocation mark of user `id` lives in a store (written by the gate's `revoke`): the time
-- of the revocation, epoch seconds (with a fraction) as a string. Tickets issued at or before it are
-- refused.
local function revocation_key(id) return "revoked:" .. id end
M.revocation_key = revocation_key

-- A signature failure: say the issuer may sign with another key (a game server given another secret
-- than the web site's is the usual cause).
local function signature_hint(msg)
  if tostring(msg):find("signature", 1, true) then
    return msg .. " (the issuer may sign tickets with another key than this one)"
  end
  return msg
end

-- The one redeem path: the client's `redeem_ticket` and a verifier's `redeem`.
local function redeem(key, store, ticket, audience, leeway, revocations)
  if ticket == nil then return refuse("no ticket given") end
  if #ticket > TICKET_MAX_LEN then return refuse(format("longer than %d bytes", TICKET_MAX_LEN)) end
  local claims
  local ckey = builtin_key(key)
  if ckey then
    local msg
    claims, msg = ckey:claims(ticket)
    if not claims then return refuse(signature_hint(msg)) end
  else
    local err
    claims, err = keys._call(errors.InvalidTicketError, key, "decode", ticket)
    if not claims then
      -- Lua keys and key rings speak of states: say ticket.
      local why = tostring(err and err.message or err):gsub("^invalid state: ", ""):gsub("^state key ", "key ")
      return refuse(signature_hint(why))
    end
    if type(claims) ~= "table" then return refuse("key returned no claims") end
  end
  local now = os.time()
  local bad = claims_check.check(TICKET, claims, now, leeway, audience)
  if bad then return refuse(bad, claims) end
  if revocations ~= nil then
    -- Checked before the nonce is used up: a refused ticket is not used up.
    local ok, mark, msg = pcall(revocations.get, revocations, revocation_key(claims.sub))
    if not ok then mark, msg = nil, mark end
    if mark == nil and msg ~= nil then
      return refuse("revocation store failed: " .. tostring(msg), claims)
    end
    local at = mark ~= nil and tonumber(mark)
    if mark ~= nil and (not at or claims.iat <= at) then
      return refuse("the player's sessions were revoked after it was issued", claims)
    end
  end
  local ok, why = stores.use_nonce(store, claims.nonce, claims.exp + leeway, now)
  if not ok then return refuse(why, claims) end
  return claims
end

local function check_leeway(fname, leeway)
  if leeway == nil then return 0 end
  if not check.seconds(leeway) then
    argfail(fname, "'leeway': non-negative finite number of seconds expected", 3)
  end
  return leeway
end

function M.redeem_ticket(self, ticket, opts)
  check_client(self, "redeem_ticket")
  local audience = ticket_audience("redeem_ticket", opts, REDEEM_OPTIONS)
  local store = opts.store
  if store ~= nil and not stores.is_replay_store(store) then
    argfail("redeem_ticket", "'store': replay store expected (an object with check_and_add)")
  end
  local leeway = check_leeway("redeem_ticket", opts.leeway)
  if ticket ~= nil and type(ticket) ~= "string" then
    argfail("redeem_ticket", "ticket string expected, got " .. typename(ticket))
  end
  return redeem(self.ticket_key or self.state_key, store or M.ticket_store(self), ticket, audience, leeway)
end

------------------------------------------------------------------------------------------------
-- Tickets without a client

local Verifier = {}
Verifier.__index = Verifier
Verifier.__name = "eternaltwin.tickets.Verifier"

local VERIFIER_OPTIONS = { key = true, audience = true, store = true, revocations = true, leeway = true }
local MIN_SECRET = 32

--- `eternaltwin.tickets.verifier{ key = K, audience = "game" [, store = S] [, revocations = S]
-- [, leeway = n] }`: redeems game tickets without a client (a game server needs the ticket key, not
-- a client id and secret). `key`: a key (`keys.HS256Key(secret)`, a key ring...) or the secret
-- itself (a string of 32 bytes or more, taken as an HS256 key). `store`: the replay store (default:
-- the verifier's own, in the process); `revocations`: the store the gate's `revoke` writes to, so
-- that tickets issued to a revoked player before the revocation are refused.
-- @treturn Verifier with `v:redeem(ticket) -> claims | nil, err` (same checks and errors as
-- `client:redeem_ticket`)
function M.verifier(opts)
  local fname = "tickets.verifier"
  if type(opts) ~= "table" then argfail(fname, "options table with 'key' and 'audience' expected, got " .. typename(opts)) end
  for k in pairs(opts) do
    if not VERIFIER_OPTIONS[k] then argfail(fname, format("unknown option '%s'", tostring(k))) end
  end
  local key = opts.key
  if type(key) == "string" then
    if #key < MIN_SECRET then
      argfail(fname, format("'key': a secret of at least %d bytes expected (or a key object)", MIN_SECRET))
    end
    key = keys.HS256Key(key)
  elseif type(key) ~= "table" and type(key) ~= "userdata" then
    argfail(fname, "'key': a key (keys.HS256Key(secret)...) or a secret string expected, got " .. typename(key))
  end
  local aud = opts.audience
  if type(aud) ~= "string" or aud == "" or #aud > TICKET_MAX_ID then
    argfail(fname, format("'audience': string of 1 to %d bytes expected, got %s", TICKET_MAX_ID, typename(aud)))
  end
  local store, revocations = opts.store, opts.revocations
  if store ~= nil and not stores.is_replay_store(store) then
    argfail(fname, "'store': replay store expected (an object with check_and_add)")
  end
  if revocations ~= nil then
    local t = type(revocations)
    local ok, get = pcall(function() return revocations.get end)
    if (t ~= "table" and t ~= "userdata") or not ok or type(get) ~= "function" then
      argfail(fname, "'revocations': a store with get (the gate's store) expected")
    end
  end
  return setmetatable({ key = key, audience = aud, store = store or stores.ReplayStore(), revocations = revocations,
                        leeway = check_leeway(fname, opts.leeway) }, Verifier)
end

function Verifier.__tostring(v) return format("<eternaltwin.tickets.Verifier %s>", v.audience) end

--- Redeems a ticket: its claims, or `nil, err` (`err.kind == "InvalidTicketError"`).
function Verifier:redeem(ticket)
  if ticket ~= nil and type(ticket) ~= "string" then
    argfail("redeem", "ticket string expected, got " .. typename(ticket))
  end
  return redeem(self.key, self.store, ticket, self.audience, self.leeway, self.revocations)
end

M.Verifier = Verifier

return M
