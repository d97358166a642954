-- SPDX-License-Identifier: MIT
--- An Eternaltwin login gate for nginx (OpenResty / libnginx-mod-http-lua).
--
--    -- init_by_lua_block (needs `lua_shared_dict eternaltwin 10m;` in the http block)
--    GATE = require("eternaltwin.gate").new{ client = client, session_secret = "32+ random bytes",
--                                            shared_dict = "eternaltwin" }
--    -- access_by_lua_block of a protected location:   GATE:protect()
--    -- content_by_lua_block of the redirect_uri's location:   GATE:callback()
--    -- content_by_lua_block of the sign-out location:   GATE:logout()
--
-- The session lives in a cookie signed with `session_secret` (HMAC-SHA256 through the C core); it
-- holds the user's id, display name, issue time and expiry, never a token. With `sessions = "server"`
-- the cookie holds only a signed random session id and the record (with the access token sealed,
-- AES-256-GCM) lives in `store` (eternaltwin.gate_session). A sign-in's state is bound to the
-- browser by a signed cookie (one of a few fixed slots) and used once across all workers (and, with
-- a `store`, all nodes), marked only once Eternaltwin has accepted its code. Pages:
-- eternaltwin.gate_pages.
-- @module eternaltwin.gate

local core = require("eternaltwin.core")
local eternaltwin = require("eternaltwin.stores")   -- SharedReplayStore, without loading the client
local pages = require("eternaltwin.gate_pages")
local session = require("eternaltwin.gate_session")
local util = require("eternaltwin.gate_util")
local signin = require("eternaltwin.gate_signin")

local type, tostring, ipairs, pairs, pcall, setmetatable, error =
      type, tostring, ipairs, pairs, pcall, setmetatable, error
local format = string.format
local json_decode = core.json_decode
local local_path, kept_return, valid_id, valid_name, origin_of =
      util.local_path, util.kept_return, util.valid_id, util.valid_name, util.origin_of
local verified, request_cookies, set_cookie =
      util.verified, util.request_cookies, util.set_cookie

-- nginx's API table (nil outside nginx: then `new` raises).
local ngx = rawget(_G, "ngx")

local M = {}

local Gate = {}
Gate.__index = Gate
Gate.__name = "eternaltwin.Gate"

local MIN_SECRET = 32
local SLOTS = signin.SLOTS     -- binding cookies per browser: the latest SLOTS sign-ins can complete
local SIGNIN_BUDGET = 100      -- completed sign-ins per account and `state_ttl` window (single-use marks)
-- Domain separation: what a signature covers starts with the cookie's purpose, its name and the
-- client id (see `tag`), so a cookie is good for one purpose, under one name, at one gate.
local SESSION_TAG = "eternaltwin-gate session v2\0"
local SERVER_TAG = "eternaltwin-gate server-session v1\0"
local BIND_TAG = "eternaltwin-gate sign-in v2\0"
-- A cookie name: the characters of an RFC 6265 token.
local TOKEN_PATTERN = "^[%w!#$%%&'*+%-.^_`|~]+$"

local function argfail(what, level)
  error("bad argument to 'gate.new' (" .. what .. ")", (level or 1) + 2)
end

-- What specs reach (spec/gate_spec.lua).
M._local_path, M._kept_return, M._valid_id, M._valid_name = local_path, kept_return, valid_id, valid_name

local function ngx_api()
  if type(ngx) ~= "table" or type(ngx.shared) ~= "table" then
    error("eternaltwin.gate runs inside nginx's Lua module (ngx is not available)", 3)
  end
  return ngx
end

------------------------------------------------------------------------------------------------
-- Construction
-- @section construction

local KNOWN = { client = true, session_secret = true, shared_dict = true, cookie_name = true,
                session_ttl = true, state_ttl = true, secure = true, after_logout = true,
                ticket_audience = true, ticket_ttl = true, store = true, sessions = true, idle_ttl = true,
                cache_ttl = true, on_signin = true, on_error = true }

