-- SPDX-License-Identifier: MIT
--- Sign players in with Eternaltwin (OAuth 2.0) and call its API.
-- The client, its Token and Response objects, state JWTs and the HTTP helpers. HTTP, JSON and
-- cryptography run in C (`eternaltwin.core`: libcurl, cJSON, OpenSSL); this layer shapes the API.
--
-- Module fields: `_VERSION` (`"eternaltwin 0.1.0"`), `null` (JSON null, prints as
-- `eternaltwin.null`), `errors` (`eternaltwin.errors`), `keys` (`eternaltwin.keys`), and, loaded on
-- first use, `connections` (`eternaltwin.connections`) and `User` (`eternaltwin.User`).
--
-- Run-time failures return `nil, err` (an error object of `eternaltwin.errors`); argument mistakes
-- raise. Methods take a colon: `client:get(...)`, `client.users:me(...)`.
-- @module eternaltwin

local core = require("eternaltwin.core")
local errors = require("eternaltwin.errors")
local keys = require("eternaltwin.keys")
local runtime = require("eternaltwin.runtime")

local type, pairs, ipairs, tostring, tonumber, setmetatable, error =
      type, pairs, ipairs, tostring, tonumber, setmetatable, error
local format, concat, sort = string.format, table.concat, table.sort
local math_type = require("eternaltwin.compat").math_type

local M = {
  _VERSION = "eternaltwin 0.1.0",
  null = core.null,
  errors = errors,
  keys = keys,
}

local new_error = errors.new
local builtin_key = keys._builtin

------------------------------------------------------------------------------------------------
-- Argument checking

local function argfail(fname, what, level)
  error(format("bad argument to '%s' (%s)", fname, what), (level or 2) + 1)
end

local function typename(v)
  return v == core.null and "null" or type(v)
end

local Client = {}

-- `client.get(...)` (a dot for a colon) passes no client as `self` (a string, nil...): say how to
-- call it instead of failing further in with "attempt to index a nil value". Any table passes, so
-- a proxy whose __index is a client keeps working where it did.
local function check_client(self, name)
  if type(self) ~= "table" then
    error(format("bad self to '%s' (client expected, got %s: call it as client:%s(...), with a colon)",
      name, typename(self), name), 3)
  end
end

------------------------------------------------------------------------------------------------
-- Encoding helpers
-- Standard base64 (for Basic auth), from the C base64url.
local function b64(s)
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

-- Form-encodes a table: keys sorted, array values repeat the key; or an array of {k, v} pairs,
-- kept in order.
local function form_encode(fname, t)
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

