-- State keys at the client level: every algorithm and key format through generate/validate_state,
-- verify-only keys, algorithm confusion, key files, replay protection, and the Python client's rules
-- applied by PyJWT to our states (and ours to PyJWT's).
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")

local keydir = require("spec.support.keydir")

local BASE = "http://localhost:50320/"

local kd
local function path(n) return kd:path(n) end
local function text(n) return kd:text(n) end

local function client(key)
  return eternaltwin.new("demo@clients", "dev_secret", "http://localhost:8000/oauth/callback", key, { url = BASE })
end

setup(function() kd = keydir.new("a shared interop secret") end)

teardown(function() if kd then kd:remove() end end)

local ASYM = {
  { "RS256", "rsa" }, { "RS384", "rsa" }, { "RS512", "rsa" },
  { "PS256", "rsa" }, { "PS384", "rsa" }, { "PS512", "rsa" },
  { "ES256", "ec" }, { "ES384", "ec384" }, { "EdDSA", "ed" },
}

describe("asymmetric state keys", function()
  for _, c in ipairs(ASYM) do
    local alg, base = c[1], c[2]
    it(alg .. ": signs with the private key, verifies with the public one alone", function()
      local full = assert(keys[alg .. "Key"](text(base .. ".pub"), text(base .. ".pem")))
      local signer = assert(keys[alg .. "Key"](nil, text(base .. ".pem")))
      local verifier = assert(keys[alg .. "Key"](text(base .. ".pub"), nil, { kid = "v1" }))
      assert.are.equal(alg, verifier.algorithm)
      assert.are.equal("v1", verifier.kid)
      for _, k in ipairs({ full, signer }) do
        local st = assert(client(k):generate_state())
        assert.are.equal(alg, core.json_decode(core.b64url_decode(st:match("^[^.]+"))).alg)
        assert.is_table(client(verifier):validate_state(st))
        assert.is_table(client(signer):validate_state(st))
      end
      local st, err = client(verifier):generate_state()
      assert.is_nil(st)
      assert.are.equal("KeyError", err.kind)
      assert.truthy(err.message:find("sign", 1, true))
      assert.falsy(tostring(verifier):find("BEGIN", 1, true))
    end)
  end

  it("refuses an HS256 token whose secret is the RSA public key (algorithm confusion)", function()
    local pub = text("rsa.pub")
    local forged = assert(keys.HS256Key(pub):encode({ a = "authorize", as = BASE, iat = os.time(), rfp = os.time(),
                                                        exp = os.time() + 600, nonce = "x" }))
    local ok, err = client(assert(keys.RS256Key(pub))):validate_state(forged)
    assert.is_nil(ok)
    assert.are.equal("InvalidStateError", err.kind)
    assert.truthy(err.message:find("algorithm", 1, true))
  end)

  it("refuses a key that does not fit the algorithm, without echoing it", function()
    local k, err = keys.ES256Key(text("rsa.pub"))
    assert.is_nil(k)
    assert.are.equal("KeyError", err.kind)
    assert.falsy(err.message:find("BEGIN", 1, true))
    local k2, err2 = keys.RS256Key("-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n")
    assert.is_nil(k2)
    assert.are.equal("KeyError", err2.kind)
    assert.falsy(err2.message:find("not base64", 1, true))
    assert.has_error(function() keys.RS256Key() end)
    assert.has_error(function() keys.RS256Key(42) end)
    assert.has_error(function() keys.HS256Key("s", { kid = 5 }) end)
  end)

  it("reads key files, reporting a missing one by path", function()
    assert.truthy(text("ec.pem"):find("PRIVATE KEY", 1, true))
    local t, err = keys.read_file(path("nope.pem"))
    assert.is_nil(t)
    assert.are.equal("KeyError", err.kind)
    assert.truthy(err.message:find("nope.pem", 1, true))
  end)
end)

describe("replay protection", function()
  it("accepts a state once per client store, until it expires", function()
    local c = eternaltwin.new("demo@clients", "dev_secret", "http://cb/", keys.HS256Key("k"),
      { url = BASE, replay_protection = true })
    local st = c:generate_state()
    assert.is_table(c:validate_state(st, st))
    local ok, err = c:validate_state(st, st)
    assert.is_nil(ok)
    assert.truthy(err.message:find("already used", 1, true))
    assert.is_table(err.state)
    assert.is_table(c:validate_state(st, st, { once = false }))
  end)

  it("is available per call, and with a shared store", function()
    local c = client(keys.HS256Key("k"))
    local st = c:generate_state()
    assert.is_table(c:validate_state(st))
    assert.is_table(c:validate_state(st))
    assert.is_table(c:validate_state(st, nil, { once = true }))
    assert.is_nil((c:validate_state(st, nil, { once = true })))
    local store = eternaltwin.ReplayStore(10)
    local other = client(keys.HS256Key("k"))
    local st2 = other:generate_state()
    assert.is_table(other:validate_state(st2, nil, { once = store }))
    assert.is_nil((c:validate_state(st2, nil, { once = store })))
    assert.has_error(function() c:validate_state(st, nil, { once = "yes" }) end)
  end)

  it("stays bounded, forgetting the entry closest to expiry first", function()
    local store = eternaltwin.ReplayStore(3)
    local now = 1000
    assert.is_true(store:check_and_add("a", now + 10, now))
    assert.is_true(store:check_and_add("b", now + 30, now))
    assert.is_true(store:check_and_add("c", now + 20, now))
    assert.is_false(store:check_and_add("b", now + 30, now))
    assert.is_true(store:check_and_add("d", now + 40, now))   -- full: "a" goes
    assert.are.equal(3, store.count)
    assert.is_true(store:check_and_add("a", now + 10, now))    -- forgotten, so accepted again
    assert.is_true(store:check_and_add("b", now + 30, now + 31)) -- expired entries are swept
  end)
end)

describe("interop with PyJWT and the Python client's rules", function()
  local have
  local script
  setup(function()
    have = kd.have_py
    script = path("interop.py")
    local f = assert(io.open(script, "w"))
    -- The Python client's State.from_jwt rules, with PyJWT doing the cryptography.
    f:write([[
import json, sys, time, jwt
mode, alg, keyfile, url, arg = sys.argv[1:6]
key = open(keyfile).read()
if mode == "sign":
    now = int(time.time())
    print(jwt.encode({"a": "authorize", "as": url, "iat": now, "rfp": now, "exp": now + 600,
                      "nonce": arg}, key, algorithm=alg))
else:
    p = jwt.decode(arg, key, algorithms=[alg], options={"verify_exp": False})
    state = (p["a"], p["as"], p["iat"], p["rfp"], p["exp"], p["nonce"])
    assert p["a"] == "authorize", "action"
    assert p["as"] == url, "authorization server"
    assert not p["exp"] < int(time.time()), "expired"
    print("valid " + p["nonce"])
]])
    f:close()
  end)

  local function py(mode, alg, keyfile, arg)
    return kd:python("interop.py", mode, alg, path(keyfile), BASE, arg)
  end

  for _, c in ipairs(keydir.CASES) do
    local alg, priv, pub = c[1], c[2], c[3]
    it(alg .. ": our states pass the Python client, PyJWT's pass ours", function()
      if not have then return pending("PyJWT not installed") end
      local key
      if alg == "HS256" then key = keys.HS256Key(text(priv))
      else key = assert(keys[alg .. "Key"](text(pub), text(priv))) end
      local cl = client(key)
      local st = assert(cl:generate_state(nil, "from-lua"))
      assert.are.equal("valid from-lua", py("check", alg, pub, st))
      local theirs = py("sign", alg, priv, "from-python")
      local claims = assert(cl:validate_state(theirs))
      assert.are.equal("from-python", claims.nonce)
      local tampered = theirs:sub(1, -6) .. (theirs:sub(-5, -5) == "A" and "B" or "A") .. theirs:sub(-4)
      assert.is_nil((cl:validate_state(tampered)))
    end)
  end
end)

describe("key:decode", function()
  it("key:decode returns the claims alone", function()
    local k = keys.HS256Key("also")
    local tok = assert(k:encode({ a = 1 }))
    assert.are.equal(1, select("#", k:decode(tok)))
    local ck = core.hmac_key("HS256", "also")
    assert.are.equal(1, select("#", ck:decode(tok)))
    -- A KeyRing too, even over a key of the app's whose decode returns the header as well.
    local two = { algorithm = "HS256", encode = function(_, c) return k:encode(c) end,
                  decode = function(_, t) return k:decode(t), core.jwt_header(t) end, kid = "two" }
    local ring = keys.KeyRing({ two })
    assert.are.equal(1, select("#", ring:decode(ring:encode({ a = 2 }))))
    assert.are.equal("JWT", core.jwt_header(tok).typ)
  end)
end)

describe("KeyRing needs a kid on every key", function()
  -- Lua 5.1's loaders, looked up so that luacheck (set for 5.4) accepts them.
  local setfenv, loadstring = rawget(_G, "setfenv"), rawget(_G, "loadstring")
  local readfile = require("spec.support.mock").must_read
  local fixtures = require("spec.support.fixtures")

  it("says so, with the fix, when a key has none", function()
    local ok, msg = pcall(keys.KeyRing, { keys.HS256Key("k") })
    assert.is_false(ok)
    assert.truthy(msg:find("key 1 has no kid: a KeyRing finds keys by kid, so give each one, " ..
      'e.g. keys.HS256Key(secret, { kid = "2026-12" })', 1, true), msg)
  end)

  it("the README's example works: signs with the newest, accepts the older", function()
    local readme = readfile("README.md")
    local block = readme:match("```lua\n(local ring = keys%.KeyRing{.-)```")
    assert.is_string(block)
    local env = setmetatable({ keys = keys, eternaltwin = eternaltwin, os = {
      getenv = function(n) return ({ STATE_KEY = "new secret", OLD_STATE_KEY = "old secret" })[n] end } },
      { __index = _G })
    local chunk = assert((loadstring or load)(block .. "\nreturn ring, client", "=readme", "t", env))
    if setfenv then setfenv(chunk, env) end
    local ring, readme_client = chunk()
    assert.are.equal("2026-12", ring.kid)
    local old = fixtures.client({ state_key = keys.HS256Key("old secret", { kid = "2026-06" }), url = readme_client.url })
    assert.truthy(readme_client:validate_state(assert(old:generate_state())))
    local header = core.jwt_header(assert(readme_client:generate_state()))
    assert.are.equal("2026-12", header.kid)
  end)
end)
