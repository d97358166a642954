-- SPDX-License-Identifier: MIT
-- A two-node site (issue 21, "Tests"): examples/openresty/cluster runs node A and node B (two nginx,
-- two workers each) of the demo site with `store = RedisStore`, `sessions = "server"`, sharing one
-- redis-server (a child of this spec: --requirepass, no persistence, a free port) and the mock. The
-- redirect_uri names node B: every sign-in started on node A ends on node B. Headless Chromium signs
-- in for the first case; a scripted browser (spec/support/gate_site.lua's: a cookie jar, no redirects
-- followed) does the rest. Both nodes are 127.0.0.1 (cookies do not isolate by port).
-- nginx runs LuaJIT whatever Lua runs busted; the plain-Lua parts (the ticket verifier, the Redis
-- scan) run in busted's Lua.
local core = require("eternaltwin.core")
local eternaltwin = require("eternaltwin")
local gate_site = require("spec.support.gate_site")
local cluster = require("spec.support.gate_cluster")
local openresty = require("spec.support.openresty")
local mock = require("spec.support.mock")

local ALICE_ID = "c5020923-b4b2-51a5-8a1d-ee5a10de03a3"
local BOB_ID = "41dc3715-40ff-5c56-ac2d-1c73349819b6"
local CACHE_TTL = 1          -- the gate's default
local IDLE_TTL = 4
local STORE_TIMEOUT = 1      -- RedisStore's default

