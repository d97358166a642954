-- SPDX-License-Identifier: MIT
-- eternaltwin.core util: base64url, form/path encoding, CSPRNG, constant-time compare.
local core = require("eternaltwin.core")

describe("eternaltwin.core util", function()
  it("loads twice", function()
    package.loaded["eternaltwin.core"] = nil
    local again = require("eternaltwin.core")
    assert.is_function(again.b64url_encode)
    package.loaded["eternaltwin.core"] = core
  end)

  describe("b64url", function()
    -- RFC 4648 section 10, without padding.
    local vectors = {
      { "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
      { "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
      { "\251\255", "-_8" }, { "\0\0\0", "AAAA" },
    }
    for _, v in ipairs(vectors) do
      it("encodes and decodes " .. ("%q"):format(v[1]), function()
        assert.equal(v[2], core.b64url_encode(v[1]))
        assert.equal(v[1], core.b64url_decode(v[2]))
      end)
    end

    it("round-trips every byte value", function()
      local t = {}
      for i = 0, 255 do t[#t + 1] = string.char(i) end
      local s = table.concat(t)
      assert.equal(s, core.b64url_decode(core.b64url_encode(s)))
    end)

    it("rejects bad input with a message", function()
      local cases = {
        { "Zm9v+mFy", "bad character at byte 5" },
        { "Zm9v/mFy", "bad character at byte 5" },
        { "Zg==", "padding not accepted at byte 3" },
        { "Zm9vY", "impossible length" },
        { "Zh", "non%-zero trailing bits" },
        { "Zm 9vA", "bad character at byte 3" },
      }
      for _, c in ipairs(cases) do
        local v, msg = core.b64url_decode(c[1])
        assert.is_nil(v)
        assert.matches(c[2], msg)
      end
    end)

    it("raises on a wrong argument type", function()
      assert.has_error(function() core.b64url_encode({}) end)
      assert.has_error(function() core.b64url_decode() end)
    end)
  end)

  describe("URL encoding", function()
    -- Expected values from Python: urllib.parse.quote_plus(s), quote(s, safe='').
    local vectors = {
      { "", "", "" },
      { "abc", "abc", "abc" },
      { "a b", "a+b", "a%20b" },
      { "a+b", "a%2Bb", "a%2Bb" },
      { "~-._", "~-._", "~-._" },
      { "/?#[]@!$&'()*,;=%", "%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2C%3B%3D%25",
        "%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2C%3B%3D%25" },
      { "\0\127\255", "%00%7F%FF", "%00%7F%FF" },
      { "é€", "%C3%A9%E2%82%AC", "%C3%A9%E2%82%AC" },
      { "http://localhost:8000/oauth/callback", "http%3A%2F%2Flocalhost%3A8000%2Foauth%2Fcallback",
        "http%3A%2F%2Flocalhost%3A8000%2Foauth%2Fcallback" },
      { "A Z a z 0 9", "A+Z+a+z+0+9", "A%20Z%20a%20z%200%209" },
    }
    for _, v in ipairs(vectors) do
      it("encodes " .. ("%q"):format(v[1]), function()
        assert.equal(v[2], core.form_encode(v[1]))
        assert.equal(v[3], core.path_encode(v[1]))
      end)
    end

    it("matches Python for every byte", function()
      local py = io.popen("/usr/bin/python3 -c 'from urllib.parse import quote_plus, quote; "
        .. "b = bytes(range(256)); print(quote_plus(b)); print(quote(b, safe=\"\"))' 2>/dev/null")
      local form, path = py:read("*l"), py:read("*l")
      py:close()
      if not form then return pending("python3 not available") end
      local t = {}
      for i = 0, 255 do t[#t + 1] = string.char(i) end
      local s = table.concat(t)
      assert.equal(form, core.form_encode(s))
      assert.equal(path, core.path_encode(s))
    end)
  end)

  describe("random", function()
    it("random_hex gives 2n lower-case hex characters", function()
      local h = core.random_hex(64)
      assert.equal(128, #h)
      assert.matches("^[0-9a-f]+$", h)
      assert.not_equal(h, core.random_hex(64))
      assert.equal("", core.random_hex(0))
      assert.equal(2, #core.random_hex(1))
    end)

    it("random_bytes gives n bytes", function()
      assert.equal(32, #core.random_bytes(32))
      assert.equal("", core.random_bytes(0))
      assert.not_equal(core.random_bytes(16), core.random_bytes(16))
    end)

    it("draws through the state's pool never repeat, across many refills and mixed sizes", function()
      -- The pool hands out a page of CSPRNG output in pieces (csrc/et_rand.h): 3000 draws of
      -- 1 to 100 bytes go through it dozens of times over; big draws go around it.
      local seen, n = {}, 0
      for i = 1, 3000 do
        local len = i % 100 + 1
        local s = core.random_bytes(len)
        assert.equal(len, #s)
        if len >= 8 then
          assert.is_nil(seen[s], "a draw came out twice")
          seen[s] = true
          n = n + 1
        end
      end
      assert.is_true(n > 2500)
      local big = core.random_bytes(64 * 1024)
      assert.equal(64 * 1024, #big)
      assert.not_equal(big:sub(1, 32), big:sub(-32))
      local hexes = {}
      for _ = 1, 500 do
        local h = core.random_hex(64)
        assert.is_nil(hexes[h])
        hexes[h] = true
      end
    end)

    it("raises on a bad count", function()
      assert.has_error(function() core.random_hex(-1) end)
      assert.has_error(function() core.random_bytes("x") end)
      assert.has_error(function() core.random_bytes(1.5) end)
    end)
  end)

  describe("consttime_equal", function()
    it("compares strings", function()
      assert.is_true(core.consttime_equal("abc", "abc"))
      assert.is_true(core.consttime_equal("", ""))
      assert.is_false(core.consttime_equal("abc", "abd"))
      assert.is_false(core.consttime_equal("abc", "ab"))
      assert.is_false(core.consttime_equal("a\0b", "a\0c"))
      assert.has_error(function() core.consttime_equal("a") end)
    end)
  end)
end)
