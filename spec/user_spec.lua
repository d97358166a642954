-- eternaltwin.User: users as objects over eternaltwin.connections, against the mock, blocking and
-- inside poller tasks; server JSON that lacks or mistypes a field gives nil, err (never a crash).
local V = require("spec.support.compat")
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local mock = require("spec.support.mock")
local browser = require("examples.browser")

local User = eternaltwin.User
local connections = eternaltwin.connections

local STATE_KEY = "user spec state key"

local function opts(extra)
  local o = { client_id = "demo@clients", client_secret = "dev_secret",
              redirect_uri = "http://localhost:8000/oauth/callback", state_key = keys.HS256Key(STATE_KEY),
              url = mock.get().url }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- Plays the player's browser: signs `who` in and follows the authorization URL; returns the
-- callback parameters.
local function consent(url, who)
  local b = browser.new(connections.get_connection())
  assert(b:login(connections.get_connection().url, who or "alice", (who or "alice") .. "-password"))
  return assert(b:authorize(url))
end

-- A token for `who`, through the low-level client.
local function token_for(who)
  local c = connections.get_connection()
  local cb = consent(c:authorization_url(assert(c:generate_state())), who)
  return assert(c:token(cb.code))
end

local function stats()
  return assert(assert(connections.get_connection():get("_mock/stats")):json())
end

-- A stand-in client whose users endpoints answer with the given JSON bodies.
local function fake_client(bodies)
  local function answer(name)
    local body = bodies[name]
    return setmetatable({ status_code = 200, headers = { ["content-type"] = "application/json" },
                          content = body, url = "http://fake.invalid/" .. name }, eternaltwin.Response)
  end
  return { users = {
    me = function() return answer("me") end,
    get = function() return answer("get") end,
    search = function() return answer("search") end,
  } }
end

local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d"

