-- generate_state / validate_state with HS256, every validation rule, custom keys and key rings.
local V = require("spec.support.compat")
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")
local errors = eternaltwin.errors

local KEY_SECRET = "a long random secret for the state"
local BASE = "http://localhost:50320/"

local function client(key, url)
  return eternaltwin.new("demo@clients", "dev_secret", "http://localhost:8000/oauth/callback",
    key or keys.HS256Key(KEY_SECRET), { url = url or BASE })
end

local function split(jwt)
  local h, p, s = jwt:match("^([^.]*)%.([^.]*)%.([^.]*)$")
  return core.json_decode(core.b64url_decode(h)), core.json_decode(core.b64url_decode(p)), s
end

local function claims(over)
  local now = os.time()
  local c = { a = "authorize", as = BASE, iat = now, rfp = now, exp = now + 600, nonce = "n" }
  for k, v in pairs(over or {}) do c[k] = v end
  for k, v in pairs(over or {}) do if v == false then c[k] = nil end end
  return c
end

local function forge(c, secret)
  return assert(keys.HS256Key(secret or KEY_SECRET):encode(c))
end

local function expect_invalid(cl, state, pattern, expected, opts)
  local ok, err = cl:validate_state(state, expected, opts)
  assert.is_nil(ok)
  assert.are.equal(errors.InvalidStateError, err.kind)
  assert.is_true(err:is("InvalidStateError"))
  assert.truthy(err.message:find(pattern), err.message .. " lacks " .. pattern)
  return err
end