describe("a two-node site sharing one Redis", function()
  local C
  local tokens = {}          -- access tokens seen (none may appear in a log)

  setup(function()
    C = cluster.start{ env = { GATE_IDLE_TTL = tostring(IDLE_TTL) } }
  end)

  teardown(function()
    if not C then return end
    local log = C:logs()
    C:stop()
    assert.is_nil(log:find("runtime error", 1, true), log)
    assert.is_nil(log:find("%[alert%]") or log:find("%[crit%]") or log:find("%[emerg%]"), log)
    local secrets = { C.session_secret, C.state_secret, C.ticket_secret, C.redis.password, "not-the-password",
                      C.client_secret }
    for _, t in ipairs(tokens) do secrets[#secrets + 1] = t end
    for _, s in ipairs(secrets) do assert.is_nil(log:find(s, 1, true), "a secret in the log") end
  end)

  local basic = gate_site.basic

  local function bindings(b)
    local out = {}
    for k, v in pairs(b.jar) do
      if k:find("^eternaltwin_st%d") then out[k] = v end
    end
    return out
  end

  -- Starts a sign-in on node A (a protected page), has the mock authorize `user`: the callback URL
  -- (on node B) and the browser's binding cookies before it.
  local function start_sign_in(b, user, path)
    local status, h = b:get(C.a .. (path or "private/s"))
    assert.are.equal(302, status)
    local s2, h2 = gate_site.browser():get(h.location, { basic(user or "alice") })
    assert.are.equal(302, s2)
    assert.are.equal(C.b .. "oauth/callback", h2.location:match("^[^?]*"))
    return h2.location, bindings(b)
  end

  local function sign_in(b, user, path)
    local callback = start_sign_in(b, user, path)
    local status, h, body = b:get(callback)
    assert.are.equal(302, status, body)
    return h.location
  end

  local function private(b, node)
    local status = b:get(node .. "private/x")
    return status
  end

  local function json(b, url)
    local status, h, body = b:get(url)
    return core.json_decode(body) or body, status, h
  end

  -- Polls until `private` on `node` answers `want`; the seconds it took.
  local function until_status(b, node, want, limit)
    local t0 = core.monotime()
    while core.monotime() - t0 < limit do
      if private(b, node) == want then return core.monotime() - t0 end
      os.execute("sleep 0.1")
    end
    error(("%s did not answer %d within %.1f s"):format(node, want, limit))
  end

  -- Neither the ids nor the names, in the cookie's text or in any part that decodes to text (a
  -- signature's base64 or bytes are random: "Bob" may turn up there by chance, and means nothing).
  local function no_user_in(value)
    for _, id in ipairs({ ALICE_ID, BOB_ID }) do assert.is_nil(value:find(id, 1, true), value) end
    for part in value:gmatch("[^.]+") do
      local raw = core.b64url_decode(part) or ""
      if raw:find("^[\32-\126%s]*$") then
        for _, s in ipairs({ ALICE_ID, "Alice", "alice", BOB_ID, "Bob" }) do
          assert.is_nil(raw:find(s, 1, true), value)
        end
      end
    end
  end

  it("Chromium: a sign-in started on node A ends on node B; the session works on both; the cookie names no one", function()
    local out = os.tmpname()
    local cmd = "timeout 90 /usr/bin/python3 " .. mock.shell_quote(gate_site.root() .. "/spec/support/browser_cluster.py")
      .. " " .. mock.shell_quote(C.a) .. " " .. mock.shell_quote(C.b) .. " " .. mock.shell_quote(C.mock)
      .. " >" .. out .. " 2>&1"
    local ok = os.execute(cmd)
    local text = mock.read_file(out) or ""
    os.remove(out)
    assert(ok == true or ok == 0, "the browser run failed:\n" .. text)
    local seen = core.json_decode(text:match("^[^\n]*"))
    assert(type(seen) == "table", text)
    assert.are.equal(C.mock .. "login", seen.login_page)
    assert.are.equal(1, #seen.callbacks)
    assert.are.equal(C.b .. "oauth/callback", seen.callbacks[1]:match("^[^?]*"))   -- on node B
    assert.are.equal(C.b .. "private/page?from=a", seen.landed)                   -- the page first asked
    assert.are.equal("Alice", seen.user_b)
    assert.are.equal(C.a .. "private/other", seen.url_a)                          -- node A: signed in
    assert.are.equal("Alice", seen.user_a)
    assert.are.equal("Alice", seen.home_a)
    local session
    for _, c in ipairs(seen.cookies) do
      no_user_in(c.value)
      if c.name == "eternaltwin" then session = c end
    end
    assert.truthy(session, text)
    assert.is_true(session.httpOnly)
    -- A signed random session id (256 bits), and nothing else.
    assert.are.equal(32, #assert(core.b64url_decode(session.value:match("^([^.]+)%."))))
  end)

  it("refuses a callback replayed on the other node; server sessions work on both nodes", function()
    local b = gate_site.browser()
    local callback, before = start_sign_in(b, "alice", "private/replay")
    local status, h = b:get(callback)
    assert.are.equal(302, status)
    assert.are.equal("/private/replay", h.location)
    for _ = 1, 2 do
      assert.are.equal(200, private(b, C.a))
      assert.are.equal(200, private(b, C.b))
    end
    local cookie = b.jar["eternaltwin|/"].value
    no_user_in(cookie)
    -- The original binding cookies put back (another copy of this browser): the state is used up,
    -- on node A as on node B.
    local thief = gate_site.browser()
    for k, v in pairs(before) do thief.jar[k] = v end
    for _, node in ipairs({ C.a, C.b }) do
      local s, _, body = thief:get(node .. callback:match("oauth/callback%?.*$"))
      assert.are.equal(403, s)
      assert.truthy(body:find("already used", 1, true), body)
      assert.is_nil(thief.jar["eternaltwin|/"])
    end
  end)

  it("gives the player's token (users:me as the player); no access token in clear anywhere in Redis", function()
    local b = gate_site.browser()
    sign_in(b, "bob")
    local got = json(b, C.a .. "_c/token")
    assert.are.equal(BOB_ID, got.me and got.me.user.id, core.json_encode(got))
    assert.are.equal("Bob", got.me.user.display_name.current.value)
    assert.is_true(got.expires_in > 60)
    local token = got.access_token
    assert.is_string(token)
    tokens[#tokens + 1] = token
    assert.are.equal(token, json(b, C.b .. "_c/token").access_token)
    -- Every key, every value (GET and DUMP), searched for the token and its usual encodings.
    local r = C:redis_conn()
    local forms = { token, core.b64url_encode(token), token:sub(1, 20), token:sub(-20) }
    local secrets = { C.session_secret, C.state_secret, C.ticket_secret, C.client_secret, C.redis.password }
    local cursor, keys = "0", {}
    repeat
      local reply = assert(r:command({ "SCAN", cursor, "COUNT", "1000" }))
      cursor = reply[1]
      for _, k in ipairs(reply[2]) do keys[#keys + 1] = k end
    until cursor == "0"
    assert.is_true(#keys >= 2)
    local sessions = 0
    for _, k in ipairs(keys) do
      local ttl = r:command({ "PTTL", k })
      assert.is_true(ttl > 0, k .. " has no TTL")
      local v = r:command({ "GET", k })
      local dump = r:command({ "DUMP", k })
      for _, text in ipairs({ k, v or "", dump or "" }) do
        for _, f in ipairs(forms) do assert.is_nil(text:find(f, 1, true), k) end
        for _, s in ipairs(secrets) do assert.is_nil(text:find(s, 1, true), k) end
      end
      if k:find(":sess:", 1, true) then
        sessions = sessions + 1
        no_user_in(k)
      end
    end
    assert.is_true(sessions >= 1)
    if r.close then r:close() end
  end)

  it("ends the session on node B within cache_ttl after logout on node A", function()
    local b = gate_site.browser()
    sign_in(b, "alice")
    assert.are.equal(200, private(b, C.b))                      -- node B has read (and cached) it
    local cookie = b.jar["eternaltwin|/"]
    local origin = C.a:gsub("/$", "")
    local status = b:request("POST", C.a .. "logout", { "Origin: " .. origin, "Sec-Fetch-Site: same-origin" }, "")
    assert.are.equal(303, status)
    b.jar["eternaltwin|/"] = cookie                                 -- a copied cookie, kept
    local took = until_status(b, C.b, 302, CACHE_TTL + 4)
    assert.is_true(took <= CACHE_TTL + 1, took)
    assert.are.equal(302, private(b, C.a))
  end)

  it("revoke on node B ends node A's session; a ticket issued before is refused by a plain-Lua verifier", function()
    local b = gate_site.browser()
    sign_in(b, "bob")
    assert.are.equal(200, private(b, C.a))
    local ticket = json(b, C.a .. "ticket").ticket
    assert.is_string(ticket)
    local a = gate_site.browser()                                   -- Alice is not touched
    sign_in(a, "alice")
    local res = json(b, C.b .. "_c/revoke?id=" .. BOB_ID)
    assert.is_true(res.ok, core.json_encode(res))
    local took = until_status(b, C.a, 302, CACHE_TTL + 4)
    assert.is_true(took <= CACHE_TTL + 1, took)
    assert.are.equal(200, private(a, C.a))
    local store = eternaltwin.RedisStore{ url = C.redis_url }
    local v = eternaltwin.tickets.verifier{ key = C.ticket_secret, audience = "game.example", revocations = store }
    local claims, err = v:redeem(ticket)
    assert.is_nil(claims)
    assert.truthy(tostring(err.message):find("revoked", 1, true), tostring(err))
    -- Not banned: Bob signs in again; a ticket issued after the revoke redeems.
    os.execute("sleep 1.1")                                         -- tickets carry whole seconds
    sign_in(b, "bob")
    local later = json(b, C.b .. "ticket").ticket
    local ok = assert(v:redeem(later))
    assert.are.equal(BOB_ID, ok.sub)
    store:close()
  end)

  it("ban refuses new sign-ins (403) on every node until unban", function()
    local b = gate_site.browser()
    assert.is_true(json(b, C.b .. "_c/revoke?id=" .. BOB_ID .. "&ban=1").ok)
    local r = C:redis_conn()
    local function records()
      local n, cursor = 0, "0"
      repeat
        local reply = assert(r:command({ "SCAN", cursor, "MATCH", "*:sess:*", "COUNT", "1000" }))
        cursor, n = reply[1], n + #reply[2]
      until cursor == "0"
      return n
    end
    local before = records()
    local callback = start_sign_in(b, "bob")
    local status, _, body = b:get(callback)
    assert.are.equal(403, status)
    assert.truthy(body:find("may not sign in", 1, true), body)
    assert.is_nil(b.jar["eternaltwin|/"])
    -- The record written in the callback's one round trip (ban read, single-use mark, record) is
    -- gone again: a refused sign-in leaves no session behind.
    assert.are.equal(before, records())
    if r.close then r:close() end
    assert.is_true(json(b, C.a .. "_c/unban?id=" .. BOB_ID).ok)
    sign_in(b, "bob")
    assert.are.equal(200, private(b, C.a))
    assert.are.equal(200, private(b, C.b))
  end)

  it("ends a session not seen for idle_ttl; requests keep it alive", function()
    local b = gate_site.browser()
    sign_in(b, "alice")
    for i = 1, IDLE_TTL + 1 do                                      -- past idle_ttl, alternating nodes
      assert.are.equal(200, private(b, i % 2 == 0 and C.a or C.b))
      os.execute("sleep 1")
    end
    os.execute("sleep " .. (IDLE_TTL + CACHE_TTL + 0.5))
    assert.are.equal(302, private(b, C.a))
    assert.are.equal(302, private(b, C.b))
  end)

  describe("faults", function()
    it("Redis killed during a sign-in: 503 with Retry-After at once; restarted: the sign-in completes", function()
      local b = gate_site.browser()
      sign_in(b, "alice")
      local fresh = gate_site.browser()
      local callback = start_sign_in(fresh, "alice", "private/during")
      C.redis:kill()
      local ok, err = pcall(function()
        for _, step in ipairs({ { fresh, callback }, { b, C.a .. "private/x" }, { b, C.b .. "private/x" } }) do
          local t0 = core.monotime()
          local s, h, body, set = step[1]:get(step[2])
          local dt = core.monotime() - t0
          assert.is_true(dt < STORE_TIMEOUT + 1, dt)
          assert.are.equal(503, s, body)
          assert.are.equal("5", h["retry-after"])
          assert.is_nil(body:find("refused", 1, true), body)        -- the log's words stay in the log
          for _, c in ipairs(set) do assert.are_not.equal("eternaltwin", c.name) end
        end
      end)
      C.redis:restart()
      assert(ok, err)
      -- No nginx restart: the state was not used up, the callback completes.
      local s, h = fresh:get(callback)
      assert.are.equal(302, s)
      assert.are.equal("/private/during", h.location)
      for _ = 1, 4 do                                               -- fresh connections: every worker
        assert.are.equal(200, private(fresh, C.a))
        assert.are.equal(200, private(fresh, C.b))
      end
      assert.are.equal(302, private(b, C.a))          -- Redis kept nothing: older sessions are gone
      sign_in(b, "alice")
      assert.are.equal(200, private(b, C.a))
      assert.truthy(C:logs():find("the store failed", 1, true))
    end)

    it("a wrong Redis password: a clear error in the log at once, 503 to the browser, no password anywhere", function()
      local b = gate_site.browser()
      sign_in(b, "alice")
      for _, node in ipairs({ C.a, C.b }) do
        local t0 = core.monotime()
        local s, h, body = b:get(node .. "_c/wrongpw/page")
        assert.is_true(core.monotime() - t0 < STORE_TIMEOUT, "not at once")
        assert.are.equal(503, s, body)
        assert.are.equal("5", h["retry-after"])
        assert.is_nil(body:find("not-the-password", 1, true))
        assert.is_nil(body:find("WRONGPASS", 1, true))
      end
      local log = C:logs()
      assert.truthy(log:find("the store failed[^\n]*authentication failed[^\n]*WRONGPASS"), log)
      assert.is_nil(log:find("not-the-password", 1, true))
    end)

    it("Redis stalled (DEBUG SLEEP 2): another location on the same worker answers in under 0.3 s", function()
      local srv = openresty.start{ workers = 1,
        server = "location = /fast { content_by_lua_block { ngx.say('fast') } }" }
      local code = os.tmpname()
      local out = os.tmpname()
      local f = assert(io.open(code, "w"))
      f:write(([[
        local s = require("eternaltwin").RedisStore{ url = %q, timeout = 5 }
        ngx.update_time()
        local t0 = ngx.now()
        local v, err = s:get("stall-probe")
        ngx.update_time()
        return { took = ngx.now() - t0, err = err and tostring(err) or nil }
      ]]):format(C.redis_url))
      f:close()
      -- The stall: from another connection (redis-cli; its password from the environment).
      os.execute("REDISCLI_AUTH=" .. mock.shell_quote(C.redis.password) .. " redis-cli -p " .. C.redis.port
        .. " DEBUG SLEEP 2 >/dev/null 2>&1 &")
      os.execute("sleep 0.3")
      os.execute("curl -s --max-time 10 -X POST --data-binary @" .. code .. " " .. srv.url .. "run >" .. out .. " 2>&1 &")
      os.execute("sleep 0.3")
      local worst = 0
      for _ = 1, 3 do
        local status, body, dt = srv:get("/fast", 5)
        assert.are.equal(200, status)
        assert.are.equal("fast\n", body)
        if dt > worst then worst = dt end
      end
      local probe
      for _ = 1, 60 do
        probe = core.json_decode(mock.read_file(out) or "")
        if probe then break end
        os.execute("sleep 0.1")
      end
      os.remove(code)
      os.remove(out)
      srv:stop()
      assert.truthy(probe, "the store call did not return")
      assert.is_nil(probe.err)
      assert.is_true(probe.took > 1, "Redis was not stalled: " .. tostring(probe.took))
      assert.is_true(worst < 0.3, worst)
    end)
  end)
end)
