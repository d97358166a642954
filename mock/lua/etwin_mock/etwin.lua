-- SPDX-License-Identifier: MIT
-- Eternaltwin routes of the mock (etwin-api.md sections 1-5): sessions, OAuth, users, clock.
local util = require("etwin_mock.util")
local store = require("etwin_mock.store")
local http = require("etwin_mock.http")

local M = {}

local null, array = util.null, util.array
local floor = math.floor

local CODE_LIFETIME = 600
local LOGIN_METHODS = { Dinoparc = true, Etwin = true, Hammerfest = true, Twinoid = true }
local LINK_KEYS = { "dinoparc_com", "en_dinoparc_com", "hammerfest_es", "hammerfest_fr", "hfest_net",
                    "sp_dinoparc_com", "twinoid" }

-- Views ---------------------------------------------------------------------------------------------

local function short_user(u)
  return { type = "User", id = u.id, display_name = { current = { value = u.display_name } } }
end

local function client_view(c)
  return { type = "OauthClient", id = c.id, key = c.key, display_name = c.display_name }
end

-- Section 4: `full` adds username, email_address and has_password.
local function user_view(u, full)
  local links = {}
  for _, k in ipairs(LINK_KEYS) do
    links[k] = { current = null, old = array() }
  end
  local v = short_user(u)
  v.created_at = u.created_at
  v.deleted_at = null
  v.is_administrator = u.is_administrator
  v.links = links
  if full then
    v.username = u.username
    v.email_address = u.email or null
    v.has_password = true
  end
  return v
end

local GUEST = { type = "Guest", scope = "Default" }

-- Auth context -------------------------------------------------------------------------------------

-- Splits a Basic credential into ref, secret; nil when malformed.
local function decode_basic(b64)
  if #b64 > 2048 then
    return nil
  end
  local raw = ngx.decode_base64(b64)
  if not raw then
    return nil
  end
  local ref, secret = raw:match("^([^:]*):(.*)$")
  if not ref then
    return nil
  end
  return ref, secret
end

-- The client of Basic credentials `ref:secret` (the ref may be form-encoded), or nil.
local function basic_client(ref, secret)
  local client = store.find_client(ref) or store.find_client(ngx.unescape_uri(ref))
  if client and util.secure_equal(secret, client.secret) then
    return client
  end
  return nil, client
end

-- The `Authorization` header when there is exactly one: scheme (lower case) and credentials.
local function authorization()
  local h = ngx.req.get_headers(200)["authorization"]
  if type(h) ~= "string" then
    return nil
  end
  local scheme, cred = h:match("^%s*(%S+)%s+(%S+)%s*$")
  if not scheme then
    return nil
  end
  return scheme:lower(), cred
end

-- Resolves the caller (etwin-api.md section 0): a context table, or nil when a well-formed
-- Authorization header carries wrong credentials or an unknown/expired token.
function M.auth_context()
  local scheme, cred = authorization()
  if scheme == "bearer" then
    local t = store.find_token(cred)
    if not t then
      return nil
    end
    return { type = "AccessToken", scope = "Default", client = client_view(t.client), user = short_user(t.user),
             _user = t.user }
  elseif scheme == "basic" then
    local ref, secret = decode_basic(cred)
    if ref then
      local client, known = basic_client(ref, secret)
      if client then
        return { type = "OauthClient", scope = "Default", client = client_view(client) }
      elseif known then
        return nil
      end
      local user = store.user_by_login(ref)
      if user and util.secure_equal(secret, user.password) then
        return { type = "User", scope = "Default", user = short_user(user),
                 is_administrator = user.is_administrator, _user = user }
      end
      return nil
    end
  end
  local sid = ngx.var.cookie_sid
  local session = sid and store.sessions[sid]
  if session then
    local user = session.user
    return { type = "User", scope = "Default", user = short_user(user),
             is_administrator = user.is_administrator, _user = user }
  end
  return GUEST
end

-- Context of the current /api/v1 request (resolved once by the router).
local function ctx()
  return ngx.ctx.auth or GUEST
end

-- Public view of a context (without the private `_user` field).
local function public_context(c)
  local out = {}
  for k, v in pairs(c) do
    if k:sub(1, 1) ~= "_" then out[k] = v end
  end
  return out
end

-- Sessions (section 3) ------------------------------------------------------------------------------

local SID_COOKIE = "sid=%s; Path=/; HttpOnly"
local SID_CLEAR = "sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly"

-- A user when `login`/`password` (plain text) match, else nil.
local function check_credentials(login, password)
  if type(login) ~= "string" or type(password) ~= "string" then
    return nil
  end
  local user = store.user_by_login(login)
  if user and util.secure_equal(password, user.password) then
    return user
  end
  return nil
end

function M.get_self()
  http.json(200, public_context(ctx()))
end

