-- SPDX-License-Identifier: MIT
-- eternaltwin.tickets.verifier (DESIGN "Tickets without a client"): redeems game tickets with the
-- ticket key alone, with the checks and errors of client:redeem_ticket, a hint on a signature
-- failure, and the gate's revocation marks when given the gate's store as `revocations`.
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local tickets = require("eternaltwin.tickets")

local ID = "c5020923-b4b2-51a5-8a1d-ee5a10de03a3"
local SECRET = ("t"):rep(40)
local AUD = "game.example"

local function web(secret)
  return eternaltwin.new{ client_id = "site@clients", client_secret = "s", redirect_uri = "http://x/cb",
    state_key = keys.HS256Key(("s"):rep(32)), ticket_key = keys.HS256Key(secret or SECRET),
    url = "http://localhost:50320/" }
end

-- A store with the session methods (what the gate writes revocation marks to).
local function memory_store()
  local t = {}
  return {
    data = t,
    check_and_add = function(_, k, exp) if t[k] then return false end t[k] = tostring(exp) return true end,
    get = function(_, k) return t[k] end,
    set = function(_, k, v) t[k] = v return true end,
    delete = function(_, k) t[k] = nil return true end,
  }
end

local function refused(v, ticket, want)
  local claims, err = v:redeem(ticket)
  assert.is_nil(claims)
  assert.are.equal("InvalidTicketError", err.kind)
  assert.truthy(err.message:find(want, 1, true), err.message)
  return err
end

describe("eternaltwin.tickets.verifier", function()
  it("is reachable as eternaltwin.tickets.verifier and takes a key object or a secret", function()
    assert.are.equal(tickets.verifier, eternaltwin.tickets.verifier)
    for _, key in ipairs({ SECRET, keys.HS256Key(SECRET) }) do
      local v = eternaltwin.tickets.verifier{ key = key, audience = AUD }
      local claims = assert(v:redeem(web():issue_ticket(ID, { audience = AUD, data = { display_name = "Alice" } })))
      assert.are.equal(ID, claims.sub)
      assert.are.equal("Alice", claims.data.display_name)
    end
    assert.truthy(tostring(tickets.verifier{ key = SECRET, audience = AUD }):find(AUD, 1, true))
  end)

  it("has redeem_ticket's checks: single use, audience, expiry, state in place of a ticket", function()
    local v = tickets.verifier{ key = SECRET, audience = AUD }
    local c = web()
    local t = c:issue_ticket(ID, { audience = AUD })
    assert.truthy(v:redeem(t))
    refused(v, t, "already used")
    local lobby = c:issue_ticket(ID, { audience = "lobby" })
    refused(v, lobby, "another audience")
    local now = os.time()
    refused(v, assert(keys.HS256Key(SECRET):encode({ a = "ticket", sub = ID, aud = AUD, iat = now - 120,
      exp = now - 60, nonce = "n1" })), "expired")
    local lenient = tickets.verifier{ key = SECRET, audience = AUD, leeway = 120 }
    assert.truthy(lenient:redeem(assert(keys.HS256Key(SECRET):encode({ a = "ticket", sub = ID, aud = AUD,
      iat = now - 120, exp = now - 60, nonce = "n2" }))))
    refused(v, assert(keys.HS256Key(SECRET):encode({ a = "authorize", as = "x", iat = now, rfp = 1, exp = now + 60,
      nonce = "n3" })), "this is a state, not a ticket")
    refused(v, nil, "no ticket given")
    refused(v, "hello", "invalid ticket")
  end)

  it("says on a signature failure that the issuer may sign with another key", function()
    local v = tickets.verifier{ key = SECRET, audience = AUD }
    local err = refused(v, web(("o"):rep(40)):issue_ticket(ID, { audience = AUD }), "signature")
    assert.truthy(err.message:find("another key", 1, true), err.message)
    -- The client's redeem_ticket says the same (one checker).
    local _, cerr = web():redeem_ticket(web(("o"):rep(40)):issue_ticket(ID, { audience = AUD }), { audience = AUD })
    assert.truthy(cerr.message:find("another key", 1, true), cerr.message)
  end)

  it("shares a replay store between verifiers (one success among them)", function()
    local store = eternaltwin.ReplayStore()
    local a = tickets.verifier{ key = SECRET, audience = AUD, store = store }
    local b = tickets.verifier{ key = SECRET, audience = AUD, store = store }
    local t = web():issue_ticket(ID, { audience = AUD })
    assert.truthy(a:redeem(t))
    refused(b, t, "already used")
  end)

  it("refuses a ticket issued at or before the player's revocation mark, without using it up", function()
    local marks = memory_store()
    local used = eternaltwin.ReplayStore()
    local v = tickets.verifier{ key = SECRET, audience = AUD, revocations = marks, store = used }
    local t = web():issue_ticket(ID, { audience = AUD })
    marks.data[tickets.revocation_key(ID)] = tostring(os.time() + 0.5)
    refused(v, t, "revoked")
    marks.data[tickets.revocation_key(ID)] = tostring(os.time() - 5)     -- an older mark: issued after it
    assert.truthy(v:redeem(t))                                            -- not used up by the refusal
    -- A store that fails: closed.
    local down = { check_and_add = function() return true end, get = function() return nil, "connection refused" end }
    local v2 = tickets.verifier{ key = SECRET, audience = AUD, revocations = down }
    refused(v2, web():issue_ticket(ID, { audience = AUD }), "revocation store failed: connection refused")
  end)

  it("raises on argument mistakes, naming them", function()
    local cases = {
      { nil, "options table" },
      { { audience = AUD }, "'key'" },
      { { key = "short", audience = AUD }, "at least 32 bytes" },
      { { key = SECRET }, "'audience'" },
      { { key = SECRET, audience = AUD, store = {} }, "'store'" },
      { { key = SECRET, audience = AUD, revocations = {} }, "'revocations'" },
      { { key = SECRET, audience = AUD, leeway = -1 }, "'leeway'" },
      { { key = SECRET, audience = AUD, ttl = 5 }, "unknown option 'ttl'" },
    }
    for i, case in ipairs(cases) do
      local ok, msg = pcall(tickets.verifier, case[1])
      assert.is_false(ok, "case " .. i)
      assert.truthy(msg:find("bad argument to 'tickets.verifier'", 1, true), msg)
      assert.truthy(msg:find(case[2], 1, true), msg)
      assert.is_nil(msg:find(SECRET, 1, true))
    end
  end)
end)
