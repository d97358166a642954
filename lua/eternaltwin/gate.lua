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
-- holds the user's id, display name and an expiry, never a token. A sign-in's state is bound to the
-- browser by a signed cookie (one of a few fixed slots) and used once across all workers through the
-- shared dict, marked only once Eternaltwin has accepted its code.
-- @module eternaltwin.gate

local core = require("eternaltwin.core")
local eternaltwin = require("eternaltwin.stores")   -- SharedReplayStore, without loading the client

local type, tostring, ipairs, pairs, pcall, setmetatable, error, tonumber =
      type, tostring, ipairs, pairs, pcall, setmetatable, error, tonumber
local format, concat, byte = string.format, table.concat, string.byte
local b64e, b64d = core.b64url_encode, core.b64url_decode
local json_encode, json_decode = core.json_encode, core.json_decode

-- nginx's API table (nil outside nginx: then `new` raises).
local ngx = rawget(_G, "ngx")

local M = {}

local Gate = {}
Gate.__index = Gate
Gate.__name = "eternaltwin.Gate"

local MIN_SECRET = 32
local MAX_RETURN = 1024        -- bytes of a remembered URL; a longer one comes back to "/"
local MAX_KEPT = 400           -- bytes of it a binding cookie holds: beyond, its path alone, else "/"
local SLOTS = 4                -- binding cookies per browser: the latest SLOTS sign-ins can complete
local NONCE_KEPT = 32          -- hex characters of a state's nonce a binding cookie holds (128 bits)
local SIGNIN_BUDGET = 100      -- completed sign-ins per account and `state_ttl` window (single-use marks)
local MAX_NAME_CHARS = 64      -- a display name: 1 to 64 characters of UTF-8, no control character
-- Domain separation: what a signature covers starts with the cookie's purpose, its name and the
-- client id (see `tag`), so a cookie is good for one purpose, under one name, at one gate.
local SESSION_TAG = "eternaltwin-gate session v2\0"
local BIND_TAG = "eternaltwin-gate sign-in v2\0"
-- A cookie name: the characters of an RFC 6265 token.
local TOKEN_PATTERN = "^[%w!#$%%&'*+%-.^_`|~]+$"

local function argfail(what, level)
  error("bad argument to 'gate.new' (" .. what .. ")", (level or 1) + 2)
end

local function ngx_api()
  if type(ngx) ~= "table" or type(ngx.shared) ~= "table" then
    error("eternaltwin.gate runs inside nginx's Lua module (ngx is not available)", 3)
  end
  return ngx
end

