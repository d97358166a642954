-- The OAuth flow end to end against the mock: state, consent, code exchange, users API.
local eternaltwin = require("eternaltwin")
local mock = require("spec.support.mock")
local fixtures = require("spec.support.fixtures")
local browser = require("examples.browser")

local client = fixtures.client  -- the seeded demo app: demo@clients / dev_secret

-- Signs alice in and walks the authorization URL; returns the callback parameters and the state.
local function consent(c, who, password)
  local b = browser.new(c)
  assert(b:login(c.url, who or "alice", password or "alice-password"))
  local state = assert(c:generate_state())
  local cb = assert(b:authorize(c:authorization_url(state)))
  return cb, state
end

local function stats(c)
  return assert(assert(c:get("_mock/stats")):json())
end

describe("OAuth flow", function()
  before_each(function() mock.reset() end)

  it("signs a player in: state, code, token, users:me", function()
    local c = client()
    local cb, state = consent(c)
    assert.are.equal(state, cb.state)
    assert.is_string(cb.code)
    assert.is_table(c:validate_state(cb.state, state))
    local token = assert(c:token(cb.code))
    assert.are.equal("Bearer", token.token_type)
    assert.is_string(token.access_token)
    assert.are.equal(3600, token.expires_in)
    assert.is_false(token:has_expired())
    local me = assert(assert(c.users:me(token)):json())
    assert.are.equal("AccessToken", me.type)
    assert.are.equal("Alice", me.user.display_name.current.value)
    assert.truthy(me.user.id:match("^%x+%-%x+%-%x+%-%x+%-%x+$"))
    assert.are.equal("demo@clients", me.client.key)
    -- a plain access-token string works too
    assert.are.equal("AccessToken", assert(c.users:me(token.access_token)):json().type)
  end)

  it("sends the code exchange exactly once, on a fresh connection, and codes are single-use", function()
    local c = client({ retries = 3 })
    local cb = consent(c)
    local before = stats(c).token_requests
    assert.is_table(c:token(cb.code))
    local res, err = c:token(cb.code)
    assert.is_nil(res)
    assert.are.equal("RequestError", err.kind)
    assert.are.equal(400, err.status_code)
    assert.truthy(tostring(err):find("invalid_grant", 1, true))
    assert.falsy(tostring(err):find(cb.code, 1, true))
    assert.are.equal(2, stats(c).token_requests - before)
  end)

  it("refuses a wrong client secret without showing it", function()
    local c = client()
    local cb = consent(c)
    local bad = client({ client_secret = "wrong-secret-value" })
    local res, err = bad:token(cb.code)
    assert.is_nil(res)
    assert.are.equal(401, err.status_code)
    assert.falsy(tostring(err):find("wrong-secret-value", 1, true))
    assert.falsy(tostring(err.response.url):find("wrong-secret-value", 1, true))
  end)

  it("gives a guest context without a token and 401 for an unknown token", function()
    local c = client()
    assert.are.equal("Guest", assert(c.users:me()):json().type)
    local res, err = c.users:me("00000000-0000-4000-8000-000000000000")
    assert.is_nil(res)
    assert.are.equal(401, err.status_code)
  end)

  it("expires tokens with the server's clock", function()
    local c = client()
    local token = assert(c:token(consent(c).code))
    assert(c:request("PUT", "_mock/clock", { json = { offset = 7200 } }))
    local _, err = c.users:me(token)
    assert.are.equal(401, err.status_code)
  end)

  it("refreshes a token where the server allows it", function()
    local c = client()
    assert(c:request("PUT", "_mock/config", { json = { refresh_tokens = true } }))
    local token = assert(c:token(consent(c).code))
    assert.is_string(token.refresh_token)
    local fresh = assert(c:refresh(token))
    assert.are_not.equal(token.access_token, fresh.access_token)
    assert.are.equal("AccessToken", assert(c.users:me(fresh)):json().type)
    assert.has_error(function() c:refresh(eternaltwin.Token{ access_token = "a", expires_in = 1, token_type = "B" }) end)
  end)

  it("reports the player's refusal as a callback error", function()
    local c = client()
    local b = browser.new(c)
    assert(b:login(c.url, "alice", "alice-password"))
    local cb = assert(b:authorize(c:authorization_url("s", "everything")))
    assert.are.equal("invalid_scope", cb.error)
  end)
end)

