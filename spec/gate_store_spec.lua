-- SPDX-License-Identifier: MIT
-- eternaltwin.gate with a store (DESIGN "Gate, fourth round", issues 21 and 22), against a real nginx
-- (two workers) running the demo site, the bundled mock as Eternaltwin, and the gates of
-- spec/support/gate_fake.lua that share one store (spec/support/gate_store.lua): server sessions
-- across two gate instances ("nodes", each with its own per-worker caches), the token as the player,
-- logout and revoke seen by the other node within cache_ttl, ban and unban, idle_ttl, a failing
-- store, on_signin and on_error, a misconfigured client.
local core = require("eternaltwin.core")
local gate_site = require("spec.support.gate_site")

local ALICE_ID = "c5020923-b4b2-51a5-8a1d-ee5a10de03a3"
local BOB_ID = "41dc3715-40ff-5c56-ac2d-1c73349819b6"    -- mock/seed.toml's bob
local CACHE_TTL = 1

describe("eternaltwin.gate with a store", function()
  local site

  setup(function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    site = gate_site.start{ workers = 2, include = gate_site.include(dir) }
    site.dir = dir
  end)

  teardown(function()
    if site then
      local log = gate_site.error_log(site)
      site:stop()
      os.execute("rm -rf " .. site.dir)
      assert.is_nil(log:find("runtime error", 1, true), log)
      assert.is_nil(log:find("%[alert%]") or log:find("%[crit%]") or log:find("%[emerg%]"), log)
      for _, secret in ipairs({ site.session_secret, site.state_secret, site.ticket_secret }) do
        assert.is_nil(log:find(secret, 1, true))
      end
    end
  end)

  local basic = gate_site.basic

  local function json(b, path, headers)
    local status, h, body = b:get(site.url .. path, headers)
    return core.json_decode(body) or body, status, h
  end

  -- Starts a sign-in at node `from`, has the mock authorize `user` (at the site's registered
  -- callback), and hands the code and state to node `to`'s callback: its answer.
  local function sign_in(b, from, to, user)
    local status, h = b:get(site.url .. "_fake/" .. from .. "/private")
    assert.are.equal(302, status)
    local url = h.location:gsub("redirect_uri=[^&]+", function()
      return "redirect_uri=" .. core.form_encode(site.url .. "oauth/callback")
    end)
    local s2, h2 = gate_site.browser():get(url, { basic(user or "alice") })
    assert.are.equal(302, s2)
    local query = assert(h2.location:match("%?(.*)$"), h2.location)
    return b:get(site.url .. "_fake/" .. (to or from) .. "/callback?" .. query)
  end

  local function private(b, node)
    local status, _, body = b:get(site.url .. "_fake/" .. node .. "/private")
    return status, body
  end

  -- Polls until `private` on `node` answers `want`; the seconds it took.
  local function until_status(b, node, want, limit)
    local t0 = core.monotime()
    while core.monotime() - t0 < limit do
      if private(b, node) == want then return core.monotime() - t0 end
      os.execute("sleep 0.1")
    end
    error(("node %s did not answer %d within %.1f s"):format(node, want, limit))
  end

  local function page_reason(body) return body:match("<p>(.-)</p>") end

  describe("server sessions", function()
    it("start on node A, complete on node B, work on both; the cookie holds neither id nor name", function()
      local b = gate_site.browser()
      local status, h = sign_in(b, "nodea", "nodeb")
      assert.are.equal(302, status)
      assert.are.equal("/_fake/nodea/private", h.location)     -- back to the page first asked, on node A
      local cookie = assert(b.jar["node|/"], "no session cookie").value
      local payload = assert(core.b64url_decode(cookie:match("^([^.]+)%.")))
      assert.are.equal(32, #payload)                  -- a random session id (256 bits) and nothing else
      for _, secret in ipairs({ ALICE_ID, "Alice", "alice" }) do
        assert.is_nil(payload:find(secret, 1, true))
        assert.is_nil(cookie:find(secret, 1, true))
      end
      for _ = 1, 3 do
        for _, node in ipairs({ "nodea", "nodeb" }) do
          local s, body = private(b, node)
          assert.are.equal(200, s)
          assert.are.same({ id = ALICE_ID, display_name = "Alice" }, core.json_decode(body))
        end
      end
      -- A forged id under the right name: no session.
      local other = gate_site.browser()
      other.jar["node|/"] = { name = "node", path = "/",
        value = core.b64url_encode(("x"):rep(32)) .. "." .. cookie:match("%.(.*)$") }
      assert.are.equal(302, (private(other, "nodea")))
    end)

    it("give the player's token: users:me as the player, at the mock", function()
      local b = gate_site.browser()
      assert.are.equal(302, (sign_in(b, "nodea", "nodea", "bob")))
      local got = json(b, "_fake/nodeb/token")
      assert.are.equal("Bob", got.me.user.display_name.current.value, core.json_encode(got))
      assert.are.equal(BOB_ID, got.me.user.id)
      assert.is_true(got.expires_in > 60)
      -- Cookie sessions keep no token, and say so.
      local c = gate_site.browser()
      assert.are.equal(302, (sign_in(c, "cookiestore")))
      local none = json(c, "_fake/cookiestore/token")
      assert.truthy(none.error:find('sessions = "server"', 1, true), none.error)
      -- Without a session.
      assert.truthy(json(gate_site.browser(), "_fake/nodea/token").error:find("no session", 1, true))
    end)

    it("leave no access token in clear in the store (every key and value scanned)", function()
      local b = gate_site.browser()
      assert.are.equal(302, (sign_in(b, "nodea", "nodeb")))
      local token = json(b, "_fake/nodea/token").access_token
      assert.is_string(token)
      local dump = json(b, "_test/store-dump")
      assert.is_true(#dump > 0)
      local forms = { token, core.b64url_encode(token), token:sub(1, 24), token:sub(-24) }
      local records = 0
      for _, kv in ipairs(dump) do
        for _, form in ipairs(forms) do
          assert.is_nil(kv[1]:find(form, 1, true), kv[1])
          assert.is_nil(kv[2]:find(form, 1, true), kv[2])
        end
        for _, secret in ipairs({ site.session_secret, site.state_secret, site.ticket_secret }) do
          assert.is_nil(kv[2]:find(secret, 1, true))
        end
        if kv[1]:find(":sess:", 1, true) then
          records = records + 1
          local rec = core.json_decode(kv[2])
          assert.are.same({ "c", "e", "n", "s", "t", "u", "v" }, (function()
            local names = {}
            for k in pairs(rec) do names[#names + 1] = k end
            table.sort(names)
            return names
          end)())
        end
      end
      assert.is_true(records >= 1)
    end)

    it("end on every node at logout (the record is deleted), within cache_ttl", function()
      local b = gate_site.browser()
      assert.are.equal(302, (sign_in(b, "nodea", "nodea")))
      local cookie = b.jar["node|/"]
      assert.are.equal(200, (private(b, "nodeb")))            -- node B has read (and cached) it
      local origin = site.url:gsub("/$", "")
      local status, h = b:request("POST", site.url .. "_fake/nodea/logout", { "Origin: " .. origin }, "")
      assert.are.equal(303, status)
      assert.are.equal("/", h.location)
      b.jar["node|/"] = cookie                                  -- a copied cookie, kept
      local took = until_status(b, "nodeb", 302, CACHE_TTL + 3)
      assert.is_true(took <= CACHE_TTL + 1, took)
      took = until_status(b, "nodea", 302, CACHE_TTL + 3)          -- its other worker's cache, too
      assert.is_true(took <= CACHE_TTL + 1, took)
    end)

    it("end after idle_ttl without a request; requests keep them alive", function()
      local b = gate_site.browser()
      assert.are.equal(302, (sign_in(b, "idle")))
      for _ = 1, 5 do                                         -- 5 s of activity, past idle_ttl (3 s)
        assert.are.equal(200, (private(b, "idle")))
        os.execute("sleep 1")
      end
      os.execute("sleep 4.5")
      assert.are.equal(302, (private(b, "idle")))
    end)
  end)

  describe("revoke", function()
    it("ends the user's sessions on the other node within cache_ttl, and refuses an earlier ticket", function()
      local b = gate_site.browser()
      assert.are.equal(302, (sign_in(b, "nodea", "nodea", "bob")))
      local ticket = json(b, "_fake/nodea/ticket").ticket
      assert.is_string(ticket)
      assert.are.equal(200, (private(b, "nodea")))
      local c = gate_site.browser()                            -- Bob in cookie mode too
      assert.are.equal(302, (sign_in(c, "cookiestore", "cookiestore", "bob")))
      assert.are.equal(200, (private(c, "cookiestore")))
      local a = gate_site.browser()                            -- Alice is not touched
      assert.are.equal(302, (sign_in(a, "nodea", "nodea", "alice")))
      assert.is_true(json(b, "_fake/nodeb/revoke?id=" .. BOB_ID).ok)
      local took = until_status(b, "nodea", 302, CACHE_TTL + 3)
      assert.is_true(took <= CACHE_TTL + 1, took)
      until_status(c, "cookiestore", 302, CACHE_TTL + 3)
      assert.are.equal(200, (private(a, "nodea")))
      local r = json(b, "_fake/nodea/redeem?t=" .. ticket)
      assert.truthy(r.error and r.error:find("revoked", 1, true), core.json_encode(r))
      -- Bob signs in again (not banned); a ticket issued after the revocation redeems.
      os.execute("sleep 1.1")                                  -- tickets carry whole seconds
      assert.are.equal(302, (sign_in(b, "nodeb", "nodeb", "bob")))
      assert.are.equal(200, (private(b, "nodea")))
      local later = json(b, "_fake/nodeb/ticket").ticket
      assert.are.same({ sub = BOB_ID }, json(b, "_fake/nodea/redeem?t=" .. later))
    end)

    it("with ban refuses new sign-ins (403) until unban", function()
      local b = gate_site.browser()
      assert.is_true(json(b, "_fake/nodea/revoke?id=" .. BOB_ID .. "&ban=1").ok)
      local status, h, body, set = sign_in(b, "nodeb", "nodeb", "bob")
      assert.are.equal(403, status)
      assert.truthy(h["content-type"]:find("text/html", 1, true))
      assert.truthy(page_reason(body):find("may not sign in", 1, true), body)
      assert.truthy(body:find('<a id="back" href="/">', 1, true))
      for _, c in ipairs(set) do assert.are_not.equal("node", c.name) end
      assert.is_true(json(b, "_fake/nodeb/unban?id=" .. BOB_ID).ok)
      assert.are.equal(302, (sign_in(b, "nodeb", "nodea", "bob")))
      assert.are.equal(200, (private(b, "nodea")))
    end)
  end)

  describe("a failing store", function()
    it("gets 503 with Retry-After, at once, never a skipped check; then works again", function()
      local b = gate_site.browser()
      assert.are.equal(302, (sign_in(b, "flaky")))
      assert.are.equal(200, (private(b, "flaky")))
      -- A sign-in started before the outage, to complete during it.
      local fresh = gate_site.browser()
      local status, h = fresh:get(site.url .. "_fake/flaky/private")
      assert.are.equal(302, status)
      local url = h.location:gsub("redirect_uri=[^&]+", function()
      return "redirect_uri=" .. core.form_encode(site.url .. "oauth/callback")
    end)
      local _, h2 = gate_site.browser():get(url, { basic("alice") })
      local query = h2.location:match("%?(.*)$")
      gate_site.browser():get(site.url .. "_test/store-down?on=1")
      local ok, err = pcall(function()
        local t0 = core.monotime()
        local s, hh, body = b:get(site.url .. "_fake/flaky/private")
        assert.is_true(core.monotime() - t0 < 2)
        assert.are.equal(503, s)
        assert.are.equal("5", hh["retry-after"])
        assert.truthy(page_reason(body):find("try again", 1, true), body)
        assert.truthy(body:find('id="try-again"', 1, true))
        assert.is_nil(body:find("connection refused", 1, true))    -- the log's words
        local s2, h3, body2, set = fresh:get(site.url .. "_fake/flaky/callback?" .. query)
        assert.are.equal(503, s2, body2)
        assert.are.equal("5", h3["retry-after"])
        for _, c in ipairs(set) do assert.are_not.equal("flaky", c.name) end
        local s3, h4 = b:get(site.url .. "_fake/flaky/ticket")
        assert.are.equal(503, s3)
        assert.are.equal("5", h4["retry-after"])
      end)
      gate_site.browser():get(site.url .. "_test/store-down?on=0")
      assert(ok, err)
      assert.are.equal(200, (private(b, "flaky")))
      local s4, h5 = fresh:get(site.url .. "_fake/flaky/callback?" .. query)  -- the state was not used up
      assert.are.equal(302, s4, h5.location)
      assert.truthy(gate_site.error_log(site):find("the store failed", 1, true))
    end)
  end)

  describe("hooks and pages", function()
    it("on_signin refuses before any session exists; on_error draws the page", function()
      local b = gate_site.browser()
      local status, h, body, set = sign_in(b, "hooked", "hooked", "bob")
      assert.are.equal(403, status)
      assert.are.equal("no-store", h["cache-control"])
      assert.truthy(body:find('<p id="custom">403 Bob is not invited to this game. (refused)</p>', 1, true), body)
      for _, c in ipairs(set) do assert.are_not.equal("hooked", c.name) end
      assert.are.equal(302, (private(b, "hooked")))
      -- Alice is accepted (the hook saw her token).
      local a = gate_site.browser()
      assert.are.equal(302, (sign_in(a, "hooked", "hooked", "alice")))
      assert.are.equal(200, (private(a, "hooked")))
      -- on_error answers only 403s here: a 400 gets the default page.
      local s2, _, body2 = b:get(site.url .. "_fake/hooked/callback?code=x&state=junk")
      assert.are.equal(400, s2)
      assert.truthy(body2:find('<a id="back" href="/">', 1, true), body2)
    end)

    it("a wrong client secret (invalid_client) is a configuration problem: logged at error, said on the page", function()
      local b = gate_site.browser()
      local status, h = b:get(site.url .. "_fake/hostile/private")
      assert.are.equal(302, status)
      local state = assert(h.location:match("[?&]state=([^&]+)"))
      local s2, _, body = b:get(site.url .. "_fake/hostile/callback?code=badclient1&state=" .. state)
      assert.are.equal(502, s2)
      assert.truthy(page_reason(body):find("sign-in is misconfigured", 1, true), body)
      assert.is_nil(body:find("invalid_client", 1, true))
      assert.is_nil(body:find("try-again", 1, true))
      assert.truthy(body:find('<a id="back" href="/">', 1, true))
      local log = gate_site.error_log(site)
      assert.truthy(log:find("%[error%][^\n]*configuration problem[^\n]*invalid_client"), log)
    end)
  end)
end)
