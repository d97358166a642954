-- SPDX-License-Identifier: MIT
-- Argument checks (eternaltwin.check and the checks of each entry point): numbers must be finite.
local eternaltwin = require("eternaltwin")
local core = require("eternaltwin.core")
local client = require("spec.support.fixtures").client

describe("non-finite numbers", function()
  it("other number arguments refuse NaN and infinity", function()
    local c = client()
    assert.has_error(function() c:generate_state(math.huge) end)
    assert.has_error(function() c:generate_state(0 / 0) end)
    local p = eternaltwin.poller()
    assert.has_error(function() p:step(0 / 0) end)
    assert.has_error(function() p:run(0 / 0) end)
    assert.has_error(function() p:step(math.huge) end)
    assert.has_error(function() eternaltwin.Token({ access_token = "a", token_type = "Bearer",
      expires_in = 0 / 0 }) end)
    assert.has_error(function() core.session({ timeout = 0 / 0 }) end)
  end)
end)
