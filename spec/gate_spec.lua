-- SPDX-License-Identifier: MIT
-- eternaltwin.gate, case by case, against a real nginx (two workers) running the LuaJIT build of the
-- module (examples/openresty) and the bundled mock as Eternaltwin. A scripted browser (cookie jar,
-- no automatic redirects) walks each path; the mock authorizes with a user's Basic credentials.
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")
local gate_site = require("spec.support.gate_site")

local ALICE_ID = "c5020923-b4b2-51a5-8a1d-ee5a10de03a3"   -- mock/seed.toml's alice (UUIDv5 of her name)
-- The session cookie's name on http (no __Host- prefix without Secure), and what its signature covers:
-- purpose, cookie name, client id, then the payload.
local SESSION = "eternaltwin"
local SESSION_TAG = "eternaltwin-gate session v2\0" .. SESSION .. "\0site@clients\0"

describe("eternaltwin.gate outside nginx", function()
  local gate = require("eternaltwin.gate")

  it("refuses to start without nginx's API", function()
    assert.has_error(function() gate.new({}) end,
      "eternaltwin.gate runs inside nginx's Lua module (ngx is not available)")
  end)

  it("goes back only to a path of this site", function()
    for _, ok in ipairs({ "/", "/private", "/a/b?c=d&e=%2F%2F", "/p/\\x", "/" .. ("a"):rep(1023) }) do
      assert.is_true(gate._local_path(ok), ok)
    end
    for _, bad in ipairs({ "", "//evil.example/", "/\\evil.example/", "https://evil.example/", "evil",
                           "/a b", "/a\r\nSet-Cookie: x=y", "/a\0", "/" .. ("a"):rep(1024), 42 }) do
      assert.is_false(gate._local_path(bad), tostring(bad))
    end
  end)
end)