local function is_store(v)
  local t = type(v)
  if t ~= "table" and t ~= "userdata" then return false end
  for _, m in ipairs({ "check_and_add", "get", "set", "delete" }) do
    local ok, f = pcall(function() return v[m] end)
    if not ok or type(f) ~= "function" then return false end
  end
  return true
end

--- `gate.new{ client, session_secret [, shared_dict] [, store] [, sessions] [, cookie_name]
-- [, session_ttl] [, idle_ttl] [, cache_ttl] [, state_ttl] [, secure] [, after_logout]
-- [, ticket_audience] [, ticket_ttl] [, on_signin] [, on_error] }`. Raises on a mistake.
-- `secure` (nil: the redirect_uri's scheme decides; `X-Forwarded-Proto` is never trusted) marks
-- every cookie Secure. `cookie_name` defaults to `__Host-eternaltwin` when Secure, `eternaltwin`
-- otherwise (browsers refuse a `__Host-` cookie without Secure). `store` (an object with
-- `check_and_add`, `get`, `set`, `delete`, such as a RedisStore) holds single-use marks, revocation
-- marks and, with `sessions = "server"`, the session records; `shared_dict` is then optional.
-- See the README, "Gate, fourth round".
-- @tparam table opts the options above
-- @treturn Gate
function M.new(opts)
  ngx_api()
  if type(opts) ~= "table" then argfail("options table expected") end
  for k in pairs(opts) do
    if not KNOWN[k] then argfail(format("unknown option '%s'", tostring(k))) end
  end
  local client = opts.client
  if type(client) ~= "table" or type(client.authorization_url) ~= "function"
     or type(client.validate_state) ~= "function" or type(client.token) ~= "function" then
    argfail("'client': an eternaltwin client expected")
  end
  local redirect_uri = client.redirect_uri
  local scheme, cb_path
  if type(redirect_uri) == "string" then
    scheme, cb_path = redirect_uri:match("^(%a[%w+.-]*)://[^/?#]*(/[^?#]*)")
  end
  local origin = origin_of(redirect_uri)
  if not cb_path or not origin then argfail("'client': its redirect_uri has no path") end

  local secrets = opts.session_secret
  if type(secrets) == "string" then secrets = { secrets } end
  if type(secrets) ~= "table" or secrets[1] == nil then
    argfail("'session_secret': string or list of strings expected")
  end
  local keys = {}
  for i, s in ipairs(secrets) do
    if type(s) ~= "string" or #s < MIN_SECRET then
      argfail(format("'session_secret' #%d: at least %d bytes expected", i, MIN_SECRET))
    end
    keys[i] = assert(core.hmac_key("HS256", s))
  end

  local kv = opts.store
  if kv ~= nil and not is_store(kv) then
    argfail("'store': a store with check_and_add, get, set and delete expected (eternaltwin.RedisStore)")
  end
  local dict_name = opts.shared_dict
  local dict
  if dict_name ~= nil or kv == nil then
    if type(dict_name) ~= "string" then argfail("'shared_dict': name of a lua_shared_dict expected") end
    dict = ngx.shared[dict_name]
    if not dict then argfail(format("'shared_dict': no lua_shared_dict named '%s'", dict_name)) end
  end
  local mode = opts.sessions or "cookie"
  if mode ~= "cookie" and mode ~= "server" then argfail("'sessions': \"cookie\" or \"server\" expected") end
  if mode == "server" and kv == nil then argfail("'sessions': \"server\" needs a 'store'") end

  if opts.secure ~= nil and type(opts.secure) ~= "boolean" then argfail("'secure': boolean or nil expected") end
  local secure = opts.secure
  if secure == nil then secure = scheme:lower() == "https" end
  local cookie_name = opts.cookie_name or (secure and "__Host-eternaltwin" or "eternaltwin")
  if type(cookie_name) ~= "string" or not cookie_name:find(TOKEN_PATTERN) or #cookie_name > 64 then
    argfail("'cookie_name': up to 64 characters of a cookie token expected (letters, digits, !#$%&'*+-.^_`|~)")
  end
  local lower = cookie_name:lower()
  if not secure and (lower:sub(1, 7) == "__host-" or lower:sub(1, 9) == "__secure-") then
    argfail("'cookie_name': the __Host- and __Secure- prefixes need Secure cookies (an https redirect_uri"
      .. " or secure = true)")
  end
  local function seconds(name, default, max)
    local v = opts[name]
    if v == nil then return default end
    if type(v) ~= "number" or v % 1 ~= 0 or v < 1 or v > max then
      argfail(format("'%s': whole seconds from 1 to %d expected", name, max))
    end
    return v
  end
  local session_ttl = seconds("session_ttl", 86400, 400 * 86400)
  local state_ttl = seconds("state_ttl", 600, 3600)
  local ticket_ttl = seconds("ticket_ttl", 60, 600)
  local idle_ttl = seconds("idle_ttl", nil, 400 * 86400)
  if idle_ttl and mode ~= "server" then argfail("'idle_ttl': needs sessions = \"server\"") end
  local cache_ttl = opts.cache_ttl
  if cache_ttl == nil then cache_ttl = 1 end
  if type(cache_ttl) ~= "number" or not (cache_ttl >= 0 and cache_ttl <= 60) then
    argfail("'cache_ttl': seconds from 0 to 60 expected")
  end
  for _, hook in ipairs({ "on_signin", "on_error" }) do
    if opts[hook] ~= nil and type(opts[hook]) ~= "function" then argfail(format("'%s': function expected", hook)) end
  end
  local after_logout = opts.after_logout or "/"
  if not local_path(after_logout) then argfail("'after_logout': a path of this site expected (\"/...\")") end
  local audience = opts.ticket_audience
  if audience ~= nil and (type(audience) ~= "string" or audience == "") then
    argfail("'ticket_audience': non-empty string expected")
  end
  if audience ~= nil and client.ticket_key == nil then
    argfail("'ticket_audience': the client has no ticket_key (tickets are never signed with the state key)")
  end

  local client_id = tostring(client.client_id or "")
  local function tag(purpose, name) return purpose .. name .. "\0" .. client_id .. "\0" end
  local slot_names, slot_tags = {}, {}
  for i = 1, SLOTS do
    slot_names[i] = cookie_name .. "_st" .. i
    slot_tags[i] = tag(BIND_TAG, slot_names[i])
  end
  local prefix = "eternaltwin:gate:" .. client_id .. ":"
  -- In a store (which adds its own prefix): "gate:CLIENT_ID:..."
  local key_prefix = "gate:" .. client_id .. ":"
  local touch = 60
  if idle_ttl and idle_ttl / 4 < touch then touch = idle_ttl / 4 end
  return setmetatable({
    client = client,
    shared_dict = dict_name,
    store = kv or eternaltwin.SharedReplayStore(dict, prefix .. "s:"),
    sessions = mode,
    cookie_name = cookie_name,
    callback_path = cb_path,
    origin = origin,
    home = "/",
    session_ttl = session_ttl,
    idle_ttl = idle_ttl,
    cache_ttl = cache_ttl,
    state_ttl = state_ttl,
    secure = secure,
    after_logout = after_logout,
    ticket_audience = audience,
    ticket_ttl = ticket_ttl,
    on_signin = opts.on_signin,
    on_error = opts.on_error,
    _kv = kv,
    _dict = dict,
    _mark_prefix = kv and key_prefix .. "s:" or prefix .. "s:",     -- single-use marks: .. nonce
    _key_prefix = key_prefix,
    _budget_prefix = prefix .. "u:",
    _signin_budget = SIGNIN_BUDGET,
    _keys = keys,
    _token_keys = mode == "server" and session.token_keys(secrets, client_id) or nil,
    _touch = touch,
    _session_tag = tag(mode == "server" and SERVER_TAG or SESSION_TAG, cookie_name),
    _slot_names = slot_names,
    _slot_tags = slot_tags,
    _seen = {},
    _seen_count = 0,
    _by_header = {},
    _by_header_count = 0,
    _cache = {},
    _cache_n = 0,
  }, Gate)
end

function Gate.__tostring(g)
  return format("<eternaltwin.Gate %s %s>", g.client.client_id or "?", g.cookie_name)
end

local no_store = function() pages.no_store(ngx) end
local function page(self, status, reason, o) return pages.page(self, status, reason, o) end
local json_reply = pages.json_reply

-- The page of a store failure: 503, Retry-After, logged (the message is the store's, never a value).
local store_down, STORE_RETRY_AFTER = pages.store_down, pages.STORE_RETRY_AFTER

------------------------------------------------------------------------------------------------
-- Session
-- @section session

-- Session cookies already verified by this worker: value -> { id, name, exp, iat }. A value's
-- validity depends only on the secrets, fixed for the gate's life, so a hit skips the base64, the
-- HMAC and the JSON; the expiry (and, with a store, the revocation mark) is still checked on every
-- request. Only good values are kept; emptied when full (bounded memory).
local SEEN_MAX = 2048

local function session_of(self, value)
  local seen = self._seen
  local s = seen[value]
  if s == nil then
    local payload = verified(self, self._session_tag, value)
    local t
    if payload and self.sessions == "server" then
      if #payload ~= 32 then return nil end
      t = payload
    else
      t = payload and json_decode(payload)
      if type(t) ~= "table" or not valid_id(t.id) or not valid_name(t.name) or type(t.exp) ~= "number" then
        return nil      -- not remembered: bad values cost their check each time, and no memory
      end
      t = { t.id, t.name, t.exp, type(t.iat) == "number" and t.iat or 0 }
    end
    s = t
    if self._seen_count >= SEEN_MAX then
      seen = {}
      self._seen, self._seen_count = seen, 0
    end
    seen[value] = s
    self._seen_count = self._seen_count + 1
  end
  return s
end

-- Cookie headers already read by this worker: header -> the verified sessions its session cookies
-- hold (session_of's values, in order). A pure function of the header (the secrets are fixed), so
-- a hit skips the parse as `_seen` skips the check; only headers holding a good value are kept,
-- short ones only, emptied when full.
local BY_HEADER_MAX, BY_HEADER_BYTES = 1024, 4096

local function sessions_in(self)
  local header = ngx.var.http_cookie
  if type(header) ~= "string" then return nil end
  local list = self._by_header[header]
  if list then return list end
  local values = request_cookies(header)[self.cookie_name]
  if not values then return nil end
  list = {}
  for i = 1, #values do
    local s = session_of(self, values[i])
    if s then list[#list + 1] = s end
  end
  if list[1] and #header <= BY_HEADER_BYTES then
    if self._by_header_count >= BY_HEADER_MAX then self._by_header, self._by_header_count = {}, 0 end
    self._by_header[header] = list
    self._by_header_count = self._by_header_count + 1
  end
  return list
end

-- The live session: user, nil, and in server mode its session id, record and record key; or nil
-- (none); or nil, message (the store failed). The second value is only ever a message.
local function current(self)
  local values = sessions_in(self)
  if not values then return nil end
  local now = ngx.time()
  for i = 1, #values do
    local s = values[i]
    if type(s) == "string" then                              -- server mode: a session id
      local rec, key = session.lookup(self, s)
      if rec == nil then return nil, key end
      if rec then return { id = rec.u, display_name = rec.n, expires = rec.e }, nil, s, rec, key end
    elseif s and s[3] >= now then
      if self._kv then                                       -- cookie mode with a store: revocations
        local mark, err = session.revoked_at(self, s[1])
        if mark == nil then return nil, err end
        if not mark or s[4] > mark then return { id = s[1], display_name = s[2], expires = s[3] } end
      else
        return { id = s[1], display_name = s[2], expires = s[3] }
      end
    end
  end
  return nil
end

--- The session's user (`{ id, display_name, expires }`, also in `ngx.ctx.eternaltwin_user`), or nil
-- without a live session; `nil, message` when the store could not be read. With cookie sessions and
-- no `store`, needs no cosocket (works in the header filter); otherwise it reads the store (cached
-- for `cache_ttl`).
-- @treturn[opt] table the user, or nil (and a message when the store failed)
function Gate:user()
  local user, err = current(self)
  if err then user = nil end
  ngx.ctx.eternaltwin_user = user
  if not user and type(err) == "string" then return nil, err end
  return user
end

--- The signed-in player's access token, an `eternaltwin.Token` (for `client.users:me(token)` and
-- every call that takes a token), or `nil, message` when there is none or it expired. Only with
-- `sessions = "server"`: cookie sessions keep no token.
function Gate:token()
  if self.sessions ~= "server" then
    return nil, "eternaltwin.gate: sessions are cookies (sessions = \"cookie\"), which hold no token;"
      .. " use sessions = \"server\" with a store"
  end
  local user, err, _, rec, key = current(self)
  if not user then return nil, err or "eternaltwin.gate: no session" end
  return session.token(self, rec, key)
end

--- With a valid session: the user `{ id, display_name }` (also in `ngx.ctx.eternaltwin_user`).
-- Without one: a GET or HEAD is sent to Eternaltwin (302), anything else gets a 401; the request
-- ends there. When the store cannot be read: a 503 page with Retry-After.
function Gate:protect()
  local user, err = self:user()
  if user then return user end
  if err then return store_down(self, "session", err, kept_return(ngx.var.request_uri)) end
  return signin.start(self, request_cookies())
end

------------------------------------------------------------------------------------------------
-- Sign-out, revocation and tickets
-- @section other

-- Whether this request comes from a page of this site: the browser's `Sec-Fetch-Site` says
-- same-origin, or (older browsers) its `Origin` is the redirect_uri's origin. Neither: not.
local function same_origin(self)
  local site = ngx.var.http_sec_fetch_site
  if site ~= nil then return site == "same-origin" end
  local origin = ngx.var.http_origin
  return origin ~= nil and origin_of(origin) == self.origin
end

local SIGN_OUT_FORM = '\n<form method="post"><button type="submit" id="sign-out">Sign out</button></form>'

--- Sign-out. A POST from a page of this site (`Sec-Fetch-Site: same-origin`, or an `Origin` equal
-- to the redirect_uri's) clears the session and answers 303 to `after_logout`; with server sessions
-- it deletes the record, so the session ends on every node (a store failure: 503, the cookie kept).
-- A POST from anywhere else gets a 403 page and changes nothing. A GET or HEAD shows a small page
-- with a sign-out button (a form POST to the same URL); other methods get a 405.
function Gate:logout()
  local method = ngx.req.get_method()
  if method == "GET" or method == "HEAD" then
    local user = self:user()
    if user then
      return page(self, 200, "Sign out of this site?", { extra = SIGN_OUT_FORM })
    end
    return page(self, 200, "You are not signed in.",
      { extra = '\n<p><a id="continue" href="' .. pages.html_escape(self.after_logout) .. '">Continue</a></p>' })
  end
  if method ~= "POST" then
    ngx.header["Allow"] = "GET, HEAD, POST"
    return page(self, 405, "Use the sign-out button of this site.", { code = "method" })
  end
  if not same_origin(self) then
    return page(self, 403, "Sign out from this site's own page.", { code = "cross_site", extra = SIGN_OUT_FORM })
  end
  if self.sessions == "server" then
    for _, value in ipairs(request_cookies()[self.cookie_name] or {}) do
      local sid = session_of(self, value)
      if type(sid) == "string" then
        local ok, err = session.delete(self, sid)
        if not ok then return store_down(self, "sign-out", err, ngx.var.request_uri) end
      end
    end
  end
  set_cookie(self, self.cookie_name, "", 0)
  ngx.ctx.eternaltwin_user = nil
  no_store()
  return ngx.redirect(self.after_logout, 303)
end

local function need_store(self, fname, user_id)
  if not self._kv then error("gate:" .. fname .. ": needs the gate's 'store' (gate.new{ store = ... })", 3) end
  if not valid_id(user_id) then error("gate:" .. fname .. ": a user id (a UUID) expected", 3) end
end

--- Ends every session of a user on every node (within `cache_ttl`), in both session modes, and
-- refuses every ticket issued to them before the call (at a redeem given this store as
-- `revocations`). With `{ ban = true }`, new sign-ins of that user are refused (403) until
-- `unban`. Returns true, or `nil, message` when the store failed. Needs `store`.
function Gate:revoke(user_id, opts)
  need_store(self, "revoke", user_id)
  if opts ~= nil and type(opts) ~= "table" then error("gate:revoke: options table expected", 2) end
  return session.revoke(self, user_id, opts and opts.ban)
end

--- Lets a banned user sign in again (their sessions from before the ban stay ended). Returns true,
-- or `nil, message` when the store failed. Needs `store`.
function Gate:unban(user_id)
  need_store(self, "unban", user_id)
  return session.unban(self, user_id)
end

--- A game ticket for the signed-in user, as JSON `{ "ticket": T, "expires_in": N }` (GET or POST),
-- 401 JSON without a session. `opts.audience` / `opts.ttl` override `ticket_audience` / `ticket_ttl`.
-- Signed with the client's `ticket_key`, never its state key (without one, this raises).
-- @tparam[opt] table opts `audience` (default: the gate's `ticket_audience`), `ttl` (seconds, default:
-- `ticket_ttl`)
function Gate:ticket(opts)
  local audience = opts and opts.audience or self.ticket_audience
  local ttl = opts and opts.ttl or self.ticket_ttl
  if type(audience) ~= "string" or audience == "" then
    error("gate:ticket: no audience (give ticket_audience to gate.new or { audience = .. })", 2)
  end
  if self.client.ticket_key == nil then
    error("gate:ticket: the client has no ticket_key (tickets are never signed with the state key)", 2)
  end
  local method = ngx.req.get_method()
  if method ~= "GET" and method ~= "POST" then
    ngx.header["Allow"] = "GET, POST"
    return json_reply(405, { error = "MethodNotAllowed" })
  end
  local user, err = self:user()
  if err then
    ngx.log(ngx.ERR, "eternaltwin.gate: the store failed (ticket): ", tostring(err))
    ngx.header["Retry-After"] = tostring(STORE_RETRY_AFTER)
    return json_reply(503, { error = "StoreUnavailable" })
  end
  if not user then return json_reply(401, { error = "Unauthorized" }) end
  if type(self.client.issue_ticket) ~= "function" then   -- a client from before tickets
    return json_reply(501, { error = "NotImplemented" })
  end
  local ok, ticket, terr = pcall(self.client.issue_ticket, self.client, user.id,
    { audience = audience, ttl = ttl, data = { display_name = user.display_name } })
  if not ok or not ticket then
    ngx.log(ngx.ERR, "eternaltwin.gate: cannot issue a ticket: ", tostring(ok and terr or ticket))
    return json_reply(503, { error = "TicketUnavailable" })
  end
  return json_reply(200, { ticket = ticket, expires_in = ttl })
end

Gate.callback = signin.callback

M.Gate = Gate
return M
