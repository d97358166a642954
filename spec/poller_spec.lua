-- The curl-multi poller: tasks, concurrency, cancellation, errors, timeouts, hooks, lifetimes.
local eternaltwin = require("eternaltwin")
local core = require("eternaltwin.core")
local mock = require("spec.support.mock")
local V = require("spec.support.compat")
local fixtures = require("spec.support.fixtures")

local function client(opts)
  return fixtures.client(opts)
end

local function open_fds()
  local p = io.popen("ls /proc/" .. (io.open("/proc/self/stat"):read("*n")) .. "/fd 2>/dev/null | wc -l")
  local n = p:read("*n")
  p:close()
  return n
end

describe("poller", function()
  it("runs 50 requests that each wait 300 ms in about one delay", function()
    local c = client()
    local p = eternaltwin.poller()
    local got = {}
    for i = 1, 50 do
      p:spawn(function()
        local res = assert(c:get("_mock/delay", { params = { ms = 300 } }))
        got[i] = res.status_code
      end)
    end
    local t0 = core.monotime()
    assert.are.equal(0, p:run())
    local took = core.monotime() - t0
    assert.are.equal(50, #got)
    for i = 1, 50 do assert.are.equal(200, got[i]) end
    -- side by side, not in a row (15 s): a bound a loaded machine cannot reach by slowness alone
    assert.is_true(took < 10, "50 x 300 ms took " .. took .. " s")
  end)

  it("brings each result to the task that asked", function()
    local c = client()
    local p = eternaltwin.poller()
    local tasks = {}
    for i = 1, 40 do
      tasks[i] = p:spawn(function(n)
        local res = assert(c:get("_mock/echo", { params = { n = n } }))
        return res:json().query, n
      end, i)
    end
    p:run()
    for i = 1, 40 do
      local q, n = tasks[i]:wait()
      assert.are.equal("n=" .. i, q)
      assert.are.equal(i, n)
      assert.is_true(tasks[i].done)
    end
  end)

  it("starts tasks at the next step, and step(0) never blocks", function()
    local c = client()
    local p = eternaltwin.poller()
    local started = false
    local t = p:spawn(function() started = true; return c:get("_mock/delay", { params = { ms = 1500 } }) end)
    assert.is_false(started)
    local t0 = core.monotime()
    assert.are.equal(1, p:step(0))
    assert.is_true(started)
    assert.are.equal(1, p:step())
    -- returned before the answer (1.5 s), not after it
    assert.is_false(t.done)
    assert.is_true(core.monotime() - t0 < 1.2)
    assert.is_number(p:timeout())
    local res = assert(t:wait())
    assert.are.equal(200, res.status_code)
    assert.is_nil(p:timeout())
  end)

  it("exposes its sockets for outside loops", function()
    local p = eternaltwin.poller()
    p:spawn(function() return client():get("_mock/delay", { params = { ms = 300 } }) end)
    local seen
    local deadline = core.monotime() + 30
    while core.monotime() < deadline do
      p:step(0.01)
      local s = p:sockets()
      if #s > 0 then seen = s; break end
    end
    assert.is_table(seen)
    assert.is_number(seen[1].fd)
    assert.is_boolean(seen[1].read)
    p:run()
  end)

  it("cancels a task: done, and wait gives Cancelled", function()
    local p = eternaltwin.poller()
    local t = p:spawn(function() return client():get("_mock/delay", { params = { ms = 5000 } }) end)
    p:step(0.05)
    t:cancel()
    assert.is_true(t.done)
    local r, err = t:wait()
    assert.is_nil(r)
    assert.are.equal("Cancelled", err.kind)
    local t0 = core.monotime()
    assert.are.equal(0, p:run())
    assert.is_true(core.monotime() - t0 < 4)           -- not the 5 s of the cancelled call
  end)

  it("keeps an error inside its task", function()
    local p = eternaltwin.poller()
    local bad = p:spawn(function() error("boom") end)
    local good = p:spawn(function() return assert(client():get("_mock/echo")).status_code end)
    assert.are.equal(0, p:run())
    local r, err = bad:wait()
    assert.is_nil(r)
    assert.truthy(tostring(err):find("boom", 1, true))
    assert.are.equal(200, good:wait())
  end)

  it("keeps an error raised after a yield inside its task, and its results", function()
    local p = eternaltwin.poller()
    local c = client()
    local bad = p:spawn(function()
      assert(c:get("_mock/echo"))     -- yields to the poller first
      error({ code = 42 })            -- a non-string error value
    end)
    local good = p:spawn(function(a, b)
      local res = assert(c:get("_mock/echo"))
      return res.status_code, a, nil, b
    end, "x", "y")
    assert.are.equal(0, p:run())
    local r, err = bad:wait()
    assert.is_nil(r)
    assert.matches("^table: ", err)
    assert.same({ 200, "x", nil, "y", n = 4 }, V.pack(good:wait()))
  end)

  it("pcall around a yielding call in a task: works, except on PUC Lua 5.1 (documented)", function()
    local p = eternaltwin.poller()
    local c = client()
    local t = p:spawn(function()
      return pcall(function() return assert(c:get("_mock/echo")).status_code end)
    end)
    p:run()
    local ok, v = t:wait()
    if V.yieldable_pcall then
      assert.is_true(ok)
      assert.equal(200, v)
    else
      assert.is_false(ok)
      assert.matches("attempt to yield across", v)
    end
  end)

  it("times out one task's request without touching the others", function()
    local slow = client({ timeout = 1 })
    local p = eternaltwin.poller()
    local t1 = p:spawn(function() return slow:get("_mock/delay", { params = { ms = 10000 } }) end)
    local t2 = p:spawn(function() return slow:get("_mock/delay", { params = { ms = 50 } }) end)
    local t0 = core.monotime()
    p:run()
    assert.is_true(core.monotime() - t0 < 8)            -- at the timeout, not at the 10 s answer
    local r, err = t1:wait()
    assert.is_nil(r)
    assert.are.equal("timeout", err.code)
    assert.are.equal(200, (t2:wait()).status_code)
  end)

  it("serves blocking calls outside tasks and yielding calls inside, with one client", function()
    local c = client()
    assert.are.equal(200, assert(c:get("_mock/echo")).status_code)
    local p = eternaltwin.poller()
    local inner = p:spawn(function() return c.users:search("") end)
    local outer = p:spawn(function()
      local res = inner:wait()
      return res:json().count
    end)
    p:run()
    assert.is_true(outer:wait() >= 3)
  end)

  it("drives the poller from task:wait() outside any task", function()
    local p = eternaltwin.poller()
    local t = p:spawn(function() return assert(client():get("_mock/echo")).status_code end)
    assert.are.equal(200, t:wait())
  end)

  it("raises on misuse", function()
    local p = eternaltwin.poller()
    assert.has_error(function() p:spawn("not a function") end)
    local t = p:spawn(function() p:run() end)
    p:run()
    local r, err = t:wait()
    assert.is_nil(r)
    assert.truthy(tostring(err):find("inside one of this poller's own tasks", 1, true))
    assert.has_error(function() eternaltwin.poller({ max_conn = 1 }) end)
  end)

  it("bounds open connections with max_connections and queues the rest", function()
    local c = client()
    local function distinct(maxc)
      local p = eternaltwin.poller({ max_connections = maxc })
      local seen, n = {}, 0
      for _ = 1, 24 do
        p:spawn(function()
          local conn = assert(c:get("_mock/echo")):json().connection
          if not seen[conn] then seen[conn] = true; n = n + 1 end
        end)
      end
      assert.are.equal(0, p:run())
      p:close()
      return n
    end
    assert.is_true(distinct(3) <= 3)
    assert.is_true(distinct(0) > 3)
  end)

  it("completes 1,000 tasks and returns to its file descriptors", function()
    local c = client()
    collectgarbage()
    local fds = open_fds()
    do
      local p = eternaltwin.poller({ max_connections = 16 })
      local ok = 0
      for _ = 1, 1000 do
        p:spawn(function()
          local res = c:get("_mock/static/user")
          if res and res.status_code == 200 then ok = ok + 1 end
        end)
      end
      p:run()
      assert.are.equal(1000, ok)
      p:close()
    end
    collectgarbage(); collectgarbage()
    assert.is_true(open_fds() <= fds + 1, "fds " .. fds .. " -> " .. open_fds())
  end)

  it("spreads more than 256 requests in flight over more multi handles, every one answered", function()
    -- Past 256 in flight the multi engine gives new transfers to further curl multi handles
    -- (csrc/et_multi.h, shards; spec/c/test_multi.c checks the spread): one poll serves them all,
    -- a cancel and a close reach every handle, and the descriptors come back.
    local c = client()
    collectgarbage()
    local fds = open_fds()
    do
      local p = eternaltwin.poller()
      local got, tasks = {}, {}
      for i = 1, 400 do
        got[i] = 0
        tasks[i] = p:spawn(function()
          for _ = 1, 2 do
            local res = c:get("_mock/static/user")
            if res and res.status_code == 200 and #res.content > 0 then got[i] = got[i] + 1 end
          end
        end)
      end
      p:step(0)                               -- every task started: each has a request in flight
      assert.matches("(400 in flight)", tostring(p.multi), 1, true)
      tasks[1]:cancel()
      tasks[400]:cancel()
      assert.are.equal(0, p:run(60))
      for i = 2, 399 do assert.are.equal(2, got[i], "task " .. i) end
      assert.is_true(got[1] < 2 and got[400] < 2)
      p:close()
    end
    collectgarbage(); collectgarbage()
    assert.is_true(open_fds() <= fds + 1, "fds " .. fds .. " -> " .. open_fds())
  end)

  it("frees transfers of a poller dropped with tasks in flight", function()
    -- On 5.1 and LuaJIT (no ephemerons) a weak-keyed task registry whose values point back at
    -- their keys would keep every task, its poller and its transfers alive for ever.
    local fds = open_fds()
    local seen = setmetatable({}, { __mode = "k" })
    do
      local p = eternaltwin.poller()
      local tasks = {}
      for i = 1, 10 do
        tasks[i] = p:spawn(function() return client():get("_mock/delay", { params = { ms = 2000 } }) end)
      end
      p:step(0.05)
      seen[p] = "poller"
      for i = 1, 10 do
        seen[tasks[i]] = "task"
        assert.is_not_nil(tasks[i].xfer, "task " .. i .. " has a transfer in flight")
        seen[tasks[i].xfer] = "transfer"
      end
    end
    collectgarbage(); collectgarbage()
    assert.is_nil(next(seen))
    assert.is_true(open_fds() <= fds + 1)
  end)

  it("reuses its transfers across requests, holding no body or result in them", function()
    local c = client()
    local p = eternaltwin.poller()
    local seen, before, after, spares, shown, again = {}, nil, nil, nil, nil, nil
    -- The body used and dropped in a function of its own (a register of the task's frame could
    -- otherwise still hold it).
    local function fetch(i)
      local res = assert(c:get("_mock/echo", { params = { n = i } }))
      return res:json().args.n
    end
    local function big()
      return #assert(c:get("_mock/static/1m")).content
    end
    p:spawn(function()
      for i = 1, 5 do seen[#seen + 1] = fetch(i) end
      collectgarbage()
      collectgarbage()
      before = collectgarbage("count")
      assert.are.equal(1048576, big())            -- through the transfer kept for reuse, dropped
      collectgarbage()
      collectgarbage()
      after = collectgarbage("count")
      spares = #p.spare_xfers                     -- one transfer carried all six requests
      shown = tostring(p.spare_xfers[1])
      again = { p.spare_xfers[1]:result() }
    end)
    p:run()
    assert.are.same({ "1", "2", "3", "4", "5" }, seen)
    assert.is_true(after - before < 256, ("%.0f KiB more after a 1 MiB body was dropped"):format(after - before))
    assert.are.equal(1, spares)
    assert.are.equal("eternaltwin.core.Transfer (taken)", shown)
    assert.are.same({ nil, "taken", "transfer result already taken" }, again)
    assert.are.equal(0, #p.spare_xfers)           -- let go once no task is left
  end)

  it("retries inside a task without blocking the others", function()
    local c = client({ retries = 1, retry_max_wait = 1.5 })
    local p = eternaltwin.poller()
    local r1 = p:spawn(function() return c:get("_mock/status/503", { params = { retry_after = 1 } }) end)
    local fast = p:spawn(function() assert(c:get("_mock/echo")); return core.monotime() end)
    local t0 = core.monotime()
    p:run()
    local _, err = r1:wait()
    assert.are.equal(503, err.status_code)
    -- the other task ended during the 1 s wait (Retry-After), which did not block the poller
    assert.is_true(fast:wait() - t0 < 0.9)
    assert.is_true(core.monotime() - t0 >= 0.95)
  end)
end)

describe("examples", function()
  for _, name in ipairs({ "game_tick", "luv_loop" }) do
    it(name .. ".lua runs", function()
      local f = io.popen("LUA_PATH=" .. mock.shell_quote(package.path) .. " LUA_CPATH=" .. mock.shell_quote(package.cpath)
        .. " ETERNALTWIN_URL=" .. mock.get().url .. " " .. V.lua .. " examples/" .. name .. ".lua 2>&1; echo rc=$?")
      local out = f:read("*a")
      f:close()
      assert.truthy(out:find("rc=0", 1, true), out)
      assert.truthy(out:find(name .. ":", 1, true), out)
    end)
  end
end)

describe("poller:timeout()", function()
  it("is never nil while a transfer is in flight", function()
    local c = client({ timeout = 0.4 })
    for run = 1, 4 do
      local p = eternaltwin.poller()
      for _ = 1, 10 do
        p:spawn(function() return c:get("_mock/delay", { params = { ms = 1500 } }) end)
      end
      local t0 = core.monotime()
      p:step(0)
      while p.live > 0 do
        local t = p:timeout()
        assert.is_not_nil(t, "timeout() is nil with " .. p.live .. " live tasks (run " .. run .. ")")
        if t > 2 then t = 2 end
        core.sleep(t)
        p:step(0)
      end
      assert.is_true(core.monotime() - t0 < 1.5, "took " .. (core.monotime() - t0))
      assert.is_nil(p:timeout())
      p:close()
    end
  end)
end)
