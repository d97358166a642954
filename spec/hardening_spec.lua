-- Hardening, second round (issue 12): one regression check per defect found with hostile servers,
-- finalizers and odd arguments. Hostile raw responses come from spec/support/hostile.lua (a
-- luasocket server the nginx mock cannot imitate); the rest runs against the mock.
local V = require("spec.support.compat")
local eternaltwin = require("eternaltwin")
local core = require("eternaltwin.core")
local keys = require("eternaltwin.keys")
local mock = require("spec.support.mock")

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The hostile server, started once.
local hostile
local function hostile_url()
  if hostile then return hostile.url end
  local out, pidf = os.tmpname(), os.tmpname()
  assert(os.execute("lua5.4 " .. q(ROOT .. "/spec/support/hostile.lua") .. " >" .. q(out)
    .. " 2>/dev/null & echo $! >" .. q(pidf)))
  local port
  for _ = 1, 200 do
    local f = io.open(out)
    local text = f and f:read("*a") or ""
    if f then f:close() end
    port = text:match("listening (%d+)")
    if port then break end
    os.execute("sleep 0.05")
  end
  local f = assert(io.open(pidf))
  local pid = f:read("*l")
  f:close()
  os.remove(out)
  os.remove(pidf)
  assert(port, "hostile server did not start")
  hostile = { url = "http://127.0.0.1:" .. port .. "/", pid = pid }
  return hostile.url
end

teardown(function()
  if hostile then os.execute("kill " .. hostile.pid .. " 2>/dev/null") end
end)

local client = require("spec.support.fixtures").client

-- An unreachable object whose finalizer calls fn (made in a function of its own, so no register
-- of the caller keeps it alive).
-- Allocates n small tables and drops them (work for the collector).
local function make_garbage(n)
  local junk = {}
  for i = 1, n do junk[i] = { i } end
  return #junk
end

local function arm(fn)
  V.on_gc(fn)
end

