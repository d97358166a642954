-- SPDX-License-Identifier: MIT
-- Mock-only routes under /_mock/: state control (reset, knobs, clock, stats) and fault injection
-- for the client's reliability specs (echo, delay, status, resets, bad JSON, big bodies, redirects).
local util = require("etwin_mock.util")
local store = require("etwin_mock.store")
local http = require("etwin_mock.http")

local M = {}

local function bad_query()
  http.error(422, "InvalidQuery")
end

function M.ping()
  http.json(200, { instance = store.instance or "", name = "etwin-mock" })
end

function M.reset()
  store.reset()
  http.json(200, { reset = true })
end

function M.get_config()
  http.json(200, store.knobs)
end

function M.put_config()
  local params = http.body_params()
  if not params then
    return http.error(400, "InvalidJson")
  end
  for k, v in pairs(params) do
    local want = store.KNOB_TYPES[k]
    local ok = want == "boolean" and type(v) == "boolean"
      or want == "integer" and type(v) == "number" and v == math.floor(v) and v >= 0 and v <= 1e9
    if not ok then
      return http.error(400, "InvalidConfig")
    end
  end
  for k, v in pairs(params) do
    store.knobs[k] = v
  end
  http.json(200, store.knobs)
end

local function clock_body()
  return { offset = store.offset, time = util.iso_time(store.now()) }
end

function M.get_clock()
  http.json(200, clock_body())
end

function M.put_clock()
  local params = http.body_params()
  local offset = params and params.offset
  if type(offset) ~= "number" or offset ~= offset or math.abs(offset) > 1e10 then
    return http.error(400, "InvalidClock")
  end
  store.offset = offset
  http.json(200, clock_body())
end

function M.stats()
  local s = store.stats
  http.json(200, { requests = s.requests, token_requests = s.token_requests, token_exchanges = s.token_requests,
                   token_grants = s.token_grants,
                   paths = s.paths })
end

function M.echo()
  local headers = {}
  for k, v in pairs(ngx.req.get_headers(1000)) do
    headers[k] = type(v) == "table" and table.concat(v, ", ") or v
  end
  local raw = ngx.var.request_uri
  http.json(200, {
    method = ngx.req.get_method(),
    path = raw:match("^[^?]*"),
    query = ngx.var.args or "",
    args = http.args(),
    headers = headers,
    body = http.body(),
    -- The connection's serial number and its request count: specs check keep-alive with them.
    connection = tonumber(ngx.var.connection),
    connection_requests = tonumber(ngx.var.connection_requests),
  })
end

function M.delay()
  local ms = http.uint(http.arg("ms"))
  if not ms or ms > 600000 then
    return bad_query()
  end
  ngx.sleep(ms / 1000)
  http.json(200, { delayed_ms = ms })
end

function M.status(code)
  code = tonumber(code)
  if not code or code <= 100 or code >= 600 then
    return bad_query()
  end
  local headers
  local retry_after = http.arg("retry_after")
  if retry_after then
    if retry_after:find("[%c]") or #retry_after > 200 then
      return bad_query()
    end
    headers = { ["Retry-After"] = retry_after }
  end
  if code < 200 or code == 204 or code == 304 then
    ngx.status = code
    if headers then ngx.header["Retry-After"] = headers["Retry-After"] end
    return
  end
  http.json(code, { status = code }, headers)
end

function M.reset_connection()
  local after = http.arg("after")
  if not after then
    return ngx.exit(444)
  end
  local n = http.uint(after)
  if not n or n > 999999 then
    return bad_query()
  end
  ngx.status = 200
  ngx.header["Content-Type"] = "application/octet-stream"
  ngx.header["Content-Length"] = 1000000
  if n > 0 then
    ngx.print(string.rep("x", n))
  end
  ngx.flush(true)
  -- Abort: nginx drops the connection (no further bytes, no keep-alive).
  return ngx.exit(444)
end

function M.badjson()
  ngx.status = 200
  ngx.header["Content-Type"] = http.JSON_TYPE
  ngx.print('{"id": "abc",')
end

local MAX_BYTES = 64 * 1024 * 1024
local CHUNK = string.rep("x", 256 * 1024)

function M.bytes(n)
  n = http.uint(n)
  if not n or n > MAX_BYTES then
    return bad_query()
  end
  ngx.status = 200
  ngx.header["Content-Type"] = "application/octet-stream"
  if http.arg("chunked") ~= "1" then
    ngx.header["Content-Length"] = n
  end
  if ngx.req.get_method() == "HEAD" then
    return
  end
  while n > 0 do
    local k = math.min(n, #CHUNK)
    ngx.print(k == #CHUNK and CHUNK or CHUNK:sub(1, k))
    n = n - k
    if n > 0 then
      local ok = ngx.flush(true)
      if not ok then return end  -- client went away
    end
  end
end

local REDIRECT_STATUS = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

function M.redirect()
  local to = http.arg("to")
  local status = tonumber(http.arg("status") or "302")
  if not to or to == "" or to:find("[%c]") or #to > 8000 or not REDIRECT_STATUS[status] then
    return bad_query()
  end
  http.redirect(to, status)
  http.json(status, { location = to })
end

function M.redirect_loop()
  http.redirect("/_mock/redirect-loop", 302)
  http.json(302, { location = "/_mock/redirect-loop" })
end

function M.redirect_chain(n)
  n = http.uint(n)
  if not n or n > 10000 then
    return bad_query()
  end
  if n == 0 then
    return http.json(200, { redirects = 0 })
  end
  local to = "/_mock/redirect-chain/" .. (n - 1)
  http.redirect(to, 302)
  http.json(302, { location = to })
end

function M.headers()
  local n = http.uint(http.arg("n") or "1")
  local size = http.uint(http.arg("size") or "16")
  if not n or not size or n > 10000 or size > 1048576 or n * size > 16 * 1048576 then
    return bad_query()
  end
  local value = string.rep("h", size)
  for i = 1, n do
    ngx.header["X-Big-" .. i] = value
  end
  http.json(200, { headers = n, size = size })
end

function M.repeat_header()
  ngx.header["X-Multi"] = { "a", "b" }
  ngx.header["Set-Cookie"] = { "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT", "b=2" }
  http.json(200, { multi = util.array({ "a", "b" }) })
end

function M.trickle()
  local bytes = http.uint(http.arg("bytes") or "10")
  local interval = http.uint(http.arg("interval_ms") or "100")
  if not bytes or not interval or bytes > 100000 or interval > 60000 then
    return bad_query()
  end
  ngx.status = 200
  ngx.header["Content-Type"] = "application/octet-stream"
  ngx.header["Content-Length"] = bytes
  ngx.send_headers()
  ngx.flush(true)
  for _ = 1, bytes do
    ngx.sleep(interval / 1000)
    ngx.print("x")
    if not ngx.flush(true) then return end
  end
end

-- Fails the first `fail` requests (default 1) made with this key, by `status` (default 503, with
-- `retry_after` as in status/) or a dropped connection (`status=reset`); then 200 with the count.
function M.flaky(key)
  local fail = http.uint(http.arg("fail") or "1")
  local status = http.arg("status") or "503"
  if not fail or fail > 1000 or #key > 64 or not (status == "reset" or status:match("^%d%d%d$")) then
    return bad_query()
  end
  local n = (store.flaky[key] or 0) + 1
  store.flaky[key] = n
  if n <= fail then
    if status == "reset" then
      return ngx.exit(444)
    end
    return M.status(status)
  end
  http.json(200, { key = key, attempts = n })
end

return M
