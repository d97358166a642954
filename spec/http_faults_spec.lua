-- Faults against the mock's fault routes: resets, 5xx, 429 and Retry-After, slow trickles, huge
-- headers and bodies, invalid UTF-8, redirect loops, TLS failures; the retry rules (bounded,
-- honouring Retry-After capped by retry_max_wait, idempotent methods only, never the code
-- exchange) and the `retryable` flag of every error.
local eternaltwin = require("eternaltwin")
local core = require("eternaltwin.core")
local keys = require("eternaltwin.keys")
local mock = require("spec.support.mock")

local q = mock.shell_quote

local function client(opts)
  local o = { client_id = "demo@clients", client_secret = "dev_secret",
              redirect_uri = "http://localhost:8000/oauth/callback",
              state_key = keys.HS256Key("faults spec"), url = mock.get().url }
  for k, v in pairs(opts or {}) do o[k] = v end
  return eternaltwin.new(o)
end

-- A fresh key for /_mock/flaky, and the number of requests the mock has seen for it.
local serial = 0
local function key(name)
  serial = serial + 1
  return ("%s-%d-%d"):format(name, serial, math.random(1e9))
end
local function attempts(k)
  local res = assert(client():get("_mock/flaky/" .. k, { params = { fail = 0 } }))
  return res:json().attempts - 1
end

local function elapsed(fn)
  local t0 = core.monotime()
  local a, b = fn()
  return core.monotime() - t0, a, b
end

