-- SPDX-License-Identifier: MIT
-- One end-to-end sign-in through eternaltwin.gate in a real headless Chromium (selenium, driven by
-- spec/support/browser_signin.py): from a protected page through the mock's login form and back to
-- that page; then a replayed callback goes on to its page (and is refused with the original binding
-- cookie put back), logout works
-- by the site's own button and not from another origin, many unfinished sign-ins keep the cookies
-- under 4 KB, two tabs signing in at once both complete, and every gate page is screenshot and
-- checked for a link back (issue 22). nginx runs the LuaJIT build whatever
-- Lua runs busted, so this runs once per CI, under Lua 5.4 (`make test`'s default).
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
    local shots = os.tmpname()
    os.remove(shots)
    assert(os.execute("mkdir -p " .. shots))
    local cmd = "/usr/bin/python3 " .. mock.shell_quote(gate_site.root() .. "/spec/support/browser_signin.py")
      .. " " .. mock.shell_quote(site.url) .. " " .. mock.shell_quote(site.mock) .. " " .. shots
      .. " >" .. out .. " 2>&1"
    local ok = os.execute("timeout 300 " .. cmd)   -- a deadline against a hang, not a budget
    local text = mock.read_file(out) or ""
    os.remove(out)
    os.execute("rm -rf " .. shots)
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
    -- The binding cookie the redirect set (one of four slots, Path=/).
    assert.are.same({ httpOnly = true, sameSite = "Lax", path = "/" }, seen.binding_cookie)
    -- The same callback again (Back, reload) in the browser that completed it: on to its page, since
    -- its binding slot holds a "completed" marker; with the original binding cookie put back, a 403,
    -- since the state is used up.
    assert.is_true(seen.completed_marker)
    assert.are.equal(site.url .. "private/page?from=browser&x=%20y", seen.replay_url)
    assert.are.equal("Alice", seen.replay_user)
    assert.are.equal(site.url .. "private/page?from=browser&x=%20y", seen.reload_url)
    assert.are.equal("403 Forbidden", seen.replay2_title)
    assert.are.equal("This sign-in link was already used.", seen.replay2_reason)
    -- Still signed in after the refused replay; then the sign-out button clears the session.
    assert.are.equal("Alice", seen.home_before_logout)
    assert.are.equal("Not signed in", seen.home_after_logout)
    assert.are.equal(site.url, seen.after_logout_url)
    assert.is_false(seen.session_after_logout)
    -- A form on another origin posting to /logout: refused, still signed in.
    assert.are.equal("403 Forbidden", seen.cross_site_logout_title)
    assert.are.equal("Alice", seen.home_after_cross_site_logout)
    -- Twelve unfinished sign-ins with long URLs: at most the four binding slots, under 4 KB.
    assert.is_true(seen.gate_cookies <= 4, tostring(seen.gate_cookies))
    assert.is_true(seen.gate_cookie_bytes < 4096, tostring(seen.gate_cookie_bytes))
    -- Two tabs at once, each back to its own page.
    assert.are.equal("/private/two?tab=2", seen.tab_two)
    assert.are.equal("/private/one", seen.tab_one)
    -- Every page the gate draws, screenshot in Chromium: each links back to the site; "Try again"
    -- only where it can help.
    local want = { declined = "403 Forbidden", upstream_error = "502 Bad Gateway", no_code = "400 Bad Request",
                   bad_state = "400 Bad Request", misconfigured = "502 Bad Gateway", foreign = "403 Forbidden",
                   sign_in_first = "401 Unauthorized", not_signed_in = "Sign out", sign_out = "Sign out",
                   cross_site_sign_out = "403 Forbidden" }
    for name, title in pairs(want) do
      local p = seen.pages[name]
      assert.truthy(p, name)
      assert.are.equal(title, p.title, name)
      assert.is_true(p.link_back, name .. ": no link back to the site")
      assert.is_true(type(p.png) == "number" and p.png > 1000, name .. ": no screenshot")
      assert.is_nil(p.reason:find("base64url", 1, true), name)
    end
    assert.truthy(seen.pages.misconfigured.reason:find("misconfigured", 1, true))
    assert.truthy(seen.pages.declined.reason:find("declined", 1, true))
    assert.is_nil(log:find("runtime error", 1, true), log)
  end)
end)
