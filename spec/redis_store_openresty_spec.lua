-- SPDX-License-Identifier: MIT
-- eternaltwin.RedisStore inside a real nginx (spec/support/openresty.lua, one worker): cosockets
-- with a keep-alive pool, the blocking C connection in init_by_lua, non-blocking while Redis is
-- stalled, failures and recovery without restarting nginx; SharedDictStore's session methods.
-- Each case is a Lua chunk POSTed to /run.
local openresty = require("spec.support.openresty")
local redis = require("spec.support.redis")
local core = require("eternaltwin.core")
local eternaltwin = require("eternaltwin")

describe("RedisStore inside nginx", function()
  local rsrv, ngx_srv, url, raw

  setup(function()
    rsrv = redis.start()
    url = ("redis://:%s@127.0.0.1:%d"):format(rsrv.password, rsrv.port)
    ngx_srv = openresty.start({
      workers = 1,
      http = ([[
        lua_shared_dict etwin_store 1m;
        init_by_lua_block {
            eternaltwin = require("eternaltwin")
            REDIS_URL = %q
            -- init_by_lua may block: the C connection.
            local s = eternaltwin.RedisStore({ url = REDIS_URL })
            local ok, err = s:set("init-key", "from-init", os.time() + 60)
            INIT_RESULT = { ok = ok, err = err and tostring(err), got = s:get("init-key") }
            s:close()
            STORE = eternaltwin.RedisStore({ url = REDIS_URL })
        }
      ]]):format(url),
      server = [[
        location = /fast { content_by_lua_block { ngx.say("fast") } }
        location = /filter {
            content_by_lua_block { ngx.say("x") }
            header_filter_by_lua_block {
                local ok, err = pcall(STORE.get, STORE, "k")
                ngx.header["X-Phase-Error"] = tostring(err):sub(1, 120)
            }
        }
      ]],
    })
  end)

  teardown(function()
    if raw then raw:close() end
    if ngx_srv then ngx_srv:stop() end
    if rsrv then rsrv:stop() end
  end)

  local function run(code, timeout)
    local res, status, dt = ngx_srv:run(code, timeout)
    assert.are.equal(200, status, tostring(res.error))
    return res, dt
  end

  local function rawconn()
    if raw then raw:close() end
    raw = assert(core.redis_connect({ port = rsrv.port, password = rsrv.password, timeout = 5 }))
    return raw
  end

  local function stall(seconds)
    local r = rawconn()
    assert.is_true(r:send({ "DEBUG", "SLEEP", tostring(seconds) }))
    local probe = assert(core.redis_connect({ port = rsrv.port, password = rsrv.password, timeout = 0.1, lazy = true }))
    local deadline = core.monotime() + 3
    local stalled = false
    while core.monotime() < deadline do
      local ok, code = probe:command({ "PING" })
      if not ok and code == "timeout" then stalled = true break end
      core.sleep(0.005)
    end
    probe:close()
    assert.is_true(stalled, "Redis did not stall")
  end

  it("init_by_lua uses the blocking connection", function()
    local res = run("return INIT_RESULT")
    assert.are.same({ ok = true, got = "from-init" }, res)
  end)

  it("check_and_add across nodes (nginx and a plain-Lua process); every key has a TTL", function()
    local outside = eternaltwin.RedisStore({ url = url })
    local exp = os.time() + 60
    local res = run(([[
      return { a = STORE:check_and_add("ng-1", %d), b = STORE:check_and_add("ng-1", %d) }
    ]]):format(exp, exp))
    assert.are.same({ a = true, b = false }, res)
    assert.is_false(outside:check_and_add("ng-1", exp))
    assert.is_true(outside:check_and_add("ng-2", exp))
    res = run(("return { c = STORE:check_and_add('ng-2', %d) }"):format(exp))
    assert.are.same({ c = false }, res)
    local r = rawconn()
    for _, k in ipairs(r:command({ "KEYS", "eternaltwin:*" })) do
      local ms = r:command({ "PTTL", k })
      assert.is_true(ms > 0, k .. " has no TTL: " .. tostring(ms))
    end
  end)

  it("get / set / delete over one pooled connection (AUTH only on a fresh one)", function()
    local before = rawconn():command({ "INFO", "stats" }):match("total_connections_received:(%d+)")
    local res = run([[
      local exp = os.time() + 60
      local out = {}
      out.set = STORE:set("s:1", "record\0bytes", exp)
      out.get = STORE:get("s:1") == "record\0bytes"
      out.absent_n = select("#", STORE:get("s:absent"))
      out.absent = STORE:get("s:absent") == nil
      out.del = STORE:delete("s:1")
      out.gone = STORE:get("s:1") == nil
      for i = 1, 50 do assert(STORE:check_and_add("pool-" .. i, exp)) end
      return out
    ]])
    assert.are.same({ set = true, get = true, absent_n = 1, absent = true, del = true, gone = true }, res)
    local after = raw:command({ "INFO", "stats" }):match("total_connections_received:(%d+)")
    -- The raw connection itself counts one; the worker's pool at most a couple.
    assert.is_true(tonumber(after) - tonumber(before) <= 3, before .. " -> " .. after)
  end)

  it("batch: one pooled round trip; an error reply fails it and leaves the connection clean", function()
    local r = rawconn()
    assert.are.equal(1, r:command({ "RPUSH", "eternaltwin:blist", "a" }))
    local before = r:command({ "INFO", "stats" }):match("total_connections_received:(%d+)")
    local res = run([[
      local exp = os.time() + 60
      local out = {}
      out.a = STORE:batch({ { "get", "b:absent" }, { "check_and_add", "b:m", exp }, { "set", "b:x", "xv", exp },
                            { "get", "b:x" }, { "delete", "b:x" }, { "check_and_add", "b:m", exp } })
      local v, err = STORE:batch({ { "check_and_add", "b:m2", exp }, { "get", "blist" }, { "get", "b:absent" } })
      out.failed = v == nil and tostring(err):find("WRONGTYPE", 1, true) ~= nil
      out.after = STORE:batch({ { "check_and_add", "b:m2", exp }, { "get", "b:absent" } })
      for i = 1, 20 do assert(STORE:batch({ { "check_and_add", "b:p" .. i, exp } })) end
      return out
    ]])
    assert.are.same({ a = { false, true, true, "xv", true, false }, failed = true, after = { false, false } }, res)
    local after = raw:command({ "INFO", "stats" }):match("total_connections_received:(%d+)")
    assert.is_true(tonumber(after) - tonumber(before) <= 2, before .. " -> " .. after)
  end)

  it("a wrong password: a clear error at once, without the password", function()
    local res, dt = run(([[
      local s = eternaltwin.RedisStore({ url = "redis://:wrong-pw-77@127.0.0.1:%d" })
      local v, err = s:get("k")
      return { v = v, code = err.code, reason = err.reason, message = err.message }
    ]]):format(rsrv.port))
    assert.is_nil(res.v)
    assert.are.equal("store", res.code)
    assert.are.equal("auth", res.reason)
    assert.truthy(res.message:find("authentication failed", 1, true), res.message)
    assert.falsy(res.message:find("wrong-pw-77", 1, true))
    assert.is_true(dt < 1, dt)
  end)

  it("raises in a phase without cosockets", function()
    local status, _ = ngx_srv:get("/filter")
    assert.are.equal(200, status)
    local session = core.session({ timeout = 10 })
    local st, headers = session:request("GET", ngx_srv.url .. "filter")
    session:close()
    assert.are.equal(200, st)
    if type(headers) == "table" then headers = tostring(headers["x-phase-error"] or headers["X-Phase-Error"]) end
    assert.truthy(headers:find("no store call in nginx's header_filter phase", 1, true), headers)
  end)

  it("never blocks the worker: while Redis is stalled, another location answers at once", function()
    assert.is_true(eternaltwin.RedisStore({ url = url }):set("stall-k", "v", os.time() + 60))
    stall(2)
    local res = run(([[
      local s = eternaltwin.RedisStore({ url = REDIS_URL, timeout = 5 })
      local th = ngx.thread.spawn(function()
        ngx.update_time()
        local t0 = ngx.now()
        local v, err = s:get("stall-k")
        ngx.update_time()
        return ngx.now() - t0, v, err and tostring(err)
      end)
      -- The store call waits on Redis; this request to another location of the same (only)
      -- worker is answered meanwhile.
      ngx.update_time()
      local t0 = ngx.now()
      local sock = ngx.socket.tcp()
      sock:settimeouts(5000, 5000, 5000)
      assert(sock:connect("127.0.0.1", %d))
      assert(sock:send("GET /fast HTTP/1.0\r\nHost: x\r\n\r\n"))
      local body = sock:receive("*a")
      sock:close()
      ngx.update_time()
      local fast = ngx.now() - t0
      local ok, slow, v, err = ngx.thread.wait(th)
      return { fast = fast, fast_ok = body and body:find("fast", 1, true) ~= nil, slow = slow, v = v, err = err }
    ]]):format(ngx_srv.port), 30)
    assert.is_true(res.fast_ok)
    assert.is_true(res.fast < 0.3, "the other location took " .. res.fast .. " s")
    assert.are.equal("v", res.v, tostring(res.err))
    assert.is_true(res.slow > 0.3, res.slow)           -- it did wait on the stall
    rawconn():command({ "PING" })                      -- the stall is over
  end)

  it("a stalled Redis: nil, err (timeout) within timeout + 1 s", function()
    stall(1.5)
    local res, dt = run([[
      local s = eternaltwin.RedisStore({ url = REDIS_URL, timeout = 0.3 })
      local v, err = s:check_and_add("stalled", os.time() + 60)
      return { v = v, code = err and err.code, reason = err and err.reason }
    ]])
    assert.are.same({ code = "store", reason = "timeout" }, res)
    assert.is_true(dt < 1.3, dt)
    assert.are.equal("PONG", rawconn():command({ "PING" }))   -- the stall is over
  end)

  it("Redis killed: nil, err within timeout + 1 s; restarted on the same port: works again, nginx untouched", function()
    assert.are.same({ ok = true }, run("return { ok = STORE:set('k', 'v', os.time() + 60) }"))
    rsrv:kill()
    local res, dt = run([[
      local v, err = STORE:get("k")
      local ok, err2 = STORE:check_and_add("n-killed", os.time() + 60)
      return { v = v, ok = ok, code = err and err.code, code2 = err2 and err2.code, message = err and err.message }
    ]])
    assert.are.equal("store", res.code, tostring(res.message))
    assert.are.equal("store", res.code2)
    assert.truthy(res.message:find("redis store 127.0.0.1:" .. rsrv.port, 1, true), res.message)
    assert.is_true(dt < 2, dt)
    rsrv:restart()
    res = run([[
      return { add = STORE:check_and_add("n-back", os.time() + 60), set = STORE:set("k", "w", os.time() + 60),
               get = STORE:get("k") }
    ]])
    assert.are.same({ add = true, set = true, get = "w" }, res)
  end)

  it("SharedDictStore: get / set / delete", function()
    local res = run([[
      local s = eternaltwin.SharedDictStore("etwin_store")
      local exp = os.time() + 60
      local out = { set = s:set("k", "v", exp), get = s:get("k"), n = select("#", s:get("none")) }
      out.ttl = ngx.shared.etwin_store:ttl(s.prefix .. "k")
      out.del = s:delete("k")
      out.gone = s:get("k") == nil
      out.add = s:check_and_add("nn", exp)
      out.again = s:check_and_add("nn", exp)
      return out
    ]])
    assert.are.equal("v", res.get)
    assert.is_true(res.set and res.del and res.gone and res.add)
    assert.is_false(res.again)
    assert.are.equal(1, res.n)
    assert.is_true(res.ttl > 58 and res.ttl <= 60, tostring(res.ttl))
  end)
end)