------------------------------------------------------------------------------------------------
--- Token: what client:token and client:refresh give.
-- Fields: `access_token`, `refresh_token` (or nil), `token_type` (`"Bearer"`), `expires_in` (seconds,
-- as the server sent it), `server_expiration` (epoch seconds: the server's own expiry) and
-- `expiration` (`server_expiration` less a 60 s margin, as in Python). `tostring(token)` shows both
-- clocks and never the token itself.
-- @section Token

local Token = {}
Token.__index = Token
Token.__name = "eternaltwin.Token"

-- Shows both clocks: `expires in` counts to `expiration` (the server's expiry less the 60 s margin
-- that has_expired uses, as in Python); `server` counts to the server's own expiry.
function Token.__tostring(t)
  local now = os.time()
  local left, real = t.expiration - now, (t.server_expiration or t.expiration + 60) - now
  local state
  if left > 0 then
    state = format("expires in %d s (server: %d s)", left, real)
  elseif real > 0 then
    state = format("expired (60 s margin; the server accepts it %d s more)", real)
  else
    state = "expired"
  end
  return format("<Token %s %s%s>", t.token_type, state, t.refresh_token and ", refreshable" or "")
end

--- Whether the token has expired, counting a 60 s safety margin as Python does: true from 60 s
-- before the server's expiry (`token.expiration`), so a call started now does not race it. The
-- server's own expiry is `token.server_expiration`; `token:seconds_left()` counts down to it.
-- @treturn boolean
function Token:has_expired()
  return os.time() >= self.expiration
end

--- Seconds until the server's own expiry (`server_expiration`; 0 once passed), margin not counted.
-- @treturn integer
function Token:seconds_left()
  local left = self.server_expiration - os.time()
  return left > 0 and left or 0
end

-- Largest expires_in accepted (ten years): beyond it, or not finite, a server is broken or hostile
-- (an infinite expiration never expires, and a huge one has no integer representation).
local MAX_EXPIRES_IN = 10 * 365 * 24 * 3600

local function check_token_fields(t)
  if type(t.access_token) ~= "string" or t.access_token == "" then return "access_token" end
  local e = t.expires_in
  if type(e) ~= "number" or not (e >= -MAX_EXPIRES_IN and e <= MAX_EXPIRES_IN) then return "expires_in" end
  if type(t.token_type) ~= "string" then return "token_type" end
  if t.refresh_token ~= nil and t.refresh_token ~= core.null and type(t.refresh_token) ~= "string" then
    return "refresh_token"
  end
end

local function make_token(t)
  local server = math.floor(os.time() + t.expires_in)
  return setmetatable({
    access_token = t.access_token,
    refresh_token = t.refresh_token ~= core.null and t.refresh_token or nil,
    token_type = t.token_type,
    expires_in = t.expires_in,
    expiration = server - 60,
    server_expiration = server,
  }, Token)
end

--- Builds a Token from its fields (for instance one kept in a session).
-- `eternaltwin.Token{ access_token = "...", expires_in = 3600, token_type = "Bearer" }`
-- @tparam table t `access_token` (string), `expires_in` (number of seconds from now), `token_type`
-- (string), and optionally `refresh_token` (string); a missing or ill-typed field raises
-- @treturn Token
function M.Token(t)
  if type(t) ~= "table" then argfail("Token", "table expected, got " .. typename(t)) end
  local bad = check_token_fields(t)
  if bad then argfail("Token", format("field '%s' is missing or of the wrong type", bad)) end
  return make_token(t)
end

--- Whether `v` is a Token.
-- @param v any value
-- @treturn boolean
function M.is_token(v) return getmetatable(v) == Token end

------------------------------------------------------------------------------------------------
--- Response: what the HTTP calls and client.users give.
-- Fields: `status_code` (integer), `url` (the final URL), `headers` (a plain table, lower-case
-- names, repeated values joined with `", "`, `set-cookie` with a newline) and `content` (the body,
-- a string). `tostring(res)` is `<Response [200]>`.
-- @section Response

local Response = {}
Response.__name = "eternaltwin.Response"

-- The libcurl transports give the headers packed in one string (`_headers`): most callers never
-- read them, and a table with two strings per header costs more than the rest of the call. The
-- table is built on the first read of `headers`, then kept as a plain field.
local headers_table = core.headers_table
function Response.__index(r, k)
  if k == "headers" then
    local packed = rawget(r, "_headers")
    if packed == nil then return nil end
    local h = headers_table(packed)
    r.headers, r._headers = h, nil
    return h
  end
  return Response[k]
end

function Response.__tostring(r) return format("<Response [%d]>", r.status_code) end

--- Decodes the body as JSON (null becomes `eternaltwin.null`).
-- @return the decoded value (a table for an object or array), or `nil, err` of kind DecodeError
function Response:json()
  local v, msg = core.json_decode(self.content)
  if v == nil then
    return nil, new_error(errors.DecodeError,
      format("response from %s is not valid JSON: %s", errors.safe_url(self.url), msg),
      { response = self })
  end
  return v
end

--- Whether the status is 2xx.
-- @treturn boolean
function Response:ok() return self.status_code >= 200 and self.status_code < 300 end

local function request_error(method, res)
  local detail = ""
  local ct = res.headers["content-type"] or ""
  if ct:find("json", 1, true) and #res.content <= 4096 then
    local body = core.json_decode(res.content)
    if type(body) == "table" and type(body.error) == "string" and body.error:match("^[%w_.%- ]+$")
        and #body.error <= 64 then
      detail = ": " .. body.error
    end
  end
  return new_error(errors.RequestError,
    format("HTTP %d from %s %s%s", res.status_code, method, errors.safe_url(res.url), detail),
    { response = res, status_code = res.status_code, url = errors.safe_url(res.url),
      retryable = res.status_code == 429 or res.status_code == 502 or res.status_code == 503
        or res.status_code == 504 })
end

------------------------------------------------------------------------------------------------
--- Client: one Eternaltwin instance.
-- Fields: `client_id`, `redirect_uri`, `state_key`, `url` (the base URL, ending with `/`), the
-- options below, and `users` (the user endpoints, `eternaltwin.users`). The client secret is not a
-- field, and `tostring(client)` is `<eternaltwin.Client ID URL>`.
-- @section Client

Client.__index = Client
Client.__name = "eternaltwin.Client"

-- Secrets live outside the client table, so printing or dumping a client never shows them.
local secrets = setmetatable({}, { __mode = "k" })

local OPTION_TYPES = {
  client_id = "string", client_secret = "string", redirect_uri = "string", state_key = "key",
  url = "string", scheme = "scheme", host = "string", port = "port", prefix = "string",
  timeout = "posnum", connect_timeout = "posnum", verify_ssl = "boolean", ca_file = "string",
  allow_redirects = "boolean", user_agent = "string", retries = "count", retry_max_wait = "nonneg",
  max_connections = "count", max_body_size = "posint", max_redirects = "count",
  replay_protection = "replay", proxy = "proxy", ticket_key = "key",
}

local DEFAULTS = {
  scheme = "http", prefix = "/", timeout = 5, verify_ssl = true, allow_redirects = false,
  retries = 0, retry_max_wait = 30, max_connections = 0, max_body_size = 16 * 1024 * 1024,
  max_redirects = 10, user_agent = "eternaltwin-lua/0.1.0",
}

local function check_option(name, v)
  local want = OPTION_TYPES[name]
  if want == nil then argfail("eternaltwin.new", format("unknown option '%s'", tostring(name)), 3) end
  local ok
  if want == "key" then ok = keys.is_key(v)
  elseif want == "scheme" then ok = v == "http" or v == "https"
  elseif want == "port" then
    local n = tonumber(v)
    ok = (type(v) == "number" or (type(v) == "string" and v:match("^%d+$"))) and n and n >= 1 and n <= 65535
      and n % 1 == 0
  elseif want == "proxy" then ok = v == false or type(v) == "string"
  elseif want == "replay" then
    ok = type(v) == "boolean" or (math_type(v) == "integer" and v > 0)
  elseif want == "posnum" then ok = type(v) == "number" and v > 0 and v < math.huge
  elseif want == "nonneg" then ok = type(v) == "number" and v >= 0 and v < math.huge
  elseif want == "count" then ok = math_type(v) == "integer" and v >= 0
  elseif want == "posint" then ok = math_type(v) == "integer" and v > 0
  else ok = type(v) == want end
  if not ok then
    local expect = ({ key = "a key (table with algorithm, encode, decode)", scheme = '"http" or "https"',
      port = "port number 1-65535", posnum = "positive number", nonneg = "non-negative number",
      count = "non-negative integer", posint = "positive integer", proxy = "string or false",
      replay = "boolean or positive integer (store size)" })[want] or want
    argfail("eternaltwin.new", format("option '%s': %s expected, got %s", name, expect, typename(v)), 3)
  end
end

local function normalise_url(o)
  if o.url ~= nil and o.host ~= nil then
    argfail("eternaltwin.new", "give either option 'url' or option 'host', not both", 3)
  end
  if o.url ~= nil then
    if not o.url:match("^[hH][tT][tT][pP][sS]?://[^/?#]+") then
      argfail("eternaltwin.new", "option 'url': http:// or https:// URL expected", 3)
    end
    if o.url:find("[%s?#]") then argfail("eternaltwin.new", "option 'url': no spaces, query or fragment", 3) end
    -- Credentials in the URL would reach tostring, the state's `as` claim, the authorization URL
    -- (the browser) and error URLs: refused (the message does not repeat them).
    if o.url:match("^[^:]+://([^/]*)"):find("@", 1, true) then
      argfail("eternaltwin.new", "option 'url': userinfo (user:password@) is not allowed", 3)
    end
    return o.url:sub(-1) == "/" and o.url or o.url .. "/"
  end
  if o.host == nil then argfail("eternaltwin.new", "option 'url' or 'host' is required", 3) end
  if o.host == "" or o.host:find("[%s/?#@]") then argfail("eternaltwin.new", "option 'host': bad host name", 3) end
  local prefix = o.prefix
  if prefix:sub(1, 1) ~= "/" then prefix = "/" .. prefix end
  if prefix:sub(-1) ~= "/" then prefix = prefix .. "/" end
  return format("%s://%s%s%s", o.scheme, o.host, o.port and ":" .. tostring(o.port) or "", prefix)
end

--- Client options, given to `new` (as its last argument, or as its only table with the four
-- first arguments inside). An unknown option, a missing required one, an ill-typed value, or both
-- `url` and `host`, raises an error naming the option.
-- @table options
-- @tfield string client_id the OAuth client id, such as `"myapp@clients"` (required)
-- @tfield string client_secret the OAuth client secret (required; never shown)
-- @tfield string redirect_uri the app's callback URL (required)
-- @tfield key state_key signs and checks states: a key of `eternaltwin.keys`, a KeyRing, or any
-- table with `algorithm`, `encode` and `decode` (required)
-- @tfield string url the base URL of the instance, `"https://eternaltwin.org/"` (or give `host`)
-- @tfield string scheme with `host`: `"http"` (default) or `"https"`
-- @tfield string host with `scheme`, `port`, `prefix`: the base URL in parts
-- @tfield integer port with `host`: the port (default: the scheme's)
-- @tfield string prefix with `host`: the path of the instance (default `"/"`); endpoints resolve
-- under it
-- @tfield number timeout seconds per attempt, fractions allowed (default 5)
-- @tfield number connect_timeout seconds to connect (default: libcurl's)
-- @tfield boolean verify_ssl verify the server's certificate and name (default true)
-- @tfield string ca_file a PEM file of trusted certificates (default: the system store)
-- @tfield boolean allow_redirects follow redirects (default false)
-- @tfield integer max_redirects with `allow_redirects` (default 10)
-- @tfield string user_agent the User-Agent header (default `"eternaltwin-lua/0.1.0"`)
-- @tfield integer retries extra attempts for GET, HEAD, PUT, DELETE, OPTIONS on connect, timeout,
-- reset or empty replies and on 429, 502, 503, 504; never for POST or the code exchange (default 0)
-- @tfield number retry_max_wait longest wait between attempts in seconds (default 30);
-- Retry-After is honoured, else a jittered exponential backoff
-- @tfield integer max_body_size largest response body in bytes, inclusive (default 16 MiB); beyond
-- it, a TransportError `too_large`
-- @tfield integer max_connections bound on the open connections of a poller (default 0: none)
-- @tfield boolean|integer replay_protection true, or a store size (default off): `validate_state`
-- accepts each state once (see `ReplayStore`)
-- @tfield string|boolean proxy nil: the environment's (`http_proxy`, `HTTPS_PROXY`, `ALL_PROXY`,
-- `NO_PROXY`); false: no proxy whatever the environment says; a string: that proxy URL
-- @tfield key ticket_key signs and checks game tickets in place of `state_key` (see
-- `Client:issue_ticket`); states keep `state_key`

--- Creates a client.
-- `eternaltwin.new(client_id, client_secret, redirect_uri, state_key [, opts])` or
-- `eternaltwin.new(opts)` with the four inside `opts`.
-- @tparam string|table client_id the OAuth client id, or every option in one table
-- @tparam[opt] string client_secret the OAuth client secret (never shown)
-- @tparam[opt] string redirect_uri the app's callback URL, as registered with Eternaltwin
-- @tparam[opt] key state_key signs and checks states (see `options`)
-- @tparam[opt] table opts further `options`
-- @treturn Client
-- @raise on a missing, unknown or ill-typed option
function M.new(client_id, client_secret, redirect_uri, state_key, opts)
  local o = {}
  if type(client_id) == "table" and client_secret == nil then
    opts = client_id
  else
    if opts ~= nil and type(opts) ~= "table" then argfail("eternaltwin.new", "options table expected as #5") end
    o.client_id, o.client_secret, o.redirect_uri, o.state_key = client_id, client_secret, redirect_uri, state_key
  end
  for k, v in pairs(opts or {}) do
    if o[k] ~= nil then argfail("eternaltwin.new", format("option '%s' given twice", tostring(k))) end
    o[k] = v
  end
  for _, req in ipairs({ "client_id", "client_secret", "redirect_uri", "state_key" }) do
    if o[req] == nil then argfail("eternaltwin.new", format("option '%s' is required", req)) end
  end
  for k, v in pairs(o) do check_option(k, v) end
  for k, v in pairs(DEFAULTS) do if o[k] == nil then o[k] = v end end

  local self = setmetatable({
    client_id = o.client_id,
    redirect_uri = o.redirect_uri,
    state_key = o.state_key,
    ticket_key = o.ticket_key,
    url = normalise_url(o),
    timeout = o.timeout,
    connect_timeout = o.connect_timeout,
    verify_ssl = o.verify_ssl,
    ca_file = o.ca_file,
    allow_redirects = o.allow_redirects,
    max_redirects = o.max_redirects,
    user_agent = o.user_agent,
    retries = o.retries,
    retry_max_wait = o.retry_max_wait,
    max_connections = o.max_connections,
    max_body_size = o.max_body_size,
    proxy = o.proxy,
  }, Client)
  if o.replay_protection then
    self.replay_store = M.ReplayStore(o.replay_protection == true and 100000 or o.replay_protection)
  end
  secrets[self] = { basic = "Authorization: Basic " .. b64(o.client_id .. ":" .. o.client_secret) }
  self.users = require("eternaltwin.users").new(self)
  return self
end

function Client.__tostring(c)
  return format("<eternaltwin.Client %s %s>", c.client_id, c.url)
end

-- The blocking session (one libcurl easy handle: keep-alive), made on first use.
-- Also returns the settings it was made with (the nginx cosocket transport applies them itself).
function Client:_session()
  local s = secrets[self]
  if not s.session then
    s.settings = {
      timeout = self.timeout, connect_timeout = self.connect_timeout, verify_ssl = self.verify_ssl,
      ca_file = self.ca_file, allow_redirects = self.allow_redirects, max_redirects = self.max_redirects,
      user_agent = self.user_agent, max_body_size = self.max_body_size, proxy = self.proxy,
      packed_headers = true, elide_url = true,
    }
    s.session = core.session(s.settings)
  end
  return s.session, s.settings
end

--- Frees the client's connections now (they are also freed when the client is collected).
-- The client stays usable: a later call opens a new connection.
function Client:close()
  check_client(self, "close")
  local s = secrets[self]
  if s and s.session then s.session:close(); s.session = nil end
end
Client.__close = Client.close

-- Does a relative path climb above its base through `..` segments (which curl resolves)?
local function climbs(path)
  local depth = 0
  for seg in (path:match("^[^?#]*") .. "/"):gmatch("([^/]*)/") do
    if seg == ".." then
      depth = depth - 1
      if depth < 0 then return true end
    elseif seg ~= "." and seg ~= "" then
      depth = depth + 1
    end
  end
  return false
end

--- Resolves an endpoint under the base URL; an absolute http(s) URL is used as is. An endpoint
-- whose `..` segments climb above the base URL raises.
-- @tparam string endpoint such as `"api/v1/clock"` (a leading `/` is dropped)
-- @treturn string the URL
function Client:resolve(endpoint)
  check_client(self, "resolve")
  if endpoint:match("^[hH][tT][tT][pP][sS]?://") then return endpoint end
  endpoint = endpoint:gsub("^/+", "")
  if endpoint:find(".", 1, true) and climbs(endpoint) then
    argfail("request", "endpoint climbs above the base URL ('..' segments)", 3)
  end
  return self.url .. endpoint
end

-- Endpoints already resolved and checked by `request`, so a repeated call skips the pattern
-- work: per client (weak keys), `[0]` the base URL they were resolved under, `[1]` their count,
-- emptied when full.
local RESOLVED_MAX = 256
local resolved = setmetatable({}, { __mode = "k" })

------------------------------------------------------------------------------------------------
--- OAuth and state.
-- A state is a JWT signed with the client's `state_key` (claims `a`, `as`, `iat`, `rfp`, `exp`,
-- `nonce`), kept in the player's session and checked on the callback before the code is exchanged.
-- @section oauth

--- The URL to send the player's browser to, with the same query as Python's client.
-- @tparam string state a state from `generate_state`
-- @tparam[opt="base"] string scope the OAuth scope asked for
-- @treturn string `<base>oauth/authorize?response_type=code&...`
function Client:authorization_url(state, scope)
  check_client(self, "authorization_url")
  if type(state) ~= "string" then argfail("authorization_url", "state string expected, got " .. typename(state)) end
  if scope ~= nil and type(scope) ~= "string" then argfail("authorization_url", "scope string expected") end
  return self:resolve("oauth/authorize") .. "?" .. form_encode("authorization_url", {
    { "response_type", "code" }, { "access_type", "offline" }, { "client_id", self.client_id },
    { "scope", scope or "base" }, { "state", state }, { "redirect_uri", self.redirect_uri },
  })
end

-- Signs claims with a state or ticket key: a JWT, or `nil, err` (KeyError).
local function sign_claims(key, claims)
  local ckey, kid = builtin_key(key)
  if ckey then
    -- A built-in key: the C key directly (what Key:encode does, without the protected call).
    local tok, msg = ckey:encode(claims, kid)
    if not tok then return nil, new_error(errors.KeyError, "cannot sign: " .. msg) end
    return tok
  end
  return keys._call(errors.KeyError, key, "encode", claims)
end

--- A new signed state.
-- @tparam[opt=600] number expiration seconds the state stays valid
-- @tparam[opt] string nonce (default: 128 random hex characters)
-- @treturn string the JWT, or `nil, err` (KeyError) when the key cannot sign
function Client:generate_state(expiration, nonce)
  check_client(self, "generate_state")
  if expiration ~= nil and (type(expiration) ~= "number" or not (expiration > -math.huge and expiration < math.huge)) then
    argfail("generate_state", "expiration: number of seconds expected")
  end
  if nonce ~= nil and type(nonce) ~= "string" then argfail("generate_state", "nonce: string expected") end
  if nonce == nil then
    local msg
    nonce, msg = core.random_hex(64)
    if not nonce then return nil, new_error(errors.KeyError, "cannot make a nonce: " .. msg) end
  end
  local now = os.time()
  local claims = { a = "authorize", as = self.url, iat = now, rfp = now, exp = now + (expiration or 600),
                   nonce = nonce }
  return sign_claims(self.state_key, claims)
end

------------------------------------------------------------------------------------------------
-- Replay store: remembers accepted states' nonces until they expire, so a state passes once.

local ReplayStore = {}
ReplayStore.__index = ReplayStore
ReplayStore.__name = "eternaltwin.ReplayStore"

--- An in-process store of the nonces of accepted states, bounded, to accept each state once.
-- When full of live entries, the entry closest to expiry is forgotten first. Give it as
-- `validate_state(state, expected, { once = store })`, or use the client option `replay_protection`.
-- Every check costs O(log n): a binary min-heap of expiries (`heap`: nonces, `exps`: their
-- expiries, `pos`: nonce -> heap index) beside the map `seen` (nonce -> expiry).
-- @tparam[opt=100000] integer max_entries the most nonces remembered at once
-- @treturn ReplayStore
function M.ReplayStore(max_entries)
  if max_entries ~= nil and (math_type(max_entries) ~= "integer" or max_entries < 1) then
    argfail("ReplayStore", "max_entries: positive integer expected")
  end
  return setmetatable({ seen = {}, count = 0, max = max_entries or 100000, heap = {}, exps = {}, pos = {} },
    ReplayStore)
end

function ReplayStore.__tostring(r) return format("<eternaltwin.ReplayStore %d/%d>", r.count, r.max) end

local function heap_swap(r, i, j)
  local h, e, pos = r.heap, r.exps, r.pos
  h[i], h[j], e[i], e[j] = h[j], h[i], e[j], e[i]
  pos[h[i]], pos[h[j]] = i, j
end

local function heap_up(r, i)
  local e = r.exps
  while i > 1 do
    local p = (i - i % 2) / 2
    if e[p] <= e[i] then break end
    heap_swap(r, i, p)
    i = p
  end
end

local function heap_down(r, i)
  local e, n = r.exps, r.count
  while true do
    local l = 2 * i
    if l > n then break end
    local c = (l < n and e[l + 1] < e[l]) and l + 1 or l
    if e[i] <= e[c] then break end
    heap_swap(r, i, c)
    i = c
  end
end

-- Removes the entry at heap index i.
local function heap_remove(r, i)
  local n = r.count
  local nonce = r.heap[i]
  if i ~= n then heap_swap(r, i, n) end
  r.heap[n], r.exps[n] = nil, nil
  r.pos[nonce], r.seen[nonce] = nil, nil
  r.count = n - 1
  if i < n then heap_up(r, i); heap_down(r, i) end
end

-- Drops expired entries (soonest first); if still full, the one expiring soonest.
function ReplayStore:_make_room(now)
  while self.count > 0 and self.exps[1] < now do heap_remove(self, 1) end
  if self.count >= self.max then heap_remove(self, 1) end
end

--- Records `nonce` (valid until `exp`); false if it was already recorded and has not expired.
-- @tparam string nonce the state's nonce claim
-- @tparam number exp epoch seconds until which it is remembered
-- @tparam[opt] number now epoch seconds (default `os.time()`)
-- @treturn boolean true if it was new
function ReplayStore:check_and_add(nonce, exp, now)
  now = now or os.time()
  local known = self.seen[nonce]
  if known and known >= now then return false end
  if known then
    local i = self.pos[nonce]
    self.seen[nonce], self.exps[i] = exp, exp
    heap_up(self, i)
    heap_down(self, self.pos[nonce])
    return true
  end
  if self.count >= self.max then self:_make_room(now) end
  local n = self.count + 1
  self.count = n
  self.seen[nonce], self.heap[n], self.exps[n], self.pos[nonce] = exp, nonce, exp, n
  heap_up(self, n)
  return true
end

--- Whether `v` can serve as a replay store (for `validate_state`'s `once` and `redeem_ticket`'s
-- `store`): an object whose `check_and_add(nonce, exp [, now])` remembers `nonce` until `exp` (epoch
-- seconds) and returns true the first time, false while it remembers it, or `nil, message` when it
-- cannot tell (the check then fails closed).
-- @param v any value
-- @treturn boolean whether it has a `check_and_add` method
function M.is_replay_store(v)
  local t = type(v)
  if t ~= "table" and t ~= "userdata" then return false end
  local ok, f = pcall(function() return v.check_and_add end)
  return ok and type(f) == "function"
end

-- Uses up a nonce: true, or nil and why not ("already used", or the store's failure).
local function use_nonce(store, nonce, exp, now)
  local ok, msg
  if getmetatable(store) == ReplayStore then
    ok = store:check_and_add(nonce, exp, now)
  else
    local called
    called, ok, msg = pcall(store.check_and_add, store, nonce, exp, now)
    if not called then ok, msg = nil, ok end
  end
  if ok then return true end
  if ok == false then return nil, "already used" end
  return nil, "replay store failed: " .. tostring(msg or "no answer")
end

-- A replay store in an nginx shared dict (`lua_shared_dict`): every worker sees every nonce.
local SharedReplayStore = {}
SharedReplayStore.__index = SharedReplayStore
SharedReplayStore.__name = "eternaltwin.SharedReplayStore"

--- A replay store in an nginx shared dict (`lua_shared_dict`), for use inside nginx: every worker
-- sees every nonce. Entries go in with `safe_add` and a TTL of the ticket's (or state's) remaining
-- life, so a full dict never evicts a live nonce: the check fails closed instead.
-- @tparam string|table dict an `ngx.shared` dict, or the name of one
-- @tparam[opt="eternaltwin:nonce:"] string prefix put before each nonce to make its key
-- @treturn SharedReplayStore a store for `redeem_ticket`'s `store` or `validate_state`'s `once`
function M.SharedReplayStore(dict, prefix)
  if type(dict) == "string" then
    local name = dict
    local ngx = rawget(_G, "ngx")
    local shared = type(ngx) == "table" and ngx.shared
    dict = shared and shared[name]
    if not dict then argfail("SharedReplayStore", format("no lua_shared_dict named '%s'", name)) end
  end
  local t = type(dict)
  if (t ~= "table" and t ~= "userdata") or not pcall(function() return dict.safe_add end)
     or dict.safe_add == nil then
    argfail("SharedReplayStore", "ngx.shared dict or its name expected, got " .. typename(dict))
  end
  if prefix ~= nil and type(prefix) ~= "string" then argfail("SharedReplayStore", "prefix: string expected") end
  return setmetatable({ dict = dict, prefix = prefix or "eternaltwin:nonce:" }, SharedReplayStore)
end

function SharedReplayStore.__tostring(s) return format("<eternaltwin.SharedReplayStore %s>", s.prefix) end

--- Records `nonce` until `exp`, unless the dict already holds it.
-- @tparam string nonce the nonce claim
-- @tparam number exp epoch seconds until which it is remembered
-- @tparam[opt] number now epoch seconds (default `os.time()`)
-- @treturn boolean true if it was new, false if it is known; or `nil, message` when the dict
-- refused the entry (full)
function SharedReplayStore:check_and_add(nonce, exp, now)
  local ttl = exp - (now or os.time()) + 1
  if ttl < 1 then ttl = 1 end
  local ok, err = self.dict:safe_add(self.prefix .. nonce, exp, ttl)
  if ok then return true end
  if err == "exists" then return false end
  return nil, err or "the shared dict refused the entry"
end

-- The store `opts.once = true` uses on a client made without replay_protection.
function Client:_default_replay_store()
  if not self.replay_store then self.replay_store = M.ReplayStore() end
  return self.replay_store
end

local function invalid(msg, claims)
  return nil, new_error(errors.InvalidStateError, msg, { state = claims })
end

--- Checks a state received on the callback: signature, `alg`, claims, expiry, and the expected state.
-- @tparam string state the callback's `state` (nil gives an InvalidStateError, for a callback
-- without one)
-- @tparam[opt] string expected the state kept in the player's session (compared in constant time)
-- @tparam[opt] table opts `leeway` (seconds of clock skew tolerated, default 0), `once` (true: use
-- the client's replay store; false: none; or a `ReplayStore`)
-- @treturn table the claims (a plain table), or `nil, err` of kind InvalidStateError (`err.state`:
-- the claims when the signature held)
function Client:validate_state(state, expected, opts)
  check_client(self, "validate_state")
  if state == nil then return invalid("invalid state: no state given") end
  if type(state) ~= "string" then argfail("validate_state", "state string expected, got " .. typename(state)) end
  if expected ~= nil and type(expected) ~= "string" then
    argfail("validate_state", "expected state string expected, got " .. typename(expected))
  end
  local leeway = 0
  if opts ~= nil then
    if type(opts) ~= "table" then argfail("validate_state", "options table expected") end
    for k in pairs(opts) do
      if k ~= "leeway" and k ~= "once" then argfail("validate_state", format("unknown option '%s'", tostring(k))) end
    end
    if opts.once ~= nil and type(opts.once) ~= "boolean" and not M.is_replay_store(opts.once) then
      argfail("validate_state", "once: boolean or replay store expected")
    end
    if opts.leeway ~= nil then
      local l = opts.leeway
      if type(l) ~= "number" or not (l >= 0 and l < math.huge) then
        argfail("validate_state", "leeway: finite non-negative number of seconds expected")
      end
      leeway = opts.leeway
    end
  end
  local key, claims = self.state_key
  local ckey = builtin_key(key)
  local now = os.time()
  if ckey then
    -- A built-in key: decode and the claim checks below, in C (same checks, same messages).
    local msg, signed
    claims, msg, signed = ckey:state_claims(state, self.url, now, leeway)
    if not claims then return invalid(msg, signed) end
  else
    local err
    claims, err = keys._call(errors.InvalidStateError, key, "decode", state)
    if not claims then return nil, err end
    if type(claims) ~= "table" then return invalid("invalid state: key returned no claims") end
    local bad = core.state_check(claims, self.url, now, leeway)   -- key:state_claims' own checks
    if bad then return invalid(bad, claims) end
  end
  if expected ~= nil and not core.consttime_equal(state, expected) then
    return invalid("invalid state: does not match the expected state", claims)
  end
  local store = self.replay_store
  if opts and opts.once ~= nil then
    if opts.once == true then
      store = store or self:_default_replay_store()
    elseif opts.once == false then
      store = nil
    else
      store = opts.once
    end
  end
  if store then
    local ok, why = use_nonce(store, claims.nonce, claims.exp + leeway, now)
    if not ok then return invalid("invalid state: " .. why, claims) end
  end
  return claims
end

------------------------------------------------------------------------------------------------
-- Game tickets: a signed-in player handed from the web to a game server.
-- @section tickets

local TICKET_MAX_TTL = 600        -- seconds, on both sides
local TICKET_MAX_LEN = 8192       -- bytes of a ticket redeem reads at all (the JWT bound of the core)
local TICKET_MAX_DATA = 4096      -- bytes of `data` as JSON
local TICKET_MAX_ID = 256         -- bytes of a user id or an audience
local TICKET_ORDER = { "a", "sub", "aud", "iat", "exp", "nonce" }
local TICKET_TYPES = { a = "string", sub = "string", aud = "string", iat = "number", exp = "number",
                       nonce = "string" }
local ISSUE_OPTIONS = { audience = true, ttl = true, data = true }
local REDEEM_OPTIONS = { audience = true, store = true, leeway = true }

local function refuse(msg, claims)
  return nil, new_error(errors.InvalidTicketError, "invalid ticket: " .. msg, { ticket = claims })
end

-- The options table both sides take; returns the audience.
local function ticket_audience(fname, opts, allowed)
  if type(opts) ~= "table" then argfail(fname, "options table with 'audience' expected, got " .. typename(opts), 3) end
  for k in pairs(opts) do
    if not allowed[k] then argfail(fname, format("unknown option '%s'", tostring(k)), 3) end
  end
  local aud = opts.audience
  if type(aud) ~= "string" or aud == "" or #aud > TICKET_MAX_ID then
    argfail(fname, format("'audience': string of 1 to %d bytes expected, got %s", TICKET_MAX_ID, typename(aud)), 3)
  end
  return aud
end

--- A short-lived, single-use ticket that hands a signed-in player to a game server.
-- Signed with the `ticket_key` option (or `state_key`); claims `a = "ticket"`, `sub`, `aud`, `iat`,
-- `exp`, `nonce` (32 random hex characters) and `data` when given. Makes no request to Eternaltwin.
-- Raises on argument mistakes (see the README, "Game servers").
-- @tparam string user_id the player's Eternaltwin user id (1 to 256 bytes)
-- @tparam table opts `audience` (required: the game server it is for, 1 to 256 bytes), `ttl`
-- (whole seconds, 1 to 600, default 60), `data` (a table, at most 4096 bytes as JSON, such as
-- `{ display_name = .. }`; signed, not encrypted)
-- @treturn string the ticket (a JWT), or `nil, err` (KeyError) when the key cannot sign
function Client:issue_ticket(user_id, opts)
  check_client(self, "issue_ticket")
  if type(user_id) ~= "string" or user_id == "" or #user_id > TICKET_MAX_ID then
    argfail("issue_ticket", format("user id: string of 1 to %d bytes expected, got %s", TICKET_MAX_ID, typename(user_id)))
  end
  local audience = ticket_audience("issue_ticket", opts, ISSUE_OPTIONS)
  local ttl = opts.ttl
  if ttl == nil then
    ttl = 60
  elseif math_type(ttl) ~= "integer" or ttl < 1 or ttl > TICKET_MAX_TTL then
    argfail("issue_ticket", format("'ttl': whole seconds from 1 to %d expected", TICKET_MAX_TTL))
  end
  local data = opts.data
  if data ~= nil then
    if type(data) ~= "table" then argfail("issue_ticket", "'data': table expected, got " .. typename(data)) end
    local json, msg = core.json_encode(data)
    if not json then argfail("issue_ticket", "'data': " .. msg) end
    if #json > TICKET_MAX_DATA then
      argfail("issue_ticket", format("'data': %d bytes of JSON, at most %d allowed", #json, TICKET_MAX_DATA))
    end
  end
  local nonce, msg = core.random_hex(16)
  if not nonce then return nil, new_error(errors.KeyError, "cannot make a nonce: " .. msg) end
  local now = os.time()
  local claims = { a = "ticket", sub = user_id, aud = audience, iat = now, exp = now + ttl, nonce = nonce,
                   data = data }
  return sign_claims(self.ticket_key or self.state_key, claims)
end

-- The store redeem_ticket uses without `store`: the client's own, made on first use.
function Client:_ticket_store()
  local s = self.ticket_store
  if not s then s = M.ReplayStore(); self.ticket_store = s end
  return s
end

--- Redeems a ticket, once, on the game server.
-- Checks, in this order: size, signature and algorithm, that it is a ticket (not a state), the
-- claims' presence and types, the audience, `iat`, `exp` and the lifetime (at most 600 s), then
-- uses it up in the replay store. A ticket that fails a check is not used up.
-- @tparam string ticket what the game client sent (nil gives an InvalidTicketError)
-- @tparam table opts `audience` (required: this game server's), `store` (a replay store, see
-- `is_replay_store`; default the client's own), `leeway` (seconds of clock skew, default 0)
-- @treturn table the claims (`sub` the user id, `data`...), or `nil, err` of kind
-- InvalidTicketError (`err.ticket`: the claims when the signature held)
function Client:redeem_ticket(ticket, opts)
  check_client(self, "redeem_ticket")
  local audience = ticket_audience("redeem_ticket", opts, REDEEM_OPTIONS)
  local store, leeway = opts.store, opts.leeway
  if store ~= nil and not M.is_replay_store(store) then
    argfail("redeem_ticket", "'store': replay store expected (an object with check_and_add)")
  end
  if leeway == nil then
    leeway = 0
  elseif type(leeway) ~= "number" or not (leeway >= 0 and leeway < math.huge) then
    argfail("redeem_ticket", "'leeway': non-negative finite number of seconds expected")
  end
  if ticket == nil then return refuse("no ticket given") end
  if type(ticket) ~= "string" then argfail("redeem_ticket", "ticket string expected, got " .. typename(ticket)) end
  if #ticket > TICKET_MAX_LEN then return refuse(format("longer than %d bytes", TICKET_MAX_LEN)) end
  local key, claims = self.ticket_key or self.state_key
  local ckey = builtin_key(key)
  if ckey then
    local msg
    claims, msg = ckey:claims(ticket)
    if not claims then return refuse(msg) end
  else
    local err
    claims, err = keys._call(errors.InvalidTicketError, key, "decode", ticket)
    if not claims then
      -- Lua keys and key rings speak of states: say ticket.
      local why = tostring(err and err.message or err):gsub("^invalid state: ", ""):gsub("^state key ", "key ")
      return refuse(why)
    end
    if type(claims) ~= "table" then return refuse("key returned no claims") end
  end
  local a, sub, aud, iat, exp, nonce = claims.a, claims.sub, claims.aud, claims.iat, claims.exp, claims.nonce
  -- The common case in one test; any doubt goes through the checks in TICKET_ORDER for the message.
  if not (a == "ticket" and type(sub) == "string" and type(aud) == "string" and type(iat) == "number"
          and iat == iat and type(exp) == "number" and exp == exp and type(nonce) == "string") then
    if a == "authorize" then return refuse("this is a state, not a ticket", claims) end
    for _, name in ipairs(TICKET_ORDER) do
      local v = claims[name]
      if v == nil then return refuse(format("claim '%s' is missing", name), claims) end
      if type(v) ~= TICKET_TYPES[name] or v ~= v then
        return refuse(format("claim '%s' must be a %s", name, TICKET_TYPES[name]), claims)
      end
    end
    return refuse("action is not 'ticket'", claims)
  end
  if sub == "" then return refuse("claim 'sub' is empty", claims) end
  local data = claims.data
  if data ~= nil and type(data) ~= "table" then return refuse("claim 'data' must be a table", claims) end
  if aud ~= audience then return refuse("issued for another audience", claims) end
  local now = os.time()
  if iat > now + leeway then return refuse("issued in the future", claims) end
  if exp + leeway < now then return refuse("expired", claims) end
  if exp - iat > TICKET_MAX_TTL then
    return refuse(format("lifetime over %d seconds", TICKET_MAX_TTL), claims)
  end
  local ok, why = use_nonce(store or self:_ticket_store(), nonce, exp + leeway, now)
  if not ok then return refuse(why, claims) end
  return claims
end

------------------------------------------------------------------------------------------------
--- HTTP.
-- Endpoints resolve under the base URL. A status of 300 or more gives `nil, err` (RequestError,
-- with `err.response`) unless `raise_on_error = false`; no answer gives a TransportError (`err.code`:
-- `timeout`, `connect`, `resolve`, `tls`, `too_large`, `reset`, `empty_reply`, `redirects`, `url`,
-- `interrupted`, `transport`). Inside a poller task the call yields; elsewhere it blocks, and
-- Ctrl-C ends it at once.
-- @section http

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }
local RETRY_CODES = { connect = true, timeout = true, reset = true, empty_reply = true }
local RETRY_STATUS = { [429] = true, [502] = true, [503] = true, [504] = true }
local REQUEST_OPTIONS = { params = true, headers = true, json = true, data = true, token = true,
                          raise_on_error = true }
-- Method names already in upper case (no pattern check, no new string); others are checked.
local UPPER_METHODS = { GET = true, POST = true, PUT = true, DELETE = true, PATCH = true, HEAD = true,
                        OPTIONS = true }
local NO_OPTIONS = setmetatable({}, { __newindex = function() error("read-only table", 2) end })

-- Seconds to wait from a Retry-After value (delta seconds or an HTTP-date, read by libcurl's
-- curl_getdate), or nil.
local http_date = core.http_date
local function retry_after(v)
  if type(v) ~= "string" then return nil end
  local secs = v:match("^%s*(%d+)%s*$")
  if secs then return tonumber(secs) end
  local at = http_date(v)
  if not at then return nil end
  local wait = at - os.time()
  return wait > 0 and wait or 0
end
M._retry_after = retry_after

local function backoff(attempt)
  -- Full jitter over an exponential base of 0.25 s.
  local base = 0.25 * 2 ^ attempt
  return base / 2 + math.random() * base / 2
end

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
      v = scalar(fname, k, v)
      if v:find("[\r\n%z]") then argfail(fname, format("'headers': value of '%s' has a line break", k), 3) end
      list[#list + 1] = k .. ": " .. v
      have[k:lower()] = true
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

-- Sends one request, with the retries the client allows; returns a Response or nil, err.
local transfer = runtime.transfer
function Client:_send(method, url, headers, body, flags, raise_on_error, may_retry)
  local attempt = 0
  local s = secrets[self]
  local session, settings = s and s.session, s and s.settings
  if not session then session, settings = self:_session() end
  while true do
    local status, h, content, eff = transfer(session, method, url, headers, body, flags, settings)
    local res, err, wait
    if status == nil then
      err = new_error(errors.TransportError, content or h, { code = h, url = errors.safe_url(url),
        retryable = RETRY_CODES[h] or false })
      if may_retry and RETRY_CODES[h] and attempt < self.retries then wait = backoff(attempt) end
    else
      -- The libcurl transports' headers come packed (a string, unpacked on first read), the
      -- cosocket transport's as a table.
      if type(h) == "string" then
        res = setmetatable({ status_code = status, _headers = h, content = content, url = eff or url }, Response)
      else
        res = setmetatable({ status_code = status, headers = h, content = content, url = eff or url }, Response)
      end
      if status < 300 then return res end      -- the usual answer: no retry, no error to build
      if may_retry and RETRY_STATUS[status] and attempt < self.retries then
        wait = retry_after(res.headers["retry-after"]) or backoff(attempt)
      end
    end
    if not wait then
      if err then return nil, err end
      if raise_on_error and status >= 300 then return nil, request_error(method, res) end
      return res
    end
    if wait > self.retry_max_wait then wait = self.retry_max_wait end
    attempt = attempt + 1
    runtime.sleep(wait)
  end
end

-- The body of request, get and post, tail-called so that argument errors point at the caller and
-- name the function called (`fname`).
local function request(self, fname, method, endpoint, opts)
  if not UPPER_METHODS[method] then
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
  if cache and cache[0] ~= self.url then cache = nil end      -- the base URL was changed
  local url = cache and cache[endpoint]
  if not url then
    url = self:resolve(endpoint)
    if endpoint:find("[%s%z]") then argfail(fname, "endpoint has spaces or control characters") end
    if not cache or cache[1] >= RESOLVED_MAX then cache = { [0] = self.url, [1] = 0 }; resolved[self] = cache end
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
  local raise = opts.raise_on_error
  if raise == nil then raise = true end
  return self:_send(method, url, headers, body, nil, raise, IDEMPOTENT[method])
end

--- Sends a request.
-- @tparam string method `"GET"`, `"POST"`, `"PUT"`, `"DELETE"`, `"PATCH"`, `"HEAD"` or `"OPTIONS"`
-- (any case)
-- @tparam string endpoint under the base URL (`"api/v1/users"`), or an absolute http(s) URL
-- @tparam[opt] table opts `params` (query: a table, sorted by name, or an array of `{name, value}`;
-- values strings, numbers, booleans, or arrays of them), `headers` (name to value), `json` (a
-- value sent as JSON), `data` (a string body, or a table sent form-encoded), `token` (a Token or an
-- access-token string: `Authorization: Bearer`), `raise_on_error` (default true)
-- @treturn Response or `nil, err`
function Client:request(method, endpoint, opts)
  check_client(self, "request")
  return request(self, "request", method, endpoint, opts)
end

--- GET an endpoint (see `request`).
-- @tparam string endpoint under the base URL, or an absolute http(s) URL
-- @tparam[opt] table opts as for `request`
-- @treturn Response or `nil, err`
function Client:get(endpoint, opts)
  if type(self) ~= "table" then check_client(self, "get") end
  if opts == nil and type(endpoint) == "string" then
    -- The common call, `get(endpoint)` of an endpoint already resolved: what `request` would do.
    local cache = resolved[self]
    local url = cache and cache[0] == self.url and cache[endpoint]
    if url then return self:_send("GET", url, nil, nil, nil, true, true) end
  end
  return request(self, "get", "GET", endpoint, opts)
end

--- POST to an endpoint (see `request`).
-- @tparam string endpoint under the base URL, or an absolute http(s) URL
-- @tparam[opt] table opts as for `request`
-- @treturn Response or `nil, err`
function Client:post(endpoint, opts)
  check_client(self, "post")
  return request(self, "post", "POST", endpoint, opts)
end

local GRANT_FLAGS = { fresh = true, redirects = false }
-- Largest token response decoded: a token response is a few hundred bytes.
local MAX_TOKEN_RESPONSE = 64 * 1024

-- POSTs a grant to /oauth/token on a fresh connection, exactly once, and builds the Token.
function Client:_grant(body)
  local json = core.json_encode(body)
  local headers = { secrets[self].basic, "Content-Type: application/json", "Accept: application/json" }
  -- Never redirected: a 3xx is an error, so the code or refresh token goes to the configured
  -- server only, and only its answer becomes the Token.
  local res, err = self:_send("POST", self:resolve("oauth/token"), headers, json, GRANT_FLAGS, true, false)
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
  local bad = check_token_fields(t)
  if bad then
    return nil, new_error(errors.DecodeError, format("token response: field '%s' is missing or of the wrong type",
      bad), { response = res })
  end
  return make_token(t)
end

--- Exchanges an authorization code for a Token (sent once, on a fresh connection, never retried).
-- @tparam string code the callback's `code`
-- @treturn Token or `nil, err` (RequestError, TransportError, DecodeError)
function Client:token(code)
  check_client(self, "token")
  if type(code) ~= "string" or code == "" then argfail("token", "authorization code string expected") end
  return self:_grant({ grant_type = "authorization_code", code = code })
end

--- Exchanges a refresh token (or a Token holding one) for a new Token, where the server allows it.
-- @tparam Token|string token a Token with a `refresh_token`, or a refresh-token string (else raises)
-- @treturn Token or `nil, err`
function Client:refresh(token)
  check_client(self, "refresh")
  local rt = token
  if type(token) == "table" then rt = token.refresh_token end
  if type(rt) ~= "string" or rt == "" then
    argfail("refresh", "refresh-token string or Token with a refresh_token expected")
  end
  return self:_grant({ grant_type = "refresh_token", refresh_token = rt })
end

--- A poller for async calls (see `eternaltwin.poller`).
-- @tparam[opt] table opts `max_connections` (default 0: no bound)
-- @treturn Poller
function M.poller(opts)
  return require("eternaltwin.poller").new(opts)
end

M.Client = Client
M.Response = Response

-- The high level, loaded on first use: `eternaltwin.connections` (named clients) and
-- `eternaltwin.User` (users as objects).
local LAZY = { connections = "eternaltwin.connections", User = "eternaltwin.user" }

return setmetatable(M, {
  __index = function(t, k)
    local name = LAZY[k]
    if name == nil then return nil end
    local v = require(name)
    rawset(t, k, v)
    return v
  end,
  __tostring = function(t) return "<" .. t._VERSION .. ">" end,
})
