-- eternaltwin.claims: one checker for states and tickets; for states, the C fast path of built-in
-- keys (core.state_check, key:state_claims) gives the same message on every case.
local core = require("eternaltwin.core")
local claims = require("eternaltwin.claims")

local AS = "http://localhost:50320/"

local function state(over)
  local now = os.time()
  local c = { a = "authorize", as = AS, iat = now, rfp = now, exp = now + 600, nonce = "n" }
  for k, v in pairs(over) do c[k] = v end
  for k, v in pairs(over) do if v == false then c[k] = nil end end
  return c
end

local function ticket(over)
  local now = os.time()
  local c = { a = "ticket", sub = "u", aud = "game", iat = now, exp = now + 60, nonce = "n" }
  for k, v in pairs(over) do c[k] = v end
  for k, v in pairs(over) do if v == false then c[k] = nil end end
  return c
end

describe("eternaltwin.claims", function()
  it("checks a state as the C core does, message for message", function()
    local now = os.time()
    local cases = {
      { {}, nil },
      { { a = false }, "claim 'a' is missing" },
      { { as = 1 }, "claim 'as' must be a string" },
      { { iat = 0 / 0 }, "claim 'iat' must be a number" },
      { { rfp = false }, "claim 'rfp' is missing" },
      { { exp = "x" }, "claim 'exp' must be a number" },
      { { nonce = false }, "claim 'nonce' is missing" },
      { { a = "ticket", as = false }, "this is a ticket, not a state" },
      { { a = "ticket" }, "action is not 'authorize'" },
      { { a = "other" }, "action is not 'authorize'" },
      { { as = "http://elsewhere/" }, "issued for another authorization server" },
      { { iat = now + 100 }, "issued in the future" },
      { { exp = now - 1 }, "expired" },
    }
    for _, case in ipairs(cases) do
      local c = state(case[1])
      local lua = claims.check(claims.state, c, now, 0, AS)
      assert.is_true(case[2] == lua, tostring(case[2]) .. " expected, got " .. tostring(lua))
      local c_msg = core.state_check(c, AS, now, 0)
      assert.is_true((case[2] and "invalid state: " .. case[2] or nil) == c_msg, tostring(c_msg))
    end
    -- leeway counts on both clocks
    assert.is_nil(claims.check(claims.state, state({ exp = now - 5 }), now, 10, AS))
    assert.is_nil(claims.check(claims.state, state({ iat = now + 5 }), now, 10, AS))
  end)

  it("checks a ticket with the same machinery, its own claims and rules", function()
    local now = os.time()
    local cases = {
      { {}, nil },
      { { a = "authorize" }, "this is a state, not a ticket" },
      { { sub = false }, "claim 'sub' is missing" },
      { { aud = 1 }, "claim 'aud' must be a string" },
      { { exp = 0 / 0 }, "claim 'exp' must be a number" },
      { { a = "x" }, "action is not 'ticket'" },
      { { sub = "" }, "claim 'sub' is empty" },
      { { data = "x" }, "claim 'data' must be a table" },
      { { aud = "other" }, "issued for another audience" },
      { { iat = now + 100, exp = now + 200 }, "issued in the future" },
      { { exp = now - 1 }, "expired" },
      { { exp = now + 601 }, "lifetime over 600 seconds" },
    }
    for _, case in ipairs(cases) do
      local got = claims.check(claims.ticket, ticket(case[1]), now, 0, "game")
      assert.is_true(case[2] == got, tostring(case[2]) .. " expected, got " .. tostring(got))
    end
  end)
end)
