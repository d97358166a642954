-- SPDX-License-Identifier: MIT
-- eternaltwin.core JSON: json_encode / json_decode / null.
local V = require("spec.support.compat")
local core = require("eternaltwin.core")
local null = core.null

describe("eternaltwin.core json", function()
  it("null is one userdata that prints as eternaltwin.null; a NULL light userdata encodes as null too", function()
    assert.equal("userdata", type(null))
    assert.equal("eternaltwin.null", tostring(null))
    assert.equal("null", core.json_encode(null))
    assert.equal(null, core.json_decode("null"))
    assert.equal(null, core.json_decode("[null]")[1])
    assert.equal('{"a":null}', core.json_encode({ a = null }))
    assert.is_nil(core.json_encode(io.stdout))
  end)

  describe("json_encode", function()
    local cases = {
      { true, "true" }, { false, "false" }, { 0, "0" }, { -1, "-1" }, { 1.5, "1.5" },
      { "x", '"x"' }, { "", '""' }, { {}, "{}" },
      { { 1, 2, 3 }, "[1,2,3]" },
      { { b = 1, a = 2, c = { z = 1, y = { 3 } } }, '{"a":2,"b":1,"c":{"y":[3],"z":1}}' },
      { { ["B"] = 1, ["a"] = 2, ["_"] = 3, ["aa"] = 4 }, '{"B":1,"_":3,"a":2,"aa":4}' },
      { "a\"b\\c\n\t\1", '"a\\"b\\\\c\\n\\t\\u0001"' },
      { "nul\0byte", '"nul\\u0000byte"' },
      { "é", '"é"' },
      { { null, 1 }, "[null,1]" },
      { 1700000000, "1700000000" },
      { 2147483648, "2147483648" },
      { 0.1 + 0.2, "0.30000000000000004" },
      { 1.0, V.json_one },
      { 1e300, "1e+300" },
    }
    if V.exact_int64 then
      cases[#cases + 1] = { 9007199254740993, "9007199254740993" }
      cases[#cases + 1] = { math.maxinteger, "9223372036854775807" }
      cases[#cases + 1] = { math.mininteger, "-9223372036854775808" }
    else
      -- Doubles: 2^53 + 1 is not a Lua number here. Integral doubles up to 2^63 print exactly.
      cases[#cases + 1] = { 2 ^ 53, "9007199254740992" }
      cases[#cases + 1] = { 2 ^ 62 + 2 ^ 10, "4611686018427388928" }
      cases[#cases + 1] = { -2 ^ 63, "-9223372036854775808" }
      cases[#cases + 1] = { 2 ^ 63, "9.223372036854776e+18" }
    end
    for _, c in ipairs(cases) do
      it("encodes " .. c[2], function()
        assert.equal(c[2], core.json_encode(c[1]))
      end)
    end

    it("encodes nil as null", function()
      assert.equal("null", core.json_encode(nil))
    end)

    it("sorts keys bytewise in big objects", function()
      local t, keys = {}, {}
      for i = 1, 200 do
        local k = ("k%03d"):format((i * 37) % 200)
        t[k] = i
        keys[#keys + 1] = k
      end
      table.sort(keys)
      local out = core.json_encode(t)
      local seen = {}
      for k in out:gmatch('"(k%d+)"') do seen[#seen + 1] = k end
      assert.same(keys, seen)
    end)

    it("returns nil, msg for what JSON cannot hold", function()
      local cyc = {}
      cyc.self = cyc
      local deep = {}
      local cur = deep
      for _ = 1, 200 do cur.x = {}; cur = cur.x end
      local cases = { -- luacheck: ignore 431
        { 0 / 0, "NaN" }, { math.huge, "infinity" }, { -math.huge, "infinity" },
        { print, "function" }, { io.stdout, "userdata" },
        { { [1] = 1, [3] = 3 }, "not a string" },
        { { 1, 2, x = 3 }, "not a string" },
        { { [true] = 1 }, "not a string" },
        { { ["a\0b"] = 1 }, "NUL" },
        { cyc, "deeper than 128" },
        { deep, "deeper than 128" },
        { { f = coroutine.create(function() end) }, "thread" },
      }
      for _, c in ipairs(cases) do
        local v, msg = core.json_encode(c[1])
        assert.is_nil(v)
        assert.matches(c[2], msg)
      end
    end)

    it("accepts nesting up to the limit", function()
      local t = {}
      local cur = t
      for _ = 2, 128 do cur[1] = {}; cur = cur[1] end
      local s = assert(core.json_encode(t))
      assert.equal(128, select(2, s:gsub("[%[{]", "")))
      cur[1] = {}
      assert.is_nil(core.json_encode(t))
    end)

    it("raises without an argument", function()
      assert.has_error(function() core.json_encode() end)
    end)
  end)

  describe("json_decode", function()
    it("decodes values", function()
      local v = assert(core.json_decode(' {"a":[1,2.5,"x",null,true,false],"b":{},"c":[]} \n'))
      assert.same({ 1, 2.5, "x", null, true, false }, v.a)
      assert.same({}, v.b)
      assert.same({}, v.c)
      assert.equal(V.math_type(v.a[1]), "integer")
      assert.equal(V.math_type(v.a[2]), "float")
    end)

    it("makes integral numbers within 2^53 integers", function()
      assert.equal("integer", V.math_type(core.json_decode("1700000000")))
      assert.equal("integer", V.math_type(core.json_decode("1.0")))
      assert.equal("integer", V.math_type(core.json_decode("1e3")))
      assert.equal(9007199254740992, core.json_decode("9007199254740992"))
      assert.equal("integer", V.math_type(core.json_decode("-9007199254740992")))
      if V.integers then
        assert.equal("float", V.math_type(core.json_decode("18014398509481984")))
      else
        assert.equal(2 ^ 54, core.json_decode("18014398509481984"))
      end
      assert.equal("float", V.math_type(core.json_decode("0.5")))
    end)

    it("decodes strings with escapes", function()
      assert.equal("a\"b\\c\n/é€😀", core.json_decode('"a\\"b\\\\c\\n\\/\\u00e9\\u20ac\\ud83d\\ude00"'))
    end)

    it("round-trips encode", function()
      local t = { a = { 1, 2, { b = "c" } }, n = -12, f = 0.25, s = "x\ty", t = true, z = null }
      assert.same(t, core.json_decode(core.json_encode(t)))
    end)

    it("returns nil, msg naming the byte offset", function()
      local cases = {
        { "", "end of input at byte 1" },
        { "   ", "at byte" },
        { '{"a":1} x', "trailing garbage at byte 9" },
        { '{"a":1}}', "trailing garbage at byte 8" },
        { "[1,]", "syntax error at byte 4" },
        { "{'a':1}", "syntax error at byte 3" },
        { "nul", "at byte" },
        { "[1] [2]", "trailing garbage at byte 5" },
        { "1\0", "trailing garbage at byte 2" },
        { string.rep("[", 129) .. string.rep("]", 129), "nesting deeper than 128 at byte 129" },
        { '"a\\u0000b"', "\\u0000 in a string is not supported at byte 3" },
        { "01", "bad number at byte 1" },
        { "[1.]", "bad number at byte 2" },
        { "+1", "bad number at byte 1" },
        { ".5", "bad number at byte 1" },
        { "[1e]", "bad number at byte 2" },
        { '{"a":-}', "bad number at byte 6" },
        { '"a\tb"', "control character in a string at byte 3" },
      }
      for _, c in ipairs(cases) do
        local v, msg = core.json_decode(c[1])
        assert.is_nil(v, c[1])
        assert.matches(c[2], msg, 1, true)
      end
    end)

    it("accepts nesting up to the limit", function()
      local s = string.rep("[", 128) .. string.rep("]", 128)
      local v = assert(core.json_decode(s))
      local depth = 0
      while type(v) == "table" do depth = depth + 1; v = v[1] end
      assert.equal(128, depth)
      assert.is_table(core.json_decode(string.rep('{"a":', 127) .. "[]" .. string.rep("}", 127)))
    end)

    it("accepts every form of the number grammar", function()
      assert.same({ -125.0, 0, 0, 0.0015, 100000, 1.5 }, core.json_decode("[-1.25E+2,0,-0,1.5e-3,1e5,1.5]"))
      assert.equal("x1.", core.json_decode('"x1."'))
    end)

    it("does not count brackets inside strings", function()
      local s = '"' .. string.rep("[", 500) .. '"'
      assert.equal(string.rep("[", 500), core.json_decode(s))
    end)

    it("raises on a wrong argument type", function()
      assert.has_error(function() core.json_decode({}) end)
    end)

    it("survives many calls (no leak, no state)", function()
      for i = 1, 2000 do
        assert.equal(i, core.json_decode(core.json_encode({ i = i })).i)
      end
    end)
  end)
end)

describe("json_decode is bounded", function()
  it("refuses more than the element limit with a precise message", function()
    local n = core.JSON_MAX_ELEMENTS
    assert.is_number(n)
    local ok = assert(core.json_decode("[" .. ("0,"):rep(n - 2) .. "0]"))
    assert.are.equal(n - 1, #ok)
    local v, msg = core.json_decode("[" .. ("0,"):rep(n) .. "0]")
    assert.is_nil(v)
    assert.matches("more than " .. n .. " values", msg, 1, true)
    v, msg = core.json_decode(('{"a":1,'):rep(1) .. ('"b":[1,2],'):rep(n) .. '"c":1}')
    assert.is_nil(v)
    assert.matches("more than", msg, 1, true)
  end)
end)

describe("eternaltwin.null", function()
  local eternaltwin = require("eternaltwin")

  it("tostring is 'eternaltwin.null', and JSON null decodes to that very value", function()
    assert.are.equal("eternaltwin.null", tostring(eternaltwin.null))
    assert.are.equal(eternaltwin.null, core.json_decode('{"a":null}').a)
    assert.are.equal("[null]", core.json_encode({ eternaltwin.null }))
    assert.are.equal("eternaltwin.null", getmetatable(eternaltwin.null))   -- protected
  end)
end)
