-- SPDX-License-Identifier: MIT
-- eternaltwin.errors: errors concatenate as their messages; the module prints its kinds.
local eternaltwin = require("eternaltwin")
local errors = require("eternaltwin.errors")
local fixtures = require("spec.support.fixtures")

describe("errors concatenate", function()
  it("with strings on either side, and with each other, as their messages", function()
    local client = fixtures.client({ url = "http://127.0.0.1:1/" })
    local _, err = client:get("api/v1/clock")
    assert.are.equal("TransportError", err.kind)
    assert.are.equal("failed: " .. err.message, "failed: " .. err)
    assert.are.equal(err.message .. "!", err .. "!")
    local e2 = errors.new(errors.KeyError, "two")
    assert.are.equal(err.message .. "two", err .. e2)
    assert.are.equal("1: two", 1 .. ": " .. e2)
    assert.has_error(function() return e2 .. {} end)
  end)
end)

describe("what prints", function()
  it("eternaltwin.errors prints its kinds and still iterates as exactly the kinds", function()
    assert.are.equal("<eternaltwin.errors InvalidStateError, InvalidTicketError, RequestError, TransportError, "
      .. "DecodeError, KeyError, Cancelled>", tostring(eternaltwin.errors))
    local n = 0
    for k, v in pairs(eternaltwin.errors) do assert.are.equal(k, v); n = n + 1 end
    assert.are.equal(7, n)
  end)
end)
