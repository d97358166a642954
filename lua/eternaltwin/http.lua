-- SPDX-License-Identifier: MIT
--- Internal: requests above the transport seam. Argument checks, endpoint resolution, request
-- building (query, body, headers), the redirect policy, the retries and the code exchange; the
-- exchange itself goes through `runtime.transfer`, which picks the transport. Documented with the
-- module `eternaltwin` (the client's `request`, `get`, `post`, `resolve`, `token`, `refresh`).
-- @module eternaltwin.http
local core = require("eternaltwin.core")
local errors = require("eternaltwin.errors")
local check = require("eternaltwin.check")
local url_mod = require("eternaltwin.url")
local token_mod = require("eternaltwin.token")
local response = require("eternaltwin.response")
local runtime = require("eternaltwin.runtime")
local math_type = require("eternaltwin.compat").math_type

local type, pairs, ipairs, tostring, tonumber, setmetatable, getmetatable, error =
      type, pairs, ipairs, tostring, tonumber, setmetatable, getmetatable, error
local format, concat, sort = string.format, table.concat, table.sort
local argfail, typename, check_client = check.fail, check.typename, check.client
local new_error, safe_url = errors.new, errors.safe_url
local Response, Token = response.Response, token_mod.Token

local M = {}

--- Each client's private record (weak keys): `settings` (its frozen options), `basic` (the
-- Authorization header of the code exchange), `session` (the libcurl easy session, made on first
-- use by the easy transport, never inside nginx). Printing or dumping a client never shows them.
M.private = setmetatable({}, { __mode = "k" })
local private = M.private

------------------------------------------------------------------------------------------------
-- Encoding

