-- SPDX-License-Identifier: MIT
--- An Eternaltwin login gate for nginx (OpenResty / libnginx-mod-http-lua).
--
--    -- init_by_lua_block (needs `lua_shared_dict eternaltwin 10m;` in the http block)
--    GATE = require("eternaltwin.gate").new{ client = client, session_secret = "32+ random bytes",
--                                            shared_dict = "eternaltwin" }
--    -- access_by_lua_block of a protected location:   GATE:protect()
--    -- content_by_lua_block of the redirect_uri's location:   GATE:callback()
--
-- The session lives in a cookie signed with `session_secret` (HMAC-SHA256 through the C core); it
-- holds the user's id, display name and an expiry, never a token. A sign-in's state is bound to the
-- browser by a signed cookie and used once across all workers through the shared dict.
-- @module eternaltwin.gate

local core = require("eternaltwin.core")
local eternaltwin = require("eternaltwin.stores")   -- SharedReplayStore, without loading the client

local type, tostring, ipairs, pairs, pcall, setmetatable, error =
      type, tostring, ipairs, pairs, pcall, setmetatable, error
local format, concat = string.format, table.concat
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
-- Domain separation: what a signature covers starts with the cookie's purpose.
local SESSION_TAG = "eternaltwin-gate session v1\0"
local BIND_TAG = "eternaltwin-gate state v1\0"

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

------------------------------------------------------------------------------------------------
-- Construction
-- @section construction

--- `gate.new{ client, session_secret, shared_dict [, cookie_name] [, session_ttl] [, state_ttl]
-- [, secure] [, after_logout] [, ticket_audience] [, ticket_ttl] }`. Raises on a mistake.
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
  -- The redirect_uri's path: the state cookies are sent only there.
  local cb_path = type(client.redirect_uri) == "string" and client.redirect_uri:match("^%a[%w+.-]*://[^/?#]*(/[^?#]*)")
  if not cb_path then argfail("'client': its redirect_uri has no path") end

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

  local cookie_name = opts.cookie_name or "eternaltwin_session"
  if type(cookie_name) ~= "string" or not cookie_name:match("^[%w_]+$") or #cookie_name > 64 then
    argfail("'cookie_name': letters, digits and '_' expected")
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
  if opts.secure ~= nil and type(opts.secure) ~= "boolean" then argfail("'secure': boolean or nil expected") end
  local after_logout = opts.after_logout or "/"
  if not local_path(after_logout) then argfail("'after_logout': a path of this site expected (\"/...\")") end
  local audience = opts.ticket_audience
  if audience ~= nil and (type(audience) ~= "string" or audience == "") then
    argfail("'ticket_audience': non-empty string expected")
  end

  return setmetatable({
    client = client,
    shared_dict = dict_name,
    store = eternaltwin.SharedReplayStore(dict, "eternaltwin:gate:"),
    cookie_name = cookie_name,
    state_prefix = cookie_name .. "_st_",
    callback_path = cb_path,
    session_ttl = session_ttl,
    state_ttl = state_ttl,
    secure = opts.secure,
    after_logout = after_logout,
    ticket_audience = audience,
    ticket_ttl = ticket_ttl,
    _keys = keys,
    _cookie_var = "cookie_" .. cookie_name,
    _seen = {},
    _seen_count = 0,
  }, Gate)
end

function Gate.__tostring(g)
  return format("<eternaltwin.Gate %s %s>", g.client.client_id or "?", g.cookie_name)
end

------------------------------------------------------------------------------------------------
-- Signed values: b64url(payload) "." b64url(HMAC-SHA256(tag .. extra .. payload))
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

-- The cookie binding a sign-in to its browser: named after the state's nonce, so sign-ins in
-- several tabs keep their own.
local function state_cookie(self, nonce)
  return self.state_prefix .. (nonce:sub(1, 16):gsub("[^%w]", "_"))
end

------------------------------------------------------------------------------------------------
-- Cookies

local function is_secure(self)
  if self.secure ~= nil then return self.secure end
  return ngx.var.scheme == "https"
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