function M.login()
  local method = http.arg("method")
  if not method or not LOGIN_METHODS[method] then
    return http.error(422, "InvalidMethod")
  end
  local params, err = http.body_params()
  if not params then
    return http.error(400, err == "bad_json" and "InvalidJson" or "BadRequest")
  end
  if method ~= "Etwin" then
    return http.error(401, "InvalidCredentials")
  end
  local hex = params.password
  local password = type(hex) == "string" and #hex <= 512 and util.from_hex(hex)
  local user = password and check_credentials(params.login, password)
  if not user then
    return http.error(401, "InvalidCredentials")
  end
  local sid = store.new_session(user)
  http.json(200, user_view(user, true), { ["Set-Cookie"] = SID_COOKIE:format(sid) })
end

function M.logout()
  local sid = ngx.var.cookie_sid
  if sid then
    store.sessions[sid] = nil
  end
  http.json(200, GUEST, { ["Set-Cookie"] = SID_CLEAR })
end

-- Mock-only login form (so a scripted browser can sign in and come back to /oauth/authorize).
local FORM = [[<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Eternaltwin mock: sign in</title></head>
<body><h1>Sign in</h1>%s
<form method="post" action="/login">
<input type="hidden" name="next" value="%s">
<label>Login <input name="login" autocomplete="username"></label>
<label>Password <input name="password" type="password"></label>
<button type="submit">Sign in</button>
</form></body></html>
]]

local function safe_next(next_url)
  return type(next_url) == "string" and next_url:sub(1, 1) == "/" and not next_url:find("^//")
    and not next_url:find("^/\\") and not next_url:find("[%c]")
end

function M.login_form()
  local next_url = http.arg("next") or ""
  http.html(200, FORM:format("", util.html_escape(next_url)))
end

function M.login_submit()
  local params = http.body_params() or {}
  local next_url = type(params.next) == "string" and params.next or http.arg("next")
  local user = check_credentials(params.login, params.password)
  if not user then
    return http.html(401, FORM:format("<p>Wrong login or password.</p>", util.html_escape(next_url or "")))
  end
  local cookie = { ["Set-Cookie"] = SID_COOKIE:format(store.new_session(user)) }
  if safe_next(next_url) then
    return http.redirect(next_url, 302, cookie)
  end
  http.html(200, "<!DOCTYPE html><p>Signed in as " .. util.html_escape(user.display_name) .. ".</p>\n", cookie)
end

-- Authorization codes (HS256 JWT) --------------------------------------------------------------------

local JWT_HEADER = util.b64url_encode(util.json_encode({ alg = "HS256", typ = "JWT" }))

local function new_code(user, client)
  local iat = floor(store.now())
  local claims = {
    aud = array({ client.id, client.key }), iat = iat, exp = iat + CODE_LIFETIME, iss = "etwin",
    sub = user.id, scopes = array({ "base" }),
    jti = util.to_hex(util.random_bytes(16)),  -- makes each code unique, so single use is exact
  }
  local input = JWT_HEADER .. "." .. util.b64url_encode(util.json_encode(claims))
  return input .. "." .. util.b64url_encode(util.hmac_sha256(store.secret, input))
end

-- The claims and user of a valid code for `client`, or nil.
local function check_code(code, client)
  if type(code) ~= "string" or #code > 4096 then
    return nil
  end
  local h, p, s = code:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
  if not h then
    return nil
  end
  local header = util.json_decode(util.b64url_decode(h) or "")
  if type(header) ~= "table" or header.alg ~= "HS256" then
    return nil
  end
  local sig = util.b64url_decode(s)
  if not sig or not util.secure_equal(sig, util.hmac_sha256(store.secret, h .. "." .. p)) then
    return nil
  end
  local claims = util.json_decode(util.b64url_decode(p) or "")
  if type(claims) ~= "table" or type(claims.iat) ~= "number" or type(claims.exp) ~= "number"
      or type(claims.aud) ~= "table" or type(claims.sub) ~= "string" or claims.iss ~= "etwin" then
    return nil
  end
  local now = store.now()
  if not (claims.iat <= now and now < claims.exp) then
    return nil
  end
  local bound = false
  for _, aud in ipairs(claims.aud) do
    if aud == client.id then bound = true end
  end
  local user = store.user_by_id(claims.sub)
  if not bound or not user then
    return nil
  end
  return claims, user
end

-- OAuth (sections 1 and 2) ------------------------------------------------------------------------

-- Normalises an absolute URL for comparison: lower-case scheme and host, no default port, `/` path.
local function normalize_url(u)
  local scheme, rest = u:match("^(%a[%w+.%-]*)://(.*)$")
  if not scheme then
    return u
  end
  scheme = scheme:lower()
  local authority, tail = rest:match("^([^/?#]*)(.*)$")
  local userinfo, hostport = authority:match("^(.*@)(.*)$")
  hostport = (hostport or authority):lower()
  if (scheme == "http" and hostport:find(":80$")) or (scheme == "https" and hostport:find(":443$")) then
    hostport = hostport:gsub(":%d+$", "")
  end
  if tail == "" or tail:sub(1, 1) ~= "/" then
    tail = "/" .. tail
  end
  return scheme .. "://" .. (userinfo or "") .. hostport .. tail
end