--- Standard base64 (for Basic auth), from the C base64url.
function M.b64(s)
  local t = core.b64url_encode(s):gsub("[-_]", { ["-"] = "+", ["_"] = "/" })
  return t .. ("="):rep((4 - #t % 4) % 4)
end

local function scalar(fname, name, v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    if math_type(v) == "integer" then return format("%d", v) end
    if v ~= v or v == math.huge or v == -math.huge then argfail(fname, format("'%s': finite number expected", name), 4) end
    return tostring(v)
  end
  if t == "boolean" then return v and "true" or "false" end
  argfail(fname, format("'%s': string, number or boolean expected, got %s", name, typename(v)), 4)
end

--- Form-encodes a table: keys sorted, array values repeat the key; or an array of {k, v} pairs,
-- kept in order. Raises (blaming the caller's caller) on a value it cannot encode.
function M.form_encode(fname, t)
  local out = {}
  local function add(k, v)
    if type(v) == "table" and v ~= core.null then
      for i = 1, #v do add(k, v[i]) end
    else
      out[#out + 1] = core.form_encode(k) .. "=" .. core.form_encode(scalar(fname, k, v))
    end
  end
  if t[1] ~= nil and type(t[1]) == "table" then
    for i, pair in ipairs(t) do
      if type(pair) ~= "table" or type(pair[1]) ~= "string" then
        argfail(fname, format("pair %d: {name, value} expected", i), 3)
      end
      add(pair[1], pair[2])
    end
  else
    local names = {}
    for k in pairs(t) do
      if type(k) ~= "string" then argfail(fname, "parameter names must be strings", 3) end
      names[#names + 1] = k
    end
    sort(names)
    for _, k in ipairs(names) do add(k, t[k]) end
  end
  return concat(out, "&")
end
local form_encode = M.form_encode

------------------------------------------------------------------------------------------------
-- Checks

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }
local RETRY_CODES = { connect = true, timeout = true, reset = true, empty_reply = true }
local RETRY_STATUS = { [429] = true, [502] = true, [503] = true, [504] = true }
local REQUEST_OPTIONS = { params = true, headers = true, json = true, data = true, token = true,
                          raise_on_error = true }
-- The methods a transport sends; names already in upper case pass without a pattern check.
local METHODS = { GET = true, POST = true, PUT = true, DELETE = true, PATCH = true, HEAD = true,
                  OPTIONS = true }
local NO_OPTIONS = setmetatable({}, { __newindex = function() error("read-only table", 2) end })

--- What no transport may be given, checked once above the seam (the messages of the libcurl
-- session's own checks): an unknown method, a HEAD with a body, a header with CR, LF or NUL.
-- `level` as `error`'s, from the caller of check_request.
function M.check_request(method, body, headers, level)
  level = (level or 1) + 1
  if not METHODS[method] then
    error(format("bad argument #1 to 'request' (invalid option '%s')", tostring(method)), level)
  end
  if body ~= nil and method == "HEAD" then
    error("bad argument #4 to 'request' (a HEAD request has no body)", level)
  end
  if headers then
    for i = 1, #headers do
      if headers[i]:find("[\r\n%z]") then
        error(format("bad argument #3 to 'request' (header injection: header %d contains CR, LF or NUL)", i), level)
      end
    end
  end
end

-- Seconds to wait from a Retry-After value (delta seconds or an HTTP-date, read by libcurl's
-- curl_getdate), or nil.
local http_date = core.http_date
function M.retry_after(v)
  if type(v) ~= "string" then return nil end
  local secs = v:match("^%s*(%d+)%s*$")
  if secs then return tonumber(secs) end
  local at = http_date(v)
  if not at then return nil end
  local wait = at - os.time()
  return wait > 0 and wait or 0
end
local retry_after = M.retry_after

local function backoff(attempt)
  -- Full jitter over an exponential base of 0.25 s.
  local base = 0.25 * 2 ^ attempt
  return base / 2 + math.random() * base / 2
end

local FRAMING = { ["content-length"] = true, ["transfer-encoding"] = true }

local function build_headers(fname, user, token, has_body_type)
  if user == nil and token == nil and not has_body_type then return nil end
  local list, have = {}, {}
  if user ~= nil then
    if type(user) ~= "table" then argfail(fname, "'headers': table expected") end
    local names = {}
    for k in pairs(user) do names[#names + 1] = k end
    sort(names, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(names) do
      local v = user[k]
      if type(k) ~= "string" or not k:match("^[!#$%%&'*+.^_`|~%w-]+$") then
        argfail(fname, format("'headers': bad header name %q", tostring(k)), 3)
      end
      local lk = k:lower()
      -- The body's framing is the client's alone (the request goes out as one well-formed message
      -- on every transport), and one name is one header.
      if FRAMING[lk] then argfail(fname, format("'headers': '%s' is set by the client from the body", k), 3) end
      if have[lk] then argfail(fname, format("'headers': '%s' given twice (names ignore case)", k), 3) end
      v = scalar(fname, k, v)
      if v:find("[\r\n%z]") then argfail(fname, format("'headers': value of '%s' has a line break", k), 3) end
      list[#list + 1] = k .. ": " .. v
      have[lk] = true
    end
  end
  if token ~= nil and not have.authorization then
    local access
    if type(token) == "string" then access = token
    elseif getmetatable(token) == Token or (type(token) == "table" and type(token.access_token) == "string") then
      access = token.access_token
    else
      argfail(fname, "'token': Token or access-token string expected, got " .. typename(token), 3)
    end
    if access:find("[\r\n%z]") then argfail(fname, "'token': has a line break", 3) end
    list[#list + 1] = "Authorization: Bearer " .. access
  end
  if has_body_type and not have["content-type"] then list[#list + 1] = "Content-Type: " .. has_body_type end
  return list
end

------------------------------------------------------------------------------------------------
-- The redirect policy (every transport: none of them follows on its own)

local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }
local headers_table = core.headers_table
local transfer = runtime.transfer

-- Follows the redirect `status, packed` answered to `method url`, as libcurl would: at most
-- max_redirects, 303 turns anything but HEAD into GET, 301/302 turn POST into GET, Authorization
-- and Cookie never go to another origin, only http(s). Returns what a transport returns.
local function follow(conn, method, url, headers, body, flags, status, packed, content)
  local max = conn.settings.max_redirects
  local first_method, first_url, n = method, url, 0
  while true do
    local loc = headers_table(packed).location
    if not loc then return status, packed, content, url end
    if n >= max then
      return nil, "redirects", format("%s %s: Maximum (%d) redirects followed", first_method, safe_url(first_url), max)
    end
    local nxt = url_mod.resolve(url, loc)
    if not nxt then
      return nil, "url", format("%s %s: redirect to an unsupported scheme", method, safe_url(url))
    end
    local to_get = (status == 303 and method ~= "HEAD") or ((status == 301 or status == 302) and method == "POST")
    if to_get then method, body = "GET", nil end
    local cross = not url_mod.same_origin(url, nxt)
    if headers and (cross or to_get) then
      -- Another origin never gets the caller's credentials; a request turned into a bodiless GET
      -- no longer describes a body.
      local kept = {}
      for i = 1, #headers do
        local name = headers[i]:match("^([^:]*)"):lower()
        if not ((cross and (name == "authorization" or name == "cookie")) or (to_get and name == "content-type")) then
          kept[#kept + 1] = headers[i]
        end
      end
      headers = kept
    end
    n, url = n + 1, nxt
    local eff
    status, packed, content, eff = transfer(conn, method, url, headers, body, flags)
    if status == nil or not REDIRECT[status] then return status, packed, content, eff or url end
  end
end

--- One exchange through the transport runtime picks, redirects followed when the client allows
-- (never with `flags.redirects == false`): status, packed headers, body, final URL; or nil, code,
-- message.
function M.exchange(conn, method, url, headers, body, flags)
  local status, h, content, eff = transfer(conn, method, url, headers, body, flags)
  if status and REDIRECT[status] and conn.settings.allow_redirects and not (flags and flags.redirects == false) then
    return follow(conn, method, url, headers, body, flags, status, h, content)
  end
  return status, h, content, eff
end

------------------------------------------------------------------------------------------------
-- Sending, with retries

-- Sends one request, with the retries the client allows; returns a Response or nil, err.
function M._send(self, method, url, headers, body, flags, raise_on_error, may_retry)
  local attempt = 0
  local conn = private[self]
  while true do
    local status, h, content, eff = transfer(conn, method, url, headers, body, flags)
    local res, err, wait
    if status == nil then
      err = new_error(errors.TransportError, content or h, { code = h, url = safe_url(url),
        retryable = RETRY_CODES[h] or false })
      if may_retry and RETRY_CODES[h] and attempt < conn.settings.retries then wait = backoff(attempt) end
    else
      if status < 300 then      -- the usual answer: no redirect, no retry, no error to build
        return setmetatable({ status_code = status, _headers = h, content = content, url = eff or url }, Response)
      end
      if REDIRECT[status] and conn.settings.allow_redirects and not (flags and flags.redirects == false) then
        status, h, content, eff = follow(conn, method, url, headers, body, flags, status, h, content)
      end
      if status == nil then
        err = new_error(errors.TransportError, content or h, { code = h, url = safe_url(url),
          retryable = RETRY_CODES[h] or false })
        if may_retry and RETRY_CODES[h] and attempt < conn.settings.retries then wait = backoff(attempt) end
      else
        res = setmetatable({ status_code = status, _headers = h, content = content, url = eff or url }, Response)
        if status < 300 then return res end
        if may_retry and RETRY_STATUS[status] and attempt < conn.settings.retries then
          wait = retry_after(res.headers["retry-after"]) or backoff(attempt)
        end
      end
    end
    if not wait then
      if err then return nil, err end
      if raise_on_error and status >= 300 then return nil, response.request_error(method, res) end
      return res
    end
    local max_wait = conn.settings.retry_max_wait
    if wait > max_wait then wait = max_wait end
    attempt = attempt + 1
    runtime.sleep(wait)
  end
end

------------------------------------------------------------------------------------------------
-- Requests

function M.resolve(self, endpoint)
  check_client(self, "resolve")
  if url_mod.is_http(endpoint) then return endpoint end
  endpoint = endpoint:gsub("^/+", "")
  if endpoint:find(".", 1, true) and url_mod.climbs(endpoint) then
    argfail("request", "endpoint climbs above the base URL ('..' segments)", 3)
  end
  return self.url .. endpoint
end

-- Endpoints already resolved and checked by `request`, so a repeated call skips the pattern
-- work: per client (weak keys), `[1]` their count, emptied when full. (The base URL is fixed at
-- creation: no entry goes stale.)
local RESOLVED_MAX = 256
local resolved = setmetatable({}, { __mode = "k" })

-- The body of request, get and post, tail-called so that argument errors point at the caller and
-- name the function called (`fname`).
local function request(self, fname, method, endpoint, opts)
  if not METHODS[method] then
    if type(method) ~= "string" or not method:match("^%a+$") then argfail(fname, "method name expected") end
    method = method:upper()
  end
  if type(endpoint) ~= "string" then argfail(fname, "endpoint string expected, got " .. typename(endpoint)) end
  if not opts then
    opts = NO_OPTIONS
  else
    if type(opts) ~= "table" then argfail(fname, "options table expected") end
    for k in pairs(opts) do
      if not REQUEST_OPTIONS[k] then argfail(fname, format("unknown option '%s'", tostring(k))) end
    end
  end
  local cache = resolved[self]
  local url = cache and cache[endpoint]
  if not url then
    url = M.resolve(self, endpoint)
    if endpoint:find("[%s%z]") then argfail(fname, "endpoint has spaces or control characters") end
    if not cache or cache[1] >= RESOLVED_MAX then cache = { [1] = 0 }; resolved[self] = cache end
    cache[endpoint], cache[1] = url, cache[1] + 1
  end
  if opts.params ~= nil then
    if type(opts.params) ~= "table" then argfail(fname, "'params': table expected") end
    local q = form_encode(fname, opts.params)
    if q ~= "" then url = url .. (url:find("?", 1, true) and "&" or "?") .. q end
  end
  local body, ctype
  if opts.json ~= nil and opts.data ~= nil then argfail(fname, "give 'json' or 'data', not both") end
  if opts.json ~= nil then
    local msg
    body, msg = core.json_encode(opts.json)
    if not body then argfail(fname, "'json': " .. msg) end
    ctype = "application/json"
  elseif opts.data ~= nil then
    if type(opts.data) == "string" then body = opts.data
    elseif type(opts.data) == "table" then
      body, ctype = form_encode(fname, opts.data), "application/x-www-form-urlencoded"
    else argfail(fname, "'data': string or table expected") end
  end
  local headers = build_headers(fname, opts.headers, opts.token, ctype)
  M.check_request(method, body, nil, 2)
  local raise = opts.raise_on_error
  if raise == nil then raise = true end
  return M._send(self, method, url, headers, body, nil, raise, IDEMPOTENT[method])
end

function M.request(self, method, endpoint, opts)
  check_client(self, "request")
  return request(self, "request", method, endpoint, opts)
end

local send = M._send
function M.get(self, endpoint, opts)
  if type(self) ~= "table" then check_client(self, "get") end
  if opts == nil and type(endpoint) == "string" then
    -- The common call, `get(endpoint)` of an endpoint already resolved: what `request` would do.
    local cache = resolved[self]
    local url = cache and cache[endpoint]
    if url then return send(self, "GET", url, nil, nil, nil, true, true) end
  end
  return request(self, "get", "GET", endpoint, opts)
end

function M.post(self, endpoint, opts)
  check_client(self, "post")
  return request(self, "post", "POST", endpoint, opts)
end

------------------------------------------------------------------------------------------------
-- The code exchange

local GRANT_FLAGS = { fresh = true, redirects = false }
-- Largest token response decoded: a token response is a few hundred bytes.
local MAX_TOKEN_RESPONSE = 64 * 1024

-- POSTs a grant to /oauth/token on a fresh connection, exactly once, and builds the Token.
local function grant(self, body)
  local json = core.json_encode(body)
  local headers = { private[self].basic, "Content-Type: application/json", "Accept: application/json" }
  -- Never redirected: a 3xx is an error, so the code or refresh token goes to the configured
  -- server only, and only its answer becomes the Token.
  local res, err = send(self, "POST", M.resolve(self, "oauth/token"), headers, json, GRANT_FLAGS, true, false)
  if not res then return nil, err end
  if #res.content > MAX_TOKEN_RESPONSE then
    return nil, new_error(errors.DecodeError, format("token response too large (%d bytes, at most %d)",
      #res.content, MAX_TOKEN_RESPONSE), { response = res })
  end
  local t, derr = res:json()
  if not t then return nil, derr end
  if type(t) ~= "table" then
    return nil, new_error(errors.DecodeError, "token response is not a JSON object", { response = res })
  end
  local bad = token_mod.bad_field(t)
  if bad then
    return nil, new_error(errors.DecodeError, format("token response: field '%s' is missing or of the wrong type",
      bad), { response = res })
  end
  return token_mod.make(t)
end
M._grant = grant

function M.token(self, code)
  check_client(self, "token")
  if type(code) ~= "string" or code == "" then argfail("token", "authorization code string expected") end
  return grant(self, { grant_type = "authorization_code", code = code })
end

function M.refresh(self, token)
  check_client(self, "refresh")
  local rt = token
  if type(token) == "table" then rt = token.refresh_token end
  if type(rt) ~= "string" or rt == "" then
    argfail("refresh", "refresh-token string or Token with a refresh_token expected")
  end
  return grant(self, { grant_type = "refresh_token", refresh_token = rt })
end

return M
