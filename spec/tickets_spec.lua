-- Game tickets: client:issue_ticket / client:redeem_ticket, every refusal, ticket_key, replay stores
-- (the in-process one, a shared one, any object with check_and_add, an ngx.shared-style dict), and
-- PyJWT interop both ways.
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")
local errors = eternaltwin.errors

local SECRET = "a long random secret for tickets"
local BASE = "http://localhost:50320/"
local AUD = "game.example"
local ID = "c5020923-b4b2-51a5-8a1d-ee5a10de03a3"
local keydir = require("spec.support.keydir")

local function client(key, opts)
  local o = { url = BASE }
  for k, v in pairs(opts or {}) do o[k] = v end
  return eternaltwin.new("demo@clients", "dev_secret", "http://localhost:8000/oauth/callback",
    key or keys.HS256Key(SECRET), o)
end

local function payload(jwt)
  return core.json_decode(core.b64url_decode(jwt:match("^[^.]*%.([^.]*)%.")))
end

local function claims(over)
  local now = os.time()
  local c = { a = "ticket", sub = ID, aud = AUD, iat = now, exp = now + 60, nonce = core.random_hex(16) }
  for k, v in pairs(over or {}) do c[k] = v end
  for k, v in pairs(over or {}) do if v == false then c[k] = nil end end
  return c
end

local function forge(c, secret)
  return assert(keys.HS256Key(secret or SECRET):encode(c))
end

local function refused(cl, ticket, pattern, opts)
  local o = { audience = AUD }
  for k, v in pairs(opts or {}) do o[k] = v end
  local ok, err = cl:redeem_ticket(ticket, o)
  assert.is_nil(ok)
  assert.are.equal(errors.InvalidTicketError, err.kind)
  assert.is_true(err:is("InvalidTicketError"))
  assert.are.equal("string", type(err.message))
  assert.truthy(err.message:find(pattern, 1, true), err.message .. " lacks " .. pattern)
  assert.falsy(err.message:find(SECRET, 1, true))
  return err
end