describe("eternaltwin.User", function()
  local alice_id

  setup(function()
    mock.reset()
    connections.configure({ default = opts() })
    alice_id = assert(User.from_token(token_for("alice"))).identifier
  end)
  before_each(function()
    mock.reset()
    connections.configure({ default = opts() })
  end)
  teardown(function() connections.configure({}) end)

  describe("start_authorization", function()
    it("gives a valid state and the authorization URL carrying it", function()
      local state, url = User.start_authorization()
      assert.is_string(state)
      local c = connections.get_connection()
      assert.are.equal(c:authorization_url(state), url)
      local claims = assert(c:validate_state(state, state))
      assert.are.equal(128, #claims.nonce)
      assert.are.equal(600, claims.exp - claims.iat)
    end)

    it("takes an expiration, a nonce and a connection alias", function()
      connections.create_connection("other", opts({ client_id = "other@clients", client_secret = "other_secret",
        redirect_uri = "http://localhost:8001/callback?from=etwin" }))
      local state, url = User.start_authorization(60, "my-nonce", "other")
      local claims = assert(connections.get_connection("other"):validate_state(state))
      assert.are.equal("my-nonce", claims.nonce)
      assert.are.equal(60, claims.exp - claims.iat)
      assert.truthy(url:find("client_id=other%40clients", 1, true))
    end)

    it("raises on an unknown alias and bad arguments", function()
      assert.has_error(function() User.start_authorization(nil, nil, "nowhere") end,
        "eternaltwin.connections: no connection found for alias 'nowhere'")
      assert.has_error(function() User.start_authorization("600") end)
      assert.has_error(function() User.start_authorization(600, 42) end)
    end)

    it("returns nil, err when the key cannot sign", function()
      connections.create_connection("verify-only", opts({ state_key = setmetatable({ algorithm = "HS256",
        decode = function() return nil end,
        encode = function() return nil, eternaltwin.errors.new("KeyError", "cannot sign here") end,
      }, { __index = keys.KeyABC }) }))
      local state, err = User.start_authorization(nil, nil, "verify-only")
      assert.is_nil(state)
      assert.are.equal("KeyError", err.kind)
    end)
  end)

  describe("from_authorization_code", function()
    it("signs the player in: state, code, token, user", function()
      local state, url = User.start_authorization()
      local cb = consent(url)
      local user = assert(User.from_authorization_code(cb.code, cb.state, state))
      assert.are.equal("Alice", user.username)
      assert.are.equal(alice_id, user.identifier)
      assert.is_true(user.is_authenticated)
      assert.are.equal("Bearer", user.token.token_type)
      assert.is_false(user.token:has_expired())
      assert.are.equal("<User Alice>", tostring(user))
      -- the auth context carries the short user view: no admin flag, no times (as in Python)
      assert.is_nil(user.is_administrator)
      assert.is_nil(user.created_at)
      assert.is_nil(user.deleted_at)
    end)

    it("checks the state before the code is exchanged", function()
      local state, url = User.start_authorization()
      local cb = consent(url)
      local other = assert(connections.get_connection():generate_state())
      local before = stats().token_requests
      local user, err = User.from_authorization_code(cb.code, cb.state, other)
      assert.is_nil(user)
      assert.are.equal("InvalidStateError", err.kind)
      local forged = keys.HS256Key("another key"):encode({ a = "authorize" })
      local _, err2 = User.from_authorization_code(cb.code, forged)
      assert.are.equal("InvalidStateError", err2.kind)
      local _, err3 = User.from_authorization_code(cb.code, nil, state)  -- a callback without state
      assert.are.equal("InvalidStateError", err3.kind)
      assert.are.equal(before, stats().token_requests)
      -- the code is still good
      assert(User.from_authorization_code(cb.code, cb.state, state))
    end)

    it("accepts a valid state without an expected one", function()
      local _, url = User.start_authorization()
      local cb = consent(url, "bob")
      local user = assert(User.from_authorization_code(cb.code, cb.state))
      assert.are.equal("Bob", user.username)
      assert.is_false(assert(User.get(user.identifier)).is_administrator)
    end)

    it("gives the exchange's RequestError for a used code", function()
      local state, url = User.start_authorization()
      local cb = consent(url)
      assert(User.from_authorization_code(cb.code, cb.state, state))
      local user, err = User.from_authorization_code(cb.code, cb.state, state)
      assert.is_nil(user)
      assert.are.equal("RequestError", err.kind)
      assert.are.equal(400, err.status_code)
      assert.falsy(tostring(err):find(cb.code, 1, true))
    end)

    it("raises on argument mistakes", function()
      assert.has_error(function() User.from_authorization_code(nil, "s") end)
      assert.has_error(function() User.from_authorization_code("", "s") end)
      assert.has_error(function() User.from_authorization_code("c", 42) end)
      assert.has_error(function() User.from_authorization_code("c", "s", {}) end)
      assert.has_error(function() User.from_authorization_code("c", "s", nil, "nowhere") end)
    end)
  end)

  describe("from_token", function()
    it("reads the token's user, from a Token or an access-token string", function()
      local token = token_for("charlie")
      local user = assert(User.from_token(token))
      assert.are.equal("Charlie", user.username)
      assert.are.equal(token, user.token)
      assert.is_true(user.is_authenticated)
      local same = assert(User.from_token(token.access_token))
      assert.are.equal(user, same)
      assert.are.equal(token.access_token, same.token)
    end)

    it("gives a RequestError for an unknown token, never showing it", function()
      local user, err = User.from_token("00000000-0000-4000-8000-0000000000aa")
      assert.is_nil(user)
      assert.are.equal("RequestError", err.kind)
      assert.are.equal(401, err.status_code)
      assert.falsy(tostring(err):find("0000000000aa", 1, true))
    end)

    it("logs out locally", function()
      local user = assert(User.from_token(token_for("alice")))
      assert.is_nil(user:logout())
      assert.is_nil(user.token)
      assert.is_false(user.is_authenticated)
      user:logout()
      assert.is_false(user.is_authenticated)
      assert.are.equal("<User Alice>", tostring(user))
    end)

    it("raises on a bad token argument", function()
      assert.has_error(function() User.from_token() end)
      assert.has_error(function() User.from_token(42) end)
    end)
  end)

  describe("get", function()
    it("reads a user by id", function()
      local user = assert(User.get(alice_id))
      assert.are.equal("Alice", user.username)
      assert.are.equal(alice_id, user.identifier)
      assert.is_true(user.is_administrator)
      assert.truthy(user.created_at:match(ISO))
      assert.is_nil(user.deleted_at)
      assert.is_nil(user.token)
      assert.is_false(user.is_authenticated)
    end)

    it("gives a RequestError for an unknown or malformed id", function()
      local user, err = User.get("00000000-0000-4000-8000-000000000000")
      assert.is_nil(user)
      assert.are.equal("RequestError", err.kind)
      assert.are.equal(404, err.status_code)
      local _, err2 = User.get("not-an-id")
      assert.are.equal(422, err2.status_code)
      assert.has_error(function() User.get() end)
      assert.has_error(function() User.get("") end)
      assert.has_error(function() User.get(alice_id, 3) end)
    end)

    it("gives a TransportError when the server is down", function()
      connections.create_connection("down", opts({ url = "http://127.0.0.1:1/" }))
      local user, err = User.get(alice_id, "down")
      assert.is_nil(user)
      assert.are.equal("TransportError", err.kind)
      assert.are.equal("connect", err.code)
    end)
  end)

  describe("search and count", function()
    it("lists the users matching a query", function()
      local list = assert(User.search("ali"))
      assert.are.equal(1, #list)
      assert.are.equal("Alice", list[1].username)
      assert.are.equal(alice_id, list[1].identifier)
      assert.are.equal("{<User Alice>}", tostring(list))
      assert.is_false(list[1].is_authenticated)
      assert.are.same({}, assert(User.search("nobody-has-this-name")))
    end)

    it("pages with limit and offset", function()
      local all = assert(User.search())
      local total = assert(User.count())
      assert.are.equal(math.min(total, 20), #all)
      assert.is_true(total >= 6)
      local second = assert(User.search("", 1, 1))
      assert.are.equal(1, #second)
      assert.are.equal(all[2], second[1])
      assert.are.equal(2, #assert(User.search(nil, 2)))
      assert.are.same({}, assert(User.search("", 0)))
    end)

    it("counts the users matching a query", function()
      assert.are.equal(1, User.count("ali"))
      assert.are.equal(0, User.count("nobody-has-this-name"))
      assert.is_true(V.math_type(User.count()) == "integer")
    end)

    it("raises on argument mistakes", function()
      assert.has_error(function() User.search(42) end)
      assert.has_error(function() User.search("", -1) end)
      assert.has_error(function() User.search("", 1.5) end)
      assert.has_error(function() User.search("", 1, "0") end)
      assert.has_error(function() User.count(false) end)
      assert.has_error(function() User.count(nil, "nowhere") end)
    end)

    it("gives the server's error as nil, err", function()
      connections.create_connection("down", opts({ url = "http://127.0.0.1:1/" }))
      local list, err = User.search("a", nil, nil, "down")
      assert.is_nil(list)
      assert.are.equal("TransportError", err.kind)
      local n, err2 = User.count(nil, "down")
      assert.is_nil(n)
      assert.are.equal("TransportError", err2.kind)
    end)
  end)

  describe("users", function()
    it("compare equal by identifier and print their name", function()
      local a = User.new({ identifier = "id-1", username = "One" })
      local b = User.new({ identifier = "id-1", username = "Renamed", is_administrator = false })
      local c = User.new({ identifier = "id-2", username = "One" })
      assert.is_true(a == b)
      assert.is_false(a == c)
      assert.is_false(a == { identifier = "id-1" })
      assert.are.equal("<User One>", tostring(a))
      assert.is_true(User.is_user(a))
      assert.is_false(User.is_user({}))
      assert.are.equal("<eternaltwin.User class>", tostring(User))
    end)

    it("refuse bad fields in User.new", function()
      assert.has_error(function() User.new() end)
      assert.has_error(function() User.new({ identifier = "x" }) end)
      assert.has_error(function() User.new({ identifier = "x", username = "y", is_administrator = "yes" }) end)
      assert.has_error(function() User.new({ identifier = "x", username = "y", created_at = "yesterday" }) end)
    end)
  end)

  describe("on odd server JSON", function()
    local SHORT = '{"type":"User","id":"u-1","display_name":{"current":{"value":"Zed"}}}'
    local function with(bodies) connections.add_connection("fake", fake_client(bodies)) end

    it("tolerates extra fields and absent optional ones", function()
      with({ get = '{"id":"u-1","display_name":{"current":{"value":"Zed","extra":1},"old":[]},"links":{},' ..
                   '"is_administrator":null,"created_at":null,"future_field":[1,2,3]}' })
      local user = assert(User.get("u-1", "fake"))
      assert.are.equal("Zed", user.username)
      assert.is_nil(user.is_administrator)
      assert.is_nil(user.created_at)
      assert.is_nil(user.deleted_at)
      with({ me = '{"type":"AccessToken","scope":"Default","client":{},"user":' .. SHORT .. ',"new":true}' })
      assert.are.equal("Zed", assert(User.from_token("t", "fake")).username)
    end)

    it("gives a DecodeError for a guest or client context", function()
      with({ me = '{"type":"Guest","scope":"Default"}' })
      local user, err = User.from_token("t", "fake")
      assert.is_nil(user)
      assert.are.equal("DecodeError", err.kind)
      assert.are.equal("Guest", err.context_type)
      assert.truthy(tostring(err):find("Guest", 1, true))
      with({ me = '{"type":"OauthClient","scope":"Default","client":{"id":"c"},"user":null}' })
      local _, err2 = User.from_token("t", "fake")
      assert.are.equal("DecodeError", err2.kind)
    end)

    it("gives a DecodeError for a missing or ill-typed field", function()
      local cases = {
        '{"display_name":{"current":{"value":"Zed"}}}',
        '{"id":42,"display_name":{"current":{"value":"Zed"}}}',
        '{"id":"u-1"}',
        '{"id":"u-1","display_name":"Zed"}',
        '{"id":"u-1","display_name":{"current":null}}',
        '{"id":"u-1","display_name":{"current":{"value":7}}}',
        '{"id":"u-1","display_name":{"current":{"value":"Zed"}},"is_administrator":"yes"}',
        '{"id":"u-1","display_name":{"current":{"value":"Zed"}},"created_at":12}',
        '{"id":"u-1","display_name":{"current":{"value":"Zed"}},"deleted_at":"not a date"}',
        '[1,2]', '"user"', 'null', 'not json at all',
      }
      for _, body in ipairs(cases) do
        with({ get = body })
        local user, err = User.get("u-1", "fake")
        assert.is_nil(user, body)
        assert.are.equal("DecodeError", err.kind, body)
      end
      with({ me = '{"type":"AccessToken","user":{"id":"u-1"}}' })
      assert.are.equal("DecodeError", select(2, User.from_token("t", "fake")).kind)
    end)

    it("gives a DecodeError for a search without items or count", function()
      for _, body in ipairs({ '{"count":1}', '{"items":{"a":1}}', '{"count":1,"items":[{"id":"x"}]}', '[]' }) do
        with({ search = body })
        local list, err = User.search(nil, nil, nil, "fake")
        assert.is_nil(list, body)
        assert.are.equal("DecodeError", err.kind, body)
      end
      for _, body in ipairs({ '{"items":[]}', '{"count":"3"}', '{"count":1.5}', '{"count":-1}' }) do
        with({ search = body })
        local n, err = User.count(nil, "fake")
        assert.is_nil(n, body)
        assert.are.equal("DecodeError", err.kind, body)
      end
      with({ search = '{"count":2.0,"items":[' .. SHORT .. ',' .. SHORT .. ']}' })
      assert.are.equal(2, User.count(nil, "fake"))
      assert.are.equal(2, #User.search(nil, nil, nil, "fake"))
    end)
  end)

  describe("inside poller tasks", function()
    -- Each call is proved to yield: the task that makes it lets the next task start before it
    -- gets its answer (a blocking call would finish first).
    local function yields(fn)
      local p = eternaltwin.poller()
      local order = {}
      local t = p:spawn(function()
        order[#order + 1] = "call"
        local a, b = fn()
        order[#order + 1] = "answer"
        return a, b
      end)
      p:spawn(function() order[#order + 1] = "other task" end)
      assert.are.equal(0, p:run())
      assert.are.same({ "call", "other task", "answer" }, order)
      return t:wait()
    end

    it("yields in every call that talks to the server", function()
      -- start_authorization makes no request: it works in a task without yielding
      local p = eternaltwin.poller()
      local t = p:spawn(function() return User.start_authorization() end)
      p:run()
      local state, url = t:wait()
      assert.is_string(state)
      local cb = consent(url)
      local user = assert(yields(function() return User.from_authorization_code(cb.code, cb.state, state) end))
      assert.are.equal("Alice", user.username)
      assert.are.equal(user, assert(yields(function() return User.from_token(user.token) end)))
      assert.are.equal(user, assert(yields(function() return User.get(user.identifier) end)))
      local list = assert(yields(function() return User.search("ali") end))
      assert.are.equal(user, list[1])
      assert.are.equal(1, yields(function() return User.count("ali") end))
      local _, err = yields(function() return User.get("00000000-0000-4000-8000-000000000000") end)
      assert.are.equal(404, err.status_code)
    end)

    it("runs many calls at once", function()
      local p = eternaltwin.poller()
      local names = {}
      for i, who in ipairs({ "alice", "bob", "charlie", "dave", "eve", "frank" }) do
        p:spawn(function()
          local list = assert(User.search(who))
          names[i] = list[1].username
          assert.are.equal(1, User.count(who))
        end)
      end
      assert.are.equal(0, p:run())
      assert.are.same({ "Alice", "Bob", "Charlie", "Dave", "Eve", "Frank" }, names)
    end)

    it("returns run-time failures as nil, err inside a task too", function()
      local p = eternaltwin.poller()
      local t = p:spawn(function() return User.from_token("00000000-0000-4000-8000-0000000000bb") end)
      p:run()
      local user, err = t:wait()
      assert.is_nil(user)
      assert.are.equal(401, err.status_code)
    end)
  end)
end)

describe("the user endpoints bound what they read", function()
  -- Raw responses the nginx mock cannot send (spec/support/hostile.lua), started on demand.
  local hostile = require("spec.support.hostile_server")
  local hostile_url = hostile.url
  teardown(hostile.stop)
  local client = require("spec.support.fixtures").client

  it("the user endpoints refuse a body over their bound", function()
    eternaltwin.connections.add_connection("hardening-big", client({ url = hostile_url() .. "bigself/" }))
    local user, err = eternaltwin.User.from_token("some-token", "hardening-big")
    assert.is_nil(user)
    assert.are.equal("DecodeError", err.kind)
    assert.matches("too large", err.message, 1, true)
  end)
end)