describe("eternaltwin.gate in nginx", function()
  local site, spec_client

  local tls_dir, tls_port

  setup(function()
    -- The site also listens with TLS (a certificate made here), for the Secure attribute.
    tls_dir = os.tmpname()
    os.remove(tls_dir)
    assert(os.execute("mkdir -p " .. tls_dir .. " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
      .. " -nodes -days 2 -keyout " .. tls_dir .. "/key.pem -out " .. tls_dir .. "/cert.pem -subj /CN=localhost"
      .. " -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1"))
    math.randomseed(os.time())
    for attempt = 1, 5 do
      tls_port = 20000 + math.random(0, 11999)
      local include = gate_site.include(tls_dir, tls_port)
      local ok, err = pcall(gate_site.start, { workers = 2, include = include })
      if ok then site = err break end
      local taken = tostring(err):find("Address already in use", 1, true) or tostring(err):find("no free port", 1, true)
      if attempt == 5 or not taken then error(err) end
    end
    -- The site's client, as the spec can rebuild it (same state key and Eternaltwin URL): to forge states.
    spec_client = eternaltwin.new{ client_id = "site@clients", client_secret = "unused",
      redirect_uri = site.url .. "oauth/callback", state_key = keys.HS256Key(site.state_secret), url = site.mock,
      ticket_key = keys.HS256Key(site.ticket_secret) }
  end)

  teardown(function()
    if site then
      local log = gate_site.error_log(site)
      site:stop()
      os.execute("rm -rf " .. tls_dir)
      -- No Lua error anywhere in the run (the [error] lines are the fail-closed test's and the
      -- misconfiguration test's).
      assert.is_nil(log:find("runtime error", 1, true), log)
      assert.is_nil(log:find("%[alert%]") or log:find("%[crit%]") or log:find("%[emerg%]"), log)
      local _, errors = log:gsub("%[error%]", "")
      assert.are.equal(2, errors, log)
    end
  end)

  local basic = gate_site.basic

  -- Starts a sign-in from `path`: the authorize URL and the binding cookie set with it.
  local function start(b, path)
    local status, h, _, set = b:get(site.url .. path:gsub("^/", ""))
    assert.are.equal(302, status)
    return h.location, set[1]
  end

  -- The mock's answer to an authorize URL for `user` (a Basic user context): the callback URL.
  local function authorize(url, user)
    local status, h = gate_site.browser():get(url, { basic(user or "alice") })
    assert.are.equal(302, status)
    assert.truthy(h.location:find(site.url .. "oauth/callback?", 1, true), h.location)
    return h.location
  end

  local function sign_in(b, path, user)
    local cb = authorize((start(b, path)), user)
    local status, h = b:get(cb)
    assert.are.equal(302, status)
    return h, cb
  end

  local function page_reason(body)
    return body:match("<p>(.-)</p>")
  end

  local function expect_page(status, want, got_status, h, body)
    assert.are.equal(status, got_status, body)
    assert.truthy(h["content-type"]:find("text/html", 1, true))
    assert.are.equal("no-store", h["cache-control"])
    assert.truthy(page_reason(body):find(want, 1, true), body)
    -- Never a secret: not the session or state secrets, not the client secret.
    for _, secret in ipairs({ site.session_secret, site.state_secret, site.old_session_secret }) do
      assert.is_nil(body:find(secret, 1, true))
    end
  end

  local function signed(secret, payload)
    local sig = assert(core.hmac_key("HS256", secret):sign(SESSION_TAG .. payload))
    return core.b64url_encode(payload) .. "." .. core.b64url_encode(sig)
  end

  describe("new()", function()
    it("raises on each mistake, naming it", function()
      local status, _, body = gate_site.browser():get(site.url .. "_test/new-errors")
      assert.are.equal(200, status)
      local got = core.json_decode(body)
      local want = {
        short_secret = "'session_secret' #1: at least 32 bytes expected",
        short_in_list = "'session_secret' #2: at least 32 bytes expected",
        empty_list = "'session_secret': string or list of strings expected",
        no_dict = "'shared_dict': no lua_shared_dict named 'nope'",
        no_client = "'client': an eternaltwin client expected",
        bad_cookie = "'cookie_name': up to 64 characters of a cookie token expected",
        host_on_http = "'cookie_name': the __Host- and __Secure- prefixes need Secure cookies",
        secure_on_http = "'cookie_name': the __Host- and __Secure- prefixes need Secure cookies",
        ticket_no_key = "'ticket_audience': the client has no ticket_key",
        offsite_logout = "'after_logout': a path of this site expected",
        absolute_logout = "'after_logout': a path of this site expected",
        bad_ttl = "'session_ttl': whole seconds from 1 to 34560000 expected",
        bad_secure = "'secure': boolean or nil expected",
        unknown = "unknown option 'sesion_ttl'",
        bad_store = "'store': a store with check_and_add, get, set and delete expected",
        bad_sessions = "'sessions': \"cookie\" or \"server\" expected",
        server_no_store = "'sessions': \"server\" needs a 'store'",
        idle_cookie = "'idle_ttl': needs sessions = \"server\"",
        bad_cache = "'cache_ttl': seconds from 0 to 60 expected",
        bad_hook = "'on_signin': function expected",
        bad_error_hook = "'on_error': function expected",
        no_dict_no_store = "'shared_dict': name of a lua_shared_dict expected",
      }
      for name, msg in pairs(want) do
        assert.truthy(got[name]:find("bad argument to 'gate.new' (" .. msg, 1, true), name .. ": " .. got[name])
      end
      assert.are.equal("<eternaltwin.Gate site@clients eternaltwin>", got.good)
      assert.are.equal("accepted", got.dash_cookie)            -- a cookie token: '-' and '.' allowed
      assert.is_nil(body:find(("s"):rep(32), 1, true))       -- no secret in any message
    end)
  end)

  describe("protect()", function()
    it("sends a GET without session to Eternaltwin, binding the state to the browser by a cookie", function()
      local b = gate_site.browser()
      local status, h, _, set = b:get(site.url .. "private/page?x=1&y=%20z")
      assert.are.equal(302, status)
      assert.are.equal("no-store", h["cache-control"])
      local loc = h.location
      assert.are.equal(site.mock .. "oauth/authorize?", loc:sub(1, #site.mock + 16))
      assert.truthy(loc:find("client_id=site%40clients", 1, true))
      assert.truthy(loc:find("redirect_uri=" .. core.form_encode(site.url .. "oauth/callback"), 1, true))
      local state = assert(loc:match("[?&]state=([^&]+)"))      -- JWT characters: never encoded
      local claims = assert(spec_client:validate_state(state))
      assert.are.equal(1, #set)
      local c = set[1]
      assert.truthy(c.name:match("^eternaltwin_st[1-4]$"), c.name)   -- one of four binding slots
      assert.are.equal("/", c.attrs.path)
      assert.is_nil(c.attrs.domain)
      assert.truthy(claims.nonce)
      assert.is_true(c.attrs.httponly)
      assert.are.equal("Lax", c.attrs.samesite)
      assert.is_nil(c.attrs.secure)                  -- http: no Secure
      assert.are.equal("600", c.attrs["max-age"])
      assert.truthy(c.attrs.expires)
    end)

    it("answers HEAD like GET, and any other method with a 401 page", function()
      local b = gate_site.browser()
      assert.are.equal(302, (b:request("HEAD", site.url .. "private")))
      for _, m in ipairs({ "POST", "PUT", "DELETE" }) do
        local status, h, body, set = b:request(m, site.url .. "private", nil, m ~= "DELETE" and "x=1" or nil)
        expect_page(401, "Sign in first", status, h, body)
        assert.are.equal(0, #set)
      end
    end)

    it("takes Secure from the redirect_uri's scheme, not the request's (secure = nil)", function()
      -- This site's redirect_uri is http: no Secure even when asked over TLS (spec/gate_security_spec.lua has an https gate).
      local b = gate_site.browser(tls_dir .. "/cert.pem")
      local status, _, _, set = b:get(("https://127.0.0.1:%d/private"):format(tls_port))
      assert.are.equal(302, status)
      assert.is_nil(set[1].attrs.secure)
      assert.is_true(set[1].attrs.httponly)
    end)

    it("does not trust X-Forwarded-Proto for Secure", function()
      local _, _, _, set = gate_site.browser():get(site.url .. "private", { "X-Forwarded-Proto: https" })
      assert.is_nil(set[1].attrs.secure)
    end)
  end)

  describe("a sign-in", function()
    it("comes back to the URL first asked, with a signed session cookie holding no token", function()
      local b = gate_site.browser()
      local cb = authorize((start(b, "/private/page?x=1&y=%20z")), "alice")
      local status, h, _, set = b:get(cb)
      assert.are.equal(302, status)
      assert.are.equal("/private/page?x=1&y=%20z", h.location)
      local session, marker
      for _, c in ipairs(set) do
        if c.name == SESSION then session = c
        else marker = c end        -- the binding slot now holds a "completed" marker (Back, reload)
      end
      assert.truthy(marker and marker.name:match("^eternaltwin_st[1-4]$"), "no completed marker")
      local m = core.json_decode(core.b64url_decode(marker.value:match("^([^.]+)%.")))
      assert.are.equal(1, m.d)
      assert.are.equal("/private/page?x=1&y=%20z", m.r)
      assert.truthy(session, "no session cookie")
      assert.are.equal("/", session.attrs.path)
      assert.is_true(session.attrs.httponly)
      assert.are.equal("Lax", session.attrs.samesite)
      assert.is_nil(session.attrs.secure)
      assert.are.equal("86400", session.attrs["max-age"])
      assert.truthy(session.attrs.expires)
      -- Its payload: the id, the display name, the issue time (ms, for revocations) and the expiry;
      -- nothing else (no token in any form).
      local payload = core.json_decode(core.b64url_decode(session.value:match("^([^.]+)%.")))
      local names = {}
      for k in pairs(payload) do names[#names + 1] = k end
      table.sort(names)
      assert.are.same({ "exp", "iat", "id", "name" }, names)
      assert.is_true(math.abs(payload.iat / 1000 - os.time()) <= 5)
      assert.are.equal(ALICE_ID, payload.id)
      assert.are.equal("Alice", payload.name)
      assert.is_true(math.abs(payload.exp - (os.time() + 86400)) <= 5)
      -- The page behind the gate sees the user (ngx.ctx.eternaltwin_user).
      local s2, _, body = b:get(site.url .. "private/page?x=1&y=%20z")
      assert.are.equal(200, s2)
      assert.truthy(body:find('<span id="user">Alice</span>', 1, true))
      assert.truthy(body:find(ALICE_ID, 1, true))
      -- user() on a public page.
      local _, _, home = b:get(site.url)
      assert.truthy(home:find("Hello, <span id=\"who\">Alice</span>", 1, true))
    end)

    it("works with user() in a phase without cosockets (header filter), which sets ngx.ctx", function()
      local b = gate_site.browser()
      local _, h = b:get(site.url .. "_test/header-user")
      assert.are.equal("-", h["x-user"])
      sign_in(b, "/private", "bob")
      _, h = b:get(site.url .. "_test/header-user")
      assert.are.equal("Bob", h["x-user"])
      assert.truthy(h["x-ctx-user"]:match("^%x+%-"))
    end)

    it("in two tabs of one browser: both complete, each back to its own URL", function()
      local b = gate_site.browser()
      local a1 = start(b, "/private/one")
      local a2 = start(b, "/private/two?tab=2")
      local cb1, cb2 = authorize(a1), authorize(a2)
      local s2, h2 = b:get(cb2)
      local s1, h1 = b:get(cb1)
      assert.are.equal(302, s2)
      assert.are.equal("/private/two?tab=2", h2.location)
      assert.are.equal(302, s1)
      assert.are.equal("/private/one", h1.location)
    end)

    it("never redirects off the site: a request URI starting with // comes back to /", function()
      local b = gate_site.browser()
      local h = sign_in(b, "//private/x")
      assert.are.equal("/", h.location)
      local b2 = gate_site.browser()
      h = sign_in(b2, "/private/\\evil.example/")
      assert.are.equal("/private/\\evil.example/", h.location)    -- a path of this site: kept
    end)
  end)

  describe("callback()", function()
    it("refuses a replay with 403, even in the browser that signed in, across workers", function()
      -- Each request goes on a fresh connection, which the kernel gives to either worker (the site
      -- listens with reuseport); try until the replay was answered by another worker than the
      -- first use (about one try in two; 40 tries all on one worker: 2^-40).
      local crossed = false
      for _ = 1, 40 do
        local b = gate_site.browser()
        local cb = authorize((start(b, "/private")))
        local keep = {}
        for k, v in pairs(b.jar) do keep[k] = v end
        local s1, h1 = b:get(cb)
        assert.are.equal(302, s1)
        for k, v in pairs(keep) do b.jar[k] = v end     -- the binding cookie back, next to the session
        local s2, h2, body = b:get(cb)
        expect_page(403, "already used", s2, h2, body)
        if h1["x-worker"] ~= h2["x-worker"] then crossed = true break end
      end
      assert.is_true(crossed, "never saw the replay on the other worker")
    end)

    it("sends a callback replayed by the browser that completed it (Back, reload) on to its page", function()
      local b = gate_site.browser()
      local cb = authorize((start(b, "/private/replayed?x=1")))
      local s1, h1 = b:get(cb)
      assert.are.equal(302, s1)
      for _ = 1, 3 do                                  -- reload, Back: both workers, likely
        local s2, h2, _, set = b:get(cb)
        assert.are.equal(302, s2)
        assert.are.equal(h1.location, h2.location)
        assert.are.equal(0, #set)                        -- no new session: the one it has
      end
      -- Signed out since: the link was used (403), with a way back.
      b.jar[SESSION .. "|/"] = nil
      local s3, h3, body = b:get(cb)
      expect_page(403, "already used", s3, h3, body)
      assert.truthy(body:find('<a id="back" href="/">', 1, true))
      -- Another browser that has a session of its own gets no such pass.
      local other = gate_site.browser()
      sign_in(other, "/private")
      local s4, h4, body4 = other:get(cb)
      expect_page(403, "not started in this browser", s4, h4, body4)
    end)

    it("refuses a callback from another browser (403) without using its state up", function()
      local victim, attacker = gate_site.browser(), gate_site.browser()
      local cb = authorize((start(attacker, "/private")))
      local status, h, body = victim:get(cb)
      expect_page(403, "not started in this browser", status, h, body)
      -- The browser that started it still completes it.
      local s2, h2 = attacker:get(cb)
      assert.are.equal(302, s2)
      assert.are.equal("/private", h2.location)
    end)

    it("refuses a forged or foreign binding cookie (403)", function()
      local b = gate_site.browser()
      local cb = authorize((start(b, "/private")))
      for _, c in pairs(b.jar) do
        local payload, sig = c.value:match("^([^.]+)%.(.+)$")
        -- Another return URL under the same signature.
        c.value = core.b64url_encode('{"r":"/admin"}') .. "." .. sig
        local status, h, body = b:get(cb)
        expect_page(403, "not started in this browser", status, h, body)
        -- Signed with another secret.
        local other = core.hmac_key("HS256", ("k"):rep(32))
        c.value = payload .. "." .. core.b64url_encode(other:sign("x"))
        status, h, body = b:get(cb)
        expect_page(403, "not started in this browser", status, h, body)
        c.value = payload .. "." .. sig
      end
      assert.are.equal(302, (b:get(cb)))   -- untouched: still good
    end)

    it("answers error=access_denied with a page saying the player declined; other errors with 502", function()
      local b = gate_site.browser()
      local status, h, body = b:get(site.url .. "oauth/callback?error=access_denied&state=x")
      expect_page(403, "You declined to sign in", status, h, body)
      assert.truthy(body:find('<a id="back" href="/">', 1, true))
      assert.is_nil(body:find("try-again", 1, true))              -- no binding: nothing to try again
      -- With its state and binding: "Try again" goes back to the page first asked.
      local loc = start(b, "/private/declined")
      local state = loc:match("[?&]state=([^&]+)")
      status, h, body = b:get(site.url .. "oauth/callback?error=access_denied&state=" .. state)
      expect_page(403, "You declined to sign in", status, h, body)
      assert.truthy(body:find('<a id="try-again" href="/private/declined">', 1, true), body)
      status, h, body = b:get(site.url .. "oauth/callback?error=%3Cscript%3Ealert(1)%3C/script%3E")
      expect_page(502, "could not complete the sign-in (error)", status, h, body)
      assert.is_nil(body:find("<script", 1, true))
    end)

    it("answers 400 to a missing or repeated code or state", function()
      local b = gate_site.browser()
      local st = assert(spec_client:generate_state())
      for _, q in ipairs({ "", "?code=abc", "?state=" .. st, "?code=&state=" .. st, "?code=a&code=b&state=" .. st,
                           "?code=a&state=" .. st .. "&state=" .. st }) do
        local status, h, body = b:get(site.url .. "oauth/callback" .. q)
        expect_page(400, "lacks its code or state", status, h, body)
      end
    end)

    it("answers 400 to a bad, expired or foreign state, before the binding check, with no internals", function()
      local b = gate_site.browser()
      local cases = {
        { "not-a-jwt", "is not valid", "segments" },
        { assert(keys.HS256Key(("z"):rep(32)):encode({ a = "authorize" })), "is not valid", "signature" },
        { assert(spec_client:generate_state(-30)), "has expired", "claim" },
        { assert(eternaltwin.new{ client_id = "x", client_secret = "x", redirect_uri = "http://x/",
            state_key = keys.HS256Key(site.state_secret), url = "http://elsewhere.example/" }:generate_state()),
          "is not valid", "authorization server" },
        { "eyJhbGciOiJIUzI1NiJ9.e30.AAB", "is not valid", "base64url" },
      }
      for _, case in ipairs(cases) do
        local status, h, body = b:get(site.url .. "oauth/callback?code=c&state=" .. core.form_encode(case[1]))
        expect_page(400, "This sign-in link " .. case[2], status, h, body)
        -- The log's message (what failed inside) never reaches the page.
        assert.is_nil(body:find(case[3], 1, true), body)
        assert.truthy(body:find('<a id="back" href="/">', 1, true))
      end
    end)

    it("answers 502 'misconfigured' when Eternaltwin refuses a fresh code (invalid_grant), logged at error", function()
      local b = gate_site.browser()
      local cb = authorize((start(b, "/private")))
      local bad = cb:gsub("code=[^&]+", "code=eyJub3QiOiJhIGNvZGUifQ")
      local status, h, body = b:get(bad)
      expect_page(502, "sign-in is misconfigured", status, h, body)
      assert.is_nil(body:find("eyJub3Qi", 1, true))
      assert.is_nil(body:find("try-again", 1, true))              -- trying again cannot help
      assert.is_nil(body:find("invalid_grant", 1, true))          -- the log's words, not the page's
      local log = gate_site.error_log(site)
      assert.truthy(log:find("%[error%][^\n]*configuration problem[^\n]*invalid_grant"), log)
      -- A refused code uses nothing up (fourth round: only a completed sign-in marks its state), so
      -- the real code still completes the sign-in.
      status, h = b:get(cb)
      assert.are.equal(302, status)
      assert.are.equal("/private", h.location)
    end)

    it("fails closed (503) when the shared dict cannot store the marker, and recovers", function()
      local b = gate_site.browser()
      local cb = authorize((start(b, "/private")))
      local _, _, n = b:get(site.url .. "_test/fill")
      assert.is_true(tonumber(n) > 1000, n)
      local status, h, body, set = b:get(cb)
      expect_page(503, "try again later", status, h, body)
      assert.are.equal("60", h["retry-after"])
      assert.are.equal(0, #set)                    -- no session without the mark
      b:get(site.url .. "_test/flush")
      sign_in(b, "/private")                       -- a new sign-in completes
    end)
  end)

  describe("the session cookie", function()
    it("is refused when tampered with, expired, or signed with an unknown secret", function()
      local now = os.time()
      local cases = {
        signed(("u"):rep(32), core.json_encode({ id = ALICE_ID, name = "Alice", exp = now + 100 })),
        signed(site.session_secret, core.json_encode({ id = ALICE_ID, name = "Alice", exp = now - 5 })),
        signed(site.session_secret, core.json_encode({ id = ALICE_ID, exp = now + 100 })),
        "garbage",
      }
      local good = signed(site.session_secret, core.json_encode({ id = ALICE_ID, name = "Alice", exp = now + 100 }))
      cases[#cases + 1] = core.b64url_encode(core.json_encode({ id = ALICE_ID, name = "Mallory", exp = now + 100 }))
        .. good:match("%..*$")
      for _, value in ipairs(cases) do
        local b = gate_site.browser()
        b.jar[SESSION .. "|/"] = { name = SESSION, value = value, path = "/" }
        assert.are.equal(302, (b:get(site.url .. "private")))
      end
      local b = gate_site.browser()
      b.jar[SESSION .. "|/"] = { name = SESSION, value = good, path = "/" }
      assert.are.equal(200, (b:get(site.url .. "private")))
    end)

    it("is refused once expired, even after the worker has seen it valid", function()
      local b = gate_site.browser()
      -- (+3, not +1: os.time() + 1 can be 10 ms away, too short for four requests on a loaded machine)
      local exp = os.time() + 3
      b.jar[SESSION .. "|/"] = { name = SESSION, path = "/",
        value = signed(site.session_secret, core.json_encode({ id = ALICE_ID, name = "Soon", exp = exp })) }
      for _ = 1, 4 do assert.are.equal(200, (b:get(site.url .. "private"))) end   -- both workers, likely
      while os.time() <= exp do os.execute("sleep 0.1") end
      for _ = 1, 4 do assert.are.equal(302, (b:get(site.url .. "private"))) end
    end)

    it("signed with the previous secret is still accepted (rotation)", function()
      local b = gate_site.browser()
      b.jar[SESSION .. "|/"] = { name = SESSION, path = "/",
        value = signed(site.old_session_secret, core.json_encode({ id = ALICE_ID, name = "Old", exp = os.time() + 60 })) }
      local status, _, body = b:get(site.url .. "private")
      assert.are.equal(200, status)
      assert.truthy(body:find(">Old<", 1, true))
    end)
  end)

  describe("logout()", function()
    -- Fourth round: a GET shows a sign-out button; only a POST from this site signs out (spec/gate_security_spec.lua
    -- has the cross-site cases).
    it("shows a sign-out button on GET, signs out on a same-origin POST; other methods get 405", function()
      local b = gate_site.browser()
      sign_in(b, "/private")
      local status, h, body, set = b:get(site.url .. "logout")
      assert.are.equal(200, status)
      assert.are.equal(0, #set)
      assert.are.equal("no-store", h["cache-control"])
      assert.are.equal("DENY", h["x-frame-options"])
      assert.truthy(body:find('<form method="post">', 1, true), body)
      assert.are.equal(200, (b:get(site.url .. "private")))      -- still signed in
      local origin = site.url:gsub("/$", "")
      local _
      status, h, _, set = b:request("POST", site.url .. "logout", { "Origin: " .. origin }, "")
      assert.are.equal(303, status)
      assert.are.equal("/", h.location)
      assert.are.equal(SESSION, set[1].name)
      assert.are.equal("0", set[1].attrs["max-age"])
      assert.are.equal(302, (b:get(site.url .. "private")))
      status, h, body = gate_site.browser():request("PUT", site.url .. "logout", nil, "")
      expect_page(405, "sign-out button", status, h, body)
      assert.are.equal("GET, HEAD, POST", h.allow)
    end)
  end)

  describe("SharedReplayStore with validate_state (outside the gate)", function()
    it("passes a state once across workers, and fails closed when the dict is full", function()
      local b = gate_site.browser()
      local workers = {}
      for _ = 1, 10 do
        local st = assert(spec_client:generate_state())
        local _, h1, body1 = b:get(site.url .. "_test/state?s=" .. st)
        assert.are.same({ ok = true }, core.json_decode(body1))
        local _, h2, body2 = b:get(site.url .. "_test/state?s=" .. st)
        assert.are.same({ error = "invalid state: already used" }, core.json_decode(body2))
        workers[h1["x-worker"]] = true
        workers[h2["x-worker"]] = true
      end
      local n = 0
      for _ in pairs(workers) do n = n + 1 end
      assert.are.equal(2, n)
      b:get(site.url .. "_test/fill")
      local _, _, body = b:get(site.url .. "_test/state?s=" .. assert(spec_client:generate_state()))
      assert.are.same({ error = "invalid state: replay store failed: no memory" }, core.json_decode(body))
      b:get(site.url .. "_test/flush")
    end)
  end)

  describe("ticket()", function()
    it("gives a signed-in user a ticket for the configured audience", function()
      if not eternaltwin.Client.issue_ticket then
        pending("needs issue 14's tickets")
        return
      end
      local b = gate_site.browser()
      local status, h, body = b:get(site.url .. "ticket")
      assert.are.equal(401, status)
      assert.are.equal("application/json", h["content-type"])
      assert.are.same({ error = "Unauthorized" }, core.json_decode(body))
      sign_in(b, "/private")
      status, h, body = b:get(site.url .. "ticket")
      assert.are.equal(200, status)
      assert.are.equal("no-store", h["cache-control"])
      local t = core.json_decode(body)
      assert.are.equal(60, t.expires_in)
      local claims = assert(spec_client:redeem_ticket(t.ticket, { audience = "game.example" }))
      assert.are.equal(ALICE_ID, claims.sub)
      assert.are.equal("Alice", claims.data.display_name)
    end)
  end)
end)
