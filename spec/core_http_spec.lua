-- SPDX-License-Identifier: MIT
-- eternaltwin.core HTTP binding (session, multi, transfer) against the local mock server.
local V = require("spec.support.compat")
local core = require("eternaltwin.core")
local cjson = require("cjson")
local mock = require("spec.support.mock")

-- Wall-clock seconds: core.monotime (util binding), else /proc/uptime (10 ms steps).
local function now()
  if core.monotime then return core.monotime() end
  local f = assert(io.open("/proc/uptime"))
  local t = tonumber(f:read("*l"):match("^[%d.]+"))
  f:close()
  return t
end

local function decode(body)
  return cjson.decode(body)
end

describe("eternaltwin.core http", function()
  local m, base, session

  setup(function()
    m = mock.get()
    base = m.url:gsub("/$", "")
  end)

  before_each(function()
    session = core.session({ timeout = 5 })
  end)

  after_each(function()
    session:close()
  end)

  local function get(path, s, flags)
    return (s or session):request("GET", base .. path, nil, nil, flags)
  end

  -- One GET of s through the multi mu (with the request headers given, if any), driven until it
  -- finishes; its result.
  local function through(mu, s, path, headers)
    local x = mu:add(s, "GET", base .. path, headers, nil, nil)
    local deadline = now() + 10
    repeat
      mu:perform()
      if #mu:finished() > 0 then break end
      mu:poll(0.05)
    until now() > deadline
    return x:result()
  end

  describe("session", function()
    it("does a GET: status, lower-case headers, body, effective URL", function()
      local status, h, body, url = get("/_mock/echo?x=1")
      assert.equal(200, status)
      assert.is_table(h)
      assert.matches("^application/json", h["content-type"])
      assert.equal(#body, tonumber(h["content-length"]))
      assert.equal(base .. "/_mock/echo?x=1", url)
      local e = decode(body)
      assert.equal("GET", e.method)
      assert.equal("x=1", e.query)
      for k in pairs(h) do assert.equal(k:lower(), k) end
    end)

    it("reuses one connection across requests (keep-alive)", function()
      for _ = 1, 5 do assert.equal(200, (get("/_mock/echo"))) end
      local st = session:stats()
      assert.equal(5, st.requests)
      assert.equal(1, st.connections)
      local port = st.local_port
      local status, _, body = get("/_mock/echo")
      assert.equal(200, status)
      assert.equal(port, session:stats().local_port)
      -- The server's view: the same connection, serving its 6th and 7th requests.
      local e1 = decode(body)
      local e2 = decode(select(3, get("/_mock/echo")))
      if e1.connection then
        assert.equal(e1.connection, e2.connection)
        assert.equal(6, e1.connection_requests)
        assert.equal(7, e2.connection_requests)
      end
    end)

    it("opens a new connection for flags.fresh, for that request only", function()
      local c1 = decode(select(3, get("/_mock/echo"))).connection
      local port = session:stats().local_port
      local c2 = decode(select(3, get("/_mock/echo", nil, { fresh = true }))).connection
      assert.are_not.equal(c1, c2)
      local st = session:stats()
      assert.equal(2, st.connections)
      assert.are_not.equal(port, st.local_port)
      -- The next request reuses a cached connection (curl picks one of the two).
      local c3 = decode(select(3, get("/_mock/echo"))).connection
      assert.is_true(c3 == c1 or c3 == c2)
      assert.equal(2, session:stats().connections)
    end)

    it("sends every method, with and without body, binary-safe", function()
      local cases = {
        { "GET", nil }, { "GET", "body on get" }, { "POST", "a\0b\1c" }, { "POST", nil },
        { "PUT", "put body" }, { "PUT", nil }, { "PATCH", "{}" }, { "DELETE", nil },
        { "DELETE", "del body" }, { "OPTIONS", nil },
      }
      for _, c in ipairs(cases) do
        local method, body = c[1], c[2]
        local status, _, text = session:request(method, base .. "/_mock/echo", nil, body, nil)
        assert.equal(200, status, method)
        local e = decode(text)
        assert.equal(method, e.method)
        assert.equal(body or "", e.body, method)
        if body then
          assert.equal(tostring(#body), e.headers["content-length"], method)
        elseif method == "POST" or method == "PUT" then
          assert.equal("0", e.headers["content-length"], method .. " without body")
        end
        assert.is_nil(e.headers["expect"])
        assert.is_nil(e.headers["content-type"], method .. ": no Content-Type of curl's own")
      end
    end)

    it("does HEAD without body", function()
      local status, h, body = session:request("HEAD", base .. "/_mock/bytes/10", nil, nil, nil)
      assert.equal(200, status)
      assert.equal("10", h["content-length"])
      assert.equal("", body)
      assert.has_error(function() session:request("HEAD", base .. "/", nil, "x", nil) end)
    end)

    it("sends the given headers, and the session's user agent", function()
      local s = core.session({ user_agent = "et-test/1" })
      local status, _, text = s:request("POST", base .. "/_mock/echo",
        { "Content-Type: text/plain", "X-One: 1", "X-One: 2" }, "hi", nil)
      assert.equal(200, status)
      local e = decode(text)
      assert.equal("text/plain", e.headers["content-type"])
      assert.equal("1, 2", e.headers["x-one"])
      assert.equal("et-test/1", e.headers["user-agent"])
      s:close()
    end)

    it("sends the prebuilt User-Agent on a plain GET; a request's own User-Agent wins", function()
      local s = core.session({ user_agent = "et-test/2" })
      local _, _, text = s:request("GET", base .. "/_mock/echo", nil, nil, nil)
      assert.equal("et-test/2", decode(text).headers["user-agent"])
      _, _, text = s:request("GET", base .. "/_mock/echo", { "User-Agent: mine/1" }, nil, nil)
      assert.equal("mine/1", decode(text).headers["user-agent"])
      _, _, text = s:request("GET", base .. "/_mock/echo?again=1", nil, nil, nil)
      assert.equal("et-test/2", decode(text).headers["user-agent"])
      assert.equal("again=1", decode(text).query)
      s:close()
    end)

    it("reads the proxy settings from the environment when the session is made", function()
      -- A child process with http_proxy pointing at a closed port: the request goes to the proxy
      -- (connect error); with no_proxy naming the host it goes straight to the mock.
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(("local c = require('eternaltwin.core'); local s = c.session({ timeout = 5 }); " ..
        "local st, err = s:request('GET', %q, nil, nil, nil); io.write(tostring(st), ' ', st and 'ok' or tostring(err))")
        :format(base .. "/_mock/echo"))
      f:close()
      local function run(env)
        local p = assert(io.popen(env .. " " .. V.lua .. " " .. script .. " 2>&1"))
        local out = p:read("*a")
        p:close()
        return out
      end
      assert.equal("nil connect", run("http_proxy=http://127.0.0.1:1 no_proxy= NO_PROXY="))
      assert.equal("200 ok", run("http_proxy=http://127.0.0.1:1 no_proxy=127.0.0.1"))
      assert.equal("200 ok", run("http_proxy= HTTPS_PROXY=http://127.0.0.1:1 all_proxy= ALL_PROXY= no_proxy="))
      os.remove(script)
    end)

    it("takes a 1 MiB body with its Content-Length in one piece, again and again", function()
      for _ = 1, 3 do
        local status, h, body = get("/_mock/static/1m")
        assert.equal(200, status)
        assert.equal("1048576", h["content-length"])
        assert.equal(1048576, #body)
        assert.equal(string.rep("x", 1048576), body)
      end
    end)

    it("joins repeated response headers (set-cookie with newlines)", function()
      local status, h = get("/_mock/repeat-header")
      assert.equal(200, status)
      assert.equal("a, b", h["x-multi"])
      assert.equal("a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT\nb=2", h["set-cookie"])
    end)

    it("packs the headers in one string with packed_headers; headers_table unpacks the same table", function()
      local packed = core.session({ timeout = 5, packed_headers = true })
      local st1, h1 = get("/_mock/repeat-header")
      local st2, p2, body2, url2 = get("/_mock/repeat-header", packed)
      assert.equal(200, st1)
      assert.equal(200, st2)
      assert.is_string(p2)
      assert.is_string(body2)
      assert.equal(base .. "/_mock/repeat-header", url2)
      local h2 = core.headers_table(p2)
      assert.same(h1, h2)
      assert.equal("a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT\nb=2", h2["set-cookie"])
      -- The multi's transfers of such a session too (their handles go back to the pool at once).
      local mu = core.multi()
      local st3, p3 = through(mu, packed, "/_mock/repeat-header")
      assert.equal(200, st3)
      assert.is_string(p3)
      local h3 = core.headers_table(p3)
      h3.date, h1.date = nil, nil                 -- (another second, maybe)
      assert.same(h1, h3)
      mu:close()
      packed:close()
    end)

    it("gives each response its own bytes while it keeps a plain request's strings for reuse", function()
      local packed = core.session({ timeout = 5, packed_headers = true })
      local mu = core.multi()
      -- Bodies of the same length with other bytes (the query differs by one character), and
      -- headers of other lengths, alternating: through the session, then through the multi.
      for i = 1, 6 do
        local q = "x=" .. (i % 3)
        local st, p, body = packed:request("GET", base .. "/_mock/echo?" .. q)
        assert.equal(200, st)
        assert.equal(q, decode(body).query)
        assert.equal(#body, tonumber(core.headers_table(p)["content-length"]))
        local size = 40 + i % 2
        st, p, body = packed:request("GET", base .. "/_mock/headers?n=2&size=" .. size)
        assert.equal(200, st)
        assert.equal(string.rep("h", size), core.headers_table(p)["x-big-2"])
        assert.equal(size, decode(body).size)
        st, p, body = through(mu, packed, "/_mock/echo?" .. q)
        assert.equal(200, st)
        assert.equal(q, decode(body).query)
        assert.equal(#body, tonumber(core.headers_table(p)["content-length"]))
      end
      mu:close()
      packed:close()
    end)

    it("keeps no string of a response to a request that sent headers or a body", function()
      -- The strings kept for reuse: upvalue 4 of every HTTP function ([1] headers, [2] body).
      -- Lua 5.1's debug library cannot read a C function's upvalues (and 5.1 keeps nothing).
      local _, kept = debug.getupvalue(core.session, 4)
      if V.name ~= "lua5.1" then assert.is_table(kept) end
      local function holds(s)
        for _, v in pairs(kept or {}) do
          if type(v) == "string" and v:find(s, 1, true) then return true end
        end
        return false
      end
      local packed = core.session({ timeout = 5, packed_headers = true })
      local mu = core.multi()
      local st, _, plain = packed:request("GET", base .. "/_mock/echo?plain=1")
      assert.equal(200, st)
      -- 5.2 and later keep it (5.1 and LuaJIT intern every string: nothing to keep).
      if V.name ~= "lua5.1" and V.name ~= "luajit" then assert.equal(plain, kept[2]) end
      local auth = { "Authorization: Bearer SECRET-TOKEN-1234567890abcdef" }
      st = packed:request("GET", base .. "/_mock/echo?with=headers", auth)
      assert.equal(200, st)
      st = packed:request("POST", base .. "/_mock/echo", nil, "client_secret=SECRET-BODY-0987654321")
      assert.equal(200, st)
      local mst, _, mbody = through(mu, packed, "/_mock/echo?multi=1", auth)
      assert.equal(200, mst)
      assert.matches("SECRET%-TOKEN", mbody)
      assert.is_false(holds("SECRET-"))
      if V.name ~= "lua5.1" and V.name ~= "luajit" then assert.equal(plain, kept[2]) end
      mu:close()
      packed:close()
    end)

    it("elide_url: a transfer's URL is nil when it is the one asked for, the final one after redirects", function()
      local mu = core.multi()
      local function run(s, path) return through(mu, s, path) end
      local lean = core.session({ elide_url = true, allow_redirects = true })
      local st, _, _, url = run(lean, "/_mock/echo?x=1")
      assert.equal(200, st)
      assert.is_nil(url)
      st, _, _, url = run(lean, "/_mock/redirect-chain/2")
      assert.equal(200, st)
      assert.equal(base .. "/_mock/redirect-chain/0", url)
      st, _, _, url = run(session, "/_mock/echo?x=1")     -- without it: the URL, always
      assert.equal(200, st)
      assert.equal(base .. "/_mock/echo?x=1", url)
      mu:close()
      lean:close()
    end)

    it("headers_table refuses what is not packed headers, and keeps binary values", function()
      local function pk(name, value)
        local n = #value
        return name .. "\0" .. string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
          math.floor(n / 256) % 256, n % 256) .. value
      end
      assert.same({}, core.headers_table(""))
      assert.same({ a = "x\0y", b = "" }, core.headers_table(pk("a", "x\0y") .. pk("b", "")))
      for _, bad in ipairs({ "a", "a\0", "a\0\0\0\0", "a\0\0\0\0\2x", pk("a", "x") .. "b",
                             pk("", "x"), "\0\0\0\0\0" }) do
        assert.has_error(function() core.headers_table(bad) end,
          "bad argument #1 to 'headers_table' (not packed headers)")
      end
      assert.has_error(function() core.headers_table(nil) end)
    end)

    it("times out within timeout + 0.5 s, without the query in the message", function()
      local s = core.session({ timeout = 0.5 })
      local t0 = now()
      local r, code, msg = s:request("GET", base .. "/_mock/delay?ms=3000&token=QSECRET",
        { "Authorization: Bearer HSECRET" }, nil, nil)
      local dt = now() - t0
      assert.is_nil(r)
      assert.equal("timeout", code)
      assert.is_true(dt < 1.0, "took " .. dt)
      assert.matches("^GET http://127%.0%.0%.1:%d+/_mock/delay: ", msg)
      assert.not_matches("SECRET", msg)
      s:close()
    end)

    it("times out on a body that trickles", function()
      local s = core.session({ timeout = 0.4 })
      local r, code = s:request("GET", base .. "/_mock/trickle?bytes=20&interval_ms=100", nil, nil, nil)
      assert.is_nil(r)
      assert.equal("timeout", code)
      s:close()
    end)

    it("never puts request headers or bodies in messages", function()
      local s = core.session({ max_body_size = 5 })
      local r, code, msg = s:request("POST", "http://user:PWSECRET@127.0.0.1:" .. m.port
        .. "/_mock/echo?code=QSECRET", { "Authorization: Bearer HSECRET" }, "BSECRET", nil)
      assert.is_nil(r)
      assert.equal("too_large", code)
      assert.not_matches("SECRET", msg)
      assert.matches("^POST http://127%.0%.0%.1:%d+/_mock/echo: ", msg)
      s:close()
    end)

    it("reports connection refused as connect", function()
      local r, code, msg = session:request("GET", "http://127.0.0.1:1/", nil, nil, nil)
      assert.is_nil(r)
      assert.equal("connect", code)
      assert.is_string(msg)
    end)

    it("reports an unresolvable host as resolve", function()
      local r, code = session:request("GET", "http://no-such-host.invalid/", nil, nil, nil)
      assert.is_nil(r)
      assert.equal("resolve", code)
    end)

    it("reports bad URLs and other protocols as url", function()
      assert.equal("url", select(2, session:request("GET", "ftp://127.0.0.1/", nil, nil, nil)))
      assert.equal("url", select(2, session:request("GET", "http://", nil, nil, nil)))
      assert.equal("url", select(2, session:request("GET", "file:///etc/passwd", nil, nil, nil)))
    end)

    describe("TLS", function()
      it("refuses a self-signed certificate when verifying", function()
        local s = core.session({ timeout = 5 })
        local r, code = s:request("GET", m.tls_url .. "_mock/echo", nil, nil, nil)
        assert.is_nil(r)
        assert.equal("tls", code)
        s:close()
      end)

      it("accepts it with ca_file", function()
        local s = core.session({ timeout = 5, ca_file = m.cert })
        local status, _, body = s:request("GET", m.tls_url .. "_mock/echo", nil, nil, nil)
        assert.equal(200, status)
        assert.equal("GET", decode(body).method)
        assert.equal(200, (s:request("GET", m.tls_url .. "_mock/echo", nil, nil, nil)))
        assert.equal(1, s:stats().connections)
        s:close()
      end)

      it("accepts it with verify_ssl = false", function()
        local s = core.session({ timeout = 5, verify_ssl = false })
        assert.equal(200, (s:request("GET", m.tls_url .. "_mock/echo", nil, nil, nil)))
        s:close()
      end)
    end)

    describe("body limit", function()
      local s
      before_each(function() s = core.session({ max_body_size = 1000 }) end)
      after_each(function() s:close() end)

      it("accepts a body of exactly max_body_size (declared and chunked)", function()
        local status, _, body = get("/_mock/bytes/1000", s)
        assert.equal(200, status)
        assert.equal(1000, #body)
        status, _, body = get("/_mock/bytes/1000?chunked=1", s)
        assert.equal(200, status)
        assert.equal(1000, #body)
      end)

      it("refuses one byte over (declared and chunked) with too_large", function()
        local r, code, msg = get("/_mock/bytes/1001", s)
        assert.is_nil(r)
        assert.equal("too_large", code)
        assert.matches("max_body_size", msg)
        r, code = get("/_mock/bytes/1001?chunked=1", s)
        assert.is_nil(r)
        assert.equal("too_large", code)
        assert.equal(200, (get("/_mock/bytes/10", s)))
      end)

      it("does not apply to the declared length of a HEAD response", function()
        local status, h, body = s:request("HEAD", base .. "/_mock/bytes/5000", nil, nil, nil)
        assert.equal(200, status)
        assert.equal("5000", h["content-length"])
        assert.equal("", body)
        assert.equal("too_large", select(2, get("/_mock/bytes/5000", s)))
      end)

      it("defaults to 16 MiB", function()
        local status, _, body = get("/_mock/bytes/16777216")
        assert.equal(200, status)
        assert.equal(16777216, #body)
        assert.equal("too_large", select(2, get("/_mock/bytes/16777217")))
      end)
    end)

    describe("redirects", function()
      it("are not followed by default", function()
        local status, h = get("/_mock/redirect-chain/3")
        assert.equal(302, status)
        assert.equal("/_mock/redirect-chain/2", h["location"])
      end)

      it("are followed with allow_redirects, keeping the final headers only", function()
        local s = core.session({ allow_redirects = true })
        local status, h, body, url = get("/_mock/redirect-chain/3", s)
        assert.equal(200, status)
        assert.is_nil(h["location"])
        assert.equal(0, decode(body).redirects)
        assert.equal(base .. "/_mock/redirect-chain/0", url)
        s:close()
      end)

      it("stop at max_redirects (loop)", function()
        local s = core.session({ allow_redirects = true, max_redirects = 5 })
        local r, code = get("/_mock/redirect-loop", s)
        assert.is_nil(r)
        assert.equal("redirects", code)
        assert.equal("redirects", select(2, get("/_mock/redirect-chain/6", s)))
        assert.equal(200, (get("/_mock/redirect-chain/5", s)))
        s:close()
      end)

      it("flags.redirects = false holds for its request only (session, and a multi's reused handle)", function()
        local s = core.session({ allow_redirects = true })
        local url = base .. "/_mock/redirect-chain/1"
        assert.equal(302, (s:request("GET", url, nil, nil, { redirects = false })))
        assert.equal(200, (s:request("GET", url)))
        assert.equal(302, (s:request("GET", url, nil, nil, { redirects = false })))
        assert.equal(200, (s:request("GET", url, nil, nil, { redirects = true })))
        local mu = core.multi()
        local function run(flags)
          local x = mu:add(s, "GET", url, nil, nil, flags)
          local deadline = now() + 10
          while now() < deadline do
            mu:perform()
            local f = mu:finished()
            if #f > 0 then assert.equal(x, f[1]); return (x:result()) end
            mu:poll(0.05)
          end
        end
        for _ = 1, 2 do                           -- one pooled handle, set up once for the session
          assert.equal(302, run({ redirects = false }))
          assert.equal(200, run(nil))
        end
        mu:close()
        s:close()
      end)
    end)

    describe("resets", function()
      it("reports a connection closed before any response as empty_reply", function()
        local r, code = get("/_mock/reset-connection")
        assert.is_nil(r)
        assert.equal("empty_reply", code)
        assert.equal(200, (get("/_mock/echo")))
      end)

      it("reports a connection closed mid-body as reset", function()
        local r, code = get("/_mock/reset-connection?after=100")
        assert.is_nil(r)
        assert.equal("reset", code)
        assert.equal(200, (get("/_mock/echo")))
      end)
    end)

    it("returns statuses >= 400 as responses", function()
      local status, _, body = get("/_mock/status/503")
      assert.equal(503, status)
      assert.equal(503, decode(body).status)
      assert.equal(204, (get("/_mock/status/204")))
    end)

    describe("arguments", function()
      it("raises on header injection", function()
        assert.has_error(function()
          session:request("GET", base .. "/", { "X-A: a\r\nX-B: b" }, nil, nil)
        end, "bad argument #3 to 'request' (header injection: header 1 contains CR, LF or NUL)")
        assert.error_matches(function()
          session:request("GET", base .. "/", { "X-A: ok", "X-B: b\n" }, nil, nil)
        end, "header injection")
        assert.error_matches(function()
          session:request("GET", base .. "/", { "X-A: \0" }, nil, nil)
        end, "header injection")
        assert.error_matches(function()
          session:request("GET", base .. "/", { 42 }, nil, nil)
        end, "string expected")
      end)

      it("raises on wrong option types, naming the option", function()
        assert.error_matches(function() core.session({ timeout = "5" }) end, "'timeout'")
        assert.error_matches(function() core.session({ verify_ssl = 1 }) end, "'verify_ssl'")
        assert.error_matches(function() core.session({ max_body_size = 1.5 }) end, "'max_body_size'")
        assert.error_matches(function() core.session({ max_redirects = -1 }) end, "'max_redirects'")
        assert.error_matches(function() core.session({ ca_file = false }) end, "'ca_file'")
        assert.error_matches(function() core.session({ user_agent = "a\nb" }) end, "'user_agent'")
        assert.error_matches(function() core.session({ timeout = -1 }) end, "'timeout'")
        assert.error_matches(function() core.session({ bogus = 1 }) end, "unknown option 'bogus'")
        assert.error_matches(function() core.multi({ max_connections = "2" }) end, "'max_connections'")
      end)

      it("raises on bad methods, URLs, bodies and flags", function()
        assert.has_error(function() session:request("get", base .. "/", nil, nil, nil) end)
        assert.has_error(function() session:request("TRACE", base .. "/", nil, nil, nil) end)
        assert.has_error(function() session:request("GET", nil, nil, nil, nil) end)
        assert.has_error(function() session:request("GET", base .. "/\0x", nil, nil, nil) end)
        assert.has_error(function() session:request("POST", base .. "/", nil, {}, nil) end)
        assert.has_error(function() session:request("GET", base .. "/", nil, nil, { fresh = 1 }) end)
      end)

      it("accepts many headers", function()
        local list = {}
        for i = 1, 100 do list[i] = "X-H" .. i .. ": " .. i end
        local status, _, body = session:request("GET", base .. "/_mock/echo", list, nil, nil)
        assert.equal(200, status)
        assert.equal("100", decode(body).headers["x-h100"])
      end)
    end)

    it("closes idempotently; a closed session raises", function()
      local s = core.session()
      assert.matches("open", tostring(s))
      s:close()
      s:close()
      assert.matches("closed", tostring(s))
      assert.error_matches(function() s:request("GET", base .. "/", nil, nil, nil) end, "closed session")
      assert.error_matches(function() core.multi():add(s, "GET", base .. "/", nil, nil, nil) end,
        "closed session")
      assert.equal("locked", getmetatable(s))
    end)
  end)

  describe("multi", function()
    it("runs 50 transfers of 300 ms concurrently", function()
      local mu = core.multi({ max_connections = 0 })
      assert.is_nil(mu:timeout())
      local xs, pending = {}, {}
      local t0 = now()
      for i = 1, 50 do
        xs[i] = mu:add(session, "GET", base .. "/_mock/delay?ms=300", nil, nil, nil)
        pending[xs[i]] = true
      end
      assert.same({ nil, "pending" }, { xs[1]:result() })
      assert.equal(0, mu:timeout())
      local seen_sockets, done = 0, 0
      while done < 50 and now() - t0 < 10 do
        mu:perform()
        local socks = mu:sockets()
        if #socks > seen_sockets then seen_sockets = #socks end
        for _, sk in ipairs(socks) do
          assert.is_number(sk.fd)
          assert.is_boolean(sk.read)
          assert.is_boolean(sk.write)
        end
        for _, x in ipairs(mu:finished()) do
          assert.is_true(pending[x])
          pending[x] = nil
          done = done + 1
        end
        if done < 50 then mu:poll(mu:timeout() or 0.1) end
      end
      local dt = now() - t0
      assert.equal(50, done)
      assert.is_true(dt < 3, "took " .. dt)
      assert.is_true(seen_sockets > 1)
      for i = 1, 50 do
        local status, h, body = xs[i]:result()
        assert.equal(200, status)
        assert.is_table(h)
        assert.equal(300, decode(body).delayed_ms)
        assert.equal(200, (xs[i]:result()))   -- result() can be read again
      end
      assert.same({}, mu:finished())
      assert.is_nil(mu:timeout())
      assert.same({}, mu:sockets())
      mu:close()
      mu:close()
    end)

    it("multiplexes HTTPS transfers over one HTTP/2 connection", function()
      local s = core.session({ timeout = 5, ca_file = m.cert })
      local mu = core.multi()
      local xs = {}
      for i = 1, 20 do xs[i] = mu:add(s, "GET", m.tls_url .. "_mock/delay?ms=200", nil, nil, nil) end
      local done, most, t0 = 0, 0, now()
      while done < 20 and now() - t0 < 10 do
        mu:perform()
        if #mu:sockets() > most then most = #mu:sockets() end
        done = done + #mu:finished()
        if done < 20 then mu:poll(0.1) end
      end
      assert.equal(20, done)
      assert.equal(1, most)
      for i = 1, 20 do assert.equal(200, (xs[i]:result())) end
      mu:close()
      s:close()
    end)

    it("reports failures and reuses handles and connections", function()
      local s = core.session({ timeout = 0.3 })
      local mu = core.multi()
      local function run(x)
        while true do
          mu:perform()
          local f = mu:finished()
          if #f > 0 then assert.equal(x, f[1]); return x:result() end
          mu:poll(0.1)
        end
      end
      assert.equal("timeout", select(2, run(mu:add(s, "GET", base .. "/_mock/delay?ms=2000", nil, nil, nil))))
      assert.equal("connect", select(2, run(mu:add(s, "GET", "http://127.0.0.1:1/", nil, nil, nil))))
      local st, _, body = run(mu:add(s, "POST", base .. "/_mock/echo", { "Content-Type: a/b" }, "x\0y", nil))
      assert.equal(200, st)
      assert.equal("x\0y", decode(body).body)
      assert.equal(200, (run(mu:add(s, "GET", base .. "/_mock/echo", nil, nil, { fresh = true }))))
      mu:close()
      s:close()
    end)

    it("gives each finished transfer's tag beside it; result() hands the body over once", function()
      local mu = core.multi()
      local tags = {}
      local xs = {}
      for i = 1, 70 do                          -- more than 64: slots reused, arrays grown
        tags[i] = { i = i }
        xs[i] = mu:add(session, "GET", base .. "/_mock/echo?n=" .. i, nil, nil, nil, i % 7 ~= 0 and tags[i] or nil)
      end
      local got, n = {}, 0
      local deadline = now() + 10
      while n < 70 and now() < deadline do
        mu:perform()
        local done, dtags = mu:finished()
        assert.equal(#done, #dtags)
        for j = 1, #done do
          local st, _, body = done[j]:result()
          assert.equal(200, st)
          local i = tonumber(decode(body).args.n)
          assert.equal(xs[i], done[j])
          if i % 7 ~= 0 then assert.equal(tags[i], dtags[j]) else assert.equal(false, dtags[j]) end
          local st2, _, body2 = done[j]:result()  -- again: the same string (the C copy is gone)
          assert.equal(200, st2)
          assert.equal(body, body2)
          got[i] = true
          n = n + 1
        end
        if n < 70 then mu:poll(0.05) end
      end
      assert.equal(70, n)
      for i = 1, 70 do assert.is_true(got[i], "transfer " .. i) end   -- each once
      -- A second round through the same handles (kept set up for this session), big bodies.
      local x = mu:add(session, "GET", base .. "/_mock/static/1m", nil, nil, nil, "big")
      local done, dtags
      repeat
        mu:perform()
        done, dtags = mu:finished()
        if #done == 0 then mu:poll(0.05) end
      until #done > 0 or now() > deadline
      assert.equal(x, done[1])
      assert.equal("big", dtags[1])
      assert.equal(1048576, #select(3, x:result()))
      mu:close()
    end)

    it("finished(into) appends the finished transfers' tags to a table of the caller's, tagless ones skipped", function()
      local mu = core.multi()
      local tags, xs = {}, {}
      for i = 1, 70 do
        tags[i] = { i = i }
        xs[i] = mu:add(session, "GET", base .. "/_mock/echo?n=" .. i, nil, nil, nil, i % 7 ~= 0 and tags[i] or nil)
      end
      local into = { "kept" }                   -- what the table held stays, in front
      local count, seen = 0, {}
      local deadline = now() + 10
      while now() < deadline do
        local running = mu:perform()
        local before = #into
        local k = mu:finished(into)
        assert.equal(before + k, #into)
        count = count + k
        if running == 0 then break end
        mu:poll(0.05)
      end
      assert.equal("kept", into[1])
      assert.equal(60, count)                   -- 70 transfers, 10 without a tag
      assert.equal(61, #into)
      for j = 2, #into do
        local i = into[j].i
        assert.is_nil(seen[i], "tag " .. i .. " given twice")
        seen[i] = true
        assert.equal(tags[i], into[j])
        local st, _, body = xs[i]:result()
        assert.equal(200, st)
        assert.equal(i, tonumber(decode(body).args.n))
      end
      -- The transfers are off the finished list, as after finished(): each may carry a request again.
      local again = mu:add(session, "GET", base .. "/_mock/echo?n=again", nil, nil, nil, "again", xs[1])
      assert.equal(xs[1], again)
      assert.has_error(function() mu:finished(42) end)
      mu:close()
    end)

    it("carries a request on a finished Transfer given as reuse, and on nothing else", function()
      local mu = core.multi()
      local function settle(x)                  -- perform until x is done (finished() not called)
        local deadline = now() + 5
        while select(2, x:result()) == "pending" and now() < deadline do
          mu:perform()
          mu:poll(0.02)
        end
      end
      local function n_of(x)
        local st, _, body = x:result()
        assert.equal(200, st)
        return tonumber(decode(body).args.n)
      end
      local x1 = mu:add(session, "GET", base .. "/_mock/echo?n=1", nil, nil, nil, "a")
      local x2 = mu:add(session, "GET", base .. "/_mock/echo?n=2", nil, nil, nil, "b", x1)
      assert.are_not.equal(x1, x2)              -- x1 in flight: not reused
      settle(x1)
      settle(x2)
      -- Done, but still in the finished list (finished() not called): not reused either.
      local x3 = mu:add(session, "GET", base .. "/_mock/echo?n=3", nil, nil, nil, "c", x2)
      assert.are_not.equal(x2, x3)
      settle(x3)
      local done, tags = mu:finished()
      assert.equal(3, #done)
      assert.same({ "a", "b", "c" }, { tags[1], tags[2], tags[3] })
      local body1 = select(3, x1:result())
      assert.equal(1, n_of(x1))
      -- Taken from finished(), result read: reused, the same userdata, a fresh result.
      local y = mu:add(session, "GET", base .. "/_mock/echo?n=4", nil, nil, nil, "d", x1)
      assert.equal(x1, y)
      assert.equal("pending", select(2, y:result()))
      settle(y)
      assert.equal(4, n_of(y))
      assert.equal(1, tonumber(decode(body1).args.n))   -- the first body string is untouched
      done, tags = mu:finished()
      assert.equal(y, done[1])
      assert.equal("d", tags[1])
      -- A failed request's message goes with the reuse too; a cancelled transfer is reusable.
      local bad = mu:add(session, "GET", "http://127.0.0.1:1/", nil, nil, nil, nil, y)
      assert.equal(y, bad)
      settle(bad)
      assert.equal("connect", select(2, bad:result()))
      mu:finished()
      local ok = mu:add(session, "GET", base .. "/_mock/echo?n=5", nil, nil, nil, nil, bad)
      assert.equal(bad, ok)
      settle(ok)
      assert.equal(5, n_of(ok))
      mu:finished()
      local c = mu:add(session, "GET", base .. "/_mock/delay?ms=2000", nil, nil, nil)
      c:cancel()
      local again = mu:add(session, "GET", base .. "/_mock/echo?n=6", nil, nil, nil, nil, c)
      assert.equal(c, again)
      settle(again)
      assert.equal(6, n_of(again))
      -- Anything else as reuse is ignored: a new Transfer.
      mu:finished()
      for _, other in ipairs({ "x", session, mu, {} }) do
        local z = mu:add(session, "GET", base .. "/_mock/echo?n=7", nil, nil, nil, nil, other)
        assert.equal("eternaltwin.core.Transfer (pending)", tostring(z))
        assert.are_not.equal(other, z)
        z:cancel()
      end
      mu:close()
    end)

    it("outlives the sessions whose handles it pools (another session reuses them, reset)", function()
      local mu = core.multi()
      local function run(s, path) return through(mu, s, path) end
      local a = core.session({ user_agent = "first/1" })
      for _ = 1, 3 do assert.equal(200, (run(a, "/_mock/echo"))) end
      a:close()
      collectgarbage()
      collectgarbage()
      local b = core.session({ user_agent = "second/2" })
      local st, _, body = run(b, "/_mock/echo")
      assert.equal(200, st)
      assert.equal("second/2", decode(body).headers["user-agent"])
      -- A transfer in flight keeps its session's options after the session is closed.
      local x = mu:add(b, "GET", base .. "/_mock/delay?ms=100", nil, nil, nil)
      b:close()
      collectgarbage()
      local deadline = now() + 10
      repeat
        mu:perform()
        if #mu:finished() > 0 then break end
        mu:poll(0.05)
      until now() > deadline
      assert.equal(200, (x:result()))
      mu:close()
    end)

    it("cancels a transfer", function()
      local mu = core.multi()
      local x = mu:add(session, "GET", base .. "/_mock/delay?ms=5000", nil, nil, nil)
      mu:perform()
      x:cancel()
      x:cancel()
      assert.same({ nil, "cancelled", "transfer cancelled" }, { x:result() })
      assert.equal(0, mu:perform())
      assert.same({}, mu:finished())
      assert.matches("0 in flight", tostring(mu))
      mu:close()
    end)

    it("unpins a cancelled transfer from its multi; its user value is safe to inspect", function()
      -- 5.1, 5.2 and LuaJIT take only a table as a userdata's user value: a userdata stored
      -- there unchecked crashed `pairs(debug.getuservalue(x))` on 5.2.
      local getuv = debug.getuservalue or debug.getfenv
      local mu = core.multi()
      local x = mu:add(session, "GET", base .. "/_mock/delay?ms=5000", nil, nil, nil)
      mu:perform()
      local uv = getuv(x)
      if type(uv) == "table" then for _ in pairs(uv) do end end
      local weak = setmetatable({ x }, { __mode = "v" })
      x:cancel()
      x = nil -- luacheck: ignore 311
      uv = nil -- luacheck: ignore 311
      collectgarbage(); collectgarbage()
      assert.is_nil(weak[1], "a cancelled transfer must not stay pinned in the multi's in-flight map")
      assert.matches("0 in flight", tostring(mu))
      mu:close()
    end)

    it("cancels in-flight transfers on close", function()
      local mu = core.multi()
      local x = mu:add(session, "GET", base .. "/_mock/delay?ms=5000", nil, nil, nil)
      mu:perform()
      mu:close()
      assert.equal("cancelled", select(2, x:result()))
      x:cancel()
      assert.error_matches(function() mu:perform() end, "closed multi")
    end)

    it("raises on header injection in add", function()
      local mu = core.multi()
      assert.error_matches(function()
        mu:add(session, "GET", base .. "/", { "A: 1\r\nB: 2" }, nil, nil)
      end, "header injection")
      assert.equal(0, mu:perform())
      mu:close()
    end)

    it("survives the collection of a multi with transfers in flight", function()
      do
        local mu = core.multi()
        for _ = 1, 5 do mu:add(session, "GET", base .. "/_mock/delay?ms=5000", nil, nil, nil) end
        mu:perform()
      end
      collectgarbage()
      collectgarbage()
      -- An unfinished transfer collected on its own, while its multi lives on.
      local mu = core.multi()
      do mu:add(session, "GET", base .. "/_mock/delay?ms=5000", nil, nil, nil) end
      mu:perform()
      local x = mu:add(session, "GET", base .. "/_mock/echo", nil, nil, nil)
      x:cancel()
      x = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      assert.equal(1, mu:perform())
      mu:close()
    end)

    it("survives lua_close with transfers in flight, in any finalizer order", function()
      local script = ([[
        package.cpath = %q
        local core = require("eternaltwin.core")
        local s = core.session()
        local keep = {}
        for j = 1, 3 do
          local mu = core.multi()
          for _ = 1, 4 do keep[#keep + 1] = mu:add(s, "GET", %q, nil, nil, nil) end
          mu:perform()
          if j == 2 then keep[#keep + 1] = mu end
        end
        print("end of script")   -- then lua.c runs lua_close, and every finalizer
      ]]):format(package.cpath, base .. "/_mock/delay?ms=5000")
      local file = os.tmpname()
      local f = assert(io.open(file, "w"))
      f:write(script)
      f:close()
      -- ETWIN_LUA: how `make check` starts a Lua like this one (with the sanitizer runtime).
      local out, code = V.run(V.lua .. " " .. mock.shell_quote(file) .. " 2>&1")
      os.remove(file)
      assert.equal(0, code, out)
      assert.equal("end of script\n", out)
    end)
  end)
end)

-- Finalizer safety: a finalizer armed to run inside a call closes the object the call works on.
describe("a finalizer closing the session, multi or transfer while a result is built", function()
  local gc = require("spec.support.gc")
  local eager_gc, arm, make_garbage = gc.eager_gc, gc.arm, gc.make_garbage

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

describe("response headers from a hostile server", function()
  -- Raw responses the nginx mock cannot send (spec/support/hostile.lua), started on demand.
  local hostile = require("spec.support.hostile_server")
  local hostile_url = hostile.url
  teardown(hostile.stop)
  local client = require("spec.support.fixtures").client

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
    -- (A quadratic parse takes minutes; under valgrind or ASan, `make check` scales the bound.)
    local scale = tonumber(os.getenv("ETWIN_TIME_SCALE")) or 1
    assert.is_true(core.monotime() - t0 < 1.0 * scale)
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
