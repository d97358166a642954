-- SPDX-License-Identifier: MIT
-- eternaltwin.RedisStore (lua/eternaltwin/redis_store.lua) against a redis-server of the spec's own
-- (spec/support/redis.lua): outside nginx (the blocking C connection), in poller tasks (the call
-- yields), and across processes. The nginx side is spec/redis_store_openresty_spec.lua.
local core = require("eternaltwin.core")
local eternaltwin = require("eternaltwin")
local errors = require("eternaltwin.errors")
local runtime = require("eternaltwin.runtime")
local redis = require("spec.support.redis")

local function elapsed(fn)
  local t0 = core.monotime()
  local r = { n = 0 }
  local function pack(...) r = { n = select("#", ...), ... } end
  pack(fn())
  return core.monotime() - t0, r
end

local function is_store_error(err, reason)
  assert.is_true(errors.is_error(err), tostring(err))
  assert.are.equal(errors.TransportError, err.kind)
  assert.are.equal("store", err.code)
  if reason then assert.are.equal(reason, err.reason, err.message) end
  assert.is_true(err.retryable)
end

describe("eternaltwin.RedisStore: options", function()
  it("is the module's field", function()
    assert.are.equal(require("eternaltwin.redis_store").new, eternaltwin.RedisStore)
  end)

  it("raises on argument mistakes, naming the option", function()
    local cases = {
      { nil, "options table expected" },
      { { prot = 1 }, "unknown option 'prot'" },
      { { port = "6379" }, "option 'port': number expected" },
      { { port = 0 }, "option 'port': integer in 1..65535" },
      { { timeout = 0 }, "option 'timeout'" },
      { { timeout = -1 }, "option 'timeout'" },
      { { db = 1.5 }, "option 'db'" },
      { { url = "http://x" }, "option 'url': scheme redis://" },
      { { url = "localhost" }, "option 'url'" },
      { { url = "rediss://h" }, "hiredis 0.14 has no TLS" },
      { { url = "redis://h/x" }, "database number" },
      { { url = "redis://:pw@h", password = "other" }, "option 'password': given both" },
      { { url = "redis://h:1", port = 2 }, "option 'port': given both" },
      { { prefix = 1 }, "option 'prefix'" },
    }
    for i, case in ipairs(cases) do
      local ok, msg = pcall(eternaltwin.RedisStore, case[1])
      assert.is_false(ok, "case " .. i)
      assert.truthy(tostring(msg):find("bad argument to 'RedisStore'", 1, true), msg)
      assert.truthy(tostring(msg):find(case[2], 1, true), "case " .. i .. ": " .. tostring(msg))
    end
    local s = eternaltwin.RedisStore({})
    assert.has_error(function() s:get(1) end, "bad argument to 'get' (key: non-empty string expected, got number)")
    assert.has_error(function() s:set("k", 1, 2) end, "bad argument to 'set' (value: string expected, got number)")
    assert.has_error(function() s:set("k", "v", "x") end, "bad argument to 'set' (exp: epoch seconds expected, got string)")
    assert.has_error(function() s:check_and_add("k", 0 / 0) end)
    assert.has_error(function() s:delete("") end)
  end)

  it("reads the URL (user, password percent-decoded, port, db); tostring never shows the password", function()
    local s = eternaltwin.RedisStore({ url = "redis://alice:p%40ss%3Aw0rd@10.1.2.3:6380/4", prefix = "{et}:" })
    local text = tostring(s)
    assert.are.equal("<eternaltwin.RedisStore redis://alice@10.1.2.3:6380/4 prefix {et}:>", text)
    assert.falsy(text:find("p@ss", 1, true))
    for _, v in pairs(s) do assert.falsy(tostring(v):find("p@ss", 1, true)) end
    assert.are.equal("<eternaltwin.RedisStore redis://[::1]:6379/0 prefix eternaltwin:>",
      tostring(eternaltwin.RedisStore({ url = "redis://[::1]" })))
    assert.are.equal("<eternaltwin.RedisStore redis://127.0.0.1:6379/0 prefix eternaltwin:>",
      tostring(eternaltwin.RedisStore({})))
  end)
end)