describe("client:generate_state", function()
  it("signs exactly the six claims of the Python client", function()
    local c = client()
    local before = os.time()
    local st = assert(c:generate_state())
    local header, payload = split(st)
    assert.are.same({ alg = "HS256", typ = "JWT" }, header)
    local names = {}
    for k in pairs(payload) do names[#names + 1] = k end
    table.sort(names)
    assert.are.same({ "a", "as", "exp", "iat", "nonce", "rfp" }, names)
    assert.are.equal("authorize", payload.a)
    assert.are.equal(BASE, payload.as)
    assert.are.equal(payload.iat, payload.rfp)
    assert.is_true(payload.iat >= before and payload.iat <= os.time())
    assert.are.equal("integer", V.math_type(payload.iat))
    assert.are.equal(payload.iat + 600, payload.exp)
    assert.truthy(payload.nonce:match("^%x+$"))
    assert.are.equal(128, #payload.nonce)
  end)

  it("uses the expiration and nonce given, and random nonces otherwise", function()
    local c = client()
    local _, p = split(c:generate_state(30, "my-nonce"))
    assert.are.equal(p.iat + 30, p.exp)
    assert.are.equal("my-nonce", p.nonce)
    local _, p1 = split(c:generate_state())
    local _, p2 = split(c:generate_state())
    assert.are_not.equal(p1.nonce, p2.nonce)
  end)

  it("raises on bad argument types", function()
    assert.has_error(function() client():generate_state("600") end)
    assert.has_error(function() client():generate_state(600, 42) end)
  end)
end)

describe("client:validate_state", function()
  local c = client()

  it("returns the claims of a good state, with and without the expected one", function()
    local st = c:generate_state()
    local got = assert(c:validate_state(st))
    assert.are.equal("authorize", got.a)
    assert.are.same(got, assert(c:validate_state(st, st)))
  end)

  it("fails when the state is not the expected one, carrying the claims", function()
    local st, other = c:generate_state(), c:generate_state()
    local err = expect_invalid(c, st, "does not match", other)
    assert.are.equal("authorize", err.state.a)
  end)

  it("fails on a signature by another key, without claims", function()
    local err = expect_invalid(c, forge(claims(), "another secret"), "signature")
    assert.is_nil(err.state)
  end)

  it("fails on malformed tokens", function()
    local good = c:generate_state()
    local h, p, s = good:match("^([^.]*)%.([^.]*)%.([^.]*)$")
    for _, bad in ipairs({ "", "abc", "a.b", good .. ".x", h .. "." .. p, "!!." .. p .. "." .. s,
                           h .. ".%%%." .. s, h .. "." .. p .. ".***",
                           core.b64url_encode("[1]") .. "." .. p .. "." .. s,
                           h .. "." .. core.b64url_encode("not json") .. "." .. s,
                           good .. string.rep("A", 20000) }) do
      local ok, err = c:validate_state(bad)
      assert.is_nil(ok)
      assert.are.equal("InvalidStateError", err.kind)
      assert.is_nil(err.state)
    end
  end)

  it("rejects alg none and any algorithm other than the key's", function()
    local p = core.b64url_encode(core.json_encode(claims()))
    for _, alg in ipairs({ "none", "HS512", "RS256", "hs256" }) do
      local h = core.b64url_encode(core.json_encode({ alg = alg, typ = "JWT" }))
      expect_invalid(c, h .. "." .. p .. ".", "algorithm")
    end
  end)

  it("applies every claim rule", function()
    local now = os.time()
    expect_invalid(c, forge(claims{ a = "login" }), "action")
    expect_invalid(c, forge(claims{ as = "http://evil.example/" }), "another authorization server")
    expect_invalid(c, forge(claims{ exp = now - 5 }), "expired")
    expect_invalid(c, forge(claims{ iat = now + 120, rfp = now + 120 }), "future")
    for _, name in ipairs({ "a", "as", "iat", "rfp", "exp", "nonce" }) do
      local err = expect_invalid(c, forge(claims{ [name] = false }), "'" .. name .. "' is missing")
      assert.is_table(err.state)
    end
    expect_invalid(c, forge(claims{ exp = tostring(now + 600) }), "'exp' must be a number")
    expect_invalid(c, forge(claims{ nonce = 12 }), "'nonce' must be a string")
    expect_invalid(c, forge(claims{ a = eternaltwin.null }), "'a' must be a string")
  end)

  it("accepts exp == now, and honours leeway", function()
    local now = os.time()
    assert.is_table(c:validate_state(forge(claims{ exp = now + 1 })))
    local late = forge(claims{ exp = now - 10 })
    expect_invalid(c, late, "expired")
    assert.is_table(c:validate_state(late, nil, { leeway = 30 }))
    assert.is_table(c:validate_state(forge(claims{ iat = now + 20 }), nil, { leeway = 30 }))
  end)

  it("treats a missing state as invalid and other types as mistakes", function()
    expect_invalid(c, nil, "no state")
    assert.has_error(function() c:validate_state(42) end)
    assert.has_error(function() c:validate_state("x", 42) end)
    assert.has_error(function() c:validate_state("x", nil, { leway = 1 }) end)
  end)

  it("is bound to the client's base URL", function()
    local other = client(nil, "http://localhost:50321/")
    expect_invalid(other, c:generate_state(), "another authorization server")
  end)
end)

describe("pluggable state keys", function()
  it("accepts any table with algorithm, encode and decode", function()
    local inner = keys.HS256Key("inner secret")
    local calls = 0
    local custom = setmetatable({ algorithm = "HS256" }, { __index = keys.KeyABC })
    function custom:encode(cl) calls = calls + 1; return inner:encode(cl) end -- luacheck: ignore 212
    function custom:decode(tok) calls = calls + 1; return inner:decode(tok) end -- luacheck: ignore 212
    local c = client(custom)
    assert.is_table(c:validate_state(c:generate_state()))
    assert.are.equal(2, calls)
  end)

  it("turns an error raised in a Lua key into nil, err", function()
    local broken = setmetatable({ algorithm = "X" }, { __index = keys.KeyABC })
    local c = client(broken)
    local st, err = c:generate_state()
    assert.is_nil(st)
    assert.are.equal("KeyError", err.kind)
    assert.truthy(err.message:find("not implemented", 1, true))
    local ok, err2 = c:validate_state("a.b.c")
    assert.is_nil(ok)
    assert.are.equal("InvalidStateError", err2.kind)
  end)

  it("rotates keys with a KeyRing", function()
    local old = keys.HS256Key("old secret", { kid = "2025" })
    local new = keys.HS256Key("new secret", { kid = "2026" })
    local c_old = client(old)
    local c = client(keys.KeyRing{ new, old })
    local st = c:generate_state()
    assert.are.equal("2026", split(st).kid)
    assert.is_table(c:validate_state(st))
    assert.is_table(c:validate_state(c_old:generate_state()))
    local stranger = client(keys.HS256Key("x", { kid = "1999" }))
    expect_invalid(c, stranger:generate_state(), "unknown key")
    assert.has_error(function() keys.KeyRing{ keys.HS256Key("a") } end)
    assert.has_error(function() keys.KeyRing{ new, keys.HS256Key("b", { kid = "2026" }) } end)
  end)
end)

describe("non-finite leeway", function()
  it("a NaN or infinite leeway is refused", function()
    local c = client()
    local st = assert(c:generate_state(-100))
    assert.has_error(function() c:validate_state(st, nil, { leeway = 0 / 0 }) end)
    assert.has_error(function() c:validate_state(st, nil, { leeway = math.huge }) end)
    assert.is_nil(c:validate_state(st, nil, { leeway = 0 }))
  end)
end)