local function set_cookie(self, name, value, path, max_age)
  local parts = { name .. "=" .. value, "Path=" .. path }
  if max_age > 0 then
    parts[#parts + 1] = "Max-Age=" .. format("%d", max_age)
    parts[#parts + 1] = "Expires=" .. ngx.cookie_time(ngx.time() + max_age)
  else
    parts[#parts + 1] = "Max-Age=0"
    parts[#parts + 1] = "Expires=Thu, 01 Jan 1970 00:00:00 GMT"
  end
  parts[#parts + 1] = "HttpOnly"
  parts[#parts + 1] = "SameSite=Lax"
  if is_secure(self) then parts[#parts + 1] = "Secure" end
  add_set_cookie(concat(parts, "; "))
end

local function no_store()
  ngx.header["Cache-Control"] = "no-store"
end

------------------------------------------------------------------------------------------------
-- Pages: a short reason, HTML-escaped; never a secret, never a 500.

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
local function html_escape(s) return (tostring(s):gsub("[&<>\"']", ESC)) end

local TITLES = { [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
                 [405] = "Method Not Allowed", [501] = "Not Implemented", [502] = "Bad Gateway", [503] = "Service Unavailable" }

local function page(status, reason, extra)
  ngx.status = status
  ngx.header["Content-Type"] = "text/html; charset=utf-8"
  no_store()
  local title = format("%d %s", status, TITLES[status] or "Error")
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
    local payload = verified(self, SESSION_TAG, value)
    local t = payload and json_decode(payload)
    if type(t) ~= "table" or type(t.id) ~= "string" or type(t.name) ~= "string" or type(t.exp) ~= "number" then
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
  local value = ngx.var[self._cookie_var]
  local user
  if value then
    local s = session_of(self, value)
    if s and s[3] >= ngx.time() then
      user = { id = s[1], display_name = s[2], expires = s[3] }
    end
  end
  ngx.ctx.eternaltwin_user = user
  return user
end

-- Starts a sign-in: a state bound to this browser by a cookie, then 302 to Eternaltwin.
local function start_sign_in(self)
  local method = ngx.req.get_method()
  if method ~= "GET" and method ~= "HEAD" then
    return page(401, "Sign in first.")
  end
  local back = ngx.var.request_uri
  if not local_path(back) then back = "/" end
  local nonce = core.random_hex(64)
  local ok, state, err = false, nil, "no nonce from the CSPRNG"
  if nonce then ok, state, err = pcall(self.client.generate_state, self.client, self.state_ttl, nonce) end
  if not ok or not state then
    ngx.log(ngx.ERR, "eternaltwin.gate: cannot make a state: ", tostring(ok and err or state))
    return page(503, "Cannot start the sign-in now; try again later.")
  end
  local bind = signed_value(self, BIND_TAG .. nonce .. "\0", json_encode({ r = back }))
  set_cookie(self, state_cookie(self, nonce), bind, self.callback_path, self.state_ttl)
  no_store()
  return ngx.redirect(self.client:authorization_url(state), 302)
end

--- With a valid session: the user `{ id, display_name }` (also in `ngx.ctx.eternaltwin_user`).
-- Without one: a GET or HEAD is sent to Eternaltwin (302), anything else gets a 401; the request
-- ends there.
function Gate:protect()
  local user = self:user()
  if user then return user end
  return start_sign_in(self)
end

-- First string value of a query argument (a repeated one counts as bad).
local function arg(args, name)
  local v = args[name]
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

--- The redirect_uri's handler: checks the callback, signs the user in, back to the URL first asked.
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
  local cname = state_cookie(self, nonce)
  local payload = verified(self, BIND_TAG .. nonce .. "\0", ngx.var["cookie_" .. cname])
  local bind = payload and json_decode(payload)
  if type(bind) ~= "table" then
    return page(403, "This sign-in was not started in this browser.")
  end
  local used, why = self.store:check_and_add(nonce, claims.exp, ngx.time())
  if used == false then return page(403, "This sign-in link was already used.") end
  if not used then
    ngx.log(ngx.ERR, "eternaltwin.gate: lua_shared_dict '", self.shared_dict, "' refused a state marker: ",
      tostring(why))
    return page(503, "Cannot check the sign-in now; try again later.")
  end
  set_cookie(self, cname, "", self.callback_path, 0)

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
    if type(u) ~= "table" or type(u.id) ~= "string" or u.id == "" or type(dn) ~= "string" then
      return "/api/v1/auth/self has no user"
    end
    user = { id = u.id, display_name = dn }
  end)
  if not okx or not user then
    ngx.log(ngx.WARN, "eternaltwin.gate: sign-in failed at Eternaltwin: ", tostring(xerr))
    return page(502, "Eternaltwin did not complete the sign-in; try again.")
  end
  local exp = ngx.time() + self.session_ttl
  set_cookie(self, self.cookie_name,
    signed_value(self, SESSION_TAG, json_encode({ id = user.id, name = user.display_name, exp = exp })),
    "/", self.session_ttl)
  user.expires = exp
  ngx.ctx.eternaltwin_user = user
  local back = type(bind.r) == "string" and local_path(bind.r) and bind.r or "/"
  return ngx.redirect(back, 302)
end

--- Clears the session and answers 302 to `after_logout` (GET and POST; other methods get a 405).
function Gate:logout()
  local method = ngx.req.get_method()
  if method ~= "GET" and method ~= "POST" then
    ngx.header["Allow"] = "GET, POST"
    return page(405, "Use GET or POST to sign out.")
  end
  set_cookie(self, self.cookie_name, "", "/", 0)
  ngx.ctx.eternaltwin_user = nil
  no_store()
  return ngx.redirect(self.after_logout, 302)
end

--- A game ticket for the signed-in user: JSON `{ "ticket": ..., "expires_in": ... }` (GET or POST),
-- 401 JSON without a session. `opts.audience` / `opts.ttl` override `ticket_audience` / `ticket_ttl`.
function Gate:ticket(opts)
  local audience = opts and opts.audience or self.ticket_audience
  local ttl = opts and opts.ttl or self.ticket_ttl
  if type(audience) ~= "string" or audience == "" then
    error("gate:ticket: no audience (give ticket_audience to gate.new or { audience = .. })", 2)
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
  local ticket, err = self.client:issue_ticket(user.id, { audience = audience, ttl = ttl,
                                                          data = { display_name = user.display_name } })
  if not ticket then
    ngx.log(ngx.ERR, "eternaltwin.gate: cannot issue a ticket: ", tostring(err))
    return json_reply(503, { error = "TicketUnavailable" })
  end
  return json_reply(200, { ticket = ticket, expires_in = ttl })
end

M.Gate = Gate
return M
