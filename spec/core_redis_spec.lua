-- SPDX-License-Identifier: MIT
-- core.redis_connect, core.redis_format, core.redis_reader: the binding of the Redis core
-- (csrc/l_redis.c over csrc/et_redis.c; the core's own cases are in spec/c/test_redis.c), against
-- a redis-server this spec starts itself (spec/support/redis.lua).
local V = require("spec.support.compat")
local core = require("eternaltwin.core")
local redis = require("spec.support.redis")

-- Seconds fn took, and its results in a table.
local function elapsed(fn)
  local t0 = core.monotime()
  local function pack(...) return { n = select("#", ...), ... } end
  local r = pack(fn())
  return core.monotime() - t0, r
end

-- A collector that runs often (so an armed finalizer runs inside the next call).
local eager_gc = require("spec.support.gc").eager_gc

describe("core.redis_format and core.redis_reader", function()
  it("formats a command as a RESP array of bulk strings (numbers as their text)", function()
    assert.are.equal("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n10\r\n", core.redis_format({ "SET", "k", 10 }))
    assert.are.equal("*2\r\n$3\r\nGET\r\n$3\r\na\0b\r\n", core.redis_format({ "GET", "a\0b" }))
  end)

  it("raises on argument mistakes", function()
    assert.has_error(function() core.redis_format({}) end)
    assert.has_error(function() core.redis_format("GET") end)
    assert.has_error(function() core.redis_format({ "SET", "k", true }) end, nil)
    local many = {}
    for i = 1, 1025 do many[i] = "x" end
    assert.has_error(function() core.redis_format(many) end)
    many[1025] = nil
    assert.are.equal("string", type(core.redis_format(many)))
  end)

  it("reads replies fed byte by byte: false until complete", function()
    local bytes = "*5\r\n$3\r\nfoo\r\n:-42\r\n*2\r\n$-1\r\n+OK\r\n-ERR inner\r\n$0\r\n\r\n"
    local r = core.redis_reader()
    local v
    for i = 1, #bytes do
      assert.is_true(r:feed(bytes:sub(i, i)))
      v = r:reply()
      if i < #bytes then assert.is_false(v) end
    end
    assert.are.same({ "foo", -42, { false, "OK" }, { false, "ERR inner" }, "" }, v)
    assert.is_false(r:reply())
    r:close()
  end)

  it("gives nil for a nil reply, nil, 'server', text for an error reply, and pipelined replies in turn", function()
    local r = core.redis_reader()
    assert.is_true(r:feed("$-1\r\n-WRONGTYPE bad\r\n:7\r\n+PONG\r\n"))
    local n = select("#", r:reply())
    assert.are.equal(1, n)
    local v = { r:reply() }
    assert.are.same({ nil, "server", "WRONGTYPE bad" }, v)
    assert.are.equal(7, r:reply())
    assert.are.equal("PONG", r:reply())
    assert.is_false(r:reply())
  end)

  it("round-trips the formatter's bytes (a request is an array of bulk strings)", function()
    local argv = { "SET", "bin\r\nkey", "v\0a\r\n$3\r\n", "" }
    local r = core.redis_reader()
    r:feed(core.redis_format(argv))
    assert.are.same(argv, r:reply())
  end)

  it("fails for good on malformed bytes and on an array over the bound", function()
    local r = core.redis_reader()
    r:feed("?x\r\n")
    local v, code, msg = r:reply()
    assert.is_nil(v)
    assert.are.equal("protocol", code)
    assert.matches("malformed reply", msg, 1, true)
    assert.are.same({ nil, "protocol", msg }, { r:feed("+OK\r\n") })
    r = core.redis_reader()
    r:feed("*2000000000\r\n")
    assert.are.same({ nil, "protocol", "array reply with too many elements" }, { r:reply() })
  end)

  it("closes idempotently; a closed reader raises", function()
    local r = core.redis_reader()
    assert.are.equal("eternaltwin.core.RedisReader (open)", tostring(r))
    r:close()
    r:close()
    assert.are.equal("eternaltwin.core.RedisReader (closed)", tostring(r))
    assert.has_error(function() r:feed("x") end)
    assert.has_error(function() r:reply() end)
  end)

  it("a finalizer closing the reader while a reply is built leaves the reply whole", function()
    local parts = {}
    for i = 1, 300 do parts[#parts + 1] = "$8\r\nelement" .. (i % 10) .. "\r\n" end
    local bytes = "*300\r\n" .. table.concat(parts)
    eager_gc(function()
      for _ = 1, 40 do
        local r = core.redis_reader()
        r:feed(bytes)
        V.on_gc(function() r:close() end)
        local ok, v = pcall(r.reply, r)
        if ok then
          assert.are.equal(300, #v)
          assert.are.equal("element5", v[5])
        else
          assert.matches("closed redis reader", v, 1, true)
        end
        collectgarbage("collect")
      end
    end)
  end)
end)

describe("core.redis_connect", function()
  local srv

  setup(function()
    srv = redis.start()
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  local function connect(extra)
    local opts = { host = "127.0.0.1", port = srv.port, password = srv.password, timeout = 1 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return core.redis_connect(opts)
  end

  it("raises on option mistakes", function()
    assert.has_error(function() core.redis_connect({ prot = 1 }) end, nil)
    assert.has_error(function() core.redis_connect({ port = 0 }) end)
    assert.has_error(function() core.redis_connect({ port = 70000 }) end)
    assert.has_error(function() core.redis_connect({ port = "6379" }) end)
    assert.has_error(function() core.redis_connect({ timeout = 0 }) end)
    assert.has_error(function() core.redis_connect({ timeout = 0 / 0 }) end)
    assert.has_error(function() core.redis_connect({ db = -1 }) end)
    assert.has_error(function() core.redis_connect({ host = "a\r\nb" }) end)
    assert.has_error(function() core.redis_connect({ username = "" }) end)
    assert.has_error(function() core.redis_connect({ lazy = 1 }) end)
  end)

  it("SET NX PX: true then false, and the key has a TTL", function()
    local r = assert(connect())
    assert.is_true(r:set_nx_px("spec:once", "1", 60000))
    assert.is_false(r:set_nx_px("spec:once", "1", 60000))
    local ttl = r:command({ "PTTL", "spec:once" })
    assert.is_true(ttl > 0 and ttl <= 60000)
    r:close()
  end)

  it("SET PX, GET, PEXPIRE, DEL; command replies as Lua values", function()
    local r = assert(connect())
    assert.is_true(r:set_px("spec:v", "a\0b", 30000))
    assert.are.equal("a\0b", r:get("spec:v"))
    local pttl = r:command({ "PTTL", "spec:v" })
    assert.is_true(pttl > 0 and pttl <= 30000)
    assert.is_true(r:pexpire("spec:v", 5000))
    assert.is_true(r:command({ "PTTL", "spec:v" }) <= 5000)
    assert.are.equal(1, r:del("spec:v"))
    assert.are.equal(0, r:del("spec:v"))
    assert.is_false(r:pexpire("spec:v", 5000))
    assert.are.equal(1, select("#", r:get("spec:v")))
    assert.is_nil(r:get("spec:v"))
    assert.are.equal("OK", r:command({ "SET", "spec:n", 41 }))
    assert.are.equal(42, r:command({ "INCR", "spec:n" }))
    assert.are.equal(1, select("#", r:command({ "GET", "spec:none" })))
    assert.are.same({ "42", false }, r:command({ "MGET", "spec:n", "spec:none" }))
    assert.are.same({}, r:command({ "KEYS", "spec:nothing:*" }))
    local v, code, msg = r:command({ "LPUSH", "spec:n", "x" })
    assert.is_nil(v)
    assert.are.equal("server", code)
    assert.matches("WRONGTYPE", msg, 1, true)
    assert.is_true(r:set_nx_px("spec:after-error", "1", 1000))   -- still usable
    assert.are.equal(1, r:stats().connects)
    assert.has_error(function() r:set_nx_px("k", "v", 0) end)
    assert.has_error(function() r:set_nx_px("k", "v", 1.5) end)
    assert.has_error(function() r:command({ "GET", {} }) end)
    r:close()
  end)

  it("selects db and authenticates with a username (ACL form)", function()
    local r0 = assert(connect())
    local r1 = assert(connect({ db = 1, username = "default" }))
    assert.is_true(r1:set_px("spec:db", "one", 10000))
    assert.is_nil(r0:get("spec:db"))
    assert.are.equal("one", r1:get("spec:db"))
    local r99, code, msg = connect({ db = 99 })
    assert.is_nil(r99)
    assert.are.equal("server", code)
    assert.matches("SELECT: ERR", msg, 1, true)
    r0:close()
    r1:close()
  end)

  it("a wrong password is an auth error at once, never showing the password", function()
    local wrong = "wrong-" .. srv.password
    local dt, res = elapsed(function() return connect({ password = wrong }) end)
    assert.is_nil(res[1])
    assert.are.equal("auth", res[2])
    assert.matches("authentication failed (WRONGPASS", res[3], 1, true)
    assert.is_nil(res[3]:find(srv.password, 1, true))
    assert.is_true(dt < 0.5)
    -- Lazy: the object exists, the first call fails the same way.
    local r = assert(connect({ password = wrong, lazy = true }))
    assert.is_nil(tostring(r):find(srv.password, 1, true))
    local v, code, msg = r:set_nx_px("k", "v", 1000)
    assert.is_nil(v)
    assert.are.equal("auth", code)
    assert.is_nil(msg:find(srv.password, 1, true))
    -- No password at all: NOAUTH.
    r = assert(core.redis_connect({ port = srv.port, lazy = true }))
    v, code, msg = r:get("k")
    assert.are.same({ nil, "auth" }, { v, code })
    assert.matches("NOAUTH", msg, 1, true)
  end)

  it("tostring, fd, stats, close: idempotent, a closed connection raises", function()
    local r = assert(connect())
    assert.matches("^eternaltwin%.core%.Redis %(127%.0%.0%.1:%d+ db 0, connected%)$", tostring(r))
    assert.is_nil(tostring(r):find(srv.password, 1, true))
    assert.are.equal("number", type(r:fd()))
    assert.are.same({ connects = 1, connected = true }, r:stats())
    r:close()
    r:close()
    assert.are.equal("eternaltwin.core.Redis (closed)", tostring(r))
    assert.has_error(function() r:get("k") end, nil)
    local lazy = assert(connect({ lazy = true }))
    assert.is_nil(lazy:fd())
    assert.matches("not connected", tostring(lazy))
  end)

  it("a stalled server (DEBUG SLEEP from another connection) times out within the deadline", function()
    local r = assert(connect({ timeout = 0.3 }))
    local other = assert(connect({ timeout = 0.05 }))
    local _, code = other:command({ "DEBUG", "SLEEP", "1.2" })   -- sent; the server sleeps
    assert.are.equal("timeout", code)
    local dt, res = elapsed(function() return r:set_nx_px("spec:stall", "1", 10000) end)
    assert.are.same({ nil, "timeout" }, { res[1], res[2] })
    assert.matches("timed out after 300 ms", res[3], 1, true)
    assert.is_true(dt >= 0.29 and dt < 0.45, "returned after " .. dt .. " s")
    core.sleep(1.2)
    -- The next call after the stall works. (The SET that timed out had been sent: Redis ran it
    -- when it woke up. A timeout says nothing about whether the command was applied.)
    assert.is_false(r:set_nx_px("spec:stall", "1", 10000))
    assert.is_true(r:set_nx_px("spec:stall2", "1", 10000))
    r:close()
    other:close()
  end)

  it("Redis killed: errors within the timeout; restarted on the same port: the next call works", function()
    local r = assert(connect({ timeout = 0.5 }))
    assert.is_true(r:set_nx_px("spec:k", "1", 60000))
    srv:kill()
    -- (A socket used within the last 100 ms is not checked before a command: its next call
    -- fails as reset. Idle longer, the close is noticed first and the call tries to connect.)
    core.sleep(0.15)
    local dt, res = elapsed(function() return r:set_nx_px("spec:k2", "1", 60000) end)
    assert.is_nil(res[1])
    assert.are.equal("connect", res[2])
    assert.is_true(dt < 0.5 + 0.2)
    assert.is_nil(res[3]:find(srv.password, 1, true))
    srv:restart()
    assert.is_true(r:set_nx_px("spec:k", "1", 60000))   -- a fresh server: the key is new
    -- Killed while idle and back before the next call: the stale socket is replaced, no error.
    srv:restart()
    core.sleep(0.15)
    assert.is_true(r:set_nx_px("spec:k", "1", 60000))
    assert.are.equal(3, r:stats().connects)
    r:close()
  end)

  it("a finalizer closing the connection while a reply is built leaves the reply whole", function()
    local r0 = assert(connect())
    local argv = { "RPUSH", "spec:list" }
    for i = 1, 300 do argv[#argv + 1] = "element" .. (i % 10) end
    r0:del("spec:list")
    assert.are.equal(300, r0:command(argv))
    eager_gc(function()
      for _ = 1, 40 do
        local r = assert(connect())
        V.on_gc(function() r:close() end)
        local ok, v = pcall(r.command, r, { "LRANGE", "spec:list", 0, -1 })
        if ok then
          assert.are.equal(300, #v)
          assert.are.equal("element5", v[5])
        else
          assert.matches("closed redis connection", v, 1, true)
        end
        collectgarbage("collect")
        assert.are.equal("eternaltwin.core.Redis (closed)", tostring(r))
      end
    end)
    r0:close()
  end)

  it("send / recv / reset / redis_poll: one command without ever waiting (AUTH and SELECT pipelined)", function()
    local r = assert(connect({ lazy = true, db = 2 }))
    assert.is_true(r:send({ "SET", "nb:k", "v", "PX", 10000 }))
    local fd = r:fd()
    assert.is_number(fd)
    local deadline = core.monotime() + 5
    local v, want
    repeat
      v, want = r:recv()
      if v == false then
        assert.truthy(want == "read" or want == "write")
        local e = { fd = fd, read = want == "read", write = want == "write" }
        core.redis_poll({ e }, 0.5)
      end
    until v ~= false or core.monotime() > deadline
    assert.are.equal("OK", v)
    -- The blocking calls share the connection (the same database).
    assert.are.equal("v", r:get("nb:k"))
    assert.is_true(r:send({ "GET", "nb:absent" }))
    repeat v = r:recv() if v == false then core.redis_poll({ { fd = fd, read = true } }, 0.5) end until v ~= false
    assert.is_nil(v)
    -- An error reply, then a command left unfinished (reset) and a new one.
    assert.is_true(r:send({ "INCR", "nb:k" }))
    local code, msg
    repeat v, code, msg = r:recv() if v == false then core.redis_poll({ { fd = fd, read = true } }, 0.5) end until v ~= false
    assert.is_nil(v)
    assert.are.equal("server", code)
    assert.truthy(msg:find("not an integer", 1, true), msg)
    assert.is_true(r:send({ "PING" }))
    r:reset()
    assert.is_nil(r:fd())
    assert.are.same({ nil, "protocol", "redis 127.0.0.1:" .. srv.port .. ": no command in flight" }, { r:recv() })
    assert.are.equal("PONG", r:command({ "PING" }))
    -- A wrong password comes back from recv as an auth failure.
    local bad = assert(core.redis_connect({ port = srv.port, password = "nope-123", lazy = true }))
    assert.is_true(bad:send({ "PING" }))
    repeat
      v, code, msg = bad:recv()
      if v == false then core.redis_poll({ { fd = bad:fd(), read = code == "read", write = code == "write" } }, 0.5) end
    until v ~= false
    assert.are.equal("auth", code)
    assert.falsy(msg:find("nope-123", 1, true))
    bad:close()
    r:close()
    -- redis_poll: readiness, a timeout, argument checks.
    local list = { { fd = 0, read = false, write = false } }
    assert.are.equal(0, core.redis_poll(list, 0))
    assert.is_false(list[1].ready)
    assert.has_error(function() core.redis_poll({ 1 }) end)
    assert.has_error(function() core.redis_poll({}, -1) end)
  end)
end)