local function callback_url(client, pairs_)
  local url = client.callback:gsub("#.*$", "")
  local parts = {}
  for _, kv in ipairs(pairs_) do
    if kv[2] ~= nil then
      parts[#parts + 1] = util.form_encode(kv[1]) .. "=" .. util.form_encode(kv[2])
    end
  end
  return url .. (url:find("?", 1, true) and "&" or "?") .. table.concat(parts, "&")
end

function M.authorize()
  local client = store.find_client(http.arg("client_id"))
  if not client then
    return http.error(400, "InvalidClient")
  end
  local redirect_uri = http.arg("redirect_uri")
  if redirect_uri and normalize_url(redirect_uri) ~= normalize_url(client.callback) then
    return http.error(400, "RedirectUriMismatch")
  end
  local state = http.arg("state")
  local response_type = http.arg("response_type")
  local function fail(code)
    http.redirect(callback_url(client, { { "error", code }, { "state", state } }))
  end
  if response_type ~= "code" and response_type ~= "token" then
    return fail("invalid_request")
  elseif response_type == "token" then
    return fail("unsupported_response_type")
  end
  local scope = http.arg("scope")
  if scope then
    for word in scope:gmatch("%S+") do
      if word ~= "base" then
        return fail("invalid_scope")
      end
    end
  end
  local c = M.auth_context()
  if not c or c.type ~= "User" then
    return http.redirect("/login?next=" .. util.percent_encode(ngx.var.request_uri))
  end
  http.redirect(callback_url(client, { { "code", new_code(c._user, client) }, { "state", state } }))
end

local NO_STORE = { ["Cache-Control"] = "no-store", ["Pragma"] = "no-cache" }

function M.token()
  store.stats.token_requests = store.stats.token_requests + 1
  local scheme, cred = authorization()
  local client
  if scheme == "basic" then
    local ref, secret = decode_basic(cred)
    if ref then
      client = basic_client(ref, secret)
    end
  end
  if not client then
    return http.error(401, "invalid_client", { ["WWW-Authenticate"] = 'Basic realm="etwin"' })
  end
  local params = http.body_params()
  if not params then
    return http.error(400, "invalid_request")
  end
  local grant = params.grant_type
  if grant == nil or grant == "authorization_code" then
    local code = params.code
    if type(code) ~= "string" or code == "" then
      return http.error(400, "invalid_request")
    end
    local claims, user = check_code(code, client)
    if not claims then
      return http.error(400, "invalid_grant")
    end
    local jti = tostring(claims.jti)
    if store.used_codes[jti] and not store.knobs.allow_code_reuse then
      return http.error(400, "invalid_grant")
    end
    store.used_codes[jti] = true
    return http.json(200, store.issue_token(user, client), NO_STORE)
  elseif grant == "refresh_token" and store.knobs.refresh_tokens then
    local rt = params.refresh_token
    if type(rt) ~= "string" or rt == "" then
      return http.error(400, "invalid_request")
    end
    local record = store.refresh_tokens[rt]
    if not record or record.client ~= client then
      return http.error(400, "invalid_grant")
    end
    store.refresh_tokens[rt] = nil  -- rotated: each refresh token works once
    return http.json(200, store.issue_token(record.user, client), NO_STORE)
  end
  http.error(400, "unsupported_grant_type")
end

-- Users (sections 4 and 5) -------------------------------------------------------------------------

function M.get_user(id)
  if not util.is_uuid(id) then
    return http.error(422, "InvalidId")
  end
  local user = store.user_by_id(id:lower())
  if not user then
    return http.error(404, "UserNotFound")
  end
  local c = ctx()
  -- The full view needs a user context (session or Basic), never an access token.
  local full = c.type == "User" and (c._user == user or c._user.is_administrator)
  http.json(200, user_view(user, full))
end

local MAX_LIMIT = 100

function M.search()
  local args = http.args()
  local q = http.first(args.q) or ""
  local offset, limit = 0, 20
  if args.offset ~= nil then
    offset = http.uint(http.first(args.offset))
    if not offset then return http.error(422, "InvalidQuery") end
    offset = math.min(offset, 1e15)
  end
  if args.limit ~= nil then
    limit = http.uint(http.first(args.limit))
    if not limit then return http.error(422, "InvalidQuery") end
    limit = math.min(limit, MAX_LIMIT)
  end
  local needle = q:lower()
  local found = {}
  for _, u in ipairs(store.users) do
    if u.username:lower():find(needle, 1, true) or u.display_name:lower():find(needle, 1, true) then
      found[#found + 1] = u
    end
  end
  table.sort(found, function(a, b)
    if a.display_name ~= b.display_name then
      return a.display_name < b.display_name
    end
    return a.id < b.id
  end)
  local items = array()
  if offset < #found then
    for i = offset + 1, math.min(#found, offset + limit) do
      items[#items + 1] = short_user(found[i])
    end
  end
  http.json(200, { offset = offset, limit = limit, count = #found, items = items })
end

function M.clock()
  http.json(200, { time = util.iso_time(store.now()) })
end

return M
