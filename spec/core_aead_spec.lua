-- SPDX-License-Identifier: MIT
-- core.aead_seal / core.aead_open (csrc/l_aead.c over csrc/et_aead.c): AES-256-GCM, the gate's
-- tokens at rest. The vectors and the refusals in detail are spec/c/test_aead.c's.
local core = require("eternaltwin.core")

describe("core.aead_seal and core.aead_open", function()
  local key = ("k"):rep(32)

  it("round-trips, with a fresh 96-bit nonce and a 128-bit tag each time", function()
    local a = core.aead_seal(key, "secret token", "place")
    local b = core.aead_seal(key, "secret token", "place")
    assert.are.equal(12 + #"secret token" + 16, #a)
    assert.are_not.equal(a, b)
    assert.is_nil(a:find("secret token", 1, true))
    assert.are.equal("secret token", core.aead_open(key, a, "place"))
    assert.are.equal("secret token", core.aead_open(key, b, "place"))
    assert.are.equal("", core.aead_open(key, core.aead_seal(key, "")))
  end)

  it("refuses another key, another place, an altered or short blob with nil and a message", function()
    local blob = core.aead_seal(key, "secret token", "place")
    local function refused(k, b, aad)
      local v, msg = core.aead_open(k, b, aad)
      assert.is_nil(v)
      assert.truthy(msg:find("^aead_open: "), msg)
      assert.is_nil(msg:find("secret", 1, true))
      return msg
    end
    assert.truthy(refused(("j"):rep(32), blob, "place"):find("does not authenticate", 1, true))
    refused(key, blob, "elsewhere")
    refused(key, blob)
    refused(key, blob:sub(1, -2), "place")
    refused(key, blob:sub(1, 20) .. string.char((blob:byte(21) + 1) % 256) .. blob:sub(22), "place")
    assert.truthy(refused(key, "short", "place"):find("too short", 1, true))
  end)

  it("raises on a key that is not 32 bytes, or a non-string", function()
    assert.has_error(function() core.aead_seal(("k"):rep(31), "x") end)
    assert.has_error(function() core.aead_open(("k"):rep(33), ("x"):rep(40)) end)
    assert.has_error(function() core.aead_seal(key, nil) end)
    assert.has_error(function() core.aead_seal(key, {}) end)
  end)
end)