describe("faults", function()
  describe("retries", function()
    it("retry idempotent requests on 503 until they succeed, within the allowed count", function()
      local k = key("503")
      local res = assert(client{ retries = 2, retry_max_wait = 0.05 }:get("_mock/flaky/" .. k,
        { params = { fail = 2 } }))
      assert.are.equal(3, res:json().attempts)
      for _, m in ipairs({ "PUT", "DELETE", "HEAD", "OPTIONS" }) do
        local km = key(m)
        local r = assert(client{ retries = 1, retry_max_wait = 0.05 }:request(m, "_mock/flaky/" .. km))
        assert.are.equal(200, r.status_code)
        assert.are.equal(2, attempts(km), m)
      end
    end)

    it("are bounded: the error after 1 + retries attempts is retryable", function()
      local k = key("bounded")
      local _, err = client{ retries = 3, retry_max_wait = 0.02 }:get("_mock/flaky/" .. k, { params = { fail = 100 } })
      assert.are.equal("RequestError", err.kind)
      assert.are.equal(503, err.status_code)
      assert.is_true(err.retryable)
      assert.are.equal(4, attempts(k))
    end)

    it("are off by default", function()
      local k = key("default")
      local _, err = client():get("_mock/flaky/" .. k)
      assert.are.equal(503, err.status_code)
      assert.are.equal(1, attempts(k))
    end)

    it("never happen for POST or PATCH", function()
      for _, m in ipairs({ "POST", "PATCH" }) do
        local k = key(m)
        local _, err = client{ retries = 3, retry_max_wait = 0.02 }:request(m, "_mock/flaky/" .. k)
        assert.are.equal(503, err.status_code)
        assert.are.equal(1, attempts(k), m)
      end
    end)

    it("never happen for the code exchange or a refresh, even on a retryable 503", function()
      local tok = eternaltwin.Token{ access_token = "a", refresh_token = "r", expires_in = 60, token_type = "Bearer" }
      for _, call in ipairs({ function(c) return c:token("some-code") end, function(c) return c:refresh(tok) end }) do
        local k = key("grant")
        -- The base URL puts the token endpoint under a flaky key: /_mock/flaky/<k>/oauth/token.
        local c = client{ url = mock.get().url .. "_mock/flaky/" .. k .. "/", retries = 3, retry_max_wait = 0.02 }
        local _, err = call(c)
        assert.are.equal("RequestError", err.kind)
        assert.are.equal(503, err.status_code)
        assert.is_true(err.retryable)       -- the caller may decide; the client never does
        assert.are.equal(1, attempts(k .. "/oauth/token"))
      end
    end)

    it("retry a reset or an empty reply", function()
      local k = key("reset")
      local res = assert(client{ retries = 2, retry_max_wait = 0.02 }:get("_mock/flaky/" .. k,
        { params = { fail = 2, status = "reset" } }))
      assert.are.equal(3, res:json().attempts)
      local k2 = key("reset-post")
      local _, err = client{ retries = 2, retry_max_wait = 0.02 }:post("_mock/flaky/" .. k2,
        { params = { status = "reset" } })
      assert.are.equal("TransportError", err.kind)
      assert.truthy(err.code == "empty_reply" or err.code == "reset", err.code)
      assert.is_true(err.retryable)
      assert.are.equal(1, attempts(k2))
    end)

    it("honour Retry-After on 429", function()
      local k = key("429")
      local took, res = elapsed(function()
        return client{ retries = 1 }:get("_mock/flaky/" .. k, { params = { status = 429, retry_after = 1 } })
      end)
      assert.are.equal(200, assert(res).status_code)
      assert.is_true(took >= 0.95 and took < 10, "took " .. took)
    end)

    it("cap Retry-After (seconds or HTTP-date) by retry_max_wait", function()
      local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 3600)
      for _, ra in ipairs({ "3600", date }) do
        local k = key("cap")
        local took, res = elapsed(function()
          return client{ retries = 2, retry_max_wait = 0.1 }:get("_mock/flaky/" .. k,
            { params = { fail = 2, status = 429, retry_after = ra } })
        end)
        assert.are.equal(3, assert(res):json().attempts)
        assert.is_true(took < 10, "took " .. took)        -- capped: not an hour
      end
    end)

    it("do not retry 500 or other statuses", function()
      for _, st in ipairs({ 500, 501, 400, 404 }) do
        local k = key("s" .. st)
        local _, err = client{ retries = 3, retry_max_wait = 0.02 }:get("_mock/flaky/" .. k, { params = { status = st } })
        assert.are.equal(st, err.status_code)
        assert.is_false(err.retryable)
        assert.are.equal(1, attempts(k))
      end
      for _, st in ipairs({ 429, 502, 503, 504 }) do
        local _, err = client():get("_mock/status/" .. st)
        assert.is_true(err.retryable, tostring(st))
      end
    end)
  end)

  describe("transport", function()
    it("a reset mid-body is a retryable reset, and drops the partial body", function()
      local _, err = client():get("_mock/reset-connection", { params = { after = 5000 } })
      assert.are.equal("TransportError", err.kind)
      assert.are.equal("reset", err.code)
      assert.is_true(err.retryable)
      assert.is_nil(err.response)
    end)

    it("a slow trickle beyond the timeout is a timeout, on time", function()
      local took, _, err = elapsed(function()
        return client{ timeout = 0.4 }:get("_mock/trickle", { params = { bytes = 50, interval_ms = 100 } })
      end)
      assert.are.equal("timeout", err.code)
      assert.is_true(err.retryable)
      assert.is_true(took < 4, "took " .. took)      -- the whole trickle takes 5 s
      -- and a retried one keeps each attempt within the timeout
      local took2, _, err2 = elapsed(function()
        return client{ timeout = 0.3, retries = 1, retry_max_wait = 0.01 }:get("_mock/trickle",
          { params = { bytes = 50, interval_ms = 100 } })
      end)
      assert.are.equal("timeout", err2.code)
      assert.is_true(took2 >= 0.55 and took2 < 4.5, "took " .. took2)
    end)

    it("huge response headers are too_large, not retried", function()
      local res = assert(client():get("_mock/headers", { params = { n = 100, size = 1000 } }))
      assert.are.equal(string.rep("h", 1000), res.headers["x-big-100"])
      local before = assert(client():get("_mock/stats")):json().requests
      local _, err = client{ retries = 2, retry_max_wait = 0.01 }:get("_mock/headers", { params = { n = 300, size = 1000 } })
      assert.are.equal("too_large", err.code)
      assert.is_false(err.retryable)
      assert.are.equal(1, assert(client():get("_mock/stats")):json().requests - before - 1)
    end)

    it("huge bodies are too_large, declared or chunked, not retried", function()
      local c = client{ max_body_size = 4096, retries = 2, retry_max_wait = 0.01 }
      for _, chunked in ipairs({ 0, 1 }) do
        local _, err = c:get("_mock/bytes/" .. 8 * 1024 * 1024, { params = { chunked = chunked } })
        assert.are.equal("too_large", err.code)
        assert.is_false(err.retryable)
        assert.truthy(err.message:find("max_body_size (4096 bytes)", 1, true))
      end
    end)

    it("bad JSON and invalid UTF-8 come back as values, never raise", function()
      local res = assert(client():get("_mock/badjson"))
      local v, err = res:json()
      assert.is_nil(v)
      assert.are.equal("DecodeError", err.kind)
      assert.is_false(err.retryable)
      local bad = "\255\254\192\128 \237\160\128"
      -- (the mock re-encodes what it echoes; what matters is that nothing raises on our side)
      local e = assert(client():post("_mock/echo", { data = bad, headers = { ["X-Bad"] = bad } })):json()
      assert.are.equal("string", type(e.body))
      assert.are.equal(bad, core.json_decode('"' .. bad .. '"'))
      local _, uerr = client().users:get(bad)
      assert.are.equal("RequestError", uerr.kind)
      assert.is_nil(uerr.message:find(bad, 1, true))
    end)

    it("redirect loops and long chains stop at max_redirects when following", function()
      local c = client{ allow_redirects = true, retries = 2, retry_max_wait = 0.01 }
      local _, err = c:get("_mock/redirect-loop")
      assert.are.equal("redirects", err.code)
      assert.is_false(err.retryable)
      assert.are.equal(200, assert(c:get("_mock/redirect-chain/10")).status_code)
      assert.are.equal("redirects", select(2, c:get("_mock/redirect-chain/11")).code)
      local _, e3 = client{ allow_redirects = true, max_redirects = 2 }:get("_mock/redirect-chain/3")
      assert.are.equal("redirects", e3.code)
      local _, e4 = client():get("_mock/redirect-loop")
      assert.are.equal(302, e4.status_code)
    end)

    it("a closed port is a retryable connect error; a bad name is not retryable", function()
      local _, err = client{ url = "http://127.0.0.1:1/" }:get("x")
      assert.are.equal("connect", err.code)
      assert.is_true(err.retryable)
      local _, err2 = client{ url = "http://no-such-host.invalid/" }:get("x")
      assert.are.equal("resolve", err2.code)
      assert.is_false(err2.retryable)
    end)
  end)

  describe("TLS", function()
    it("refuses a self-signed certificate when verifying, without retrying", function()
      local c = client{ url = mock.get().tls_url, retries = 2, retry_max_wait = 0.01 }
      local took, _, err = elapsed(function() return c:get("_mock/echo") end)
      assert.are.equal("tls", err.code)
      assert.is_false(err.retryable)
      assert.is_true(took < 5, "took " .. took)
    end)

    it("accepts it with ca_file, or with verify_ssl = false", function()
      local c = client{ url = mock.get().tls_url, ca_file = mock.get().cert }
      assert.are.equal(200, assert(c:get("_mock/echo")).status_code)
      local _, terr = c:token("not-a-code")      -- the code exchange goes over the same trust
      assert.are.equal("RequestError", terr.kind)
      assert.are.equal(200, assert(client{ url = mock.get().tls_url, verify_ssl = false }:get("_mock/echo")).status_code)
    end)

    it("fails with a ca_file that does not hold the signer, or does not exist", function()
      local _, err = client{ url = mock.get().tls_url, ca_file = "/etc/ssl/certs/ca-certificates.crt" }:get("_mock/echo")
      assert.are.equal("tls", err.code)
      local _, err2 = client{ url = mock.get().tls_url, ca_file = "/nonexistent/ca.pem" }:get("_mock/echo")
      assert.are.equal("tls", err2.code)
      assert.is_false(err2.retryable)
    end)

    it("checks the host name against the certificate", function()
      local url = mock.get().tls_url:gsub("localhost", "127.0.0.2")
      local _, err = client{ url = url, ca_file = mock.get().cert }:get("_mock/echo")
      assert.truthy(err.code == "tls" or err.code == "connect", err.code)
    end)

    it("ca_file pins the trust store: curl's built-in CApath is cleared, so a system-trusted certificate is refused", function()
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

  describe("retryable", function()
    it("is a boolean on every kind of error", function()
      local c = client()
      local errs = {}
      errs[#errs + 1] = select(2, c:validate_state("not.a.jwt"))
      errs[#errs + 1] = select(2, c:validate_state(nil))
      errs[#errs + 1] = select(2, assert(c:get("_mock/badjson")):json())
      errs[#errs + 1] = select(2, keys.RS256Key("not a key"))
      errs[#errs + 1] = select(2, c:get("_mock/status/404"))
      local p = eternaltwin.poller()
      local t = p:spawn(function() return c:get("_mock/delay", { params = { ms = 2000 } }) end)
      p:step(0.01)
      t:cancel()
      errs[#errs + 1] = select(2, t:wait())
      for _, e in ipairs(errs) do
        assert.are.equal("boolean", type(e.retryable), e.kind)
        assert.is_false(e.retryable, e.kind)
      end
      p:close()
    end)
  end)
end)