describe("client:issue_ticket", function()
  it("signs exactly a, sub, aud, iat, exp, nonce, and data only when given", function()
    local c = client()
    local before = os.time()
    local t = assert(c:issue_ticket(ID, { audience = AUD }))
    local p = payload(t)
    local names = {}
    for k in pairs(p) do names[#names + 1] = k end
    table.sort(names)
    assert.are.same({ "a", "aud", "exp", "iat", "nonce", "sub" }, names)
    assert.are.equal("ticket", p.a)
    assert.are.equal(ID, p.sub)
    assert.are.equal(AUD, p.aud)
    assert.is_true(p.iat >= before and p.iat <= os.time())
    assert.are.equal(p.iat + 60, p.exp)
    assert.truthy(p.nonce:match("^%x+$"))
    assert.are.equal(32, #p.nonce)
    assert.are_not.equal(p.nonce, payload(c:issue_ticket(ID, { audience = AUD })).nonce)
    assert.are.same({ alg = "HS256", typ = "JWT" }, core.json_decode(core.b64url_decode(t:match("^[^.]*"))))

    local p2 = payload(c:issue_ticket(ID, { audience = AUD, ttl = 600, data = { display_name = "Alice", a = "x" } }))
    assert.are.equal(p2.iat + 600, p2.exp)
    assert.are.same({ display_name = "Alice", a = "x" }, p2.data)
    assert.are.equal("ticket", p2.a)            -- data never overrides a claim
  end)

  it("raises on argument mistakes", function()
    local c = client()
    local bad = {
      { nil, { audience = AUD } }, { "", { audience = AUD } }, { 42, { audience = AUD } },
      { ("x"):rep(257), { audience = AUD } },
      { ID, nil }, { ID, "game" }, { ID, {} }, { ID, { audience = "" } }, { ID, { audience = 5 } },
      { ID, { audience = AUD, ttl = 0 } }, { ID, { audience = AUD, ttl = 601 } },
      { ID, { audience = AUD, ttl = 1.5 } }, { ID, { audience = AUD, ttl = "60" } },
      { ID, { audience = AUD, ttl = 0 / 0 } }, { ID, { audience = AUD, ttl = math.huge } },
      { ID, { audience = AUD, data = "Alice" } }, { ID, { audience = AUD, data = eternaltwin.null } },
      { ID, { audience = AUD, data = { f = print } } },
      { ID, { audience = AUD, data = { blob = ("x"):rep(5000) } } },
      { ID, { audience = AUD, store = eternaltwin.ReplayStore() } },   -- a redeem option
      { ID, { audience = AUD, expiration = 60 } },
    }
    for i, case in ipairs(bad) do
      assert.has_error(function() c:issue_ticket(case[1], case[2]) end, nil, "case " .. i)
    end
    local ok, msg = pcall(c.issue_ticket, c, ID, { audience = AUD, ttl = 601 })
    assert.is_false(ok)
    assert.truthy(msg:find("ttl", 1, true))
  end)
end)

describe("client:redeem_ticket", function()
  it("returns the claims once; a replay is refused", function()
    local c = client()
    local t = c:issue_ticket(ID, { audience = AUD, data = { display_name = "Alice" } })
    local got = assert(c:redeem_ticket(t, { audience = AUD }))
    assert.are.equal(ID, got.sub)
    assert.are.equal("Alice", got.data.display_name)
    local err = refused(c, t, "already used")
    assert.are.equal(ID, err.ticket.sub)         -- the claims, since the signature held
  end)

  it("refuses another audience, without using the ticket up", function()
    local c = client()
    local t = c:issue_ticket(ID, { audience = "lobby" })
    refused(c, t, "another audience")
    assert.is_table(c:redeem_ticket(t, { audience = "lobby" }))
  end)

  it("refuses an expired ticket, and honours leeway", function()
    local c = client()
    local now = os.time()
    refused(c, forge(claims{ iat = now - 100, exp = now - 40 }), "expired")
    local late = forge(claims{ iat = now - 100, exp = now - 10 })
    refused(c, late, "expired")
    assert.is_table(c:redeem_ticket(late, { audience = AUD, leeway = 30 }))
    assert.is_table(c:redeem_ticket(forge(claims{ exp = now }), { audience = AUD }))   -- exp == now passes
    refused(c, forge(claims{ iat = now + 120, exp = now + 180 }), "issued in the future")
    assert.is_table(c:redeem_ticket(forge(claims{ iat = now + 20, exp = now + 80 }), { audience = AUD, leeway = 30 }))
  end)

  it("refuses a real ticket once its ttl has passed", function()
    local c = client()
    local t = c:issue_ticket(ID, { audience = AUD, ttl = 1 })
    local deadline = payload(t).exp
    while os.time() <= deadline do os.execute("sleep 0.2") end
    refused(c, t, "expired")
  end)

  it("refuses a lifetime over 600 seconds, whoever signed it", function()
    local now = os.time()
    refused(client(), forge(claims{ exp = now + 601 }), "lifetime over 600")
    refused(client(), forge(claims{ iat = -1e300 }), "lifetime over 600")
  end)

  it("refuses forged, tampered and malformed tickets, without claims", function()
    local c = client()
    local err = refused(c, forge(claims(), "another secret"), "signature")
    assert.is_nil(err.ticket)
    local t = c:issue_ticket(ID, { audience = AUD })
    local h, p, s = t:match("^([^.]*)%.([^.]*)%.([^.]*)$")
    local pc = payload(t)
    pc.sub = "00000000-0000-4000-8000-000000000000"
    refused(c, h .. "." .. core.b64url_encode(core.json_encode(pc)) .. "." .. s, "signature")
    for _, alg in ipairs({ "none", "HS512", "RS256" }) do
      refused(c, core.b64url_encode(core.json_encode({ alg = alg, typ = "JWT" })) .. "." .. p .. ".", "algorithm")
    end
    for _, bad in ipairs({ "", "abc", "a.b", t .. ".x", h .. "." .. p, h .. ".%%%." .. s }) do
      local ok, e = c:redeem_ticket(bad, { audience = AUD })
      assert.is_nil(ok)
      assert.are.equal("InvalidTicketError", e.kind)
      assert.truthy(e.message:find("^invalid ticket: "))
    end
    refused(c, t .. ("A"):rep(9000), "longer than 8192")
    refused(c, nil, "no ticket given")
    assert.is_table(c:redeem_ticket(t, { audience = AUD }))   -- none of that used it up
  end)

  it("refuses a state as a ticket, and a ticket as a state", function()
    local c = client()
    refused(c, c:generate_state(), "this is a state, not a ticket")
    local t = c:issue_ticket(ID, { audience = AUD })
    local ok, err = c:validate_state(t)
    assert.is_nil(ok)
    assert.are.equal("InvalidStateError", err.kind)
    assert.truthy(err.message:find("this is a ticket, not a state", 1, true))
    assert.is_table(c:redeem_ticket(t, { audience = AUD }))
  end)

  it("checks every claim's presence and type", function()
    local c = client()
    for _, name in ipairs({ "a", "sub", "aud", "iat", "exp", "nonce" }) do
      local err = refused(c, forge(claims{ [name] = false }), "'" .. name .. "' is missing")
      assert.is_table(err.ticket)
    end
    refused(c, forge(claims{ a = "login" }), "action is not 'ticket'")
    refused(c, forge(claims{ sub = 42 }), "'sub' must be a string")
    refused(c, forge(claims{ aud = { AUD } }), "'aud' must be a string")
    refused(c, forge(claims{ exp = tostring(os.time() + 60) }), "'exp' must be a number")
    refused(c, forge(claims{ nonce = eternaltwin.null }), "'nonce' must be a string")
    refused(c, forge(claims{ sub = "" }), "'sub' is empty")
    refused(c, forge(claims{ data = "Alice" }), "'data' must be a table")
    refused(c, forge(claims{ data = eternaltwin.null }), "'data' must be a table")
  end)

  it("raises on argument mistakes", function()
    local c = client()
    local t = c:issue_ticket(ID, { audience = AUD })
    for i, o in ipairs({ nil, "game", {}, { audience = "" }, { audience = AUD, store = {} },
                         { audience = AUD, store = true }, { audience = AUD, leeway = -1 },
                         { audience = AUD, leeway = 0 / 0 }, { audience = AUD, leeway = math.huge },
                         { audience = AUD, ttl = 60 }, { audience = AUD, once = true } }) do
      assert.has_error(function() c:redeem_ticket(t, o) end, nil, "case " .. i)
    end
    assert.has_error(function() c:redeem_ticket(42, { audience = AUD }) end)
    assert.is_table(c:redeem_ticket(t, { audience = AUD }))
  end)
end)

describe("ticket_key", function()
  local state_key, ticket_key = keys.HS256Key("state secret"), keys.HS256Key("ticket secret")

  it("signs and checks tickets in place of state_key; states keep state_key", function()
    local web = client(state_key, { ticket_key = ticket_key })
    local t = web:issue_ticket(ID, { audience = AUD })
    -- The game server shares only the ticket key.
    local game = client(keys.HS256Key("the game server's own state secret"), { ticket_key = ticket_key })
    assert.is_table(game:redeem_ticket(t, { audience = AUD }))
    refused(client(state_key), web:issue_ticket(ID, { audience = AUD }), "signature")
    -- A ticket signed with the state key is refused by a client that has a ticket key.
    refused(web, client(state_key):issue_ticket(ID, { audience = AUD }), "signature")
    local st = web:generate_state()
    assert.is_table(client(state_key):validate_state(st))
    assert.is_table(web:validate_state(st))
    assert.has_error(function() client(state_key, { ticket_key = "secret" }) end)
  end)

  it("works with key rings (rotation) and says ticket in their errors", function()
    local old = keys.HS256Key("old", { kid = "2025" })
    local new = keys.HS256Key("new", { kid = "2026" })
    local ring = client(nil, { ticket_key = keys.KeyRing{ new, old } })
    assert.is_table(ring:redeem_ticket(client(nil, { ticket_key = old }):issue_ticket(ID, { audience = AUD }),
      { audience = AUD }))
    local t = ring:issue_ticket(ID, { audience = AUD })
    assert.is_table(client(nil, { ticket_key = new }):redeem_ticket(t, { audience = AUD }))
    local err = refused(ring, client(nil, { ticket_key = keys.HS256Key("x", { kid = "1999" }) })
      :issue_ticket(ID, { audience = AUD }), "unknown key id")
    assert.falsy(err.message:find("state", 1, true))
  end)
end)

describe("replay stores for tickets", function()
  it("each client has its own; a shared ReplayStore spans clients", function()
    local a, b = client(), client()
    local t = a:issue_ticket(ID, { audience = AUD })
    assert.is_table(a:redeem_ticket(t, { audience = AUD }))
    assert.is_table(b:redeem_ticket(t, { audience = AUD }))     -- b's own store never saw it
    local store = eternaltwin.ReplayStore(100)
    local t2 = a:issue_ticket(ID, { audience = AUD })
    assert.is_table(a:redeem_ticket(t2, { audience = AUD, store = store }))
    refused(b, t2, "already used", { store = store })
    assert.are.equal(1, store.count)
  end)

  it("uses any object with check_and_add, and fails closed when it cannot tell", function()
    local c = client()
    local calls = {}
    local store = { check_and_add = function(self, nonce, exp, now)   -- luacheck: ignore 212
      calls[#calls + 1] = { nonce, exp, now }
      return #calls == 1
    end }
    local t = c:issue_ticket(ID, { audience = AUD })
    local got = assert(c:redeem_ticket(t, { audience = AUD, store = store }))
    assert.are.same({ got.nonce, got.exp }, { calls[1][1], calls[1][2] })
    refused(c, t, "already used", { store = store })
    local down = { check_and_add = function() return nil, "no memory" end }
    refused(c, c:issue_ticket(ID, { audience = AUD }), "replay store failed: no memory", { store = down })
    local raising = { check_and_add = function() error("boom") end }
    refused(c, c:issue_ticket(ID, { audience = AUD }), "replay store failed", { store = raising })
    -- states take the same stores
    local st = c:generate_state()
    assert.is_nil((c:validate_state(st, nil, { once = down })))
    assert.is_table(c:validate_state(st, nil, { once = eternaltwin.ReplayStore(10) }))
  end)

  it("SharedReplayStore: an ngx.shared dict, safe_add, failing closed when full", function()
    -- A stand-in with ngx.shared.DICT's safe_add contract: false, "exists" for a live key;
    -- nil, "no memory" when full (safe_add never evicts).
    local function dict(room)
      local d = { entries = {}, ttls = {}, n = 0 }
      function d.safe_add(self, key, value, ttl)
        if self.entries[key] ~= nil then return false, "exists" end
        if self.n >= room then return false, "no memory" end
        self.entries[key], self.ttls[key], self.n = value, ttl, self.n + 1
        return true
      end
      return d
    end
    local c = client()
    local d = dict(2)
    local store = eternaltwin.SharedReplayStore(d, "t:")
    assert.is_true(eternaltwin.is_replay_store(store))
    local t = c:issue_ticket(ID, { audience = AUD, ttl = 30 })
    local got = assert(c:redeem_ticket(t, { audience = AUD, store = store }))
    assert.are.equal(got.exp, d.entries["t:" .. got.nonce])
    local ttl = d.ttls["t:" .. got.nonce]
    assert.is_true(ttl >= 30 and ttl <= 31)
    refused(c, t, "already used", { store = store })
    assert.is_table(c:redeem_ticket(c:issue_ticket(ID, { audience = AUD }), { audience = AUD, store = store }))
    refused(c, c:issue_ticket(ID, { audience = AUD }), "replay store failed: no memory", { store = store })
    assert.has_error(function() eternaltwin.SharedReplayStore("no_such_dict") end)
    assert.has_error(function() eternaltwin.SharedReplayStore({}) end)
    assert.has_error(function() eternaltwin.SharedReplayStore(d, 5) end)
  end)
end)

describe("tickets across keys and with PyJWT", function()
  local kd, have_py
  local function text(n) return kd:text(n) end

  setup(function()
    kd = keydir.new(SECRET)
    have_py = kd.have_py
    local f = assert(io.open(kd:path("tickets.py"), "w"))
    -- A Python web app's side: PyJWT issues tickets, and checks ours with its own aud/exp/iat rules.
    f:write([[
import json, sys, time, jwt
mode, alg, keyfile, aud, arg = sys.argv[1:6]
key = open(keyfile).read()
if mode == "issue":
    now = int(time.time())
    print(jwt.encode({"a": "ticket", "sub": arg, "aud": aud, "iat": now, "exp": now + 60,
                      "nonce": "py-" + str(time.time_ns()), "data": {"display_name": "Py"}}, key, algorithm=alg))
else:
    try:
        p = jwt.decode(arg, key, algorithms=[alg], audience=aud, options={"require": ["exp", "iat", "aud", "sub"]})
    except jwt.InvalidTokenError as e:
        print("refused " + type(e).__name__)
        sys.exit(0)
    assert p["a"] == "ticket", "action"
    print("valid " + p["sub"] + " " + json.dumps(p.get("data"), sort_keys=True))
]])
    f:close()
  end)

  teardown(function() if kd then kd:remove() end end)

  local function py(mode, alg, keyfile, aud, arg)
    return kd:python("tickets.py", mode, alg, kd:path(keyfile), aud, arg)
  end

  for _, cse in ipairs(keydir.CASES) do
    local alg, priv, pub = cse[1], cse[2], cse[3]
    it(alg .. ": the web signs, a game server with the public key alone redeems", function()
      if alg == "HS256" then return end
      local web = client(nil, { ticket_key = assert(keys[alg .. "Key"](nil, text(priv))) })
      local game = client(nil, { ticket_key = assert(keys[alg .. "Key"](text(pub))) })
      local t = assert(web:issue_ticket(ID, { audience = AUD }))
      assert.are.equal(ID, assert(game:redeem_ticket(t, { audience = AUD })).sub)
      refused(game, t, "already used")
      local _, err = game:issue_ticket(ID, { audience = AUD })
      assert.are.equal("KeyError", err.kind)
    end)

    it(alg .. ": PyJWT's tickets redeem here, ours pass PyJWT", function()
      if not have_py then return pending("PyJWT not installed") end
      local key
      if alg == "HS256" then key = keys.HS256Key(text(priv))
      else key = assert(keys[alg .. "Key"](text(pub), text(priv))) end
      local c = client(keys.HS256Key("state"), { ticket_key = key })
      local theirs = py("issue", alg, priv, AUD, ID)
      local got = assert(c:redeem_ticket(theirs, { audience = AUD }))
      assert.are.equal(ID, got.sub)
      assert.are.equal("Py", got.data.display_name)
      refused(c, theirs, "already used")
      refused(c, py("issue", alg, priv, "elsewhere", ID), "another audience")
      local tampered = theirs:sub(1, -6) .. (theirs:sub(-5, -5) == "A" and "B" or "A") .. theirs:sub(-4)
      refused(c, tampered, "")

      local ours = assert(c:issue_ticket(ID, { audience = AUD, data = { display_name = "Lua" } }))
      assert.are.equal('valid ' .. ID .. ' {"display_name": "Lua"}', py("check", alg, pub, AUD, ours))
      assert.are.equal("refused InvalidAudienceError", py("check", alg, pub, "elsewhere", ours))
    end)
  end
end)

describe("eternaltwin.errors", function()
  it("lists InvalidTicketError", function()
    assert.are.equal("InvalidTicketError", errors.InvalidTicketError)
    local found = false
    for _, k in ipairs(errors.kinds) do found = found or k == "InvalidTicketError" end
    assert.is_true(found)
  end)
end)

describe("tickets inside nginx (a real lua_shared_dict, two workers)", function()
  local openresty = require("spec.support.openresty")
  local srv
  setup(function()
    local ok, why = openresty.available()
    if not ok then return end
    srv = openresty.start{ workers = 2, http = ([[
      lua_shared_dict tickets 1m;
      lua_shared_dict tiny 12k;
      init_by_lua_block {
        eternaltwin = require("eternaltwin")
        GAME = eternaltwin.new{ client_id = "game@clients", client_secret = "unused", redirect_uri = "http://x/",
          state_key = require("eternaltwin.keys").HS256Key("game state"), url = "http://localhost:50320/",
          ticket_key = require("eternaltwin.keys").HS256Key(%q) }
      }
    ]]):format(SECRET) }
    assert(why == nil)
  end)
  teardown(function() if srv then srv:stop() end end)

  local function run(code)
    local res, status = srv:run(code)
    assert(status == 200, "nginx /run failed: " .. tostring(res.error) .. "\n" .. srv:log())
    return res
  end

  it("a ticket passes once across the workers; the store fails closed when the dict is full", function()
    if not srv then return pending("nginx or the LuaJIT build is missing") end
    local t = assert(client():issue_ticket(ID, { audience = AUD, data = { display_name = "Alice" } }))
    local redeem = ([[
      local store = eternaltwin.SharedReplayStore("tickets")
      local claims, err = GAME:redeem_ticket(%q, { audience = %q, store = store })
      return { name = claims and claims.data.display_name, err = err and err.message, worker = ngx.worker.id() }
    ]]):format(t, AUD)
    local ok, used = 0, 0
    for _ = 1, 12 do
      local r = run(redeem)
      if r.name == "Alice" then ok = ok + 1 end
      if r.err == "invalid ticket: already used" then used = used + 1 end
    end
    assert.are.same({ 1, 11 }, { ok, used })
    -- The marker sits in the dict with the ticket's remaining life.
    local nonce = payload(t).nonce
    local r = run(([[
      local d = ngx.shared.tickets
      local v = d:get("eternaltwin:nonce:" .. %q)
      return { exp = v, ttl = d:ttl("eternaltwin:nonce:" .. %q) }
    ]]):format(nonce, nonce))
    assert.are.equal(payload(t).exp, r.exp)
    assert.is_true(r.ttl > 50 and r.ttl <= 61, tostring(r.ttl))

    -- A full dict: safe_add never evicts, so the redeem fails closed and the ticket stays unused.
    local t2 = assert(client():issue_ticket(ID, { audience = AUD }))
    r = run(([[
      local d = ngx.shared.tiny
      local i = 0
      for _, size in ipairs({ 200, 1 }) do
        while true do
          i = i + 1
          if not d:safe_add("junk" .. i, ("x"):rep(size), 600) then break end
        end
      end
      local store = eternaltwin.SharedReplayStore(d, "t:")
      local claims, err = GAME:redeem_ticket(%q, { audience = %q, store = store })
      local again = GAME:redeem_ticket(%q, { audience = %q, store = eternaltwin.SharedReplayStore("tickets") })
      return { err = err and err.message, again = again and again.sub }
    ]]):format(t2, AUD, t2, AUD))
    assert.are.equal("invalid ticket: replay store failed: no memory", r.err)
    assert.are.equal(ID, r.again)
  end)

  it("tickets issued inside nginx (LuaJIT) redeem outside, and the reverse", function()
    if not srv then return pending("nginx or the LuaJIT build is missing") end
    local r = run(([[
      return { t = assert(GAME:issue_ticket(%q, { audience = %q, data = { display_name = "Bob" } })) }
    ]]):format(ID, AUD))
    local got = assert(client(keys.HS256Key("other"), { ticket_key = keys.HS256Key(SECRET) })
      :redeem_ticket(r.t, { audience = AUD }))
    assert.are.equal("Bob", got.data.display_name)
    local t = client():issue_ticket(ID, { audience = AUD })
    r = run(([[
      local c, err = GAME:redeem_ticket(%q, { audience = %q })
      return { sub = c and c.sub, err = err and err.message }
    ]]):format(t, AUD))
    assert.are.equal(ID, r.sub)
  end)
end)
