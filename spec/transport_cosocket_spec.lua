-- The client inside a real nginx (nginx-light + libnginx-mod-http-lua, running build/luajit):
-- every call goes through cosockets (non-blocking), against the bundled mock over loopback, with
-- the libcurl path's API, errors, limits, TLS checks, keep-alive and redirect policy.
-- Each case is a Lua chunk POSTed to the test nginx's /run location (spec/support/openresty.lua).
local mock = require("spec.support.mock")
local openresty = require("spec.support.openresty")
local fixtures = require("spec.support.fixtures")
local core = require("eternaltwin.core")

local m, srv

-- http-level config: the trusted CA (the mock's self-signed certificate), the module on the paths,
-- globals for the chunks, a blocking call at start-up, and the phases without cosockets.
local function http_conf(trust)
  return ([[
    %s
    lua_ssl_verify_depth 2;
    lua_shared_dict held 1m;
    init_by_lua_block {
        eternaltwin = require("eternaltwin")
        keys = require("eternaltwin.keys")
        MOCK, TLS = "%s", "%s"
        function C(opts)
            local o = { client_id = "demo@clients", client_secret = "dev_secret",
                        redirect_uri = "http://localhost:8000/oauth/callback",
                        state_key = keys.HS256Key("spec state key"), url = MOCK,
                        -- a budget for calls that should succeed, generous for a loaded machine
                        -- (the timeout cases give their own)
                        timeout = 60 }
            for k, v in pairs(opts or {}) do o[k] = v end
            return eternaltwin.new(o)
        end
        -- init_by_lua may block: the libcurl path.
        local res, err = C():get("api/v1/clock")
        INIT_RESULT = res and res.status_code or tostring(err)
    }
    init_worker_by_lua_block {
        local ok, err = pcall(function() return C():get("api/v1/clock") end)
        INIT_WORKER_RESULT = ok and "no error" or tostring(err)
    }
  ]]):format(trust, m.url, m.tls_url)
end

local SERVER = [[
        # /slow makes a client call to /hold (this nginx, this one worker), which waits until the
        # spec GETs /release. Were a client call to block the worker, no /hold could ever run.
        location = /fast { content_by_lua_block { ngx.say("fast ", ngx.shared.held:get("n") or 0) } }
        location = /slow {
            content_by_lua_block {
                local res, err = C({ url = "http://127.0.0.1:" .. ngx.var.server_port .. "/", timeout = 120 }):get("hold")
                ngx.say(res and res.content or tostring(err))
            }
        }
        location = /hold {
            content_by_lua_block {
                local held = ngx.shared.held
                held:incr("n", 1, 0)
                local deadline = ngx.now() + 100
                while not held:get("released") and ngx.now() < deadline do
                    ngx.sleep(0.01)
                    ngx.update_time()
                end
                ngx.print(held:get("released") and "released" or "never released")
            }
        }
        location = /held { content_by_lua_block { ngx.print(ngx.shared.held:get("n") or 0) } }
        location = /release { content_by_lua_block { ngx.shared.held:set("released", true) } }
        # Answers the first request of a connection; drops the connection on any later one without
        # a byte of answer (a kept-alive connection the server gave up on).
        location = /first_only {
            content_by_lua_block {
                if ngx.var.connection_requests ~= "1" then return ngx.exit(444) end
                ngx.print(ngx.var.connection)
            }
        }
        location = /access_phase {
            access_by_lua_block {
                local res, err = C():get("_mock/echo")
                ngx.ctx.r = res and res.status_code or tostring(err)
            }
            content_by_lua_block { ngx.say(ngx.ctx.r) }
        }
        location = /set_phase {
            set_by_lua_block $r {
                local ok, err = pcall(function() return C():get("api/v1/clock") end)
                return ok and "no error" or tostring(err)
            }
            return 200 $r;
        }
]]

local function run(code)
  local res, status = srv:run(code)
  assert(status == 200, "nginx /run failed: " .. tostring(res.error) .. "\n" .. srv:log())
  return res
end

describe("inside nginx (cosockets)", function()
  setup(function()
    m = mock.get()
    srv = openresty.start{ http = http_conf("lua_ssl_trusted_certificate " .. m.cert .. ";"), server = SERVER }
  end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() mock.reset() end)

  it("makes no libcurl handle: every call of a client goes through cosockets", function()
    local r = run([[
      local core = require("eternaltwin.core")
      local made = 0
      local session, multi = core.session, core.multi
      core.session = function(...) made = made + 1 return session(...) end
      core.multi = function(...) made = made + 1 return multi(...) end
      local ok, err = pcall(function()
        local c = C({ retries = 1 })
        assert(c:get("_mock/echo"))
        assert(c:post("_mock/echo", { json = { a = 1 } }))
        local _, terr = c:token("not-a-code")               -- the grant: a fresh connection
        assert(terr and terr.kind == "RequestError", tostring(terr))
        assert(c.users:get("00000000-0000-4000-8000-000000000000") == nil)
        assert(c:get("_mock/flaky/nolibcurl", { params = { fail = 1, retry_after = 0 } }))
      end)
      core.session, core.multi = session, multi
      return { made = made, ok = ok, err = err and tostring(err) }
    ]])
    assert.is_true(r.ok, r.err)
    assert.are.equal(0, r.made)
  end)

  it("answers a GET with the Response and request the libcurl path gives", function()
    local r = run([[
      local res = assert(C():get("_mock/echo", { params = { q = "a b" }, headers = { ["X-T"] = "1" },
                                                  token = "tok" }))
      return { s = tostring(res), status = res.status_code, url = res.url, ctype = res.headers["content-type"],
               echo = res:json(), phase = ngx.get_phase() }
    ]])
    local lib = assert(fixtures.client():get("_mock/echo", { params = { q = "a b" }, headers = { ["X-T"] = "1" },
                                                            token = "tok" }))
    local want = assert(lib:json())
    assert.are.equal("content", r.phase)
    assert.are.equal("<Response [200]>", r.s)
    assert.are.equal(lib.url, r.url)
    assert.are.equal(lib.headers["content-type"], r.ctype)
    for _, k in ipairs({ "method", "path", "query", "body" }) do assert.are.equal(want[k], r.echo[k]) end
    for _, h in ipairs({ "accept", "user-agent", "authorization", "x-t", "host" }) do
      assert.are.equal(want.headers[h], r.echo.headers[h], h)
    end
    -- Headers given by the caller replace Host, User-Agent and Accept, once each.
    local o = run([[
      local res = assert(C():get("_mock/echo", { headers = { Host = "example.test", ["User-Agent"] = "ua/1",
                                                              Accept = "text/plain" } }))
      return res:json().headers
    ]])
    assert.are.same({ "example.test", "ua/1", "text/plain" }, { o.host, o["user-agent"], o.accept })
  end)

  -- The request of a bodiless call without headers of its own is made once per URL, method and
  -- User-Agent, and kept (transport_cosocket's URL cache): nothing of one call may leak into another.
  it("sends each call its own request when the usual GET's request is kept for reuse", function()
    local r = run([[
      local a, b, none = C({ user_agent = "ua-a/1" }), C({ user_agent = "ua-b/2" }), C({ user_agent = "" })
      local out = {}
      local function echo(c, method, opts)
        local res = assert(c:request(method, "_mock/echo", opts))
        if method == "HEAD" then return { status = res.status_code, body = res.content } end
        local e = res:json()
        return { method = e.method, ua = e.headers["user-agent"] or "none", x = e.headers["x-t"] or "none",
                 auth = e.headers.authorization or "none" }
      end
      for round = 1, 2 do                                 -- the second round takes the kept requests
        out[round] = {
          a = echo(a, "GET"), b = echo(b, "GET"), none = echo(none, "GET"), a2 = echo(a, "GET"),
          head = echo(a, "HEAD"), del = echo(a, "DELETE"), del_b = echo(b, "DELETE"),
          given = echo(a, "GET", { headers = { ["X-T"] = "1" }, token = "tok" }), after = echo(a, "GET"),
        }
      end
      return out
    ]])
    for round = 1, 2 do
      local o = r[round]
      assert.are.same({ method = "GET", ua = "ua-a/1", x = "none", auth = "none" }, o.a)
      assert.are.same({ method = "GET", ua = "ua-b/2", x = "none", auth = "none" }, o.b)
      assert.are.same({ method = "GET", ua = "none", x = "none", auth = "none" }, o.none)
      assert.are.same(o.a, o.a2)
      assert.are.same({ status = 200, body = "" }, o.head)
      assert.are.same({ method = "DELETE", ua = "ua-a/1", x = "none", auth = "none" }, o.del)
      assert.are.same({ method = "DELETE", ua = "ua-b/2", x = "none", auth = "none" }, o.del_b)
      assert.are.same({ method = "GET", ua = "ua-a/1", x = "1", auth = "Bearer tok" }, o.given)
      assert.are.same(o.a, o.after)
    end
  end)

  it("sends bodies as the libcurl path does (JSON, form, empty POST, PUT, HEAD)", function()
    local r = run([[
      local c = C()
      local j = c:post("_mock/echo", { json = { a = 1 } }):json()
      local f = c:post("_mock/echo", { data = { x = "1 2" } }):json()
      local e = c:post("_mock/echo"):json()
      local p = c:request("PUT", "_mock/echo", { data = "raw" }):json()
      local h = c:request("HEAD", "_mock/echo")
      return { j = j, f = f, e = e, p = p, head_status = h.status_code, head_body = h.content }
    ]])
    assert.are.equal('{"a":1}', r.j.body)
    assert.are.equal("application/json", r.j.headers["content-type"])
    assert.are.equal("x=1+2", r.f.body)
    assert.are.equal("application/x-www-form-urlencoded", r.f.headers["content-type"])
    assert.are.equal("0", r.e.headers["content-length"])
    assert.is_nil(r.e.headers["content-type"])
    assert.are.same({ "PUT", "raw" }, { r.p.method, r.p.body })
    assert.are.same({ 200, "" }, { r.head_status, r.head_body })
  end)

  it("signs a user in end to end: login, authorize, token (fresh connection), users:me, User", function()
    local r = run([[
      local c = C()
      local browser = require("examples.browser").new(c)
      assert(browser:login(c.url, "alice", "alice-password"))
      local state = assert(c:generate_state())
      local cb = assert(browser:authorize(c:authorization_url(state)))
      assert(c:validate_state(cb.state, state))
      local token = assert(c:token(cb.code))
      local again, err = c:token(cb.code)
      local me = assert(c.users:me(token)):json()
      eternaltwin.connections.add_connection("default", c)
      local u = assert(eternaltwin.User.get(me.user.id))
      return { name = me.user.display_name.current.value, user = tostring(u), replay = err.kind,
               replay_status = err.status_code, count = eternaltwin.User.count() }
    ]])
    assert.are.equal("Alice", r.name)
    assert.are.equal("<User Alice>", r.user)
    assert.are.equal("RequestError", r.replay)
    assert.is_true(r.replay_status >= 400)
    assert.is_true(r.count >= 6)
  end)

  it("keeps connections alive in the cosocket pool, across requests to nginx", function()
    local code = [[
      local c = C()
      local out = {}
      for i = 1, 3 do out[i] = c:get("_mock/echo"):json() end
      return out
    ]]
    local a = run(code)
    local b = run(code)
    assert.are.equal(a[1].connection, a[2].connection)
    assert.are.equal(a[1].connection, a[3].connection)
    assert.are.same({ a[1].connection_requests + 1, a[1].connection_requests + 2 },
                    { a[2].connection_requests, a[3].connection_requests })
    assert.are.equal(a[1].connection, b[1].connection)           -- the pool outlives the request
    assert.are.equal(a[3].connection_requests + 1, b[1].connection_requests)
  end)

  it("never mixes pools: http and https, and a fresh connection is never pooled", function()
    local r = run([[
      local c = C()
      local settings = select(2, c:_session())
      local cosocket = require("eternaltwin.cosocket")
      local core = require("eternaltwin.core")
      local function echo(url, flags)
        local s, h, body = cosocket.request(settings, "GET", url .. "_mock/echo", nil, nil, flags)
        return core.json_decode(body)
      end
      local plain1 = echo(MOCK)
      local tls1 = echo(TLS)
      local fresh1 = echo(MOCK, { fresh = true })
      local fresh2 = echo(MOCK, { fresh = true })
      local plain2 = echo(MOCK)
      local tls2 = echo(TLS)
      return { plain1 = plain1.connection, plain2 = plain2.connection, tls1 = tls1.connection,
               tls2 = tls2.connection, fresh1 = fresh1.connection, fresh2 = fresh2.connection }
    ]])
    assert.are.equal(r.plain1, r.plain2)
    assert.are.equal(r.tls1, r.tls2)
    assert.are_not.equal(r.plain1, r.tls1)
    assert.are_not.equal(r.fresh1, r.plain1)
    assert.are_not.equal(r.fresh1, r.fresh2)
  end)

  it("sends a request again, once, when a reused connection dies before any byte of the answer", function()
    local r = run(([[
      local c = C({ url = "%s" })
      local a = assert(c:get("first_only")).content
      local b = assert(c:get("first_only")).content      -- the pooled connection is dropped: a new one
      local p = assert(c:post("first_only")).content     -- likewise for a POST, as libcurl does
      return { a = a, b = b, p = p }
    ]]):format(srv.url))
    assert.are_not.equal(r.a, r.b)
    assert.are_not.equal(r.b, r.p)
  end)

  it("verifies TLS against lua_ssl_trusted_certificate, with SNI and the host name checked", function()
    local r = run([[
      local ok = assert(C({ url = TLS }):get("_mock/echo")):json()
      local port = TLS:match(":(%d+)/$")
      local _, mismatch = C({ url = "https://other.localhost:" .. port .. "/" }):get("_mock/echo")
      local unverified = C({ url = "https://other.localhost:" .. port .. "/", verify_ssl = false }):get("_mock/echo")
      return { host = ok.headers.host, kind = mismatch.kind, code = mismatch.code, msg = mismatch.message,
               unverified = unverified and unverified.status_code }
    ]])
    assert.are.equal("localhost:" .. m.tls_port, r.host)
    assert.are.same({ "TransportError", "tls" }, { r.kind, r.code })
    assert.matches("^GET https://other%.localhost:%d+/_mock/echo: TLS handshake failed", r.msg)
    assert.are.equal(200, r.unverified)
  end)

  it("honours timeout (a slow answer) and reports refused connections", function()
    local r = run([[
      local t0 = ngx.now()
      local _, err = C({ timeout = 0.3 }):get("_mock/delay", { params = { ms = 10000 } })
      ngx.update_time()
      local dt = ngx.now() - t0
      local _, refused = C({ url = "http://127.0.0.1:1/" }):get("x")
      local _, trickle = C({ timeout = 0.4 }):get("_mock/trickle", { params = { bytes = 100, interval_ms = 100 } })
      local _, unknown = C({ url = "http://no-such-host.invalid/" }):get("x")
      local _, v6 = C({ url = "http://[::1]:1/" }):get("x")
      return { code = err.code, kind = err.kind, dt = dt, msg = err.message, refused = refused.code,
               trickle = trickle.code, unknown = unknown.code, v6 = v6.code, v6msg = v6.message }
    ]])
    assert.are.same({ "TransportError", "timeout" }, { r.kind, r.code })
    -- At the timeout, not at the answer (10 s): a bound slowness alone cannot break.
    assert.is_true(r.dt >= 0.25 and r.dt < 8, "took " .. r.dt)
    assert.matches("^GET http://127%.0%.0%.1:%d+/_mock/delay: timed out after 300 ms$", r.msg)
    assert.are.equal("connect", r.refused)
    assert.are.equal("connect", r.v6)            -- an IPv6 literal is connected to, not parsed as a name
    assert.matches("cannot connect to ::1 port 1", r.v6msg, 1, true)
    assert.are.equal("timeout", r.trickle)       -- the timeout bounds the whole request, not each read
    assert.are.equal("resolve", r.unknown)       -- names go through nginx's resolver (none here)
  end)

  it("reports faults with the libcurl path's kinds, and retries idempotent calls", function()
    local r = run([[
      local c = C()
      local _, reset = c:get("_mock/reset-connection")
      local _, nf = c:get("api/v1/users/00000000-0000-4000-8000-000000000000")
      local bad = c:get("_mock/badjson")
      local _, derr = bad:json()
      local flaky = assert(C({ retries = 2 }):get("_mock/flaky/k1", { params = { fail = 2, retry_after = 0 } }))
      local _, noretry = C({ retries = 2 }):post("_mock/flaky/k2", { params = { fail = 1 } })
      return { reset = reset.code, nf = nf.message, nf_status = nf.status_code, decode = derr.kind,
               attempts = flaky:json().attempts, post = noretry.status_code }
    ]])
    assert.is_truthy(r.reset == "reset" or r.reset == "empty_reply", r.reset)
    local _, lib = fixtures.client():get("api/v1/users/00000000-0000-4000-8000-000000000000")
    assert.are.equal(lib.message, r.nf)
    assert.are.equal(404, r.nf_status)
    assert.are.equal("DecodeError", r.decode)
    assert.are.equal(3, r.attempts)
    assert.are.equal(503, r.post)
  end)

  it("reads big bodies (length and chunked) within max_body_size, inclusive", function()
    local r = run([[
      local c = C()
      local big = assert(c:get("_mock/bytes/5000000"))
      local chunked = assert(c:get("_mock/bytes/5000000", { params = { chunked = 1 } }))
      local small = C({ max_body_size = 1000 })
      local exact = assert(small:get("_mock/bytes/1000", { params = { chunked = 1 } }))
      local _, over = small:get("_mock/bytes/1001")
      local _, over_chunked = small:get("_mock/bytes/1001", { params = { chunked = 1 } })
      local many = assert(c:get("_mock/headers", { params = { n = 20, size = 1000 } }))
      local _, huge = c:get("_mock/headers", { params = { n = 3, size = 90000 } })
      return { many = #many.headers["x-big-20"], huge = huge.code, huge_msg = huge.message,
               big = #big.content, chunked = #chunked.content, te = chunked.headers["transfer-encoding"],
               same = big.content == chunked.content, exact = #exact.content, over = over.code,
               over_msg = over.message, over_chunked = over_chunked.code }
    ]])
    assert.are.same({ 5000000, 5000000, true, 1000 }, { r.big, r.chunked, r.same, r.exact })
    assert.are.equal("chunked", r.te)
    assert.are.same({ "too_large", "too_large" }, { r.over, r.over_chunked })
    assert.matches("response body exceeds max_body_size %(1000 bytes%)$", r.over_msg)
    assert.are.equal(1000, r.many)
    assert.are.equal("too_large", r.huge)           -- headers beyond 256 KiB, as on the libcurl path
    assert.matches("response headers exceed 262144 bytes$", r.huge_msg)
  end)

  it("follows redirects only when allowed, and never carries credentials to another origin", function()
    local r = run([[
      local c = C()
      local stay = assert(c:get("_mock/redirect", { params = { to = "/_mock/echo" }, raise_on_error = false }))
      local f = C({ allow_redirects = true })
      local followed = assert(f:get("_mock/redirect", { params = { to = "/_mock/echo" }, token = "tok" }))
      local away = assert(f:get("_mock/redirect", { params = { to = TLS .. "_mock/echo" }, token = "tok" }))
      local _, loop = f:get("_mock/redirect-loop")
      return { stay = stay.status_code, url = followed.url, same_auth = followed:json().headers.authorization,
               away_url = away.url, away_auth = away:json().headers.authorization or "none", loop = loop.code }
    ]])
    assert.are.equal(302, r.stay)
    assert.are.equal(m.url .. "_mock/echo", r.url)
    assert.are.equal("Bearer tok", r.same_auth)
    assert.are.equal(m.tls_url .. "_mock/echo", r.away_url)
    assert.are.equal("none", r.away_auth)
    assert.are.equal("redirects", r.loop)
  end)

  it("never blocks the worker: with one worker, a fast location answers while slow calls wait", function()
    -- Event-driven, not timed: four requests whose client calls each wait (on /hold) until released.
    run([[ ngx.shared.held:flush_all() return {} ]])
    local cmd = {}
    for _ = 1, 4 do
      cmd[#cmd + 1] = ("curl -s -S --max-time 150 %s &"):format(mock.shell_quote(srv.url .. "slow"))
    end
    local p = assert(io.popen("( " .. table.concat(cmd, " ") .. " wait ) 2>&1"))
    -- All four client calls are in flight at once in the one worker (/hold counted them) ...
    local deadline = core.monotime() + 60
    local held
    repeat
      local _, body = srv:get("held")
      held = tonumber(body)
      if held ~= 4 then os.execute("sleep 0.05") end
    until held == 4 or core.monotime() > deadline
    -- ... and while they wait, the same (only) worker answers another location.
    local status, body = srv:get("fast")
    assert.are.same({ 200, "fast 4\n" }, { status, body })
    srv:get("release")
    local out = p:read("*a")
    p:close()
    assert.are.equal(4, held, "client calls in flight at once")
    local released = 0
    for _ in out:gmatch("released\n") do released = released + 1 end
    assert.are.equal(4, released, out)
    -- A client call that waits on the network takes its time, not the worker's: a timed one, on the
    -- mock (the lower bound cannot be reached by slowness; the upper one is generous).
    local r = run([[
      local t0 = ngx.now()
      local res, err = C():get("_mock/delay", { params = { ms = 1000 } })
      ngx.update_time()
      return { status = res and res.status_code or tostring(err), dt = ngx.now() - t0 }
    ]])
    assert.are.equal(200, r.status)
    assert.is_true(r.dt >= 0.9 and r.dt < 30, "slow call took " .. r.dt .. " s")
  end)

  it("works in the access phase and in ngx.timer callbacks", function()
    local status, body = srv:get("access_phase")
    assert.are.same({ 200, "200\n" }, { status, body })
    local r = run([[
      local done
      assert(ngx.timer.at(0, function()
        local res, err = C():get("_mock/echo")
        done = res and res.status_code or tostring(err)
      end))
      local deadline = ngx.now() + 60
      while not done and ngx.now() < deadline do
        ngx.sleep(0.02)
        ngx.update_time()
      end
      return { timer = done }
    ]])
    assert.are.equal(200, r.timer)
  end)

  it("blocks in init_by_lua, raises naming the phase where nginx has no cosockets", function()
    local r = run([[ return { init = INIT_RESULT, worker = INIT_WORKER_RESULT } ]])
    assert.are.equal(200, r.init)
    assert.matches("no client call in nginx's init_worker phase", r.worker, 1, true)
    local status, body = srv:get("set_phase")
    assert.are.equal(200, status)
    assert.matches("no client call in nginx's set phase", body, 1, true)
  end)
end)

describe("inside nginx without a trusted certificate", function()
  local bare
  setup(function()
    m = mock.get()
    bare = openresty.start{ http = http_conf("") }
  end)
  teardown(function() if bare then bare:stop() end end)

  it("refuses the mock's self-signed certificate (TransportError tls)", function()
    local r, status = bare:run([[
      local res, err = C({ url = TLS }):get("_mock/echo")
      return res and { status = res.status_code } or { kind = err.kind, code = err.code, msg = err.message }
    ]])
    assert(status == 200, tostring(r.error) .. "\n" .. bare:log())
    assert.are.same({ "TransportError", "tls" }, { r.kind, r.code })
    assert.matches("certificate", r.msg)
  end)
end)
