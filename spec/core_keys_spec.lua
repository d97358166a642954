-- SPDX-License-Identifier: MIT
-- eternaltwin.core keys and JWT: hmac_key, pkey, jwt_header, Key methods; PyJWT interop.
-- Test keys are generated at run time with the openssl CLI into a temporary directory.
local core = require("eternaltwin.core")
local mock = require("spec.support.mock")
local V = require("spec.support.compat")

local function sh(cmd)
  local ok = os.execute(cmd .. " 2>/dev/null")
  return ok == true or ok == 0
end

local readfile = mock.must_read

local function writefile(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Standard base64 with padding, from the url-safe encoder.
local function b64std(s)
  local t = core.b64url_encode(s):gsub("[-_]", { ["-"] = "+", ["_"] = "/" })
  return t .. string.rep("=", (4 - #t % 4) % 4)
end

local dir
local K = {}    -- name -> key text

local function gen()
  dir = os.tmpname()
  os.remove(dir)
  assert(sh("mkdir -p " .. dir .. " && chmod 700 " .. dir))
  local function o(cmd) assert(sh("cd " .. dir .. " && openssl " .. cmd .. " >/dev/null"), cmd) end
  o("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem")
  o("pkey -in rsa.pem -pubout -out rsa.pub")
  o("rsa -in rsa.pem -traditional -out rsa1.pem")
  o("rsa -in rsa.pem -RSAPublicKey_out -out rsa1.pub")
  o("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa_b.pem")
  o("pkey -in rsa_b.pem -pubout -out rsa_b.pub")
  o("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.pem")
  o("pkey -in rsa1024.pem -pubout -out rsa1024.pub")
  o("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem")
  o("pkey -in ec.pem -pubout -out ec.pub")
  o("ec -in ec.pem -out ec_sec1.pem")
  o("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec384.pem")
  o("pkey -in ec384.pem -pubout -out ec384.pub")
  o("genpkey -algorithm ED25519 -out ed.pem")
  o("pkey -in ed.pem -pubout -out ed.pub")
  o("pkey -in ed.pub -pubin -outform DER -out ed.der")
  o("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -aes-128-cbc -pass pass:pw -out rsa_enc.pem")
  for _, n in ipairs({ "rsa.pem", "rsa.pub", "rsa1.pem", "rsa1.pub", "rsa_b.pem", "rsa_b.pub",
                       "rsa1024.pem", "rsa1024.pub", "ec.pem", "ec.pub", "ec_sec1.pem", "ec384.pem",
                       "ec384.pub", "ed.pem", "ed.pub", "rsa_enc.pem" }) do
    K[n] = readfile(dir .. "/" .. n)
  end
  -- OpenSSH lines: ssh-keygen for RSA and EC when installed; Ed25519 (and the fallback) by hand.
  local raw = readfile(dir .. "/ed.der"):sub(-32)
  K["ed.ssh"] = "ssh-ed25519 " .. b64std(V.ssh_string("ssh-ed25519") .. V.ssh_string(raw)) .. " test@host\n"
  if sh("command -v ssh-keygen >/dev/null") then
    sh("chmod 600 " .. dir .. "/*.pem")
    assert(sh("ssh-keygen -y -f " .. dir .. "/rsa.pem > " .. dir .. "/rsa.ssh"))
    assert(sh("ssh-keygen -y -f " .. dir .. "/ec.pem > " .. dir .. "/ec.ssh"))
    K["rsa.ssh"] = readfile(dir .. "/rsa.ssh")
    K["ec.ssh"] = readfile(dir .. "/ec.ssh")
  end
end

local function cleanup()
  if dir then sh("rm -rf " .. dir) end
end

-- A token from raw parts, signed (or not) with key.
local function forge(header, payload, key)
  local si = core.b64url_encode(header) .. "." .. core.b64url_encode(payload)
  return si .. "." .. (key and core.b64url_encode(assert(key:sign(si))) or "")
end

describe("eternaltwin.core keys", function()
  setup(gen)
  teardown(cleanup)

  describe("hmac_key", function()
    it("encodes and decodes", function()
      local k = assert(core.hmac_key("HS256", "a long random secret"))
      assert.equal("HS256", k:algorithm())
      assert.is_true(k:can_sign())
      assert.equal("eternaltwin.core.Key (HS256, secret)", tostring(k))
      local tok = assert(k:encode({ a = "authorize", exp = 1700000000, nonce = "n" }))
      assert.matches("^[%w_-]+%.[%w_-]+%.[%w_-]+$", tok)
      local claims, header = k:decode(tok), core.jwt_header(tok)
      assert.same({ a = "authorize", exp = 1700000000, nonce = "n" }, claims)
      assert.same({ alg = "HS256", typ = "JWT" }, header)
      assert.equal('{"alg":"HS256","typ":"JWT"}', core.b64url_decode(tok:match("^[^.]+")))
    end)

    it("matches PyJWT byte for byte", function()
      local k = core.hmac_key("HS256", "secret")
      assert.equal("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhIjoxLCJiIjpbMSwyXX0."
        .. "_U-zwGfyfkDDVOv2sJJEtZRC3K2wUF4vqQ2rZE10DbM", k:encode({ a = 1, b = { 1, 2 } }))
    end)

    it("supports HS384 and HS512", function()
      for _, alg in ipairs({ "HS384", "HS512" }) do
        local k = assert(core.hmac_key(alg, "s"))
        local tok = k:encode({ x = 1 })
        assert.equal(1, k:decode(tok).x)
        assert.equal(alg == "HS384" and 48 or 64, #k:sign("data"))
      end
    end)

    it("adds a kid to the header", function()
      local k = core.hmac_key("HS256", "s")
      local tok = k:encode({ x = 1 }, 'k"1')
      local claims, header = k:decode(tok), core.jwt_header(tok)
      assert.equal(1, claims.x)
      assert.same({ alg = "HS256", kid = 'k"1', typ = "JWT" }, header)
      assert.equal('{"alg":"HS256","kid":"k\\"1","typ":"JWT"}', core.b64url_decode(tok:match("^[^.]+")))
      assert.same(header, core.jwt_header(tok))
    end)

    it("refuses an empty secret, raises on bad arguments", function()
      local k, msg = core.hmac_key("HS256", "")
      assert.is_nil(k)
      assert.equal("empty HMAC secret", msg)
      assert.has_error(function() core.hmac_key("RS256", "x") end)
      assert.has_error(function() core.hmac_key("none", "x") end)
      assert.has_error(function() core.hmac_key("HS256") end)
    end)

    it("sign and verify raw data", function()
      local k = core.hmac_key("HS256", "key")
      local sig = k:sign("The quick brown fox jumps over the lazy dog")
      -- RFC 2104 example widely published (HMAC-SHA256 "key", fox sentence).
      assert.equal("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
        (sig:gsub(".", function(c) return ("%02x"):format(c:byte()) end)))
      assert.is_true(k:verify("The quick brown fox jumps over the lazy dog", sig))
      assert.is_false(k:verify("The quick brown fox jumps over the lazy cat", sig))
      assert.is_false(k:verify("The quick brown fox jumps over the lazy dog", sig:sub(2)))
    end)

    it("encode refuses what JSON cannot hold", function()
      local k = core.hmac_key("HS256", "s")
      local t, msg = k:encode({ f = print })
      assert.is_nil(t)
      assert.matches("function", msg)
      t, msg = k:encode({ 1, 2 })
      assert.is_nil(t)
      assert.matches("JSON object", msg)
      assert.has_error(function() k:encode("x") end)
      assert.has_error(function() k:encode({}, 12) end)
      assert.is_string(k:encode({}))
    end)
  end)

  describe("decode", function()
    local k = core.hmac_key("HS256", "the secret")
    local other = core.hmac_key("HS256", "another secret")

    local function fails(tok, pattern)
      local v, msg = k:decode(tok)
      assert.is_nil(v)
      assert.is_string(msg)
      assert.matches(pattern, msg, 1, true)
      assert.not_matches("the secret", msg, 1, true)
      if #tok > 8 then assert.not_matches(tok, msg, 1, true) end
      return msg
    end

    it("checks, in order: size, segments, base64url, header, alg, signature, payload", function()
      local good = k:encode({ a = 1 })
      local h, p, s = good:match("^([^.]*)%.([^.]*)%.([^.]*)$")
      fails(string.rep("A", 8193), "token longer than 8192 bytes")
      fails(string.rep(".", 8193), "token longer than 8192 bytes")
      fails("abc", "token has 1 segments, expected 3")
      fails(h .. "." .. p, "token has 2 segments, expected 3")
      fails(good .. ".x", "token has 4 segments, expected 3")
      fails("e+30." .. p .. "." .. s, "bad base64url in header: bad character at byte 2")
      fails(h .. ".e30=." .. s, "bad base64url in payload: padding not accepted")
      fails(h .. "." .. p .. ".A", "bad base64url in signature: impossible length")
      fails(core.b64url_encode("{") .. "." .. p .. "." .. s, "header is not valid JSON")
      fails(core.b64url_encode("[1]") .. "." .. p .. "." .. s, "header is not a JSON object")
      fails(core.b64url_encode("{}") .. "." .. p .. "." .. s, "header has no alg")
      fails(core.b64url_encode('{"alg":1}') .. "." .. p .. "." .. s, "header alg is not a string")
      fails(forge('{"alg":"none","typ":"JWT"}', '{"a":1}'), 'algorithm "none" not accepted (key is HS256)')
      fails(forge('{"alg":"HS384"}', '{"a":1}', core.hmac_key("HS384", "the secret")),
        'algorithm "HS384" not accepted (key is HS256)')
      fails(forge('{"alg":"RS256"}', '{"a":1}'), 'algorithm "RS256" not accepted (key is HS256)')
      fails(forge('{"alg":"HS256","crit":["b64"]}', '{"a":1}', k), 'header "crit" is not supported')
      fails(h .. "." .. p .. "." .. s:sub(1, -3) .. (s:sub(-2) == "AA" and "AQ" or "AA"), "signature does not verify")
      fails(h .. "." .. p .. ".", "signature has 0 bytes, HS256 needs 32")
      fails(other:encode({ a = 1 }), "signature does not verify")
      fails(forge('{"alg":"HS256"}', "[1,2]", k), "payload is not a JSON object")
      fails(forge('{"alg":"HS256"}', "{", k), "payload is not valid JSON")
      fails(forge('{"alg":"HS256"}', '{"a":1} x', k), "trailing garbage")
    end)

    it("shows an attacker's alg safely", function()
      local msg = fails(forge('{"alg":"a\\nb\\"c' .. string.rep("x", 50) .. '"}', "{}"), "not accepted")
      assert.not_matches("\n", msg, 1, true)
      assert.matches('algorithm "a?b?c' .. string.rep("x", 19) .. '..." not accepted (key is HS256)', msg, 1, true)
    end)

    it("accepts a token of exactly the maximum size", function()
      local pad = string.rep("x", 6000)
      local tok = k:encode({ p = pad })
      local extra = 8192 - #tok
      tok = k:encode({ p = pad .. string.rep("x", math.floor(extra * 3 / 4)) })
      assert.is_true(#tok <= 8192)
      assert.equal("table", type((k:decode(tok))))
    end)

    it("jwt_header checks size and shape, not the signature", function()
      local tok = other:encode({ a = 1 }, "kid-7")
      assert.same({ alg = "HS256", kid = "kid-7", typ = "JWT" }, core.jwt_header(tok))
      local v, msg = core.jwt_header("a.b")
      assert.is_nil(v)
      assert.equal("token has 2 segments, expected 3", msg)
      v, msg = core.jwt_header(string.rep("a", 9000))
      assert.is_nil(v)
      assert.matches("longer than", msg)
      v, msg = core.jwt_header(core.b64url_encode("[]") .. ".e30.")
      assert.is_nil(v)
      assert.equal("header is not a JSON object", msg)
      v, msg = core.jwt_header("e30.e+0.")
      assert.is_nil(v)
      assert.matches("payload", msg)
      assert.has_error(function() core.jwt_header() end)
    end)
  end)

  describe("state_claims", function()
    local k = assert(core.hmac_key("HS256", "state secret"))
    local as = "http://localhost:50320/"
    local function state(over)
      local c = { a = "authorize", as = as, iat = 1000, rfp = 1000, exp = 1600, nonce = "n" }
      for key, v in pairs(over or {}) do c[key] = v end
      for key, v in pairs(over or {}) do if v == false then c[key] = nil end end
      return assert(k:encode(c))
    end

    it("returns the claims of a good state", function()
      local c = assert(k:state_claims(state(), as, 1200, 0))
      assert.equal("n", c.nonce)
      assert.equal(1600, c.exp)
    end)

    it("checks the claims in order, with the client's messages and the claims third", function()
      local cases = {
        { { a = false }, "invalid state: claim 'a' is missing" },
        { { as = 1 }, "invalid state: claim 'as' must be a string" },
        { { iat = "x", exp = false }, "invalid state: claim 'iat' must be a number" },
        { { nonce = false }, "invalid state: claim 'nonce' is missing" },
        { { a = "ticket" }, "invalid state: action is not 'authorize'" },
        { { as = as .. "x" }, "invalid state: issued for another authorization server" },
        { { iat = 1301 }, "invalid state: issued in the future" },
        { { exp = 1099 }, "invalid state: expired" },
      }
      for _, case in ipairs(cases) do
        local c, msg, claims = k:state_claims(state(case[1]), as, 1200, 100)
        assert.is_nil(c)
        assert.equal(case[2], msg)
        assert.equal("table", type(claims))
      end
      -- The leeway counts both ways; exp == now passes.
      assert.is_table(k:state_claims(state({ exp = 1100 }), as, 1200, 100))
      assert.is_table(k:state_claims(state({ exp = 1200 }), as, 1200, 0))
    end)

    it("prefixes decode failures, without claims", function()
      local other = assert(core.hmac_key("HS256", "another secret"))
      local c, msg, claims = k:state_claims(assert(other:encode({ a = "authorize" })), as, 1200, 0)
      assert.is_nil(c)
      assert.equal("invalid state: signature does not verify", msg)
      assert.is_nil(claims)
      assert.matches("^invalid state: ", select(2, k:state_claims("x.y", as, 1200)))
    end)
  end)

  describe("pkey", function()
    local cases = {
      { "RS256", "rsa.pub", "rsa.pem" }, { "RS384", "rsa.pub", "rsa.pem" }, { "RS512", "rsa.pub", "rsa.pem" },
      { "PS256", "rsa.pub", "rsa.pem" }, { "PS384", "rsa.pub", "rsa.pem" }, { "PS512", "rsa.pub", "rsa.pem" },
      { "ES256", "ec.pub", "ec.pem" }, { "ES384", "ec384.pub", "ec384.pem" }, { "EdDSA", "ed.pub", "ed.pem" },
    }
    for _, c in ipairs(cases) do
      local alg, pubf, privf = c[1], c[2], c[3]
      it(alg .. " signs, verifies, and a public key only verifies", function()
        local full = assert(core.pkey(alg, K[pubf], K[privf]))
        local pub = assert(core.pkey(alg, K[pubf]))
        local priv = assert(core.pkey(alg, nil, K[privf]))
        assert.equal(alg, full:algorithm())
        assert.equal("eternaltwin.core.Key (" .. alg .. ", private)", tostring(full))
        assert.equal("eternaltwin.core.Key (" .. alg .. ", public)", tostring(pub))
        assert.is_true(full:can_sign())
        assert.is_true(priv:can_sign())
        assert.is_false(pub:can_sign())
        local tok = assert(full:encode({ a = "authorize", n = 1 }))
        for _, k in ipairs({ full, pub, priv }) do
          local claims, header = k:decode(tok), core.jwt_header(tok)
          assert.same({ a = "authorize", n = 1 }, claims)
          assert.same({ alg = alg, typ = "JWT" }, header)
        end
        local t2, msg = pub:encode({})
        assert.is_nil(t2)
        assert.equal("key cannot sign (public key only)", msg)
        assert.is_nil(pub:sign("x"))
        local sig = priv:sign("data")
        assert.is_true(pub:verify("data", sig))
        assert.is_false(pub:verify("datA", sig))
        -- a flipped signature bit
        local h, p, s = tok:match("^([^.]*)%.([^.]*)%.([^.]*)$")
        local raw = core.b64url_decode(s)
        local i = math.floor(#raw / 2)
        local bad = raw:sub(1, i - 1) .. string.char(V.flip_low_bit(raw:byte(i))) .. raw:sub(i + 1)
        local v, m2 = pub:decode(h .. "." .. p .. "." .. core.b64url_encode(bad))
        assert.is_nil(v)
        assert.equal("signature does not verify", m2)
        -- a token for another algorithm
        v, m2 = pub:decode(core.hmac_key("HS256", "x"):encode({}))
        assert.is_nil(v)
        assert.equal('algorithm "HS256" not accepted (key is ' .. alg .. ")", m2)
      end)
    end

    it("ES signatures are JOSE r||s of fixed length", function()
      local k256 = core.pkey("ES256", nil, K["ec.pem"])
      local k384 = core.pkey("ES384", nil, K["ec384.pem"])
      assert.equal(64, #k256:sign("x"))
      assert.equal(96, #k384:sign("x"))
      local tok = k256:encode({})
      local si, s = tok:match("^(.*)%.([^.]*)$")
      local raw = core.b64url_decode(s)
      for _, bad in ipairs({ raw:sub(2), raw .. "\0", string.rep("\0", 64) }) do
        local v, msg = k256:decode(si .. "." .. core.b64url_encode(bad))
        assert.is_nil(v)
        if #bad ~= 64 then
          assert.equal(("signature has %d bytes, ES256 needs 64"):format(#bad), msg)
        else
          assert.equal("signature does not verify", msg)
        end
      end
    end)

    it("loads PKCS#1, SEC1 and OpenSSH formats", function()
      assert.is_not_nil(core.pkey("RS256", K["rsa1.pub"], K["rsa1.pem"]))
      assert.matches("BEGIN RSA PRIVATE KEY", K["rsa1.pem"])
      assert.matches("BEGIN RSA PUBLIC KEY", K["rsa1.pub"])
      assert.matches("BEGIN EC PRIVATE KEY", K["ec_sec1.pem"])
      assert.is_not_nil(core.pkey("ES256", K["ec.pub"], K["ec_sec1.pem"]))
      local ed = assert(core.pkey("EdDSA", K["ed.ssh"], K["ed.pem"]))
      assert.equal(1, ed:decode(ed:encode({ x = 1 })).x)
      if K["rsa.ssh"] then
        local rs = assert(core.pkey("RS256", K["rsa.ssh"], K["rsa.pem"]))
        local pub = assert(core.pkey("PS256", K["rsa.ssh"]))
        assert.equal(1, pub:decode(core.pkey("PS256", nil, K["rsa.pem"]):encode({ x = 1 })).x)
        assert.is_not_nil(rs)
        assert.is_not_nil(core.pkey("ES256", K["ec.ssh"], K["ec.pem"]))
      end
    end)

    it("refuses keys that do not fit", function()
      local function refused(pattern, ...)
        local k, msg = core.pkey(...)
        assert.is_nil(k)
        assert.matches(pattern, msg, 1, true)
        assert.not_matches("BEGIN", msg, 1, true)
        assert.not_matches("AAAA", msg, 1, true)
      end
      refused("RS256 needs an RSA key of at least 2048 bits, not 1024", "RS256", K["rsa1024.pub"])
      refused("PS256 needs an RSA key of at least 2048 bits, not 1024", "PS256", nil, K["rsa1024.pem"])
      refused("ES256 needs an EC key on P-256, not secp384r1", "ES256", K["ec384.pub"])
      refused("ES384 needs an EC key on P-384, not prime256v1", "ES384", K["ec.pub"])
      refused("RS256 needs an RSA key, not EC", "RS256", K["ec.pub"])
      refused("EdDSA needs an Ed25519 key, not RSA", "EdDSA", K["rsa.pub"])
      refused("ES256 needs an EC key, not ED25519", "ES256", nil, K["ed.pem"])
      refused("public and private keys do not match", "RS256", K["rsa_b.pub"], K["rsa.pem"])
      refused("private key: private key text holds a public key", "RS256", nil, K["rsa.pub"])
      refused("private key: encrypted private keys are not supported", "RS256", nil, K["rsa_enc.pem"])
      refused("public key: key text is neither PEM nor an OpenSSH public key line", "RS256", "hello")
      refused("public key: cannot parse PEM public key", "RS256",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
      refused("private key: cannot parse PEM private key", "RS256", nil,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
      refused("public key: unsupported OpenSSH key type", "RS256", "ssh-dss AAAAB3NzaC1kc3M= x")
      refused("OpenSSH key blob type does not match its line", "RS256",
        "ssh-rsa " .. b64std(V.ssh_string("ssh-ed25519") .. V.ssh_string(string.rep("a", 32))))
      refused("malformed OpenSSH key blob", "EdDSA",
        "ssh-ed25519 " .. b64std(V.ssh_string("ssh-ed25519") .. V.ssh_string(string.rep("a", 31))))
      refused("not valid base64", "EdDSA", "ssh-ed25519 ****")
      refused("private key text is an OpenSSH public key line", "EdDSA", nil, K["ed.ssh"])
    end)

    it("raises on argument mistakes", function()
      assert.has_error(function() core.pkey("RS256") end)
      assert.has_error(function() core.pkey("RS256", nil, nil) end)
      assert.has_error(function() core.pkey("HS256", K["rsa.pub"]) end)
      assert.has_error(function() core.pkey("none", K["rsa.pub"]) end)
      assert.has_error(function() core.pkey("RS256", {}) end)
    end)

    it("never shows key material", function()
      local k = core.pkey("RS256", K["rsa.pub"], K["rsa.pem"])
      assert.equal("eternaltwin.core.Key (RS256, private)", tostring(k))
      assert.is_nil(getmetatable(k).__index)   -- locked: the metatable is not reachable
    end)
  end)

  describe("lifetime", function()
    it("closes idempotently (__close then __gc)", function()
      if _VERSION ~= "Lua 5.4" then return pending("Lua 5.4 only") end
      local fn = assert(load([[
        local core = ...
        local ref
        do
          local k <close> = core.hmac_key("HS256", "s")
          ref = k
          assert(k:encode({}))
        end
        return ref
      ]]))
      local ref = fn(core)
      assert.equal("eternaltwin.core.Key (closed)", tostring(ref))
      assert.has_error(function() ref:encode({}) end, "attempt to use a closed key")
      assert.has_error(function() ref:algorithm() end)
      ref = nil
      collectgarbage()
      collectgarbage()
    end)

    it("survives many keys being collected", function()
      for i = 1, 200 do
        local k = core.hmac_key("HS256", "s" .. i)
        assert(k:decode(k:encode({ i = i })))
        if i % 50 == 0 then collectgarbage() end
      end
      for _ = 1, 20 do
        local k = core.pkey("ES256", K["ec.pub"], K["ec.pem"])
        assert(k:decode(k:encode({})))
      end
      collectgarbage()
    end)

    it("raises on a non-key self", function()
      local k = core.hmac_key("HS256", "s")
      local index = getmetatable(k)
      assert.equal("locked", index)
      assert.has_error(function() k.encode({}, {}) end)
    end)
  end)

  describe("PyJWT interop", function()
    local py = "/usr/bin/python3"
    local script
    local have

    setup(function()
      have = sh(py .. " -c 'import jwt' >/dev/null")
      script = dir .. "/interop.py"
      writefile(script, [[
import json, sys, jwt
mode, alg, keyfile, arg = sys.argv[1:5]
key = open(keyfile).read()
if mode == "encode":
    print(jwt.encode(json.loads(arg), key, algorithm=alg))
else:
    claims = jwt.decode(arg, key, algorithms=[alg], options={"verify_exp": False})
    print(json.dumps(claims, sort_keys=True, separators=(",", ":")))
]])
      writefile(dir .. "/hs.secret", "an interop secret")
    end)

    local function pyrun(mode, alg, keyfile, arg)
      local p = io.popen(("%s %s %s %s %s '%s' 2>&1"):format(py, script, mode, alg, dir .. "/" .. keyfile, arg))
      local out = p:read("*a")
      p:close()
      return (out:gsub("%s+$", ""))
    end

    local cases = {
      { "HS256", "hs.secret", "hs.secret" },
      { "RS256", "rsa.pem", "rsa.pub" },
      { "PS256", "rsa.pem", "rsa.pub" },
      { "ES256", "ec.pem", "ec.pub" },
      { "EdDSA", "ed.pem", "ed.pub" },
    }
    for _, c in ipairs(cases) do
      local alg, privf, pubf = c[1], c[2], c[3]
      it(alg .. " tokens decode both ways", function()
        if not have then return pending("PyJWT not installed") end
        local key
        if alg == "HS256" then
          key = core.hmac_key("HS256", readfile(dir .. "/hs.secret"))
        else
          key = assert(core.pkey(alg, readfile(dir .. "/" .. pubf), readfile(dir .. "/" .. privf)))
        end
        local claims = { a = "authorize", as = "http://localhost:50320/", iat = 1700000000, rfp = 1700000000,
                         exp = 1700000600, nonce = core.random_hex(64) }
        -- PyJWT -> us
        local tok = pyrun("encode", alg, privf, core.json_encode(claims))
        local got, msg = key:decode(tok)
        assert.is_table(got, msg)
        assert.same(claims, got)
        -- us -> PyJWT
        local ours = key:encode(claims)
        assert.equal(core.json_encode(claims), pyrun("decode", alg, pubf, ours))
        -- a tampered token is refused by PyJWT too
        local bad = ours:sub(1, -5) .. (ours:sub(-4) == "AAAA" and "BBBB" or "AAAA")
        assert.matches("Signature verification failed", pyrun("decode", alg, pubf, bad), 1, true)
      end)
    end
  end)
end)

describe("a finalizer closing the key inside key:decode/encode", function()
  local gc = require("spec.support.gc")
  local eager_gc, arm, make_garbage = gc.eager_gc, gc.arm, gc.make_garbage

  -- A Key's only close is its __close (5.4), reached through a to-be-closed variable.
  local close_key = _VERSION == "Lua 5.4" and load("return function(k) local c <close> = k end")()

  it("decode and encode finish with the key, which closes afterwards", function()
    if not close_key then pending("a Key has __close on Lua 5.4 only") return end
    eager_gc(function()
      -- A header other than the key's default one is parsed before the signature is checked;
      -- this one holds 1,700 empty objects (1,700 table allocations, about 100 KB), so the
      -- collector runs, with the armed finalizer, while the header is built, before the key is
      -- used.
      local b64 = core.b64url_encode
      local header = b64('{"alg":"HS256","typ":"JWT","x":[' .. ("{},"):rep(1700) .. '{}]}')
      for round = 1, 100 do
        local k = core.hmac_key("HS256", "secret")
        local input = header .. "." .. b64(core.json_encode({ a = "x", n = round }))
        local tok = input .. "." .. b64(k:sign(input))
        arm(function() close_key(k) end)
        make_garbage(round * 13 % 700)
        local ok, claims, msg = pcall(k.decode, k, tok)
        if ok then
          assert(claims, msg)
          assert.are.equal(round, claims.n)
        else
          assert.matches("closed key", claims, 1, true)
        end
        collectgarbage("collect")
        assert.are.equal("eternaltwin.core.Key (closed)", tostring(k))
        assert.has_error(function() k:decode(tok) end)
      end
      for round = 1, 60 do
        local k = core.hmac_key("HS256", "secret")
        arm(function() close_key(k) end)
        make_garbage(round * 10)
        local ok, tok = pcall(k.encode, k, { a = "x", n = round }, "kid-" .. round)
        if ok then
          assert.are.equal(2, #tok:gsub("[^.]", ""))
          assert.are.equal(round, core.hmac_key("HS256", "secret"):decode(tok).n)
        else
          assert.matches("closed key", tok, 1, true)
        end
      end
    end)
  end)
end)
