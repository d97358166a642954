-- SPDX-License-Identifier: MIT
-- eternaltwin.Token: expiry, the 60 s safety margin, and what a token prints.
local eternaltwin = require("eternaltwin")
local readfile = require("spec.support.mock").must_read

describe("a token shows its real lifetime beside the 60 s margin", function()
  it("a 2 s token: has_expired (margin) but shows the seconds the server still accepts it", function()
    local t = eternaltwin.Token{ access_token = "AT-secret", expires_in = 2, token_type = "Bearer" }
    assert.is_true(t:has_expired())
    assert.are.equal(60, t.server_expiration - t.expiration)
    assert.is_true(t:seconds_left() >= 1 and t:seconds_left() <= 2)
    local s = tostring(t)
    assert.truthy(s:match("^<Token Bearer expired %(60 s margin; the server accepts it [12] s more%)>$"), s)
  end)

  it("a 1 h token shows both clocks; a token past the server's expiry just says expired", function()
    local s = tostring(eternaltwin.Token{ access_token = "a", expires_in = 3600, token_type = "Bearer",
                                          refresh_token = "r" })
    assert.truthy(s:match("^<Token Bearer expires in 35[34]%d s %(server: 3[56]%d%d s%), refreshable>$"), s)
    local old = eternaltwin.Token{ access_token = "a", expires_in = -5, token_type = "Bearer" }
    assert.are.equal("<Token Bearer expired>", tostring(old))
    assert.are.equal(0, old:seconds_left())
  end)

  it("the margin is documented", function()
    assert.truthy(readfile("README.md"):find("60 s", 1, true))
    assert.truthy(readfile("lua/eternaltwin/init.lua"):find("60 s safety margin", 1, true))
  end)
end)