describe("client.users", function()
  local c, alice_id
  setup(function()
    mock.reset()
    c = client()
    local token = assert(c:token(consent(c).code))
    alice_id = assert(c.users:me(token)):json().user.id
  end)

  it("gets a user by id", function()
    local u = assert(assert(c.users:get(alice_id)):json())
    assert.are.equal(alice_id, u.id)
    assert.are.equal("Alice", u.display_name.current.value)
  end)

  it("reports unknown and malformed ids", function()
    local _, err = c.users:get("00000000-0000-4000-8000-000000000000")
    assert.are.equal(404, err.status_code)
    local _, err2 = c.users:get("not a uuid/../x")
    assert.are.equal(422, err2.status_code)
    assert.truthy(err2.url:find("not%20a%20uuid%2F..%2Fx", 1, true))
  end)

  it("searches with query, limit and offset", function()
    local all = assert(assert(c.users:search("")):json())
    assert.is_true(all.count >= 3)
    assert.are.equal(math.min(all.count, 20), #all.items)
    local one = assert(c.users:search("ali")):json()
    assert.are.equal(1, one.count)
    assert.are.equal("Alice", one.items[1].display_name.current.value)
    local second = assert(c.users:search(nil, 1, 1)):json()
    assert.are.equal(1, #second.items)
    assert.are.equal(all.items[2].id, second.items[1].id)
    assert.are.equal(0, #assert(c.users:search("", 0)):json().items)
  end)

  it("raises on argument mistakes", function()
    assert.has_error(function() c.users:get(nil) end)
    assert.has_error(function() c.users:search("x", "10") end)
    assert.has_error(function() c.users:me(12) end)
  end)
end)

describe("the code exchange never follows a redirect", function()
  -- Raw responses the nginx mock cannot send (spec/support/hostile.lua), started on demand.
  local hostile = require("spec.support.hostile_server")
  local hostile_url = hostile.url
  teardown(hostile.stop)

  it("a 307 from /oauth/token is an error and the code never reaches the other host", function()
    local base = hostile_url()
    local c = client({ url = base .. "redirect/", allow_redirects = true })
    local tok, err = c:token("one-time-code")
    assert.is_nil(tok)
    assert.are.equal("RequestError", err.kind)
    assert.are.equal(307, err.status_code)
    local _, rerr = c:refresh("a-refresh-token")
    assert.are.equal(307, rerr.status_code)
    local res = assert(client({ url = base }):get("_count"))
    assert.are.equal(0, res:json().steal)
    -- Other requests still follow redirects when asked.
    local ok = assert(client({ allow_redirects = true }):get("_mock/redirect",
      { params = { to = mock.get().url .. "_mock/ping" } }))
    assert.are.equal(200, ok.status_code)
  end)
end)

describe("the token endpoint bounds what it reads", function()
  -- Raw responses the nginx mock cannot send (spec/support/hostile.lua), started on demand.
  local hostile = require("spec.support.hostile_server")
  local hostile_url = hostile.url
  teardown(hostile.stop)

  it("the token endpoint refuses a body over its bound", function()
    local tok, err = client({ url = hostile_url() .. "bigjson/" }):token("code")
    assert.is_nil(tok)
    assert.are.equal("DecodeError", err.kind)
    assert.matches("too large", err.message, 1, true)
  end)


  it("is a DecodeError, never an infinite or unprintable Token", function()
    for _, route in ipairs({ "exp-huge/", "exp-big/", "exp-nan/" }) do
      local tok, err = client({ url = hostile_url() .. route }):token("code")
      assert.is_nil(tok, route)
      assert.are.equal("DecodeError", err.kind)
      assert.matches("expires_in", err.message, 1, true)
    end
    assert.has_error(function() eternaltwin.Token({ access_token = "a", token_type = "Bearer",
      expires_in = 1e20 }) end)
    local t = eternaltwin.Token({ access_token = "a", token_type = "Bearer", expires_in = 3600.5 })
    assert.matches("expires in", tostring(t), 1, true)
  end)
end)

describe("client.users: ids made of dots, and no token", function()
  local readfile = mock.must_read

  it("users:get encodes '.' and '..' so they stay an id", function()
    local c = client()
    for _, id in ipairs({ ".", ".." }) do
      local res, err = c.users:get(id)
      assert.is_nil(res)
      assert.are.equal(404, err.status_code)
      assert.matches("/api/v1/users/%2E", err.url, 1, true)
    end
  end)


  it("answers 200 for a Guest, with no user, as the docs say", function()
    local me = assert(assert(fixtures.client().users:me()):json())
    assert.are.equal("Guest", me.type)
    assert.is_nil(me.user)
    assert.truthy(readfile("lua/eternaltwin/users.lua"):find("Guest", 1, true))
    assert.truthy(readfile("README.md"):find("`me.type == \"Guest\"`", 1, true))
  end)
end)
