-- SPDX-License-Identifier: MIT
-- One end-to-end sign-in through eternaltwin.gate in a real headless Chromium (selenium, driven by
-- spec/support/browser_signin.py): from a protected page through the mock's login form and back to
-- that page; then a replayed callback is refused (without and with its binding cookie) and logout
-- works. nginx runs the LuaJIT build whatever Lua runs busted, so this runs once per CI, under Lua 5.4
-- (`make test`'s default).
local core = require("eternaltwin.core")
local gate_site = require("spec.support.gate_site")
local mock = require("spec.support.mock")

describe("a browser signing in through the gate", function()
  it("comes back to the protected page, cannot replay the callback, and signs out", function()
    if _VERSION ~= "Lua 5.4" then
      pending("the browser sign-in runs under Lua 5.4 only (it exercises nginx's LuaJIT, not busted's Lua)")
      return
    end
    local site = gate_site.start{ workers = 2 }
    local out = os.tmpname()
    local cmd = "/usr/bin/python3 " .. mock.shell_quote(gate_site.root() .. "/spec/support/browser_signin.py")
      .. " " .. mock.shell_quote(site.url) .. " " .. mock.shell_quote(site.mock) .. " >" .. out .. " 2>&1"
    local ok = os.execute("timeout 300 " .. cmd)   -- a deadline against a hang, not a budget
    local text = mock.read_file(out) or ""
    os.remove(out)
    local log = gate_site.error_log(site)
    site:stop()
    assert(ok == true or ok == 0, "the browser run failed:\n" .. text)
    local seen = core.json_decode(text:match("^[^\n]*"))
    assert(type(seen) == "table", text)
    -- Sent to Eternaltwin's login form, and back to the page first asked, signed in.
    assert.are.equal(site.mock .. "login", seen.login_page)
    assert.are.equal(site.url .. "private/page?from=browser&x=%20y", seen.back_to)
    assert.are.equal("/private/page?from=browser&x=%20y", seen.uri)
    assert.are.equal("Alice", seen.user)
    assert.are.same({ httpOnly = true, sameSite = "Lax", secure = false, path = "/" }, seen.session_cookie)
    assert.is_true(seen.session_has_expiry)
    assert.are.equal(1, seen.callbacks)
    -- The binding cookie the redirect set, then cleared by the callback.
    assert.are.same({ httpOnly = true, sameSite = "Lax", path = "/oauth/callback" }, seen.binding_cookie)
    assert.is_false(seen.binding_left)
    -- The same callback again: a 403 page, since its binding cookie is gone; and with that cookie put
    -- back, a 403 again, since the state is used up.
    assert.are.equal("403 Forbidden", seen.replay_title)
    assert.are.equal("This sign-in was not started in this browser.", seen.replay_reason)
    assert.are.equal("403 Forbidden", seen.replay2_title)
    assert.are.equal("This sign-in link was already used.", seen.replay2_reason)
    -- Still signed in after the refused replay; then the sign-out button clears the session.
    assert.are.equal("Alice", seen.home_before_logout)
    assert.are.equal("Not signed in", seen.home_after_logout)
    assert.are.equal(site.url, seen.after_logout_url)
    assert.is_false(seen.session_after_logout)
    assert.is_nil(log:find("runtime error", 1, true), log)
  end)
end)