describe("eternaltwin.RedisStore against redis-server", function()
  local srv, raw

  setup(function()
    srv = redis.start()
  end)

  teardown(function()
    if raw then raw:close() end
    if srv then srv:stop() end
  end)

  local function store(extra)
    local o = { url = ("redis://:%s@127.0.0.1:%d"):format(srv.password, srv.port), timeout = 1 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return eternaltwin.RedisStore(o)
  end

  local function rawconn()
    if raw then raw:close() end
    raw = assert(core.redis_connect({ port = srv.port, password = srv.password, timeout = 5 }))
    return raw
  end

  -- Stalls Redis for `seconds` (DEBUG SLEEP from a connection of its own) and returns once a probe
  -- no longer gets an answer within 0.1 s: the stall has begun.
  local function stall(seconds)
    local r = rawconn()
    assert.is_true(r:send({ "DEBUG", "SLEEP", tostring(seconds) }))
    local probe = assert(core.redis_connect({ port = srv.port, password = srv.password, timeout = 0.1, lazy = true }))
    local deadline = core.monotime() + 3
    local stalled = false
    while core.monotime() < deadline do
      local ok, code = probe:command({ "PING" })
      if not ok and code == "timeout" then stalled = true break end
      core.sleep(0.005)
    end
    probe:close()
    assert.is_true(stalled, "Redis did not stall")
    return core.monotime()
  end

  it("check_and_add: true, then false on another store object (another node); every key has a TTL", function()
    local a, b = store(), store()
    local exp = os.time() + 60
    assert.is_true(a:check_and_add("nonce-1", exp))
    assert.is_false(b:check_and_add("nonce-1", exp))
    assert.is_false(a:check_and_add("nonce-1", exp))
    assert.is_true(b:check_and_add("nonce-2", exp))
    assert.is_true(a:set("sess:1", "record", exp))
    assert.is_true(a:check_and_add("nonce-past", os.time() - 100))   -- remembered a second at least
    local r = rawconn()
    local keys = r:command({ "KEYS", "eternaltwin:*" })
    assert.is_true(#keys >= 4)
    for _, k in ipairs(keys) do
      local ms = r:command({ "PTTL", k })
      assert.is_true(ms > 0, k .. " has no TTL: " .. tostring(ms))
      assert.is_true(ms <= 61000 + 1000, k)
    end
    assert.are.equal("1", r:command({ "GET", "eternaltwin:nonce-1" }))
  end)

  it("get / set / delete: the string, nil alone when absent, true", function()
    local s = store({ prefix = "{t}:" })
    local value = "bin\0value\r\n" .. string.rep("x", 5000)
    assert.is_true(s:set("k", value, os.time() + 30))
    assert.are.equal(value, s:get("k"))
    assert.are.equal(1, select("#", s:get("absent")))
    assert.is_nil(s:get("absent"))
    assert.is_true(s:delete("k"))
    assert.is_true(s:delete("k"))                       -- absent is fine
    assert.are.equal(1, select("#", s:get("k")))
    assert.is_true(s:set("k", "v", os.time() + 30))
    assert.is_true(s:set("k", "v2", os.time() - 1))     -- exp past: deleted
    assert.is_nil(s:get("k"))
    local ms = rawconn():command({ "PTTL", "{t}:k" })
    assert.are.equal(-2, ms)
    assert.is_true(s:set("k", "v3", os.time() + 30))
    ms = raw:command({ "PTTL", "{t}:k" })
    assert.is_true(ms > 28000 and ms <= 30000, tostring(ms))
    assert.is_true(s:ping())
  end)

  it("batch: several calls in one round trip, their results in order; a server error fails it, the connection stays", function()
    local s = store({ prefix = "{b}:" })
    local exp = os.time() + 60
    local r = assert(s:batch({ { "get", "ban" }, { "check_and_add", "m1", exp }, { "set", "x", "val", exp },
                               { "get", "x" }, { "delete", "x" }, { "check_and_add", "m1", exp }, { "get", "x" } }))
    assert.are.same({ false, true, true, "val", true, false, false }, r)
    -- One write, then the replies: Redis saw the calls of a batch from one connection.
    local raw_r = rawconn()
    local ms = raw_r:command({ "PTTL", "{b}:m1" })
    assert.is_true(ms > 59000 and ms <= 61000, tostring(ms))
    assert.are.same({ true }, s:batch({ { "set", "m1", "v", os.time() - 1 } }))   -- exp past: deleted
    assert.are.equal(-2, raw_r:command({ "PTTL", "{b}:m1" }))
    -- An error reply in the middle (WRONGTYPE): the batch fails, the calls around it ran, and the
    -- connection reads the next batch cleanly.
    assert.are.equal(1, raw_r:command({ "RPUSH", "{b}:list", "a" }))
    local v, err = s:batch({ { "check_and_add", "m2", exp }, { "get", "list" }, { "check_and_add", "m3", exp } })
    assert.is_nil(v)
    is_store_error(err, "server")
    assert.truthy(err.message:find("WRONGTYPE", 1, true), err.message)
    assert.are.same({ false, false, true }, s:batch({ { "check_and_add", "m2", exp }, { "check_and_add", "m3", exp },
                                                     { "check_and_add", "m4", exp } }))
    -- Mistakes raise, naming the call.
    assert.has_error(function() s:batch({}) end, "bad argument to 'batch' (ops: 1 to 64 calls expected)")
    assert.has_error(function() s:batch({ { "frob", "k" } }) end,
      "bad argument to 'batch: ops[1]' (unknown call 'frob' (get, check_and_add, set, delete))")
    assert.has_error(function() s:batch({ { "get", "k" }, { "set", "k", 5, exp } }) end,
      "bad argument to 'batch: ops[2]' (value: string expected, got number)")
  end)

  it("uses the database of the URL", function()
    local s = eternaltwin.RedisStore({ url = ("redis://:%s@127.0.0.1:%d/3"):format(srv.password, srv.port) })
    assert.is_true(s:set("dbkey", "in3", os.time() + 30))
    local r = rawconn()
    assert.is_nil(r:command({ "GET", "eternaltwin:dbkey" }))
    assert.are.equal("OK", r:command({ "SELECT", 3 }))
    assert.are.equal("in3", r:command({ "GET", "eternaltwin:dbkey" }))
  end)

  it("a wrong password: a clear error at once, without the password", function()
    local s = eternaltwin.RedisStore({ port = srv.port, password = "not-the-password-x9", timeout = 2 })
    for _, call in ipairs({
      function() return s:check_and_add("n", os.time() + 60) end,
      function() return s:get("k") end,
      function() return s:set("k", "v", os.time() + 60) end,
      function() return s:delete("k") end,
    }) do
      local dt, r = elapsed(call)
      assert.is_nil(r[1])
      is_store_error(r[2], "auth")
      assert.truthy(r[2].message:find("authentication failed", 1, true), r[2].message)
      assert.falsy(r[2].message:find("not-the-password-x9", 1, true))
      assert.is_true(dt < 0.5, dt)
    end
    local none = eternaltwin.RedisStore({ port = srv.port })
    local v, err = none:get("k")
    assert.is_nil(v)
    is_store_error(err, "auth")
    assert.truthy(err.message:find("NOAUTH", 1, true), err.message)
  end)

  it("Redis killed: nil, err within timeout + 1 s; restarted on the same port: works again", function()
    local s = store({ timeout = 1 })
    assert.is_true(s:set("k", "v", os.time() + 60))
    srv:kill()
    for _, call in ipairs({
      function() return s:get("k") end,
      function() return s:check_and_add("n-kill", os.time() + 60) end,
    }) do
      local dt, r = elapsed(call)
      assert.is_nil(r[1])
      is_store_error(r[2])
      assert.truthy(r[2].message:find("redis store 127.0.0.1:" .. srv.port, 1, true), r[2].message)
      assert.is_true(dt < 2, dt)
    end
    srv:restart()
    assert.is_true(s:check_and_add("n-after", os.time() + 60))
    assert.is_nil(s:get("k"))                            -- no persistence: a fresh server
    assert.is_true(s:set("k", "v", os.time() + 60))
  end)

  it("a stalled Redis: nil, err (timeout) within timeout + 1 s; the next call works", function()
    local s = store({ timeout = 0.3 })
    assert.is_true(s:set("k", "v", os.time() + 60))
    stall(1)
    local dt, res = elapsed(function() return s:get("k") end)
    assert.is_nil(res[1])
    is_store_error(res[2], "timeout")
    assert.is_true(dt < 1.3, dt)
    -- The stall ends; the store connects again.
    local deadline = core.monotime() + 5
    local v
    repeat v = s:get("k") until v or core.monotime() > deadline
    assert.are.equal("v", v)
  end)

  describe("in a poller task", function()
    it("does the same work, yielding", function()
      local s = store()
      local p = eternaltwin.poller()
      local t = p:spawn(function()
        assert.is_not_nil(runtime.current())
        local exp = os.time() + 60
        return { s:check_and_add("p-n", exp), s:check_and_add("p-n", exp), s:set("p-k", "pv", exp), s:get("p-k"),
                 s:get("p-absent") == nil, s:delete("p-k"), s:get("p-k") == nil }
      end)
      assert.are.equal(0, p:run(10))
      local res = t:wait()
      assert.are.same({ true, false, true, "pv", true, true, true }, res)
    end)

    it("batch: one round trip from a task, yielding; many tasks at once, one adds a shared nonce", function()
      local s = store({ prefix = "{pb}:" })
      local p = eternaltwin.poller()
      local exp = os.time() + 60
      local tasks = {}
      for i = 1, 20 do
        tasks[i] = p:spawn(function()
          assert.is_not_nil(runtime.current())
          return s:batch({ { "get", "absent" }, { "check_and_add", "shared", exp }, { "set", "t" .. i, "v" .. i, exp },
                           { "get", "t" .. i } })
        end)
      end
      assert.are.equal(0, p:run(10))
      local added = 0
      for i = 1, 20 do
        local r = assert(tasks[i]:wait())
        assert.are.equal(false, r[1])
        if r[2] then added = added + 1 end
        assert.are.same({ true, "v" .. i }, { r[3], r[4] })
      end
      assert.are.equal(1, added)
    end)

    it("many tasks at once: exactly one adds a shared nonce", function()
      local s = store()
      local p = eternaltwin.poller()
      local tasks, exp = {}, os.time() + 60
      for i = 1, 30 do
        tasks[i] = p:spawn(function()
          local mine = s:check_and_add("mine-" .. i, exp)
          return s:check_and_add("shared-poller", exp), mine
        end)
      end
      assert.are.equal(0, p:run(20))
      local wins = 0
      for i = 1, 30 do
        local shared, mine = tasks[i]:wait()
        assert.is_true(mine)
        if shared then wins = wins + 1 else assert.is_false(shared) end
      end
      assert.are.equal(1, wins)
    end)

    it("a timer task keeps running while a store call waits on a stalled Redis (DEBUG SLEEP 1)", function()
      local s = store({ timeout = 5 })
      assert.is_true(s:set("k", "v", os.time() + 60))
      local p = eternaltwin.poller()
      local ticks, during, done = 0, nil, false
      local timer = p:spawn(function()
        while not done do
          ticks = ticks + 1
          runtime.sleep(0.02)
        end
      end)
      local call = p:spawn(function()
        local before = ticks
        local t0 = core.monotime()
        local v, err = s:get("k")
        during = ticks - before
        done = true
        return v, err, core.monotime() - t0
      end)
      stall(1.5)                                        -- begun before the call is made
      assert.are.equal(0, p:run(20))
      local v, err, dt = call:wait()
      assert.are.equal("v", v, tostring(err))
      assert.is_true(dt > 0.3, dt)                      -- it did wait on the stall
      -- 20 ms ticks over the wait: many, however loaded the machine.
      assert.is_true(during >= 5, "timer ticks during the stalled call: " .. tostring(during))
      assert.is_true(timer.done)
      assert.are.equal("PONG", rawconn():command({ "PING" }))   -- the stall is over
    end)

    it("a stalled call times out within timeout + 1 s without blocking the poller; then works", function()
      local s = store({ timeout = 0.5 })
      local p = eternaltwin.poller()
      local ticks = 0
      p:spawn(function()
        for _ = 1, 40 do ticks = ticks + 1; runtime.sleep(0.02) end
      end)
      stall(1.5)
      local during
      local t = p:spawn(function()
        local t0, before = core.monotime(), ticks
        local v, err = s:get("k")
        during = ticks - before
        return v, err, core.monotime() - t0
      end)
      assert.are.equal(0, p:run(20))
      local v, err, dt = t:wait()
      assert.is_nil(v)
      is_store_error(err, "timeout")
      assert.is_true(dt >= 0.45 and dt < 1.5, dt)
      assert.is_true(during >= 5, "timer ticks during the call: " .. tostring(during))
      assert.are.equal(40, ticks)
      local t2 = p:spawn(function()
        local deadline = core.monotime() + 5
        repeat
          local ok = s:set("after", "x", os.time() + 30)
          if ok then return s:get("after") end
        until core.monotime() > deadline
      end)
      p:run(20)
      assert.are.equal("x", t2:wait())
    end)

    it("lists a waiting task's descriptor in Poller:sockets()", function()
      local s = store({ timeout = 5 })
      stall(0.8)
      local p = eternaltwin.poller()
      local t = p:spawn(function() return s:get("whatever") end)
      p:step(0)
      local found = false
      for _, e in ipairs(p:sockets()) do if e.read and e.fd >= 0 then found = true end end
      assert.is_true(found)
      assert.is_true(p:timeout() > 0)
      assert.are.equal(0, p:run(10))
      assert.is_true(t.done)
      assert.are.equal("PONG", rawconn():command({ "PING" }))   -- the stall is over
    end)
  end)

  it("two plain-Lua processes redeem one ticket 12 times between them: exactly 1 success", function()
    local lua = type(jit) == "table" and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
    local build = lua == "lua5.4" and "./build" or "./build/" .. lua
    local keys = eternaltwin.keys
    local c = eternaltwin.new("demo@clients", "dev_secret", "http://localhost:8000/oauth/callback",
      keys.HS256Key("ticket-secret-0123456789abcdef"), { url = "http://localhost:50320/" })
    local ticket = assert(c:issue_ticket("c5020923-b4b2-51a5-8a1d-ee5a10de03a3", { audience = "game.example" }))
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(([[
      local eternaltwin = require("eternaltwin")
      local c = eternaltwin.new("demo@clients", "dev_secret", "http://localhost:8000/oauth/callback",
        eternaltwin.keys.HS256Key("ticket-secret-0123456789abcdef"), { url = "http://localhost:50320/" })
      local S = eternaltwin.RedisStore({ url = %q })
      local wins = 0
      -- Both processes start together: wait for the go file.
      while not io.open(%q) do os.execute("sleep 0.01") end
      for _ = 1, 6 do
        local claims, err = c:redeem_ticket(%q, { audience = "game.example", store = S })
        if claims then wins = wins + 1
        elseif not tostring(err):find("already used", 1, true) then print("ERR " .. tostring(err)) end
      end
      print("wins=" .. wins)
    ]]):format(("redis://:%s@127.0.0.1:%d"):format(srv.password, srv.port), script .. ".go", ticket))
    f:close()
    os.remove(script .. ".go")
    local env = ("LUA_PATH='./lua/?.lua;./lua/?/init.lua;./?.lua;;' LUA_CPATH='%s/?.so;;'"):format(build)
    local procs = {}
    for i = 1, 2 do procs[i] = assert(io.popen(("%s timeout 60 %s %s 2>&1"):format(env, lua, script))) end
    local go = assert(io.open(script .. ".go", "w"))
    go:close()
    local wins = 0
    for i = 1, 2 do
      local out = procs[i]:read("*a")
      procs[i]:close()
      assert.falsy(out:find("ERR", 1, true), out)
      local n = tonumber(out:match("wins=(%d+)"))
      assert.is_not_nil(n, out)
      wins = wins + n
    end
    os.remove(script)
    os.remove(script .. ".go")
    assert.are.equal(1, wins)
  end)
end)
