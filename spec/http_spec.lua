-- client:get/post/request, Response, errors of every transport failure, against the mock over loopback.
local eternaltwin = require("eternaltwin")
local core = require("eternaltwin.core")
local mock = require("spec.support.mock")
local fixtures = require("spec.support.fixtures")

local SECRET = "client-secret-never-shown"

local function client(opts)
  local o = { client_secret = SECRET }
  for k, v in pairs(opts or {}) do o[k] = v end
  return fixtures.client(o)
end

local function echo(c, method, opts)
  local res = assert(c:request(method, "_mock/echo", opts))
  return assert(res:json()), res
end

describe("HTTP helpers", function()
  local c
  setup(function() c = client() end)

  it("GETs with encoded params: sorted names, repeated arrays, booleans, numbers", function()
    local e = echo(c, "GET", { params = { q = "a b&c", n = 20, f = 1.5, on = true, off = false,
                                          tag = { "x", "y/z" } } })
    assert.are.equal("GET", e.method)
    assert.are.equal("/_mock/echo", e.path)
    assert.are.equal("f=1.5&n=20&off=false&on=true&q=a+b%26c&tag=x&tag=y%2Fz", e.query)
  end)

  it("keeps the order of params given as pairs, after an existing query", function()
    local res = assert(c:get("_mock/echo?z=1", { params = { { "b", "2" }, { "a", "1" } } }))
    assert.are.equal("z=1&b=2&a=1", res:json().query)
  end)

  it("sends headers and a bearer token, unless an Authorization header is given", function()
    local e = echo(c, "GET", { headers = { ["X-Thing"] = "v1" }, token = "tok-123" })
    assert.are.equal("v1", e.headers["x-thing"])
    assert.are.equal("Bearer tok-123", e.headers["authorization"])
    local tok = eternaltwin.Token{ access_token = "tok-456", expires_in = 3600, token_type = "Bearer" }
    assert.are.equal("Bearer tok-456", echo(c, "GET", { token = tok }).headers["authorization"])
    local e2 = echo(c, "GET", { token = tok, headers = { authorization = "Basic abc" } })
    assert.are.equal("Basic abc", e2.headers["authorization"])
  end)

  it("POSTs JSON, a raw string and a form", function()
    local e = echo(c, "POST", { json = { a = 1, b = { "x", eternaltwin.null } } })
    assert.are.equal("POST", e.method)
    assert.are.equal("application/json", e.headers["content-type"])
    assert.are.same({ a = 1, b = { "x", eternaltwin.null } }, core.json_decode(e.body))
    assert.are.equal("raw\1bytes\127", echo(c, "POST", { data = "raw\1bytes\127" }).body)
    local f = echo(c, "POST", { data = { x = "1 2", y = "é" } })
    assert.are.equal("application/x-www-form-urlencoded", f.headers["content-type"])
    assert.are.equal("x=1+2&y=%C3%A9", f.body)
  end)

  it("supports the other methods", function()
    for _, m in ipairs({ "PUT", "DELETE", "PATCH", "OPTIONS" }) do
      assert.are.equal(m, echo(c, m:lower()).method)
    end
    local res = assert(c:request("HEAD", "_mock/echo"))
    assert.are.equal(200, res.status_code)
    assert.are.equal("", res.content)
  end)

  it("returns a Response with lower-case headers and joined repeats", function()
    local res = assert(c:get("_mock/repeat-header"))
    assert.are.equal(200, res.status_code)
    assert.are.equal("<Response [200]>", tostring(res))
    assert.are.equal("a, b", res.headers["x-multi"])
    assert.are.equal("a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT\nb=2", res.headers["set-cookie"])
    assert.are.equal(mock.get().url .. "_mock/repeat-header", res.url)
  end)

  it("builds the headers table when first read, then keeps it as a plain field", function()
    local res = assert(c:get("_mock/repeat-header"))
    assert.is_nil(rawget(res, "headers"))
    local h = res.headers
    assert.are.equal("table", type(h))
    assert.are.equal(h, rawget(res, "headers"))
    assert.is_nil(rawget(res, "_headers"))
    assert.are.equal(h, res.headers)
    assert.are.equal("a, b", h["x-multi"])
    assert.is_function(res.json)
    assert.is_nil(res.no_such_field)
    local fields = {}
    for k in pairs(res) do fields[#fields + 1] = k end
    table.sort(fields)
    assert.are.same({ "content", "headers", "status_code", "url" }, fields)
    -- Inside a poller task too.
    local p = eternaltwin.poller()
    local t = p:spawn(function() return assert(c:get("_mock/repeat-header")).headers["x-multi"] end)
    p:run()
    assert.are.equal("a, b", (t:wait()))
  end)

  it("gives RequestError for a status >= 300, or the Response when asked", function()
    local res, err = c:get("api/v1/nowhere")
    assert.is_nil(res)
    assert.are.equal("RequestError", err.kind)
    assert.are.equal(404, err.status_code)
    assert.are.equal(404, err.response.status_code)
    assert.truthy(err.url:find("api/v1/nowhere", 1, true))
    assert.truthy(tostring(err):find("HTTP 404 from GET", 1, true))
    assert.truthy(tostring(err):find("NotFound", 1, true))
    local r2 = assert(c:get("api/v1/nowhere", { raise_on_error = false }))
    assert.are.equal(404, r2.status_code)
    assert.are.same({ error = "NotFound" }, r2:json())
  end)

  it("gives DecodeError for invalid JSON", function()
    local res = assert(c:get("_mock/badjson"))
    local v, err = res:json()
    assert.is_nil(v)
    assert.are.equal("DecodeError", err.kind)
    assert.truthy(err.message:find("not valid JSON", 1, true))
  end)

  it("raises on argument mistakes", function()
    assert.has_error(function() c:get(42) end)
    assert.has_error(function() c:get("x", { parms = {} }) end)
    assert.has_error(function() c:get("x", { headers = { ["X"] = "a\r\nInjected: 1" } }) end)
    assert.has_error(function() c:get("x", { headers = { ["Bad Name"] = "v" } }) end)
    assert.has_error(function() c:get("x", { token = 12 }) end)
    assert.has_error(function() c:post("x", { json = {}, data = "" }) end)
    assert.has_error(function() c:post("x", { json = { f = print } }) end)
    assert.has_error(function() c:get("x", { params = { q = {} , [1] = "a" } }) end)
  end)

  it("reuses one connection across calls", function()
    local first = echo(c, "GET")
    local second = echo(c, "GET")
    assert.are.equal(first.connection, second.connection)
  end)
end)

describe("transport failures", function()
  it("reports a refused connection", function()
    local res, err = client{ url = "http://127.0.0.1:1/" }:get("x")
    assert.is_nil(res)
    assert.are.equal("TransportError", err.kind)
    assert.are.equal("connect", err.code)
    assert.is_true(err.retryable)
  end)

  it("reports a name that does not resolve", function()
    local _, err = client{ url = "http://no-such-host.invalid/" }:get("x")
    assert.are.equal("TransportError", err.kind)
    assert.are.equal("resolve", err.code)
  end)

  it("times out within the timeout plus half a second", function()
    local c = client{ timeout = 0.5 }
    local t0 = core.monotime()
    local _, err = c:get("_mock/delay", { params = { ms = 3000 } })
    local took = core.monotime() - t0
    assert.are.equal("timeout", err.code)
    assert.is_true(took < 1.0, "took " .. took)
  end)

  it("bounds the body, inclusively", function()
    local c = client{ max_body_size = 1000 }
    assert.are.equal(1000, #assert(c:get("_mock/bytes/1000")).content)
    local _, err = c:get("_mock/bytes/1001")
    assert.are.equal("too_large", err.code)
    local _, err2 = c:get("_mock/bytes/5000", { params = { chunked = 1 } })
    assert.are.equal("too_large", err2.code)
    assert.are.equal(1000, #assert(c:get("_mock/bytes/1000", { params = { chunked = 1 } })).content)
  end)

  it("defaults to a 16 MiB body limit", function()
    local res = assert(client():get("_mock/bytes/" .. 16 * 1024 * 1024))
    assert.are.equal(16 * 1024 * 1024, #res.content)
    local _, err = client():get("_mock/bytes/" .. 16 * 1024 * 1024 + 1)
    assert.are.equal("too_large", err.code)
  end)

  it("reports a reset connection", function()
    local _, err = client():get("_mock/reset-connection")
    assert.are.equal("TransportError", err.kind)
    assert.truthy(err.code == "empty_reply" or err.code == "reset", err.code)
    local _, err2 = client():get("_mock/reset-connection", { params = { after = 100 } })
    assert.are.equal("reset", err2.code)
  end)

  it("does not follow redirects unless allowed, and stops loops", function()
    local _, err = client():get("_mock/redirect-chain/2")
    assert.are.equal(302, err.status_code)
    local res = assert(client{ allow_redirects = true }:get("_mock/redirect-chain/2"))
    assert.are.same({ redirects = 0 }, res:json())
    local _, loop = client{ allow_redirects = true }:get("_mock/redirect-loop")
    assert.are.equal("redirects", loop.code)
  end)

  describe("over TLS", function()
    it("fails verification of a self-signed certificate", function()
      local _, err = client{ url = mock.get().tls_url }:get("_mock/echo")
      assert.are.equal("TransportError", err.kind)
      assert.are.equal("tls", err.code)
      assert.is_false(err.retryable)
    end)

    it("trusts it with ca_file, or with verify_ssl = false", function()
      assert.are.equal(200, assert(client{ url = mock.get().tls_url, ca_file = mock.get().cert }
        :get("_mock/echo")).status_code)
      assert.are.equal(200, assert(client{ url = mock.get().tls_url, verify_ssl = false }
        :get("_mock/echo")).status_code)
    end)
  end)
end)

describe("retries", function()
  it("retries idempotent requests on 503 and stops after the allowed count", function()
    local c = client{ retries = 2, retry_max_wait = 0.05 }
    local before = assert(client():get("_mock/stats")):json().requests
    local _, err = c:get("_mock/status/503", { params = { retry_after = 0 } })
    assert.are.equal(503, err.status_code)
    assert.is_true(err.retryable)
    local after = assert(client():get("_mock/stats")):json().requests
    assert.are.equal(3, after - before - 1)
  end)

  it("never retries a POST", function()
    local c = client{ retries = 3, retry_max_wait = 0.05 }
    local before = assert(client():get("_mock/stats")):json().requests
    local _, err = c:post("_mock/status/503")
    assert.are.equal(503, err.status_code)
    local after = assert(client():get("_mock/stats")):json().requests
    assert.are.equal(1, after - before - 1)
  end)

  it("reads Retry-After in both forms", function()
    assert.are.equal(7, eternaltwin._retry_after("7"))
    local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 30)
    local w = eternaltwin._retry_after(date)
    assert.is_true(w >= 28 and w <= 31, tostring(w))
    assert.is_nil(eternaltwin._retry_after("soon"))
  end)
end)

describe("Response:json of a hostile body", function()
  -- Raw responses the nginx mock cannot send (spec/support/hostile.lua), started on demand.
  local hostile = require("spec.support.hostile_server")
  local hostile_url = hostile.url
  teardown(hostile.stop)

  it("a 16 MiB array response is a DecodeError, fast and without a memory blow-up", function()
    local res = assert(client({ url = hostile_url() }):get("bigarray"))
    local t0 = core.monotime()
    local v, err = res:json()
    assert.is_nil(v)
    assert.are.equal("DecodeError", err.kind)
    assert.matches("more than", err.message, 1, true)
    assert.is_true(core.monotime() - t0 < 2)
  end)
end)

describe("proxy", function()
  local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

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
end)

describe("headers and claims are plain tables", function()
  local readfile = require("spec.support.mock").must_read

  it("headers and claims are plain tables, as the README says", function()
    local c = fixtures.client()
    local res = assert(c:get("api/v1/clock"))
    assert.is_nil(getmetatable(res.headers))
    local claims = assert(c:validate_state(assert(c:generate_state())))
    assert.is_nil(getmetatable(claims))
    local readme = readfile("README.md")
    assert.truthy(readme:find("plain Lua tables", 1, true))
    assert.falsy(readme:find("Every object prints something useful.", 1, true))
  end)
end)

describe("Ctrl-C during a blocking call", function()
  local readfile = mock.must_read
  local q = mock.shell_quote
  local LUA = require("spec.support.compat").lua

  -- Runs a shell command; its output (stdout and stderr) and whether it exited 0.
  local function run(cmd)
    local p = io.popen("{ " .. cmd .. "; } 2>&1; echo \"exit=$?\"")
    local out = p:read("*a")
    p:close()
    local code = tonumber(out:match("exit=(%d+)\n$"))
    return out:gsub("exit=%d+\n$", ""), code == 0
  end

  it("stops a 4 s request at once: the transfer ends and Lua's own Ctrl-C follows", function()
    local marker = os.tmpname()
    local script = ([[
      local eternaltwin = require("eternaltwin")
      local core = require("eternaltwin.core")
      local c = eternaltwin.new("demo@clients", "dev_secret", "http://localhost:8000/oauth/callback",
        require("eternaltwin.keys").HS256Key("k"), { url = %q })
      local t0 = core.monotime()
      local f = io.open(%q, "w"); f:write("started"); f:close()
      local ok, e = pcall(function() return c:get("_mock/delay", { params = { ms = 4000 } }) end)
      print(string.format("elapsed %%.3f", core.monotime() - t0), ok, e)
    ]]):format(mock.get().url, marker)
    local path = os.tmpname()
    local f = assert(io.open(path, "w")); f:write(script); f:close()
    -- Once the child is about to call, wait 0.2 s and send SIGINT, as a terminal's Ctrl-C does.
    local out = run(("LUA_PATH=%s LUA_CPATH=%s %s %s & p=$!; "
      .. "while [ ! -s %s ]; do sleep 0.05; done; sleep 0.2; kill -INT $p; wait $p"):format(
      q(package.path), q(package.cpath), LUA, q(path), q(marker)))
    os.remove(path)
    os.remove(marker)
    local elapsed = tonumber(out:match("elapsed ([%d.]+)"))
    assert.is_number(elapsed, out)
    assert.is_true(elapsed < 2, out)                 -- not the 4 s the server waits
    assert.truthy(out:find("false\t.-interrupted!"), out)   -- lua.c's handler ran after the transfer
  end)

  local has_strace = os.execute("command -v strace >/dev/null 2>&1")
  has_strace = has_strace == true or has_strace == 0
  local strace_it = has_strace and it or pending

  -- n blocking client:get under `strace -f <opts>`: the output (stdout, stderr).
  local function traced_gets(n, opts)
    local script = ([[
      local c = require("eternaltwin").new("demo@clients", "dev_secret", "http://localhost:8000/oauth/callback",
        require("eternaltwin.keys").HS256Key("k"), { url = %q })
      for _ = 1, %d do assert(c:get("_mock/static/user")) end
      print("done")
    ]]):format(mock.get().url, n)
    local path = os.tmpname()
    local f = assert(io.open(path, "w")); f:write(script); f:close()
    local out = run(("LUA_PATH=%s LUA_CPATH=%s strace -f %s %s %s"):format(
      q(package.path), q(package.cpath), opts, LUA, q(path)))
    os.remove(path)
    assert.truthy(out:find("done", 1, true), out)
    return out
  end

  -- The handler is installed once and re-verified at most once a second: 300 blocking requests
  -- cost a few rt_sigaction calls in all (a per-call swap made 3 per request, 900).
  strace_it("costs no sigaction per request in the steady state (strace)", function()
    local out = traced_gets(300, "-c -e trace=rt_sigaction,getpid")
    -- strace -c: `% time  seconds  usecs/call  calls  [errors]  syscall`
    local function calls(name)
      for line in out:gmatch("[^\n]+") do
        local fields = {}
        for w in line:gmatch("%S+") do fields[#fields + 1] = w end
        if fields[#fields] == name then return tonumber(fields[4]) end
      end
      return 0
    end
    local sigactions, getpids = calls("rt_sigaction"), calls("getpid")
    assert.is_true(sigactions < 30, out)            -- start-up and the interpreter's own, not 900
    assert.is_true(getpids < 10, out)               -- the fork check reads a counter, not getpid
  end)

  -- A session drives its transfer itself: every poll(2) waits on the connection. curl_easy_perform's
  -- loop polls before each transfer, when only its multi's wake-up socket is there (200 here).
  strace_it("polls nothing but the connection's socket, no poll per request beside (strace)", function()
    local trace = os.tmpname()
    traced_gets(200, "-o " .. q(trace) .. " -e trace=poll,ppoll,sendto")
    local lines = readfile(trace)
    os.remove(trace)
    local conn, polls, stray = {}, 0, {}
    for fd in lines:gmatch("sendto%((%d+),") do conn[fd] = true end
    for list in lines:gmatch("poll%(%[([^%]]*)%]") do
      polls = polls + 1
      local on_conn = false
      for fd in list:gmatch("fd=(%d+)") do on_conn = on_conn or conn[fd] == true end
      if not on_conn then stray[#stray + 1] = list end
    end
    assert.is_true(next(conn) ~= nil, lines:sub(1, 2000))  -- the requests were seen
    assert.is_true(polls >= 200, lines:sub(1, 2000))        -- and their polls (a liveness check each)
    assert.is_true(#stray < 5, table.concat(stray, "\n", 1, math.min(#stray, 10)))
  end)

  it("is documented, with the 'interrupted' transport code", function()
    assert.truthy(readfile("README.md"):find("Ctrl-C", 1, true))
    assert.truthy(readfile("csrc/README.md"):find("interrupted", 1, true))
  end)
end)
