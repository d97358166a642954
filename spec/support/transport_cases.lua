-- SPDX-License-Identifier: MIT
-- The transport contract as data: one table of cases, each a request through the PUBLIC client API
-- (eternaltwin.new, client:request/get/post) and what must come back, whatever the transport
-- (blocking libcurl, the curl-multi poller, nginx cosockets). spec/transport_contract_spec.lua runs
-- every case under every transport; this file also runs inside nginx (spec/support/openresty.lua puts
-- the repository root on lua_package_path), so it needs only eternaltwin and eternaltwin.core.
--
-- A case:
--   name      unique
--   client    client options over BASE (a `timeout` here is the case's own; else a 60 s budget)
--   via       "get", "post" or "request" (default "request", with `method`)
--   method, endpoint, opts   the call: opts as client:request takes them
--   only      { transport = true, ... } when the case holds for some transports only (see DIFFERENCES)
--   expect    status, url, headers (name -> value, or false: absent), body, body_len,
--             json (a subset of the decoded body; false: absent), json_error (a kind),
--             error = { kind, code | code_in = {...}, status_code, url, message (a Lua pattern) },
--             seconds = { min, max }
-- Strings anywhere in a case may hold ${MOCK} and ${TLS} (the mock's base URLs), ${TLSPORT}, and ${KEY} (unique
-- per run and transport, for the mock's per-key flaky counters).
local M = {}

M.TRANSPORTS = { "blocking", "poller", "nginx" }

M.BASE = {
  client_id = "demo@clients", client_secret = "dev_secret",
  redirect_uri = "http://localhost:8000/oauth/callback",
  timeout = 60,   -- the budget of the calls that should succeed: generous for a loaded machine
}

local NOBODY = "00000000-0000-4000-8000-000000000000"

M.CASES = {
  -- Plain exchanges
  { name = "GET 200 with a JSON body, query, headers and token",
    via = "get", endpoint = "_mock/echo",
    opts = { params = { q = "a b", n = 1 }, headers = { ["X-T"] = "1" }, token = "tok" },
    expect = { status = 200, url = "${MOCK}_mock/echo?n=1&q=a+b",
               headers = { ["content-type"] = "application/json; charset=utf-8" },
               json = { method = "GET", path = "/_mock/echo", query = "n=1&q=a+b", body = "",
                        headers = { authorization = "Bearer tok", ["x-t"] = "1", accept = "*/*",
                                    ["user-agent"] = "eternaltwin-lua/0.1.0" } } } },
  { name = "header names lower-cased, repeats joined with ', ', set-cookie with newlines",
    via = "get", endpoint = "_mock/repeat-header",
    expect = { status = 200, headers = { ["x-multi"] = "a, b",
               ["set-cookie"] = "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT\nb=2", ["X-Multi"] = false } } },
  { name = "HEAD: the headers, no body",
    method = "HEAD", endpoint = "_mock/bytes/1000",
    expect = { status = 200, body = "", headers = { ["content-length"] = "1000" } } },
  { name = "POST with a json body",
    via = "post", endpoint = "_mock/echo", opts = { json = { a = 1 } },
    expect = { status = 200, json = { method = "POST", body = '{"a":1}',
               headers = { ["content-type"] = "application/json" } } } },
  { name = "POST with a form (data table)",
    via = "post", endpoint = "_mock/echo", opts = { data = { x = "1 2" } },
    expect = { status = 200, json = { method = "POST", body = "x=1+2",
               headers = { ["content-type"] = "application/x-www-form-urlencoded" } } } },
  { name = "PUT with a raw data string and its own content type",
    method = "put", endpoint = "_mock/echo", opts = { data = "raw", headers = { ["Content-Type"] = "text/plain" } },
    expect = { status = 200, json = { method = "PUT", body = "raw", headers = { ["content-type"] = "text/plain" } } } },
  { name = "POST without a body sends Content-Length 0",
    via = "post", endpoint = "_mock/echo",
    expect = { status = 200, json = { body = "", headers = { ["content-length"] = "0", ["content-type"] = false } } } },
  { name = "headers given by the caller replace User-Agent and Accept",
    via = "get", endpoint = "_mock/echo", opts = { headers = { ["User-Agent"] = "ua/1", Accept = "text/plain" } },
    expect = { status = 200, json = { headers = { ["user-agent"] = "ua/1", accept = "text/plain" } } } },
  { name = "204: an empty body, no error",
    via = "get", endpoint = "_mock/status/204",
    expect = { status = 204, body = "" } },
  { name = "a body that is not JSON: res:json() gives DecodeError",
    via = "get", endpoint = "_mock/badjson",
    expect = { status = 200, json_error = "DecodeError" } },

  -- Status errors
  { name = "404 raises a RequestError, its url without the query",
    via = "get", endpoint = "api/v1/users/" .. NOBODY, opts = { params = { secret = "s3" } },
    expect = { error = { kind = "RequestError", status_code = 404, url = "${MOCK}api/v1/users/" .. NOBODY,
                         message = "^HTTP 404 from GET http://127%.0%.0%.1:%d+/api/v1/users/[-0-9a-f]+: UserNotFound$" } } },
  { name = "404 with raise_on_error = false is a Response",
    via = "get", endpoint = "api/v1/users/" .. NOBODY, opts = { raise_on_error = false },
    expect = { status = 404, json = { error = "UserNotFound" } } },

  -- Redirects
  { name = "a redirect is not followed by default (RequestError 302)",
    via = "get", endpoint = "_mock/redirect", opts = { params = { to = "/_mock/echo" } },
    expect = { error = { kind = "RequestError", status_code = 302, url = "${MOCK}_mock/redirect" } } },
  { name = "a redirect not followed, raise_on_error = false: the 302 itself",
    via = "get", endpoint = "_mock/redirect", opts = { params = { to = "/_mock/echo" }, raise_on_error = false },
    expect = { status = 302, url = "${MOCK}_mock/redirect?to=%2F_mock%2Fecho",
               headers = { location = "/_mock/echo" } } },
  { name = "allow_redirects: followed, same origin keeps Authorization",
    client = { allow_redirects = true },
    via = "get", endpoint = "_mock/redirect", opts = { params = { to = "/_mock/echo" }, token = "tok" },
    expect = { status = 200, url = "${MOCK}_mock/echo",
               json = { method = "GET", headers = { authorization = "Bearer tok" } } } },
  { name = "allow_redirects: POST becomes a GET without body on 302",
    client = { allow_redirects = true },
    via = "post", endpoint = "_mock/redirect", opts = { params = { to = "/_mock/echo", status = 302 }, json = { a = 1 } },
    -- (the POST's Content-Type does not follow onto the bodiless GET)
    expect = { status = 200, url = "${MOCK}_mock/echo", json = { method = "GET", body = "",
               headers = { ["content-type"] = false } } } },
  { name = "allow_redirects: POST becomes a GET without body on 303",
    client = { allow_redirects = true },
    via = "post", endpoint = "_mock/redirect", opts = { params = { to = "/_mock/echo", status = 303 }, data = "d" },
    expect = { status = 200, json = { method = "GET", body = "", headers = { ["content-type"] = false } } } },
  { name = "allow_redirects: 307 keeps the Content-Type with the body",
    client = { allow_redirects = true },
    via = "post", endpoint = "_mock/redirect", opts = { params = { to = "/_mock/echo", status = 307 }, data = { x = "1" } },
    expect = { status = 200, json = { method = "POST", body = "x=1",
               headers = { ["content-type"] = "application/x-www-form-urlencoded" } } } },
  { name = "allow_redirects: 307 keeps the method and the body",
    client = { allow_redirects = true },
    via = "post", endpoint = "_mock/redirect", opts = { params = { to = "/_mock/echo", status = 307 }, json = { a = 1 } },
    expect = { status = 200, json = { method = "POST", body = '{"a":1}' } } },
  { name = "allow_redirects: Authorization dropped on another origin",
    client = { allow_redirects = true },
    via = "get", endpoint = "_mock/redirect", opts = { params = { to = "${TLS}_mock/echo" }, token = "tok" },
    expect = { status = 200, url = "${TLS}_mock/echo", json = { headers = { authorization = false } } } },
  { name = "max_redirects is inclusive: 3 redirects with max_redirects = 3",
    client = { allow_redirects = true, max_redirects = 3 },
    via = "get", endpoint = "_mock/redirect-chain/3",
    expect = { status = 200, url = "${MOCK}_mock/redirect-chain/0", json = { redirects = 0 } } },
  { name = "one redirect more than max_redirects: TransportError redirects",
    client = { allow_redirects = true, max_redirects = 3 },
    via = "get", endpoint = "_mock/redirect-chain/4",
    expect = { error = { kind = "TransportError", code = "redirects" } } },

  -- Transport failures
  { name = "timeout: TransportError timeout, at the timeout and not at the answer (10 s)",
    client = { timeout = 0.5 },
    via = "get", endpoint = "_mock/delay", opts = { params = { ms = 10000 } },
    expect = { error = { kind = "TransportError", code = "timeout", url = "${MOCK}_mock/delay",
                         message = "^GET http://127%.0%.0%.1:%d+/_mock/delay: " },
               seconds = { 0.45, 8 } } },
  { name = "timeout message, libcurl form", only = { blocking = true, poller = true },
    client = { timeout = 0.3 },
    via = "get", endpoint = "_mock/delay", opts = { params = { ms = 10000 } },
    expect = { error = { kind = "TransportError", code = "timeout",
                         message = "^GET http://127%.0%.0%.1:%d+/_mock/delay: "
                           .. "Operation timed out after %d+ milliseconds with 0 bytes received$" } } },
  { name = "timeout message, cosocket form", only = { nginx = true },
    client = { timeout = 0.3 },
    via = "get", endpoint = "_mock/delay", opts = { params = { ms = 10000 } },
    expect = { error = { kind = "TransportError", code = "timeout",
                         message = "^GET http://127%.0%.0%.1:%d+/_mock/delay: timed out after 300 ms$" } } },
  { name = "connection refused: TransportError connect",
    client = { url = "http://127.0.0.1:1/" },
    via = "get", endpoint = "x",
    expect = { error = { kind = "TransportError", code = "connect", url = "http://127.0.0.1:1/x",
                         message = "^GET http://127%.0%.0%.1:1/x: " } } },
  { name = "a connection closed without an answer: empty_reply or reset",
    via = "get", endpoint = "_mock/reset-connection",
    expect = { error = { kind = "TransportError", code_in = { "empty_reply", "reset" } } } },
  { name = "a connection closed mid-body: reset",
    via = "get", endpoint = "_mock/reset-connection", opts = { params = { after = 10 } },
    expect = { error = { kind = "TransportError", code = "reset" } } },

  { name = "TLS: a name the certificate does not cover is TransportError tls",
    client = { url = "https://other.localhost:${TLSPORT}/" },
    via = "get", endpoint = "_mock/echo",
    expect = { error = { kind = "TransportError", code = "tls" } } },
  { name = "TLS: verify_ssl = false accepts it",
    client = { url = "https://other.localhost:${TLSPORT}/", verify_ssl = false },
    via = "get", endpoint = "_mock/echo",
    expect = { status = 200, json = { headers = { host = "other.localhost:${TLSPORT}" } } } },

  -- Bodies
  { name = "max_body_size is inclusive (Content-Length)",
    client = { max_body_size = 1000 },
    via = "get", endpoint = "_mock/bytes/1000",
    expect = { status = 200, body_len = 1000 } },
  { name = "max_body_size is inclusive (chunked)",
    client = { max_body_size = 1000 },
    via = "get", endpoint = "_mock/bytes/1000", opts = { params = { chunked = 1 } },
    expect = { status = 200, body_len = 1000 } },
  { name = "a byte over max_body_size: too_large (Content-Length)",
    client = { max_body_size = 1000 },
    via = "get", endpoint = "_mock/bytes/1001",
    expect = { error = { kind = "TransportError", code = "too_large",
                         message = "response body exceeds max_body_size %(1000 bytes%)$" } } },
  { name = "a byte over max_body_size: too_large (chunked)",
    client = { max_body_size = 1000 },
    via = "get", endpoint = "_mock/bytes/1001", opts = { params = { chunked = 1 } },
    expect = { error = { kind = "TransportError", code = "too_large" } } },
  { name = "response headers over 256 KiB: too_large",
    via = "get", endpoint = "_mock/headers", opts = { params = { n = 3, size = 90000 } },
    expect = { error = { kind = "TransportError", code = "too_large" } } },
  { name = "a chunked body of 300 KB, whole",
    via = "get", endpoint = "_mock/bytes/300000", opts = { params = { chunked = 1 } },
    expect = { status = 200, body_len = 300000, headers = { ["transfer-encoding"] = "chunked" } } },

  -- Retries
  { name = "retries honour Retry-After (1 s) on 503",
    client = { retries = 2 },
    via = "get", endpoint = "_mock/flaky/${KEY}", opts = { params = { fail = 1, retry_after = 1 } },
    expect = { status = 200, json = { attempts = 2 }, seconds = { 0.95, 30 } } },
  { name = "Retry-After capped by retry_max_wait",
    client = { retries = 2, retry_max_wait = 0.05 },
    via = "get", endpoint = "_mock/flaky/${KEY}", opts = { params = { fail = 2, status = 429, retry_after = 3600 } },
    expect = { status = 200, json = { attempts = 3 }, seconds = { 0, 30 } } },
  { name = "retries once a dropped connection",
    client = { retries = 1, retry_max_wait = 0.05 },
    via = "get", endpoint = "_mock/flaky/${KEY}", opts = { params = { fail = 1, status = "reset" } },
    expect = { status = 200, json = { attempts = 2 } } },
  { name = "no retry for a POST",
    client = { retries = 2, retry_max_wait = 0.05 },
    via = "post", endpoint = "_mock/flaky/${KEY}", opts = { params = { fail = 1 } },
    expect = { error = { kind = "RequestError", status_code = 503 } } },
}

-- What the transports do differently today (cases marked with `only`); the spec lists them too.
-- Kinds, codes, status codes, URLs and the "METHOD URL: " prefix of messages agree; the rest of a
-- TransportError's message differs (libcurl's wording against the cosocket transport's):
M.DIFFERENCES = {
  timeout = { libcurl = "Operation timed out after 503 milliseconds with 0 bytes received (time measured)",
              cosocket = "timed out after 500 ms (the limit set)" },
  connect = { libcurl = "Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server",
              cosocket = "cannot connect to 127.0.0.1 port 1: connection refused" },
  empty_reply = { libcurl = "Empty reply from server", cosocket = "empty reply from server" },
  reset = { libcurl = "transfer closed with 999990 bytes remaining to read",
            cosocket = "connection closed before the end of the response" },
  tls = { libcurl = "SSL: no alternative certificate subject name matches target host name 'other.localhost'",
          cosocket = "TLS handshake failed: certificate verification failed" },
}

--- Copies v with ${NAME} replaced from env in every string (keys and values).
function M.subst(v, env)
  if type(v) == "string" then
    return (v:gsub("%${(%u+)}", function(k) return env[k] or error("no ${" .. k .. "}") end))
  elseif type(v) == "table" then
    local t = {}
    for k, x in pairs(v) do t[M.subst(k, env)] = M.subst(x, env) end
    return t
  end
  return v
end

function M.find(name)
  for _, c in ipairs(M.CASES) do if c.name == name then return c end end
  error("no transport case named " .. tostring(name))
end

--- Runs one case with the public client API; returns a plain table (JSON-encodable) of what came back.
--- env: MOCK, TLS, KEY, and `base` (extra client options, such as ca_file for libcurl).
function M.execute(case, env)
  local eternaltwin = require("eternaltwin")
  local core = require("eternaltwin.core")
  case = M.subst(case, env)
  local o = {}
  for k, v in pairs(M.BASE) do o[k] = v end
  o.url = env.MOCK
  for k, v in pairs(env.base or {}) do o[k] = v end
  for k, v in pairs(case.client or {}) do o[k] = v end
  o.state_key = require("eternaltwin.keys").HS256Key("transport contract")
  local c = eternaltwin.new(o)
  local t0 = core.monotime()
  local res, err
  if case.via == "get" then res, err = c:get(case.endpoint, case.opts)
  elseif case.via == "post" then res, err = c:post(case.endpoint, case.opts)
  else res, err = c:request(case.method, case.endpoint, case.opts) end
  local out = { seconds = core.monotime() - t0 }
  if res then
    out.status, out.url, out.body_len = res.status_code, res.url, #res.content
    if #res.content <= 65536 then out.body = res.content end
    out.headers = {}
    for k, v in pairs(res.headers) do out.headers[k] = v end
    local ok, jerr = res:json()
    if ok == nil and jerr then out.json_error = jerr.kind end
  else
    out.error = { kind = err.kind, code = err.code, status_code = err.status_code, url = err.url,
                  message = err.message }
  end
  if c.close then c:close() end
  return out
end

return M