--- Whether `s` is a path of this site: one leading `/`, never `//` or `/\` (which browsers read as
-- another host), no control characters or spaces, at most MAX_RETURN bytes.
local function local_path(s)
  if type(s) ~= "string" or #s > MAX_RETURN or s:sub(1, 1) ~= "/" then return false end
  local second = s:sub(2, 2)
  if second == "/" or second == "\\" then return false end
  if s:find("[%c ]") then return false end
  return true
end
M._local_path = local_path

-- The URL a binding cookie keeps: the request's own when short, else its path alone, else "/".
local function kept_return(uri)
  if not local_path(uri) then return "/" end
  if #uri <= MAX_KEPT then return uri end
  local path = uri:match("^[^?#]*")
  if #path <= MAX_KEPT and local_path(path) then return path end
  return "/"
end
M._kept_return = kept_return

--- Whether `s` is a user id as Eternaltwin writes them: a lower-case hyphenated UUID.
local function valid_id(s)
  return type(s) == "string" and #s == 36
    and s:find("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
    and not s:find("%u")
end
M._valid_id = valid_id

--- Whether `s` is a display name the gate keeps: valid UTF-8, 1 to MAX_NAME_CHARS characters, no
-- C0 or C1 control character, no DEL.
local function valid_name(s)
  if type(s) ~= "string" or s == "" or #s > MAX_NAME_CHARS * 4 then return false end
  local i, n, chars = 1, #s, 0
  while i <= n do
    local c = byte(s, i)
    local len, cp
    if c < 0x80 then
      if c < 0x20 or c == 0x7f then return false end
      len, cp = 1, c
    elseif c >= 0xc2 and c <= 0xdf then len, cp = 2, c - 0xc0
    elseif c >= 0xe0 and c <= 0xef then len, cp = 3, c - 0xe0
    elseif c >= 0xf0 and c <= 0xf4 then len, cp = 4, c - 0xf0
    else return false end
    if i + len - 1 > n then return false end
    for k = i + 1, i + len - 1 do
      local cc = byte(s, k)
      if cc < 0x80 or cc > 0xbf then return false end
      cp = cp * 64 + (cc - 0x80)
    end
    -- Overlong forms, surrogates, beyond U+10FFFF, C1 controls.
    if (len == 3 and cp < 0x800) or (len == 4 and (cp < 0x10000 or cp > 0x10ffff))
       or (cp >= 0xd800 and cp <= 0xdfff) or (cp >= 0x80 and cp <= 0x9f) then
      return false
    end
    chars = chars + 1
    i = i + len
  end
  return chars <= MAX_NAME_CHARS
end
M._valid_name = valid_name

-- "scheme://host[:port]" of an absolute URL, lower case, default port left out; or nil.
local function origin_of(url)
  if type(url) ~= "string" then return nil end
  local scheme, authority = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme or authority == "" or authority:find("@", 1, true) then return nil end
  scheme, authority = scheme:lower(), authority:lower()
  if (scheme == "https" and authority:sub(-4) == ":443") or (scheme == "http" and authority:sub(-3) == ":80") then
    authority = authority:match("^(.*):%d+$")
  end
  return scheme .. "://" .. authority
end

------------------------------------------------------------------------------------------------
-- Construction
-- @section construction

--- `gate.new{ client, session_secret, shared_dict [, cookie_name] [, session_ttl] [, state_ttl]
-- [, secure] [, after_logout] [, ticket_audience] [, ticket_ttl] }`. Raises on a mistake.
-- `secure` (nil: the redirect_uri's scheme decides; `X-Forwarded-Proto` is never trusted) marks
-- every cookie Secure. `cookie_name` defaults to `__Host-eternaltwin` when Secure, `eternaltwin`
-- otherwise (browsers refuse a `__Host-` cookie without Secure).
function M.new(opts)
  ngx_api()
  if type(opts) ~= "table" then argfail("options table expected") end
  local known = { client = true, session_secret = true, shared_dict = true, cookie_name = true,
                  session_ttl = true, state_ttl = true, secure = true, after_logout = true,
                  ticket_audience = true, ticket_ttl = true }
  for k in pairs(opts) do
    if not known[k] then argfail(format("unknown option '%s'", tostring(k))) end
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

  local dict_name = opts.shared_dict
  if type(dict_name) ~= "string" then argfail("'shared_dict': name of a lua_shared_dict expected") end
  local dict = ngx.shared[dict_name]
  if not dict then argfail(format("'shared_dict': no lua_shared_dict named '%s'", dict_name)) end

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
  return setmetatable({
    client = client,
    shared_dict = dict_name,
    store = eternaltwin.SharedReplayStore(dict, prefix .. "s:"),
    cookie_name = cookie_name,
    callback_path = cb_path,
    origin = origin,
    session_ttl = session_ttl,
    state_ttl = state_ttl,
    secure = secure,
    after_logout = after_logout,
    ticket_audience = audience,
    ticket_ttl = ticket_ttl,
    _dict = dict,
    _mark_prefix = prefix .. "s:",      -- the store's keys: prefix .. nonce
    _budget_prefix = prefix .. "u:",
    _signin_budget = SIGNIN_BUDGET,
    _keys = keys,
    _session_tag = tag(SESSION_TAG, cookie_name),
    _slot_names = slot_names,
    _slot_tags = slot_tags,
    _seen = {},
    _seen_count = 0,
  }, Gate)
end

function Gate.__tostring(g)
  return format("<eternaltwin.Gate %s %s>", g.client.client_id or "?", g.cookie_name)
end

------------------------------------------------------------------------------------------------
-- Signed values: b64url(payload) "." b64url(HMAC-SHA256(tag .. payload))
-- @section internals

-- The payload text of a signed value, or nil. Every key is tried (rotation).
local function verified(self, tag, value)
  if type(value) ~= "string" or #value > 4096 then return nil end
  local p, s = value:match("^([%w_-]+)%.([%w_-]+)$")
  if not p then return nil end
  local payload, sig = b64d(p), b64d(s)
  if not payload or not sig then return nil end
  local data = tag .. payload
  local keys = self._keys
  for i = 1, #keys do
    if keys[i]:verify(data, sig) then return payload end   -- CRYPTO_memcmp: constant time
  end
  return nil
end

local function signed_value(self, tag, payload)
  return b64e(payload) .. "." .. b64e(assert(self._keys[1]:sign(tag .. payload)))
end

-- ----------------------------------------------------------------------------------------------
-- Cookies

-- The request's cookies: name -> list of values. Names compare exactly (nginx's $cookie_NAME
-- ignores case, which would let `__host-x` stand in for `__Host-x`); a name sent twice keeps both.
local function request_cookies()
  local jar = {}
  local header = ngx.var.http_cookie
  if type(header) ~= "string" then return jar end
  for pair in header:gmatch("[^;]+") do
    local name, value = pair:match("^%s*([^=%s]+)%s*=%s*(.-)%s*$")
    if name then
      local list = jar[name]
      if not list then list = {} jar[name] = list end
      list[#list + 1] = value
    end
  end
  return jar
end

local function add_set_cookie(value)
  local h = ngx.header["Set-Cookie"]
  if h == nil then
    ngx.header["Set-Cookie"] = value
  elseif type(h) == "table" then
    h[#h + 1] = value
    ngx.header["Set-Cookie"] = h
  else
    ngx.header["Set-Cookie"] = { h, value }
  end
end

-- Every cookie of the gate: Path=/, no Domain (host-only), HttpOnly, SameSite=Lax, Secure when the
-- gate is (which `__Host-` names need).
local function set_cookie(self, name, value, max_age)
  local parts = { name .. "=" .. value, "Path=/" }
  if max_age > 0 then
    parts[#parts + 1] = "Max-Age=" .. format("%d", max_age)
    parts[#parts + 1] = "Expires=" .. ngx.cookie_time(ngx.time() + max_age)
  else
    parts[#parts + 1] = "Max-Age=0"
    parts[#parts + 1] = "Expires=Thu, 01 Jan 1970 00:00:00 GMT"
  end
  parts[#parts + 1] = "HttpOnly"
  parts[#parts + 1] = "SameSite=Lax"
  if self.secure then parts[#parts + 1] = "Secure" end
  add_set_cookie(concat(parts, "; "))
end

local function no_store()
  ngx.header["Cache-Control"] = "no-store"
end

------------------------------------------------------------------------------------------------
-- Pages: a short reason, HTML-escaped; never a secret, never a 500; never framed.

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
local function html_escape(s) return (tostring(s):gsub("[&<>\"']", ESC)) end

local TITLES = { [200] = "Sign out", [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
                 [405] = "Method Not Allowed", [429] = "Too Many Requests", [501] = "Not Implemented",
                 [502] = "Bad Gateway", [503] = "Service Unavailable" }

local function page(status, reason, extra)
  ngx.status = status
  ngx.header["Content-Type"] = "text/html; charset=utf-8"
  ngx.header["X-Frame-Options"] = "DENY"
  ngx.header["Content-Security-Policy"] = "default-src 'none'; form-action 'self'; frame-ancestors 'none'"
  if status == 503 or status == 429 then ngx.header["Retry-After"] = "60" end
  no_store()
  local title = status == 200 and TITLES[200] or format("%d %s", status, TITLES[status] or "Error")
  ngx.print(format('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>%s</title></head>\n'
    .. "<body><h1>%s</h1>\n<p>%s</p>%s</body></html>\n", title, title, html_escape(reason), extra or ""))
  return ngx.exit(ngx.HTTP_OK)
end

local function json_reply(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  no_store()
  ngx.print(json_encode(value))
  return ngx.exit(ngx.HTTP_OK)
end

------------------------------------------------------------------------------------------------
-- Session
-- @section session

-- Session cookies already verified by this worker: value -> { id, name, exp }. A value's validity
-- depends only on the secrets, fixed for the gate's life, so a hit skips the base64, the HMAC and
-- the JSON; the expiry is still checked on every request. Only good values are kept; emptied when
-- full (bounded memory).
local SEEN_MAX = 2048

local function session_of(self, value)
  local seen = self._seen
  local s = seen[value]
  if s == nil then
    local payload = verified(self, self._session_tag, value)
    local t = payload and json_decode(payload)
    if type(t) ~= "table" or not valid_id(t.id) or not valid_name(t.name) or type(t.exp) ~= "number" then
      return nil      -- not remembered: bad values cost their check each time, and no memory
    end
    s = { t.id, t.name, t.exp }
    if self._seen_count >= SEEN_MAX then
      seen = {}
      self._seen, self._seen_count = seen, 0
    end
    seen[value] = s
    self._seen_count = self._seen_count + 1
  end
  return s
end

-- The session's user from the cookie, or nil. Needs no cosocket.
function Gate:user()
  local values = request_cookies()[self.cookie_name]
  local user
  if values then
    local now = ngx.time()
    for i = 1, #values do
      local s = session_of(self, values[i])
      if s and s[3] >= now then
        user = { id = s[1], display_name = s[2], expires = s[3] }
        break
      end
    end
  end
  ngx.ctx.eternaltwin_user = user
  return user
end

------------------------------------------------------------------------------------------------
-- Sign-in
-- @section signin

-- The binding in slot `i` of this browser (`{ n = nonce prefix, r = return URL, e = expiry, s = sequence
-- number }`), or nil.
local function binding_in(self, jar, i, now)
  local values = jar[self._slot_names[i]]
  if not values then return nil end
  for k = 1, #values do
    local payload = verified(self, self._slot_tags[i], values[k])
    local b = payload and json_decode(payload)
    if type(b) == "table" and type(b.n) == "string" and type(b.r) == "string" and type(b.e) == "number"
       and type(b.s) == "number" and b.e >= now then
      return b
    end
  end
  return nil
end

-- Starts a sign-in: a state bound to this browser by a cookie, then 302 to Eternaltwin. The binding
-- goes into one of SLOTS cookies (a free one, else the oldest: each binding is numbered one past the
-- newest the browser sent), so a browser holds at most SLOTS bindings however many sign-ins it starts,
-- and the latest ones complete.
local function start_sign_in(self, jar)
  local method = ngx.req.get_method()
  if method ~= "GET" and method ~= "HEAD" then
    return page(401, "Sign in first.")
  end
  local nonce = core.random_hex(64)
  local ok, state, err = false, nil, "no nonce from the CSPRNG"
  if nonce then ok, state, err = pcall(self.client.generate_state, self.client, self.state_ttl, nonce) end
  if not ok or not state then
    ngx.log(ngx.ERR, "eternaltwin.gate: cannot make a state: ", tostring(ok and err or state))
    return page(503, "Cannot start the sign-in now; try again later.")
  end
  local now = ngx.time()
  local free, oldest, oldest_seq, newest_seq = {}, 1, nil, 0
  for i = 1, SLOTS do
    local b = binding_in(self, jar, i, now)
    if not b then
      free[#free + 1] = i
    else
      if oldest_seq == nil or b.s < oldest_seq then oldest, oldest_seq = i, b.s end
      if b.s > newest_seq then newest_seq = b.s end
    end
  end
  local slot = oldest
  if #free > 0 then
    -- At random among the free ones: two sign-ins started at the same instant (two tabs) seldom
    -- pick the same slot.
    slot = free[(tonumber(core.random_hex(1) or "0", 16) or 0) % #free + 1]
  end
  local payload = json_encode({ n = nonce:sub(1, NONCE_KEPT), r = kept_return(ngx.var.request_uri),
                                e = now + self.state_ttl, s = newest_seq + 1 })
  set_cookie(self, self._slot_names[slot], signed_value(self, self._slot_tags[slot], payload), self.state_ttl)
  no_store()
  return ngx.redirect(self.client:authorization_url(state), 302)
end

--- With a valid session: the user `{ id, display_name }` (also in `ngx.ctx.eternaltwin_user`).
-- Without one: a GET or HEAD is sent to Eternaltwin (302), anything else gets a 401; the request
-- ends there.
function Gate:protect()
  local user = self:user()
  if user then return user end
  return start_sign_in(self, request_cookies())
end

-- First string value of a query argument (a repeated one counts as bad).
local function arg(args, name)
  local v = args[name]
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

-- Counts a completed sign-in against the account's budget: true, false (over budget) or nil, err.
local function within_budget(self, user_id)
  local dict, key = self._dict, self._budget_prefix .. user_id
  local n = dict:incr(key, 1)
  if not n then
    local ok, err = dict:safe_add(key, 1, self.state_ttl)
    if ok then
      n = 1
    elseif err == "exists" then
      n = dict:incr(key, 1) or 1
    else
      return nil, err
    end
  end
  return n <= self._signin_budget
end

--- The redirect_uri's handler: checks the callback, signs the user in, back to the URL first asked.
--
-- Single use: a state is marked used in the shared dict only once Eternaltwin has accepted its code
-- and the user is read, so only completed sign-ins take room there (a junk code or an abandoned
-- sign-in takes none), and at most `SIGNIN_BUDGET` per account and `state_ttl`. The mark is looked
-- up before the code is sent (a replay of a completed sign-in gets 403) and added atomically after
-- (`safe_add`): of two callbacks of one state racing on two workers, only the first to add it gets
-- a session.
function Gate:callback()
  no_store()
  local args = ngx.req.get_uri_args(32)
  local e = args.error
  if e ~= nil then
    local code = type(e) == "string" and e:match("^[%w_.-]+$") and #e <= 64 and e or "error"
    return page(403, "Eternaltwin refused the sign-in (" .. code .. ").")
  end
  local code, state = arg(args, "code"), arg(args, "state")
  if not code or not state then return page(400, "The sign-in callback lacks its code or state.") end
  local ok, claims, err = pcall(self.client.validate_state, self.client, state, nil, { once = false })
  if not ok or not claims then
    local why = ok and tostring(err) or "unreadable"
    return page(400, "Invalid sign-in state: " .. why:gsub("^invalid state: ", "") .. ".")
  end
  local nonce = claims.nonce
  local jar, now = request_cookies(), ngx.time()
  local want = nonce:sub(1, NONCE_KEPT)
  local slot, bind
  for i = 1, SLOTS do
    local b = binding_in(self, jar, i, now)
    if b and #want == NONCE_KEPT and core.consttime_equal(b.n, want) then slot, bind = i, b break end
  end
  if not bind then
    return page(403, "This sign-in was not started in this browser.")
  end
  local store = self.store
  if self._dict:get(self._mark_prefix .. nonce) ~= nil then
    return page(403, "This sign-in link was already used.")
  end

  -- Only now does Eternaltwin see the code.
  local client = self.client
  local user
  local okx, xerr = pcall(function()
    local token, terr = client:token(code)
    if not token then return terr end
    local res, rerr = client.users:me(token)
    if not res then return rerr end
    local me, derr = res:json()
    if type(me) ~= "table" then return derr or "no JSON object" end
    local u = me.user
    local dn = type(u) == "table" and type(u.display_name) == "table" and type(u.display_name.current) == "table"
      and u.display_name.current.value
    if type(u) ~= "table" then return "/api/v1/auth/self has no user" end
    -- What enters a session is checked here, so that nothing later (a page, a ticket) meets it.
    if not valid_id(u.id) then return "/api/v1/auth/self: the user id is not a UUID" end
    if not valid_name(dn) then return "/api/v1/auth/self: the display name is not 1 to 64 printable characters" end
    user = { id = u.id, display_name = dn }
  end)
  if not okx or not user then
    ngx.log(ngx.WARN, "eternaltwin.gate: sign-in failed at Eternaltwin: ", tostring(xerr))
    return page(502, "Eternaltwin did not complete the sign-in; try again.")
  end
  local fine, berr = within_budget(self, user.id)
  if fine == false then
    return page(429, "Too many sign-ins with this account; try again in a few minutes.")
  end
  local used, why
  if fine then used, why = store:check_and_add(nonce, claims.exp, now) else why = berr end
  if used == false then return page(403, "This sign-in link was already used.") end
  if not used then
    ngx.log(ngx.ERR, "eternaltwin.gate: lua_shared_dict '", self.shared_dict, "' refused a sign-in mark: ",
      tostring(why))
    return page(503, "Cannot complete the sign-in now; try again later.")
  end
  set_cookie(self, self._slot_names[slot], "", 0)
  local exp = now + self.session_ttl
  set_cookie(self, self.cookie_name,
    signed_value(self, self._session_tag, json_encode({ id = user.id, name = user.display_name, exp = exp })),
    self.session_ttl)
  user.expires = exp
  ngx.ctx.eternaltwin_user = user
  local back = local_path(bind.r) and bind.r or "/"
  return ngx.redirect(back, 302)
end

------------------------------------------------------------------------------------------------
-- Sign-out and tickets
-- @section other

-- Whether this request comes from a page of this site: the browser's `Sec-Fetch-Site` says
-- same-origin, or (older browsers) its `Origin` is the redirect_uri's origin. Neither: not.
local function same_origin(self)
  local site = ngx.var.http_sec_fetch_site
  if site ~= nil then return site == "same-origin" end
  local origin = ngx.var.http_origin
  return origin ~= nil and origin_of(origin) == self.origin
end

local SIGN_OUT_FORM = '\n<form method="post"><button type="submit" id="sign-out">Sign out</button></form>\n'

--- Sign-out. A POST from a page of this site (`Sec-Fetch-Site: same-origin`, or an `Origin` equal
-- to the redirect_uri's) clears the session and answers 303 to `after_logout`; a POST from anywhere
-- else gets a 403 page and changes nothing. A GET or HEAD shows a small page with a sign-out button
-- (a form POST to the same URL); other methods get a 405.
function Gate:logout()
  local method = ngx.req.get_method()
  if method == "GET" or method == "HEAD" then
    local user = self:user()
    if user then
      return page(200, "Sign out of this site?", SIGN_OUT_FORM)
    end
    return page(200, "You are not signed in.",
      '\n<p><a href="' .. html_escape(self.after_logout) .. '">Continue</a></p>\n')
  end
  if method ~= "POST" then
    ngx.header["Allow"] = "GET, HEAD, POST"
    return page(405, "Use the sign-out button of this site.")
  end
  if not same_origin(self) then
    return page(403, "Sign out from this site's own page.", SIGN_OUT_FORM)
  end
  set_cookie(self, self.cookie_name, "", 0)
  ngx.ctx.eternaltwin_user = nil
  no_store()
  return ngx.redirect(self.after_logout, 303)
end

--- A game ticket for the signed-in user: JSON `{ "ticket": ..., "expires_in": ... }` (GET or POST),
-- 401 JSON without a session. `opts.audience` / `opts.ttl` override `ticket_audience` / `ticket_ttl`.
-- Signed with the client's `ticket_key`, never its state key (without one, this raises).
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
  local user = self:user()
  if not user then return json_reply(401, { error = "Unauthorized" }) end
  if type(self.client.issue_ticket) ~= "function" then   -- a client from before tickets
    return json_reply(501, { error = "NotImplemented" })
  end
  local ok, ticket, err = pcall(self.client.issue_ticket, self.client, user.id,
    { audience = audience, ttl = ttl, data = { display_name = user.display_name } })
  if not ok or not ticket then
    ngx.log(ngx.ERR, "eternaltwin.gate: cannot issue a ticket: ", tostring(ok and err or ticket))
    return json_reply(503, { error = "TicketUnavailable" })
  end
  return json_reply(200, { ticket = ticket, expires_in = ttl })
end

M.Gate = Gate
return M
