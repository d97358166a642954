-- SPDX-License-Identifier: MIT
-- eternaltwin.gate, case by case, against a real nginx (two workers) running the LuaJIT build of the
-- module (examples/openresty) and the bundled mock as Eternaltwin. A scripted browser (cookie jar,
-- no automatic redirects) walks each path; the mock authorizes with a user's Basic credentials.
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")
local gate_site = require("spec.support.gate_site")

local ALICE_ID = "c5020923-b4b2-51a5-8a1d-ee5a10de03a3"   -- mock/seed.toml's alice (UUIDv5 of her name)
local SESSION_TAG = "eternaltwin-gate session v1\0"

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
    local include = tls_dir .. "/site.conf"
    math.randomseed(os.time())
    for attempt = 1, 5 do
      tls_port = 20000 + math.random(0, 11999)
      local f = assert(io.open(include, "w"))
      f:write(("include %q;\nlisten 127.0.0.1:%d ssl;\nssl_certificate %q;\nssl_certificate_key %q;\n"):format(
        gate_site.root() .. "/spec/support/gate-site.conf", tls_port, tls_dir .. "/cert.pem", tls_dir .. "/key.pem"))
      f:close()
      local ok, err = pcall(gate_site.start, { workers = 2, include = include })
      if ok then site = err break end
      local taken = tostring(err):find("Address already in use", 1, true) or tostring(err):find("no free port", 1, true)
      if attempt == 5 or not taken then error(err) end
    end
    -- The site's client, as the spec can rebuild it (same state key and Eternaltwin URL): to forge states.
    spec_client = eternaltwin.new{ client_id = "site@clients", client_secret = "unused",
      redirect_uri = site.url .. "oauth/callback", state_key = keys.HS256Key(site.state_secret), url = site.mock }
  end)

  teardown(function()
    if site then
      local log = gate_site.error_log(site)
      site:stop()
      os.execute("rm -rf " .. tls_dir)
      -- No Lua error anywhere in the run (the one [error] line is the fail-closed test's).
      assert.is_nil(log:find("runtime error", 1, true), log)
      assert.is_nil(log:find("%[alert%]") or log:find("%[crit%]") or log:find("%[emerg%]"), log)
      local _, errors = log:gsub("%[error%]", "")
      assert.are.equal(1, errors, log)
    end
  end)

  local function basic(user)
    local t = core.b64url_encode(user .. ":" .. user .. "-password"):gsub("[-_]", { ["-"] = "+", ["_"] = "/" })
    return "Authorization: Basic " .. t .. ("="):rep((4 - #t % 4) % 4)
  end

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
        bad_cookie = "'cookie_name': letters, digits and '_' expected",
        offsite_logout = "'after_logout': a path of this site expected",
        absolute_logout = "'after_logout': a path of this site expected",
        bad_ttl = "'session_ttl': whole seconds from 1 to 34560000 expected",
        bad_secure = "'secure': boolean or nil expected",
        unknown = "unknown option 'sesion_ttl'",
      }
      for name, msg in pairs(want) do
        assert.truthy(got[name]:find("bad argument to 'gate.new' (" .. msg, 1, true), name .. ": " .. got[name])
      end
      assert.are.equal("<eternaltwin.Gate site@clients eternaltwin_session>", got.good)
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
      assert.are.equal("eternaltwin_session_st_" .. claims.nonce:sub(1, 16), c.name)
      assert.are.equal("/oauth/callback", c.attrs.path)
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

    it("marks its cookies Secure over https (secure = nil: from the scheme)", function()
      local b = gate_site.browser(tls_dir .. "/cert.pem")
      local status, _, _, set = b:get(("https://127.0.0.1:%d/private"):format(tls_port))
      assert.are.equal(302, status)
      assert.is_true(set[1].attrs.secure)
      assert.is_true(set[1].attrs.httponly)
      status, _, _, set = b:get(("https://127.0.0.1:%d/logout"):format(tls_port))
      assert.are.equal(302, status)
      assert.are.equal("eternaltwin_session", set[1].name)
      assert.is_true(set[1].attrs.secure)
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
      local session
      for _, c in ipairs(set) do
        if c.name == "eternaltwin_session" then session = c
        else assert.are.equal("0", c.attrs["max-age"]) end        -- the binding cookie is cleared
      end
      assert.truthy(session, "no session cookie")
      assert.are.equal("/", session.attrs.path)
      assert.is_true(session.attrs.httponly)
      assert.are.equal("Lax", session.attrs.samesite)
      assert.is_nil(session.attrs.secure)
      assert.are.equal("86400", session.attrs["max-age"])
      assert.truthy(session.attrs.expires)
      -- Its payload: the id, the display name, the expiry; nothing else (no token in any form).
      local payload = core.json_decode(core.b64url_decode(session.value:match("^([^.]+)%.")))
      local names = {}
      for k in pairs(payload) do names[#names + 1] = k end
      table.sort(names)
      assert.are.same({ "exp", "id", "name" }, names)
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

    it("answers error= with 403 and a short reason, never echoing markup", function()
      local b = gate_site.browser()
      local status, h, body = b:get(site.url .. "oauth/callback?error=access_denied&state=x")
      expect_page(403, "refused the sign-in (access_denied)", status, h, body)
      status, h, body = b:get(site.url .. "oauth/callback?error=%3Cscript%3Ealert(1)%3C/script%3E")
      expect_page(403, "refused the sign-in (error)", status, h, body)
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

    it("answers 400 to a bad, expired or foreign state, before the binding check", function()
      local b = gate_site.browser()
      local cases = {
        { "not-a-jwt", "segments" },
        { assert(keys.HS256Key(("z"):rep(32)):encode({ a = "authorize" })), "signature" },
        { assert(spec_client:generate_state(-30)), "expired" },
        { assert(eternaltwin.new{ client_id = "x", client_secret = "x", redirect_uri = "http://x/",
            state_key = keys.HS256Key(site.state_secret), url = "http://elsewhere.example/" }:generate_state()),
          "another authorization server" },
      }
      for _, case in ipairs(cases) do
        local status, h, body = b:get(site.url .. "oauth/callback?code=c&state=" .. core.form_encode(case[1]))
        expect_page(400, "Invalid sign-in state", status, h, body)
        assert.truthy(page_reason(body):find(case[2], 1, true), body)
      end
    end)

    it("answers 502 when Eternaltwin refuses the code; the page holds no secret", function()
      local b = gate_site.browser()
      local cb = authorize((start(b, "/private")))
      local bad = cb:gsub("code=[^&]+", "code=eyJub3QiOiJhIGNvZGUifQ")
      local keep = {}
      for k, v in pairs(b.jar) do keep[k] = v end
      local status, h, body = b:get(bad)
      expect_page(502, "did not complete the sign-in", status, h, body)
      assert.is_nil(body:find("eyJub3Qi", 1, true))
      -- That state is used up: its real code cannot follow (even with the binding cookie kept).
      status, h, body = b:get(cb)
      expect_page(403, "not started in this browser", status, h, body)
      b.jar = keep
      status, h, body = b:get(cb)
      expect_page(403, "already used", status, h, body)
    end)

    it("fails closed (503) when the shared dict cannot store the marker, and recovers", function()
      local b = gate_site.browser()
      local cb = authorize((start(b, "/private")))
      local _, _, n = b:get(site.url .. "_test/fill")
      assert.is_true(tonumber(n) > 1000, n)
      local status, h, body = b:get(cb)
      expect_page(503, "try again later", status, h, body)
      b:get(site.url .. "_test/flush")
      assert.are.equal(302, (b:get(cb)))      -- the failed check did not use the state up
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
        b.jar["eternaltwin_session|/"] = { name = "eternaltwin_session", value = value, path = "/" }
        assert.are.equal(302, (b:get(site.url .. "private")))
      end
      local b = gate_site.browser()
      b.jar["eternaltwin_session|/"] = { name = "eternaltwin_session", value = good, path = "/" }
      assert.are.equal(200, (b:get(site.url .. "private")))
    end)

    it("is refused once expired, even after the worker has seen it valid", function()
      local b = gate_site.browser()
      -- (+3, not +1: os.time() + 1 can be 10 ms away, too short for four requests on a loaded machine)
      local exp = os.time() + 3
      b.jar["eternaltwin_session|/"] = { name = "eternaltwin_session", path = "/",
        value = signed(site.session_secret, core.json_encode({ id = ALICE_ID, name = "Soon", exp = exp })) }
      for _ = 1, 4 do assert.are.equal(200, (b:get(site.url .. "private"))) end   -- both workers, likely
      while os.time() <= exp do os.execute("sleep 0.1") end
      for _ = 1, 4 do assert.are.equal(302, (b:get(site.url .. "private"))) end
    end)

    it("signed with the previous secret is still accepted (rotation)", function()
      local b = gate_site.browser()
      b.jar["eternaltwin_session|/"] = { name = "eternaltwin_session", path = "/",
        value = signed(site.old_session_secret, core.json_encode({ id = ALICE_ID, name = "Old", exp = os.time() + 60 })) }
      local status, _, body = b:get(site.url .. "private")
      assert.are.equal(200, status)
      assert.truthy(body:find(">Old<", 1, true))
    end)
  end)

  describe("logout()", function()
    it("clears the session and sends to after_logout, on GET and POST; other methods get 405", function()
      for _, m in ipairs({ "GET", "POST" }) do
        local b = gate_site.browser()
        sign_in(b, "/private")
        assert.are.equal(200, (b:get(site.url .. "private")))
        local status, h, _, set = b:request(m, site.url .. "logout", nil, m == "POST" and "" or nil)
        assert.are.equal(302, status)
        assert.are.equal("/", h.location)
        assert.are.equal("eternaltwin_session", set[1].name)
        assert.are.equal("0", set[1].attrs["max-age"])
        assert.are.equal(302, (b:get(site.url .. "private")))
      end
      local status, h, body = gate_site.browser():request("PUT", site.url .. "logout", nil, "")
      expect_page(405, "GET or POST", status, h, body)
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