-- Runs fn with a collector that runs often and calls pending finalizers at the end of each
-- (5.4's generational mode with a 1% minor multiplier), so a finalizer armed just before a call
-- runs inside it, somewhere in the middle of building its result.
local function eager_gc(fn)
  local gen = _VERSION == "Lua 5.4"
  if gen then
    collectgarbage("generational", 1, 100)
  else
    collectgarbage("setpause", 1)
    collectgarbage("setstepmul", 1000)
  end
  local ok, err = pcall(fn)
  if gen then
    collectgarbage("incremental", 200, 100, 13)
  else
    collectgarbage("setpause", 200)
    collectgarbage("setstepmul", 200)
  end
  assert(ok, err)
end

describe("hardening (issue 12)", function()
  describe("1. a finalizer closing the session while a result is built", function()
    it("leaves the result whole and closes the session afterwards", function()
      local url = mock.get().url .. "_mock/headers?n=300&size=8"
      -- The finalizer closes the session only when it runs inside s:request (phase "call"); run
      -- before it, it arms itself again, so every collection until the call brings it back. The only
      -- Lua allocations in the call are those building the result (no headers, no body), so a close
      -- inside the call lands while the result is built. The checks run after eager_gc: luassert
      -- allocates a lot per call, and 5.2/5.3's collector with pause 1 runs a whole cycle at nearly
      -- every allocation (18,000 checks took minutes on 5.2).
      local rounds, results, inside = 60, {}, 0
      eager_gc(function()
        for round = 1, rounds do
          local s = core.session()
          local phase = "before"
          local function fin()
            if phase == "before" then arm(fin) return end
            if phase == "call" then inside = inside + 1 end
            s:close()
          end
          arm(fin)
          make_garbage(round * 20)
          phase = "call"
          local ok, status, headers = pcall(s.request, s, "GET", url)
          phase = "after"
          local r = { ok = ok, status = status, n = 0, bad = 0 }
          if ok then
            for k, v in pairs(headers) do
              if k:match("^x%-big%-") then
                r.n = r.n + 1
                if v ~= "hhhhhhhh" then r.bad = r.bad + 1 end
              end
            end
          end
          collectgarbage("collect")
          r.after = tostring(s)
          results[round] = r
        end
      end)
      for _, r in ipairs(results) do
        if r.ok then
          -- Closed while the result is built: the result is whole and the session closes right after.
          assert.are.equal(200, r.status)
          assert.are.same({ 300, 0 }, { r.n, r.bad })
        else
          -- Closed before the request starts: it raises.
          assert.matches("closed session", r.status, 1, true)
        end
        assert.are.equal("eternaltwin.core.Session (closed)", r.after)
      end
      -- The finalizer did run inside the call (in the middle of building the result): in about 59
      -- of 60 rounds on 5.1 and LuaJIT. On 5.2-5.4 a finalizer armed this way runs only at the
      -- round's full collect (0 of 60 rounds, as before this check existed): an open gap.
      local need = _VERSION == "Lua 5.1" and 20 or 0
      assert.is_true(inside >= need, "the finalizer ran inside s:request in " .. inside .. " of " .. rounds .. " rounds")
    end)

    it("in transfer:result(), a finalizer cancelling the transfer", function()
      local url = mock.get().url .. "_mock/headers?n=300&size=8"
      local s, m = core.session(), core.multi()
      eager_gc(function()
        for round = 1, 40 do
          local t = m:add(s, "GET", url)
          while #m:finished() == 0 and m:perform() >= 0 do
            if t:result() ~= nil or select(2, t:result()) ~= "pending" then break end
            m:poll(0.05)
          end
          arm(function() t:cancel() end)
          make_garbage(round * 20)
          local status, headers = t:result()
          if status ~= nil then
            local n = 0
            for k in pairs(headers) do if k:match("^x%-big%-") then n = n + 1 end end
            assert.are.equal(300, n)
          end
        end
      end)
      m:close(); s:close()
    end)

    it("in multi:add(), a finalizer closing the session: the transfer never runs with freed settings", function()
      local url = mock.get().url .. "_mock/echo"
      local m = core.multi()
      local seen, raised = 0, 0
      eager_gc(function()
        for round = 1, 200 do
          local s = core.session({ user_agent = "UA-" .. round })
          arm(function() s:close() end)
          make_garbage(round * 7 % 300)
          local hdrs = {}
          for i = 1, 40 do hdrs[i] = "X-Pad-" .. i .. ": " .. ("v"):rep(round % 50) end
          local ok, t = pcall(m.add, m, s, "GET", url, hdrs)
          if ok then
            while select(2, t:result()) == "pending" do m:perform(); m:poll(0.01) end
            local status, _, body = t:result()
            assert.are.equal(200, status)
            assert.are.equal("UA-" .. round, core.json_decode(body).headers["user-agent"])
            seen = seen + 1
          else
            assert.matches("closed session", t, 1, true)
            raised = raised + 1
          end
        end
      end)
      m:close()
      assert.are.equal(200, seen + raised)
    end)

    it("a finalizer closing the multi inside multi:perform()", function()
      local url = mock.get().url .. "_mock/ping"
      eager_gc(function()
        for round = 1, 30 do
          local s, m = core.session(), core.multi()
          for _ = 1, 20 do m:add(s, "GET", url) end
          arm(function() m:close() end)
          make_garbage(round * 10)
          for _ = 1, 100 do
            local ok, running = pcall(m.perform, m)
            if not ok then break end                  -- closed by the finalizer: raises, no crash
            if running == 0 then break end
            pcall(m.poll, m, 0.02)
          end
          s:close()
        end
      end)
    end)
  end)

  describe("2. a finalizer closing the key inside key:decode/encode", function()
    -- A Key's only close is its __close (5.4), reached through a to-be-closed variable.
    local close_key = _VERSION == "Lua 5.4" and load("return function(k) local c <close> = k end")()

    it("decode and encode finish with the key, which closes afterwards", function()
      if not close_key then pending("a Key has __close on Lua 5.4 only") return end
      eager_gc(function()
        -- A header other than the key's default one is parsed before the signature is checked;
        -- this one holds 1,700 empty objects (1,700 table allocations, about 100 KB), so the
        -- collector runs, with the armed finalizer, while the header is built, before the key is
        -- used.
        local b64 = core.b64url_encode
        local header = b64('{"alg":"HS256","typ":"JWT","x":[' .. ("{},"):rep(1700) .. '{}]}')
        for round = 1, 100 do
          local k = core.hmac_key("HS256", "secret")
          local input = header .. "." .. b64(core.json_encode({ a = "x", n = round }))
          local tok = input .. "." .. b64(k:sign(input))
          arm(function() close_key(k) end)
          make_garbage(round * 13 % 700)
          local ok, claims, msg = pcall(k.decode, k, tok)
          if ok then
            assert(claims, msg)
            assert.are.equal(round, claims.n)
          else
            assert.matches("closed key", claims, 1, true)
          end
          collectgarbage("collect")
          assert.are.equal("eternaltwin.core.Key (closed)", tostring(k))
          assert.has_error(function() k:decode(tok) end)
        end
        for round = 1, 60 do
          local k = core.hmac_key("HS256", "secret")
          arm(function() close_key(k) end)
          make_garbage(round * 10)
          local ok, tok = pcall(k.encode, k, { a = "x", n = round }, "kid-" .. round)
          if ok then
            assert.are.equal(2, #tok:gsub("[^.]", ""))
            assert.are.equal(round, core.hmac_key("HS256", "secret"):decode(tok).n)
          else
            assert.matches("closed key", tok, 1, true)
          end
        end
      end)
    end)
  end)

  describe("3. the code exchange never follows a redirect", function()
    it("a 307 from /oauth/token is an error and the code never reaches the other host", function()
      local base = hostile_url()
      local c = client({ url = base .. "redirect/", allow_redirects = true })
      local tok, err = c:token("one-time-code")
      assert.is_nil(tok)
      assert.are.equal("RequestError", err.kind)
      assert.are.equal(307, err.status_code)
      local _, rerr = c:refresh("a-refresh-token")
      assert.are.equal(307, rerr.status_code)
      local res = assert(client({ url = base }):get("_count"))
      assert.are.equal(0, res:json().steal)
      -- Other requests still follow redirects when asked.
      local ok = assert(client({ allow_redirects = true }):get("_mock/redirect",
        { params = { to = mock.get().url .. "_mock/ping" } }))
      assert.are.equal(200, ok.status_code)
    end)
  end)

  describe("4. ca_file pins the trust store", function()
    it("clears curl's built-in CApath, so a system-trusted certificate is refused", function()
      -- Only root can add a certificate to the system store (/etc/ssl/certs): this instance's own
      -- self-signed certificate, under its hash name, removed at once.
      local uid = io.popen("id -u"):read("*l")
      if uid ~= "0" then pending("needs root to add a certificate to /etc/ssl/certs") return end
      local inst = mock.start({ tls = true })
      local other = mock.start({ tls = true })
      local hash = io.popen("openssl x509 -noout -hash -in " .. q(inst.cert)):read("*l")
      local link
      for i = 0, 9 do
        local p = "/etc/ssl/certs/" .. hash .. "." .. i
        if not io.open(p) then link = p break end
      end
      assert(os.execute("ln -s " .. q(inst.cert) .. " " .. q(link)))
      local ok, err = pcall(function()
        -- Trusted by the system store now:
        local c0 = client({ url = inst.tls_url })
        assert(c0:get("_mock/ping"))
        -- With a ca_file holding another certificate, the system store must not count.
        -- (a CA file without this certificate and without a certificate of the same subject)
        local c1 = client({ url = inst.tls_url, ca_file = "/etc/ssl/certs/ca-certificates.crt" })
        local res, e = c1:get("_mock/ping")
        assert.is_nil(res)
        assert.are.equal("tls", e.code)
      end)
      os.remove(link)
      inst.stop(); other.stop()
      assert(ok, err)
    end)
  end)

  describe("5. JSON decode is bounded", function()
    it("refuses more than the element limit with a precise message", function()
      local n = core.JSON_MAX_ELEMENTS
      assert.is_number(n)
      local ok = assert(core.json_decode("[" .. ("0,"):rep(n - 2) .. "0]"))
      assert.are.equal(n - 1, #ok)
      local v, msg = core.json_decode("[" .. ("0,"):rep(n) .. "0]")
      assert.is_nil(v)
      assert.matches("more than " .. n .. " values", msg, 1, true)
      v, msg = core.json_decode(('{"a":1,'):rep(1) .. ('"b":[1,2],'):rep(n) .. '"c":1}')
      assert.is_nil(v)
      assert.matches("more than", msg, 1, true)
    end)

    it("a 16 MiB array response is a DecodeError, fast and without a memory blow-up", function()
      local res = assert(client({ url = hostile_url() }):get("bigarray"))
      local t0 = core.monotime()
      local v, err = res:json()
      assert.is_nil(v)
      assert.are.equal("DecodeError", err.kind)
      assert.matches("more than", err.message, 1, true)
      assert.is_true(core.monotime() - t0 < 2)
    end)

    it("the token endpoint refuses a body over its bound", function()
      local tok, err = client({ url = hostile_url() .. "bigjson/" }):token("code")
      assert.is_nil(tok)
      assert.are.equal("DecodeError", err.kind)
      assert.matches("too large", err.message, 1, true)
    end)

    it("the user endpoints refuse a body over their bound", function()
      eternaltwin.connections.add_connection("hardening-big", client({ url = hostile_url() .. "bigself/" }))
      local user, err = eternaltwin.User.from_token("some-token", "hardening-big")
      assert.is_nil(user)
      assert.are.equal("DecodeError", err.kind)
      assert.matches("too large", err.message, 1, true)
    end)
  end)

  describe("6. userinfo in the base URL", function()
    it("is refused, and the message does not show the password", function()
      local ok, err = pcall(client, { url = "http://user:s3cr3t-pw@127.0.0.1:1/" })
      assert.is_false(ok)
      assert.matches("userinfo", err, 1, true)
      assert.is_nil(err:find("s3cr3t", 1, true))
      ok = pcall(client, { url = "http://user@127.0.0.1:1/" })
      assert.is_false(ok)
      -- An @ in the path is fine.
      assert(pcall(client, { url = "http://127.0.0.1:1/a@b/" }))
    end)
  end)

  describe("7. fork", function()
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
  end)

  describe("8. dot segments", function()
    it("users:get encodes '.' and '..' so they stay an id", function()
      local c = client()
      for _, id in ipairs({ ".", ".." }) do
        local res, err = c.users:get(id)
        assert.is_nil(res)
        assert.are.equal(404, err.status_code)
        assert.matches("/api/v1/users/%2E", err.url, 1, true)
      end
    end)

    it("an endpoint climbing above the base URL is refused", function()
      local c = client({ url = mock.get().url .. "api/v1/" })
      assert.has_error(function() c:get("../../../x") end)
      assert.has_error(function() c:get("users/../../x") end)
      assert.has_error(function() c:get("./../x") end)
      -- Dots that stay under the base are fine.
      local res = assert(c:get("users/../users", { raise_on_error = false }))
      assert.is_number(res.status_code)
    end)
  end)

  describe("9. response headers", function()
    it("lines starting with HTTP/ do not reset the header bound", function()
      local res, err = client({ url = hostile_url() }):get("http-lines")
      assert.is_nil(res)
      assert.are.equal("too_large", err.code)
    end)

    it("20,000 distinct headers are handled in linear time", function()
      local t0 = core.monotime()
      local s = core.session()
      local status, h = s:request("GET", hostile_url() .. "many-headers")
      assert.are.equal(200, status)
      assert.are.equal("v", h.h19999)
      assert.is_true(core.monotime() - t0 < 1.0)
    end)

    it("packed headers (the client's) give exactly the table the C core builds", function()
      local plain = core.session()
      local packed = core.session({ packed_headers = true })
      for _, path in ipairs({ "header-mix", "many-repeats", "many-headers" }) do
        local st1, h = plain:request("GET", hostile_url() .. path)
        local st2, p = packed:request("GET", hostile_url() .. path)
        assert.are.equal(200, st1)
        assert.are.equal(200, st2)
        assert.is_string(p)
        assert.are.same(h, core.headers_table(p))
      end
      local h = core.headers_table(select(2, packed:request("GET", hostile_url() .. "header-mix")))
      assert.are.equal("a, b, c", h["x-multi"])
      assert.are.equal("s=1; Path=/\ns=2", h["set-cookie"])
      assert.are.equal("first continued and more", h.folded)
      assert.are.equal(", ", h["x-empty"])
      assert.are.equal("a\1b\255c", h["x-bin"])
      assert.are.equal("1", h["x-last"])
      assert.are.equal("a, tail", h["x-fold"])    -- the fold continues the line before it
      assert.are.equal("1", h["x-other"])
      assert.is_nil(h["x-early"])
      assert.is_nil(h.link)
      assert.is_nil(h["bad name"])
      local res = assert(client({ url = hostile_url() }):get("many-repeats"))
      local rep = res.headers["x-rep"]
      assert.are.equal(6000, select(2, rep:gsub(", ", "")) + 1)
      assert.are.equal("c1=1\n", res.headers["set-cookie"]:sub(1, 5))
      plain:close()
      packed:close()
    end)

    it("a 2 MiB header line is too_large", function()
      local res, err = client({ url = hostile_url() }):get("long-header")
      assert.is_nil(res)
      assert.are.equal("too_large", err.code)
    end)
  end)

  describe("10. the replay store", function()
    it("costs O(log n) per check when full of live nonces", function()
      local function cost(size)
        local store = eternaltwin.ReplayStore(size)
        local now = 1000
        for i = 1, size do store:check_and_add("n" .. i, now + 100000 + i, now) end
        local t0 = core.monotime()
        for i = 1, 100 do assert.is_true(store:check_and_add("x" .. i, now + 200000 + i, now)) end
        return core.monotime() - t0
      end
      local small, big = math.min(cost(1000), cost(1000)), math.min(cost(100000), cost(100000))
      -- Two full passes per check made this ratio about 100 (7 s for the 100 checks at 100,000);
      -- O(log n) about 2. The absolute slack absorbs a loaded machine.
      assert.is_true(big < small * 20 + 0.05, ("1000: %.4f s, 100000: %.4f s"):format(small, big))
    end)

    it("still forgets the entry closest to expiry, and expired ones first", function()
      local store = eternaltwin.ReplayStore(3)
      assert.is_true(store:check_and_add("a", 50, 10))
      assert.is_true(store:check_and_add("b", 20, 10))
      assert.is_true(store:check_and_add("c", 30, 10))
      assert.is_false(store:check_and_add("b", 20, 10))
      assert.is_true(store:check_and_add("d", 40, 10))     -- full: b (soonest) goes
      assert.is_true(store:check_and_add("b", 20, 10))     -- so b passes again; c (now soonest) goes
      assert.is_true(store:check_and_add("c", 30, 10))     -- so c passes again; b goes
      assert.is_false(store:check_and_add("a", 50, 10))
      assert.are.equal(3, store.count)
      assert.is_true(store:check_and_add("e", 100, 45))    -- at 45, c and d have expired: dropped
      assert.are.equal(2, store.count)
      assert.is_true(store:check_and_add("d", 40, 45))     -- d was forgotten, so it passes
      assert.are.equal(3, store.count)
      assert.is_false(store:check_and_add("a", 50, 45))
      -- A known but expired nonce is renewed in place (its heap entry moves).
      assert.is_true(store:check_and_add("d", 200, 41))
      assert.is_true(store:check_and_add("f", 60, 45))     -- full: a (50) is the soonest, it goes
      assert.is_true(store:check_and_add("a", 50, 45))     -- forgotten, so it passes; f goes
      assert.is_false(store:check_and_add("d", 200, 45))
    end)

    it("agrees with the plain two-pass store on random operations", function()
      -- The reference: the store as it was (a map, two full passes when full).
      local function ref_new(max) return { seen = {}, count = 0, max = max } end
      local function ref_check(r, nonce, exp, now)
        local known = r.seen[nonce]
        if known and known >= now then return false end
        if not known then
          if r.count >= r.max then
            for k, e in pairs(r.seen) do if e < now then r.seen[k] = nil; r.count = r.count - 1 end end
            if r.count >= r.max then
              local victim, soonest
              for k, e in pairs(r.seen) do if not soonest or e < soonest then victim, soonest = k, e end end
              r.seen[victim] = nil
              r.count = r.count - 1
            end
          end
          r.count = r.count + 1
        end
        r.seen[nonce] = exp
        return true
      end
      math.randomseed(12)
      for _, max in ipairs({ 1, 2, 7, 50 }) do
        local store, ref = eternaltwin.ReplayStore(max), ref_new(max)
        local now, serial = 1000, 0
        for _ = 1, 3000 do
          now = now + math.random(0, 3)
          serial = serial + 1
          local nonce = "n" .. math.random(1, max * 3)
          local exp = now + math.random(0, 40) + serial / 1e6   -- distinct expiries: no ties
          assert.are.equal(ref_check(ref, nonce, exp, now), store:check_and_add(nonce, exp, now))
          assert.are.equal(ref.count, store.count)
        end
      end
    end)
  end)

  describe("11. non-finite numeric options", function()
    it("a NaN or infinite leeway is refused", function()
      local c = client()
      local st = assert(c:generate_state(-100))
      assert.has_error(function() c:validate_state(st, nil, { leeway = 0 / 0 }) end)
      assert.has_error(function() c:validate_state(st, nil, { leeway = math.huge }) end)
      assert.is_nil(c:validate_state(st, nil, { leeway = 0 }))
    end)

    it("other number arguments refuse NaN and infinity", function()
      local c = client()
      assert.has_error(function() c:generate_state(math.huge) end)
      assert.has_error(function() c:generate_state(0 / 0) end)
      local p = eternaltwin.poller()
      assert.has_error(function() p:step(0 / 0) end)
      assert.has_error(function() p:run(0 / 0) end)
      assert.has_error(function() p:step(math.huge) end)
      assert.has_error(function() eternaltwin.Token({ access_token = "a", token_type = "Bearer",
        expires_in = 0 / 0 }) end)
      assert.has_error(function() core.session({ timeout = 0 / 0 }) end)
    end)
  end)

  describe("12. a hostile expires_in", function()
    it("is a DecodeError, never an infinite or unprintable Token", function()
      for _, route in ipairs({ "exp-huge/", "exp-big/", "exp-nan/" }) do
        local tok, err = client({ url = hostile_url() .. route }):token("code")
        assert.is_nil(tok, route)
        assert.are.equal("DecodeError", err.kind)
        assert.matches("expires_in", err.message, 1, true)
      end
      assert.has_error(function() eternaltwin.Token({ access_token = "a", token_type = "Bearer",
        expires_in = 1e20 }) end)
      local t = eternaltwin.Token({ access_token = "a", token_type = "Bearer", expires_in = 3600.5 })
      assert.matches("expires in", tostring(t), 1, true)
    end)
  end)

  describe("13. poller:timeout()", function()
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

  describe("also", function()
    it("key:decode returns the claims alone", function()
      local k = keys.HS256Key("also")
      local tok = assert(k:encode({ a = 1 }))
      assert.are.equal(1, select("#", k:decode(tok)))
      local ck = core.hmac_key("HS256", "also")
      assert.are.equal(1, select("#", ck:decode(tok)))
      -- A KeyRing too, even over a key of the app's whose decode returns the header as well.
      local two = { algorithm = "HS256", encode = function(_, c) return k:encode(c) end,
                    decode = function(_, t) return k:decode(t), core.jwt_header(t) end, kid = "two" }
      local ring = keys.KeyRing({ two })
      assert.are.equal(1, select("#", ring:decode(ring:encode({ a = 2 }))))
      assert.are.equal("JWT", core.jwt_header(tok).typ)
    end)

    it("proxy: false ignores http_proxy, a string names the proxy", function()
      local url = mock.get().url .. "_mock/ping"
      -- A proxy string pointing at a closed port: the request must fail to connect.
      local s = core.session({ proxy = "http://127.0.0.1:1" })
      local status, code = s:request("GET", url)
      assert.is_nil(status)
      assert.are.equal("connect", code)
      -- false: no proxy at all, even with one in the environment (checked through a child).
      local cmd = "U=" .. q(url) .. " http_proxy=http://127.0.0.1:1 HTTP_PROXY=http://127.0.0.1:1 ALL_PROXY=http://127.0.0.1:1 "
        .. "LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath) .. " "
        -- ETWIN_LUA: how `make check` starts a Lua like this one (with the sanitizer runtime).
        .. (os.getenv("ETWIN_LUA") or "lua5.4") .. " -e " .. q(
        "local core = require('eternaltwin.core') local url = os.getenv('U') "
        .. "local a = core.session({ proxy = false }):request('GET', url) "
        .. "local b, c = core.session():request('GET', url) "
        .. "io.write(tostring(a), ' ', tostring(b), ' ', tostring(c))")
      local out = io.popen(cmd):read("*a")
      assert.are.equal("200 nil connect", out)
      assert.has_error(function() core.session({ proxy = true }) end)
      assert(client({ proxy = false }):get("_mock/ping"))
    end)

    it("bin/etwin me and token read the secret from stdin (-) or the environment", function()
      local c = client()
      local env = "env -i PATH=/usr/bin:/bin ETERNALTWIN_URL=" .. q(mock.get().url) .. " "
      local function run(cmdline)
        return V.run(cmdline .. " 2>&1")
      end
      local out, code = run("echo not-a-token | " .. env .. V.lua .. " " .. q(ROOT .. "/bin/etwin") .. " me -")
      assert.are.equal(1, code, out)
      assert.matches("Unauthorized", out, 1, true)
      out, code = run(env .. "ETERNALTWIN_ACCESS_TOKEN=not-a-token " .. V.lua .. " " .. q(ROOT .. "/bin/etwin") .. " me")
      assert.are.equal(1, code, out)
      assert.matches("Unauthorized", out, 1, true)
      out, code = run(env .. V.lua .. " " .. q(ROOT .. "/bin/etwin") .. " me")
      assert.are.equal(2, code, out)
      assert.matches("ETERNALTWIN_ACCESS_TOKEN", out, 1, true)
      out, code = run("echo bad-code | " .. env .. "ETERNALTWIN_CLIENT_ID=demo@clients ETERNALTWIN_CLIENT_SECRET=dev_secret "
        .. V.lua .. " " .. q(ROOT .. "/bin/etwin") .. " token -")
      assert.are.equal(1, code, out)
      assert.is_nil(out:find("missing", 1, true))
      assert(c)
    end)
  end)
end)
