-- The nginx transport under attack (issue 20, items 2 and 4, and caller-supplied framing):
-- a pinned CA that cosockets cannot honour is refused before anything is sent; `timeout` bounds
-- name resolution too (a resolver that never answers); a caller cannot frame the request itself.
local mock = require("spec.support.mock")
local openresty = require("spec.support.openresty")
local fixtures = require("spec.support.fixtures")
local socket = require("socket")

local function requests_seen()
  return assert(fixtures.client():get("_mock/stats")):json().requests
end

describe("the cosocket transport", function()
  local m, srv, dns, other_ca, dir
  setup(function()
    m = mock.get()
    -- A DNS server that never answers: a bound UDP socket nobody reads.
    dns = assert(socket.udp())
    assert(dns:setsockname("127.0.0.1", 0))
    local _, dport = dns:getsockname()
    -- A CA that did not sign the mock's certificate.
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    other_ca = dir .. "/other-ca.pem"
    assert(os.execute(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=other-ca"
      .. " -days 2 -keyout %s/k.pem -out %s 2>/dev/null"):format(dir, other_ca)))
    srv = openresty.start{ http = ([[
      lua_ssl_trusted_certificate %s;
      resolver 127.0.0.1:%d ipv6=off;
      resolver_timeout 30s;
      init_by_lua_block {
        eternaltwin = require("eternaltwin"); keys = require("eternaltwin.keys")
        MOCK, TLS, OTHER_CA = "%s", "%s", "%s"
        function C(opts)
          local o = { client_id = "demo@clients", client_secret = "dev_secret",
                      redirect_uri = "http://localhost:8000/oauth/callback",
                      state_key = keys.HS256Key("spec state key"), url = MOCK }
          for k, v in pairs(opts or {}) do o[k] = v end
          return eternaltwin.new(o)
        end
      }]]):format(m.cert, dport, m.url, m.tls_url, other_ca), server = "" }
  end)
  teardown(function()
    if srv then srv:stop() end
    if dns then dns:close() end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  local function run(code)
    local res, status = srv:run(code)
    assert(status == 200, "nginx /run failed: " .. tostring(res.error) .. "\n" .. srv:log())
    return res
  end

  it("refuses a pinned CA it cannot honour, before the secret or anything else is sent", function()
    local before = requests_seen()
    local r = run([[
      local c = C({ url = TLS, ca_file = OTHER_CA })
      local res, err = c:get("_mock/echo")
      local tok, terr = c:token("some-code")
      return { res = res and res.status_code, kind = err.kind, code = err.code, msg = err.message,
               tok = tok and "token", tcode = terr.code, tmsg = terr.message }
    ]])
    assert.is_nil(r.res)
    assert.is_nil(r.tok)
    assert.are.same({ "TransportError", "tls", "tls" }, { r.kind, r.code, r.tcode })
    assert.matches("ca_file' cannot be honoured inside nginx", r.msg, 1, true)
    assert.matches("lua_ssl_trusted_certificate", r.tmsg, 1, true)
    assert.is_nil(r.tmsg:find("dev_secret", 1, true))
    -- The mock saw nothing but our own two stats calls.
    assert.are.equal(1, requests_seen() - before)
    -- verify_ssl = false has nothing to pin, and plain http has no TLS: both go through.
    local ok = run([[
      local a = C({ url = TLS, ca_file = OTHER_CA, verify_ssl = false }):get("_mock/echo")
      local b = C({ ca_file = OTHER_CA }):get("_mock/echo")
      return { a = a and a.status_code, b = b and b.status_code }
    ]])
    assert.are.same({ 200, 200 }, { ok.a, ok.b })
  end)

  it("bounds name resolution by timeout when the resolver never answers", function()
    local r = run([[
      local t0 = ngx.now()
      local _, err = C({ url = "http://etwin.example/", timeout = 1 }):get("x")
      ngx.update_time()
      local t1 = ngx.now()
      local _, err2 = C({ url = "http://etwin.example/", timeout = 5, connect_timeout = 0.5 }):get("x")
      ngx.update_time()
      -- The worker is free afterwards: a pending resolution went with its thread.
      local after = C():get("_mock/echo")
      return { dt = t1 - t0, code = err.code, msg = err.message, dt2 = ngx.now() - t1, code2 = err2.code,
               after = after and after.status_code }
    ]])
    assert.are.same({ "timeout", "timeout", 200 }, { r.code, r.code2, r.after })
    assert.matches("^GET http://etwin%.example/x: connection timed out after 1000 ms$", r.msg)
    -- 30 s (resolver_timeout) without the bound; generous margins for a loaded machine.
    assert.is_true(r.dt >= 0.9 and r.dt < 10, "took " .. r.dt)
    assert.is_true(r.dt2 >= 0.4 and r.dt2 < 10, "took " .. r.dt2)
  end)

  it("refuses caller-supplied framing headers, as the libcurl path does", function()
    local r = run([[
      local c = C()
      local out = {}
      for i, h in ipairs({ { ["Content-Length"] = "3" }, { ["transfer-encoding"] = "chunked" },
                           { Host = "a.test", host = "b.test" } }) do
        local ok, err = pcall(c.post, c, "_mock/echo", { headers = h, data = "abcdef" })
        out[i] = ok and "sent" or tostring(err)
      end
      return out
    ]])
    assert.matches("'Content-Length' is set by the client from the body", r[1], 1, true)
    assert.matches("'transfer-encoding' is set by the client from the body", r[2], 1, true)
    assert.matches("given twice (names ignore case)", r[3], 1, true)
  end)
end)

describe("the blocking transport", function()
  it("refuses caller-supplied framing headers with an argument error naming the header", function()
    local c = fixtures.client()
    for name, h in pairs({ ["Content-Length"] = { ["Content-Length"] = "3" },
                           ["Transfer-Encoding"] = { ["Transfer-Encoding"] = "chunked" } }) do
      local ok, err = pcall(c.post, c, "_mock/echo", { headers = h, data = "abcdef" })
      assert.is_false(ok)
      assert.matches("bad argument to 'post' ('headers': '" .. name .. "' is set by the client from the body)",
        tostring(err), 1, true)
    end
    local ok, err = pcall(c.get, c, "_mock/echo", { headers = { Accept = "a/b", accept = "c/d" } })
    assert.is_false(ok)
    assert.matches("given twice (names ignore case)", tostring(err), 1, true)
    -- Still one well-formed request with the client's own framing.
    local echo = assert(c:post("_mock/echo", { data = "abcdef" })):json()
    assert.are.equal("abcdef", echo.body)
    assert.are.equal("6", echo.headers["content-length"])
  end)
end)
