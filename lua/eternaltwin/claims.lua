-- SPDX-License-Identifier: MIT
--- Internal: the one checker of a signed token's claims, for states and tickets alike.
-- A kind is a table: its claims in the order they are checked (`names`, `types`), its action (the
-- `a` claim), the other kind's action and what to say when a token of the other kind comes
-- (`other`, `other_msg`, `other_first`: said before the claims are looked at), and the checks that
-- follow in order (`rules`: functions of claims, now, leeway, expected, returning a message or
-- nil). `check` gives the message of the first check that fails (without the kind's prefix), or
-- nil. States signed by a built-in key are checked by the C core (`key:state_claims`), which runs
-- the same checks in the same order with the same messages (spec/claims_spec.lua holds them to it).
-- Not part of the public API.
-- @module eternaltwin.claims

local type, format = type, string.format

local M = {}

local function issued_in_future(c, now, leeway)
  if c.iat > now + leeway then return "issued in the future" end
end

local function expired(c, now, leeway)
  if c.exp + leeway < now then return "expired" end
end

M.TICKET_MAX_TTL = 600        -- seconds, on both sides

--- A state (`generate_state`): `expected` is the client's base URL (the `as` claim).
M.state = {
  names = { "a", "as", "iat", "rfp", "exp", "nonce" },
  types = { "string", "string", "number", "number", "number", "string" },
  action = "authorize",
  other = "ticket", other_msg = "this is a ticket, not a state", other_first = false,
  rules = {
    function(c, _, _, as)
      if c.as ~= as then return "issued for another authorization server" end
    end,
    issued_in_future,
    expired,
  },
}

--- A game ticket (`issue_ticket`): `expected` is the audience.
M.ticket = {
  names = { "a", "sub", "aud", "iat", "exp", "nonce" },
  types = { "string", "string", "string", "number", "number", "string" },
  action = "ticket",
  other = "authorize", other_msg = "this is a state, not a ticket", other_first = true,
  rules = {
    function(c) if c.sub == "" then return "claim 'sub' is empty" end end,
    function(c)
      if c.data ~= nil and type(c.data) ~= "table" then return "claim 'data' must be a table" end
    end,
    function(c, _, _, audience)
      if c.aud ~= audience then return "issued for another audience" end
    end,
    issued_in_future,
    expired,
    function(c)
      if c.exp - c.iat > M.TICKET_MAX_TTL then return format("lifetime over %d seconds", M.TICKET_MAX_TTL) end
    end,
  },
}

--- The message of the first check of `kind` that `claims` fail, or nil when they pass.
function M.check(kind, claims, now, leeway, expected)
  local a = claims.a
  if kind.other_first and a == kind.other then return kind.other_msg end
  local names, types = kind.names, kind.types
  for i = 1, #names do
    local name = names[i]
    local v = claims[name]
    local msg
    if v == nil then
      msg = format("claim '%s' is missing", name)
    elseif type(v) ~= types[i] or v ~= v then
      msg = format("claim '%s' must be a %s", name, types[i])
    end
    if msg then
      if a == kind.other then return kind.other_msg end
      return msg
    end
  end
  if a ~= kind.action then return format("action is not '%s'", kind.action) end
  local rules = kind.rules
  for i = 1, #rules do
    local msg = rules[i](claims, now, leeway, expected)
    if msg then return msg end
  end
end

return M
