-- SPDX-License-Identifier: MIT
-- Fork detection (csrc/et_fork.c: the generation a pthread_atfork child handler bumps): a Session and
-- a Multi opened before fork() leave the parent's connections alone in the child. Not in `make
-- check`'s valgrind list: the child _exits with the parent's handles abandoned, by design, which
-- valgrind would count as lost in the child.
local core = require("eternaltwin.core")
local mock = require("spec.support.mock")

describe("fork", function()
  local eternaltwin = require("eternaltwin")
  local client = require("spec.support.fixtures").client
  local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
  local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."

  -- fork/_exit/waitpid from a test-only C module built here (spec/support/forkhelper.c); nil
  -- (the test pending) where it cannot be built.
  local function forkhelper()
    local pc = ({ ["Lua 5.1"] = "lua5.1", ["Lua 5.2"] = "lua5.2", ["Lua 5.3"] = "lua5.3",
                  ["Lua 5.4"] = "lua5.4" })[_VERSION]
    local dir = os.tmpname()
    os.remove(dir)
    local built = pc and os.execute("mkdir -p " .. q(dir) .. " && cc -shared -fPIC -o " .. q(dir .. "/forkhelper.so")
      .. " $(pkg-config --cflags " .. pc .. ") " .. q(ROOT .. "/spec/support/forkhelper.c") .. " 2>/dev/null")
    if not (built == true or built == 0) then pending("cannot build the fork helper") return nil end
    local unistd = package.loadlib(dir .. "/forkhelper.so", "luaopen_forkhelper")()
    os.remove(dir .. "/forkhelper.so")
    os.remove(dir)
    return unistd
  end

  it("parent and child each get only their own responses", function()
    local unistd = forkhelper()
    if not unistd then return end
    local c = client()
    local p = eternaltwin.poller()
    local N = 100
    -- Open the keep-alive connections (blocking session and the poller's multi) before forking.
    assert(c:get("_mock/echo", { params = { who = "warm" } }))
    p:spawn(function() return c:get("_mock/echo", { params = { who = "warm" } }) end):wait()
    local out = os.tmpname()
    local function work(who)
      local bad = 0
      for i = 1, N do
        local tag = who .. "-" .. i
        local res = c:get("_mock/echo", { params = { who = tag } })
        if not res or res:json().args.who ~= tag then bad = bad + 1 end
        local t = p:spawn(function() return c:get("_mock/echo", { params = { who = tag .. "p" } }) end)
        res = t:wait()
        if not res or res:json().args.who ~= tag .. "p" then bad = bad + 1 end
      end
      return bad
    end
    local pid = unistd.fork()
    if pid == 0 then
      local okc, bad = pcall(work, "child")
      local f = io.open(out, "w")
      f:write(okc and tostring(bad) or "error " .. tostring(bad))
      f:close()
      unistd._exit(0)
    end
    local bad = work("parent")
    assert.are.equal(0, unistd.waitpid(pid))
    local f = assert(io.open(out))
    local child = f:read("*a")
    f:close()
    os.remove(out)
    assert.are.equal(0, bad)
    assert.are.equal("0", child)
  end)

  it("a transfer in flight at the fork ends cancelled in the child, with its tag; the parent's completes", function()
    local unistd = forkhelper()
    if not unistd then return end
    local s, mu = core.session(), core.multi()
    local tag = { "the parent's" }
    local x = mu:add(s, "GET", mock.get().url .. "_mock/delay?ms=300", nil, nil, nil, tag)
    mu:perform()                              -- under way on the parent's connection
    local function finish(want)               -- drives mu until want finishes; its status
      for _ = 1, 200 do
        mu:perform()
        local done = mu:finished()
        for i = 1, #done do
          if done[i] == want then return (want:result()) end
        end
        mu:poll(0.05)
      end
    end
    local out = os.tmpname()
    local pid = unistd.fork()
    if pid == 0 then
      local okc, text = pcall(function()
        mu:perform()                          -- sees the fork: x is the parent's
        local done, tags = mu:finished()
        local _, code = x:result()
        local y = mu:add(s, "GET", mock.get().url .. "_mock/ping", nil, nil, nil, "mine")
        return table.concat({ #done, tostring(done[1] == x), tostring(tags[1] == tag), tostring(code),
                              tostring(finish(y)) }, " ")
      end)
      local f = io.open(out, "w")
      f:write(okc and text or "error " .. tostring(text))
      f:close()
      unistd._exit(0)
    end
    local status = finish(x)
    assert.are.equal(0, unistd.waitpid(pid))
    local f = assert(io.open(out))
    local child = f:read("*a")
    f:close()
    os.remove(out)
    assert.are.equal(200, status)
    assert.are.equal("1 true true cancelled 200", child)
    mu:close()
    s:close()
  end)

  -- Random draws come from a per-state pool (csrc/et_rand.h) that the parent has filled before the
  -- fork: the child must not hand out the bytes the parent hands out next (its page is wiped on
  -- fork), for raw draws as for the nonces of states and the ids of sessions made from them.
  it("parent and child never draw the same random bytes after a fork", function()
    local unistd = forkhelper()
    if not unistd then return end
    local c = client()
    assert.are.equal(128, #core.random_hex(64))   -- the pool is full now
    local out = os.tmpname()
    local function draws()
      local t = {}
      for _ = 1, 40 do t[#t + 1] = core.random_hex(32) end
      for _ = 1, 10 do t[#t + 1] = c:generate_state() end
      return t
    end
    local pid = unistd.fork()
    if pid == 0 then
      local okc, t = pcall(draws)
      local f = io.open(out, "w")
      f:write(okc and table.concat(t, "\n") or "error " .. tostring(t))
      f:close()
      unistd._exit(0)
    end
    local mine = draws()
    assert.are.equal(0, unistd.waitpid(pid))
    local f = assert(io.open(out))
    local child = f:read("*a")
    f:close()
    os.remove(out)
    assert.is_nil(child:match("^error"), child)
    local theirs, n = {}, 0
    for line in child:gmatch("[^\n]+") do theirs[line] = true; n = n + 1 end
    assert.are.equal(50, n)
    for i = 1, #mine do
      assert.is_nil(theirs[mine[i]], "the child drew what the parent drew: " .. i)
    end
    -- The states' nonces differ too (the tokens could differ by their time alone).
    local nonce = function(s) return core.json_decode(core.b64url_decode(s:match("^[^.]+%.([^.]+)"))).nonce end
    local child_nonces = {}
    for line in child:gmatch("[^\n]+") do
      if line:find(".", 1, true) then child_nonces[nonce(line)] = true end
    end
    for i = 41, 50 do assert.is_nil(child_nonces[nonce(mine[i])]) end
  end)
end)
