-- SPDX-License-Identifier: MIT
-- eternaltwin.gate under attack (issue 20, DESIGN "Gate security precisions (fourth round)"): one
-- check per defect and promise, from outside, against a real nginx (two workers) running the demo
-- site, the bundled mock as Eternaltwin, and spec/support/gate_fake.lua (more gates on the same site,
-- and a hostile Eternaltwin that answers any id and display name).
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")
local gate_site = require("spec.support.gate_site")

local UUID = "0f0e0d0c-0b0a-4900-8800-aabbccddeeff"

describe("eternaltwin.gate under attack", function()
  local site, tls_dir, tls_port

  setup(function()
    tls_dir = os.tmpname()
    os.remove(tls_dir)
    assert(os.execute("mkdir -p " .. tls_dir .. " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
      .. " -nodes -days 2 -keyout " .. tls_dir .. "/key.pem -out " .. tls_dir .. "/cert.pem -subj /CN=localhost"
      .. " -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1"))
    math.randomseed(os.time() + 83)
    for attempt = 1, 5 do
      tls_port = 20000 + math.random(0, 11999)
      local ok, err = pcall(gate_site.start, { workers = 2, include = gate_site.include(tls_dir, tls_port) })
      if ok then site = err break end
      local taken = tostring(err):find("Address already in use", 1, true) or tostring(err):find("no free port", 1, true)
      if attempt == 5 or not taken then error(err) end
    end
  end)

  teardown(function()
    if site then
      local log = gate_site.error_log(site)
      site:stop()
      os.execute("rm -rf " .. tls_dir)
      assert.is_nil(log:find("runtime error", 1, true), log)
      assert.is_nil(log:find("%[alert%]") or log:find("%[crit%]") or log:find("%[emerg%]"), log)
      -- No secret in any log line.
      for _, secret in ipairs({ site.session_secret, site.state_secret, site.ticket_secret }) do
        assert.is_nil(log:find(secret, 1, true))
      end
    end
  end)

  local basic = gate_site.basic

  local function start(b, path)
    local status, h, _, set = b:get(site.url .. path:gsub("^/", ""))
    assert.are.equal(302, status)
    return h.location, set[1]
  end

  local function authorize(url, user)
    local status, h = gate_site.browser():get(url, { basic(user or "alice") })
    assert.are.equal(302, status)
    return h.location
  end

  local function sign_in(b, path, user)
    local status, h = b:get(authorize((start(b, path)), user))
    assert.are.equal(302, status, h.location)
    return h
  end

  local function marks()
    local _, _, body = gate_site.browser():get(site.url .. "_test/marks")
    return assert(tonumber(body), body)
  end

  -- A code the hostile Eternaltwin turns into a user with this id and display name.
  local function fake_code(id, name)
    return core.b64url_encode(core.json_encode({ id = id, name = name }))
  end

  -- A sign-in at fake gate `kind` (from `base`, the site's http or https URL): the callback's answer.
  local function fake_sign_in(b, kind, code, base)
    base = base or site.url
    local status, h = b:get(base .. "_fake/" .. kind .. "/private")
    assert.are.equal(302, status)
    local state = assert(h.location:match("[?&]state=([^&]+)"), h.location)
    return b:get(base .. "_fake/" .. kind .. "/callback?code=" .. code .. "&state=" .. state)
  end

  local function page_reason(body) return body:match("<p>(.-)</p>") end

  local function session_cookie(set, name)
    for _, c in ipairs(set) do
      if c.name == name then return c end
    end
    return nil
  end

  describe("1. single-use storage", function()
    it("a flood of abandoned sign-ins and junk-code callbacks takes no room; another user still signs in", function()
      local before = marks()
      local attacker = gate_site.browser()
      for i = 1, 60 do
        local loc = start(attacker, "/private?flood=" .. i)
        if i % 2 == 0 then   -- every other one: its callback with a junk code (the mock refuses it)
          local state = assert(loc:match("[?&]state=([^&]+)"))
          local status = attacker:get(site.url .. "oauth/callback?code=junk" .. i .. "&state=" .. state)
          assert.are.equal(502, status)
        end
      end
      -- The same with the hostile Eternaltwin refusing the codes.
      for _ = 1, 20 do
        assert.are.equal(502, (fake_sign_in(attacker, "hostile", "junk")))
      end
      assert.are.equal(before, marks())
      -- A real user signs in, which takes its marks (the state's and its account's budget).
      local h = sign_in(gate_site.browser(), "/private", "bob")
      assert.are.equal("/private", h.location)
      assert.is_true(marks() > before)
    end)

    it("a completed sign-in still cannot be replayed (403), even where codes can be reused", function()
      -- The hostile Eternaltwin accepts a code any number of times (as Eternaltwin 2021 did): the
      -- gate's mark alone refuses the replay.
      local b = gate_site.browser()
      local status, h = b:get(site.url .. "_fake/hostile/private")
      assert.are.equal(302, status)
      local state = assert(h.location:match("[?&]state=([^&]+)"))
      local keep = {}
      for k, v in pairs(b.jar) do keep[k] = v end
      local cb = site.url .. "_fake/hostile/callback?code=" .. fake_code(UUID, "Replayer") .. "&state=" .. state
      assert.are.equal(302, (b:get(cb)))
      for k, v in pairs(keep) do b.jar[k] = v end      -- the binding cookie back
      local s2, _, body = b:get(cb)
      assert.are.equal(403, s2)
      assert.truthy(page_reason(body):find("already used", 1, true), body)
    end)

    it("one account's completed sign-ins are budgeted, so it cannot fill the dict either", function()
      -- The fake gate "budget" allows 2 sign-ins per account and state_ttl (the default is 100).
      local id = "11111111-2222-4333-8444-" .. core.random_hex(6)
      for _ = 1, 2 do
        assert.are.equal(302, (fake_sign_in(gate_site.browser(), "budget", fake_code(id, "Greedy"))))
      end
      local before = marks()
      local status, h, body, set = fake_sign_in(gate_site.browser(), "budget", fake_code(id, "Greedy"))
      assert.are.equal(429, status)
      assert.are.equal("60", h["retry-after"])
      assert.truthy(page_reason(body):find("Too many sign-ins", 1, true), body)
      assert.is_nil(session_cookie(set, "eternaltwin"))
      assert.are.equal(before, marks())                     -- no new mark for it
      -- Another account is not affected.
      assert.are.equal(302, (fake_sign_in(gate_site.browser(), "budget", fake_code(UUID, "Other"))))
    end)
  end)

  describe("2. unfinished sign-ins per browser", function()
    it("keep the gate's cookies under 4 KB however many pages are opened; the latest two complete", function()
      local b = gate_site.browser()
      for i = 1, 40 do
        -- Long URLs (within the 1024 bytes a return URL may have).
        start(b, "/private/" .. ("p"):rep(400) .. "?n=" .. i .. "&q=" .. ("q"):rep(500))
      end
      local header = b:cookie_header(site.url .. "oauth/callback") or ""
      assert.is_true(#header < 4096, "Cookie: " .. #header .. " bytes")
      -- Two tabs at once, after all that.
      local a1 = start(b, "/private/one")
      local a2 = start(b, "/private/two?tab=2")
      local cb1, cb2 = authorize(a1), authorize(a2)
      local s2, h2 = b:get(cb2)
      local s1, h1, _, set = b:get(cb1)
      assert.are.equal(302, s2)
      assert.are.equal("/private/two?tab=2", h2.location)
      assert.are.equal(302, s1)
      assert.are.equal("/private/one", h1.location)
      -- With the session cookie too: still under 4 KB, and no Set-Cookie line over 4 KB.
      header = b:cookie_header(site.url .. "oauth/callback") or ""
      assert.is_true(#header < 4096, "Cookie: " .. #header .. " bytes")
      for _, c in ipairs(set) do assert.is_true(#c.line < 4096) end
    end)

    it("keep a long return URL as its path alone", function()
      local b = gate_site.browser()
      local path = "/private/" .. ("x"):rep(300)
      local h = sign_in(b, path .. "?" .. ("q"):rep(300))
      assert.are.equal(path, h.location)
    end)
  end)

  describe("session cookie header", function()
    it("reads the Cookie header as RFC 6265 pairs: exact name, every value tried, blanks around pairs only", function()
      local b = gate_site.browser()
      sign_in(b, "/private")
      local name, v
      for _, c in pairs(b.jar) do
        if c.name == "eternaltwin" or c.name == "__Host-eternaltwin" then name, v = c.name, c.value end
      end
      assert.is_string(v)
      local function status_with(header)
        return (gate_site.browser():get(site.url .. "private", { "Cookie: " .. header }))
      end
      for i, case in ipairs({
        { name .. "=" .. v, 200 },
        { "a=1; " .. name .. "=" .. v .. "; b=2", 200 },
        { "a=1;" .. name .. "=" .. v, 200 },
        { "  " .. name .. "=" .. v .. "  ", 200 },
        { name .. "=junk; " .. name .. "=" .. v, 200 },            -- a name sent twice: both tried
        { name .. "=" .. v, 200 },                                 -- again (this worker read it before)
        { name:upper() .. "=" .. v, 302 },                         -- names compare exactly
        { name .. " =" .. v, 302 },                                -- a blank inside the pair's name
        { "x" .. name .. "=" .. v, 302 },
        { name .. "=" .. v:sub(1, -2), 302 },                      -- one byte short
        { name .. "=junk", 302 },
        { "", 302 },
      }) do
        assert.are.equal(case[2], status_with(case[1]), "case " .. i)
      end
    end)
  end)

  describe("3. logout", function()
    local function signed_in(b) return (b:get(site.url .. "private")) == 200 end

    it("never happens on a cross-site request; a same-origin POST signs out", function()
      local b = gate_site.browser()
      sign_in(b, "/private")
      local origin = site.url:gsub("/$", "")
      local hostile = {
        { "GET", { "Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: navigate" } },   -- a link or a redirect
        { "GET", {} },
        { "POST", { "Origin: http://evil.example", "Sec-Fetch-Site: cross-site" } }, -- a cross-site form
        { "POST", { "Origin: http://evil.example" } },                              -- an older browser
        { "POST", { "Origin: null" } },                                             -- a sandboxed frame
        { "POST", { "Sec-Fetch-Site: same-site", "Origin: http://sub.127.0.0.1" } }, -- a sibling subdomain
        { "POST", { "Sec-Fetch-Site: cross-site", "Origin: " .. origin } },         -- Sec-Fetch-Site wins
        { "POST", {} },                                                             -- neither header
      }
      for i, case in ipairs(hostile) do
        local status, _, body, set = b:request(case[1], site.url .. "logout", case[2], case[1] == "POST" and "" or nil)
        assert.are.equal(0, #set, "case " .. i)
        assert.are.equal(case[1] == "GET" and 200 or 403, status, "case " .. i)
        assert.truthy(body:find('<form method="post">', 1, true), "case " .. i)   -- the sign-out button
        assert.is_true(signed_in(b), "case " .. i)
      end
      local status, h, _, set = b:request("POST", site.url .. "logout", { "Sec-Fetch-Site: same-origin",
        "Origin: " .. origin }, "")
      assert.are.equal(303, status)
      assert.are.equal("/", h.location)                  -- after_logout
      assert.are.equal("0", set[1].attrs["max-age"])
      assert.is_false(signed_in(b))
    end)
  end)

  describe("4. ids and names from Eternaltwin", function()
    it("are checked before they enter a session: anything else is a 502, and /ticket never a 500", function()
      local bad = {
        { ("a"):rep(300), "Long id" },
        { "alice", "Not a UUID" },
        { UUID:upper(), "Upper case" },
        { UUID .. "\r\nX: y", "CRLF" },
        { 42, "Number" },
        { UUID, "" },
        { UUID, ("n"):rep(65) },
        { UUID, "Esc\27]0;owned\7" },
        { UUID, "Del\127" },
        { UUID, "C1\194\133" },
        { UUID, "Bad\255UTF-8" },
        { UUID, { "not", "a", "string" } },
      }
      for i, case in ipairs(bad) do
        local b = gate_site.browser()
        local status, h, body, set = fake_sign_in(b, "hostile", fake_code(case[1], case[2]))
        assert.are.equal(502, status, "case " .. i)
        assert.truthy(h["content-type"]:find("text/html", 1, true))
        assert.truthy(page_reason(body):find("did not complete the sign-in", 1, true), body)
        assert.is_nil(session_cookie(set, "eternaltwin"), "case " .. i)
        local ts = b:get(site.url .. "_fake/hostile/ticket")
        assert.are.equal(401, ts, "case " .. i)
      end
      -- A good one: a UUID and a name of 64 characters, not all ASCII.
      local b = gate_site.browser()
      local name = "Zoë " .. ("é"):rep(60)
      assert.are.equal(302, (fake_sign_in(b, "hostile", fake_code(UUID, name))))
      local status, _, body = b:get(site.url .. "_fake/hostile/ticket")
      assert.are.equal(200, status)
      assert.truthy(core.json_decode(body).ticket)
    end)
  end)

  describe("6. cookies", function()
    it("are Secure with an https redirect_uri, the session named __Host-eternaltwin (Path=/, no Domain)", function()
      for _, base in ipairs({ ("https://127.0.0.1:%d/"):format(tls_port), site.url }) do
        -- Over TLS, and over plain http too: the redirect_uri's scheme decides, not the request's.
        local b = gate_site.browser(tls_dir .. "/cert.pem")
        local status, _, _, set = b:get(base .. "_fake/https/private")
        assert.are.equal(302, status)
        assert.are.equal(1, #set)
        assert.truthy(set[1].name:match("^__Host%-eternaltwin_st[1-4]$"), set[1].name)
        assert.is_true(set[1].attrs.secure)
        assert.are.equal("/", set[1].attrs.path)
        assert.is_nil(set[1].attrs.domain)
        local s2, _, _, set2 = fake_sign_in(b, "https", fake_code(UUID, "Secure"), base)
        assert.are.equal(302, s2)
        local c = assert(session_cookie(set2, "__Host-eternaltwin"), "no __Host-eternaltwin cookie")
        assert.is_true(c.attrs.secure)
        assert.is_true(c.attrs.httponly)
        assert.are.equal("/", c.attrs.path)
        assert.is_nil(c.attrs.domain)
        for _, other in ipairs(set2) do assert.is_true(other.attrs.secure, other.name) end
      end
    end)

    it("are not Secure with an http redirect_uri, whatever X-Forwarded-Proto says", function()
      local b = gate_site.browser()
      local _, _, _, set = b:get(site.url .. "_fake/hostile/private", { "X-Forwarded-Proto: https" })
      assert.is_nil(set[1].attrs.secure)
      assert.truthy(set[1].name:match("^eternaltwin_st[1-4]$"), set[1].name)
    end)

    it("made by one gate are refused by another sharing session_secret", function()
      local b = gate_site.browser()
      sign_in(b, "/private")
      local session = assert(b.jar["eternaltwin|/"], "no session cookie").value
      -- The same cookie at the site's own gate: good.
      local _, h = b:get(site.url .. "_test/header-user")
      assert.are.equal("Alice", h["x-user"])
      -- Another client id, same cookie name and secret.
      local other = gate_site.browser()
      other.jar["eternaltwin|/"] = { name = "eternaltwin", value = session, path = "/" }
      local _, _, ob = other:get(site.url .. "_fake/other/user")
      assert.are.same({ none = true }, core.json_decode(ob))
      -- The same client under another cookie name.
      local renamed = gate_site.browser()
      renamed.jar["renamed|/"] = { name = "renamed", value = session, path = "/" }
      local _, _, rb = renamed:get(site.url .. "_fake/renamed/user")
      assert.are.same({ none = true }, core.json_decode(rb))
    end)
  end)

  describe("6. tickets", function()
    it("are signed with the client's ticket_key, never its state key", function()
      local b = gate_site.browser()
      sign_in(b, "/private")
      local status, _, body = b:get(site.url .. "ticket")
      assert.are.equal(200, status)
      local ticket = core.json_decode(body).ticket
      assert.truthy(keys.HS256Key(site.ticket_secret):decode(ticket))
      assert.is_nil(keys.HS256Key(site.state_secret):decode(ticket))
    end)
  end)
end)
