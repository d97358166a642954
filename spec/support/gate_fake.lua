-- SPDX-License-Identifier: MIT
-- Extra gates and a hostile "Eternaltwin" served by the demo site itself, for the gate's security
-- specs (spec/gate_security_spec.lua). Loaded inside nginx by spec/support/gate-site.conf.
--
-- The hostile Eternaltwin lives under /_fake/: `POST /_fake/oauth/token` accepts any code but one
-- starting with "junk" (400 invalid_grant) and answers it back as the access token;
-- `GET /_fake/api/v1/auth/self` reads that token as base64url(JSON {id=..., name=...}) and answers a
-- user with that id and display name, whatever they are.
--
-- Gates, each made once per worker, all signing with the site's own secrets (so cookies and states
-- made on one worker are good on the other), at /_fake/KIND/{private,callback,logout,ticket}:
--   hostile   signs in at the hostile Eternaltwin (http redirect_uri)
--   https     the same with an https redirect_uri (Secure cookies, the __Host- name)
--   budget    hostile, with a sign-in budget of 2 per account
--   other     another client id, the site's cookie name and session secret
--   renamed   the site's own client, under another cookie name
-- Gates with a store (spec/gate_store_spec.lua), all the site's client id at the mock, sharing one
-- store (spec/support/gate_store.lua: the shared dict through the store interface; a RedisStore
-- when GATE_SPEC_REDIS_URL is set and eternaltwin.RedisStore exists):
--   nodea, nodeb   server sessions under one cookie name: two nodes of one site (own caches)
--   cookiestore    cookie sessions with the store (revocations)
--   idle           server sessions, idle_ttl = 3, cache_ttl = 0
--   flaky          server sessions on a store that fails while /_test/store-down?on=1 (cache_ttl = 0)
--   hooked         server sessions, on_signin refusing Bob, on_error drawing the 403 pages
-- More paths for them: /_fake/KIND/token (users:me as the player; also the access token, for the
-- spec's scan of the store), revoke?id=&ban=1, unban?id=, redeem?t= (a ticket verifier with the
-- store as revocations).
-- luacheck: globals ngx GATE
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")
local gate = require("eternaltwin.gate")

local M = {}
local gates = {}
local stores = dofile(ngx.var.spec_support .. "/gate_store.lua")
M.stores = stores

local function base()
  return assert(os.getenv("ETERNALTWIN_REDIRECT_URI"), "no ETERNALTWIN_REDIRECT_URI"):match("^(https?://[^/]+/)")
end

local function client(id, redirect_uri)
  return eternaltwin.new{ client_id = id, client_secret = "fake-secret", redirect_uri = redirect_uri,
    state_key = keys.HS256Key(os.getenv("GATE_STATE_SECRET")), url = base() .. "_fake/",
    ticket_key = keys.HS256Key(os.getenv("GATE_STATE_SECRET") .. "-tickets"), timeout = 10 }
end

local MAKERS = {
  hostile = function()
    return gate.new{ client = client("hostile@clients", base() .. "_fake/hostile/callback"),
      session_secret = os.getenv("GATE_SESSION_SECRET"), shared_dict = "eternaltwin", ticket_audience = "game" }
  end,
  https = function()
    return gate.new{ client = client("secure@clients", "https://127.0.0.1/_fake/https/callback"),
      session_secret = os.getenv("GATE_SESSION_SECRET"), shared_dict = "eternaltwin" }
  end,
  budget = function()
    local g = gate.new{ client = client("budget@clients", base() .. "_fake/budget/callback"),
      session_secret = os.getenv("GATE_SESSION_SECRET"), shared_dict = "eternaltwin" }
    g._signin_budget = 2
    return g
  end,
  other = function()
    return gate.new{ client = client("other@clients", base() .. "_fake/other/callback"),
      session_secret = os.getenv("GATE_SESSION_SECRET"), shared_dict = "eternaltwin", cookie_name = GATE.cookie_name }
  end,
  renamed = function()
    return gate.new{ client = require("site").client, session_secret = os.getenv("GATE_SESSION_SECRET"),
      shared_dict = "eternaltwin", cookie_name = "renamed" }
  end,
}

-- The site's client at the mock, with another redirect_uri (the spec hands the mock's code over).
local function site_client(kind)
  return eternaltwin.new{ client_id = os.getenv("ETERNALTWIN_CLIENT_ID"),
    client_secret = os.getenv("ETERNALTWIN_CLIENT_SECRET"), redirect_uri = base() .. "_fake/" .. kind .. "/callback",
    state_key = keys.HS256Key(os.getenv("GATE_STATE_SECRET")), url = os.getenv("ETERNALTWIN_URL"),
    ticket_key = keys.HS256Key(os.getenv("GATE_TICKET_SECRET")), timeout = 10 }
end

local function store_gate(kind, o)
  local opts = { client = site_client(kind), session_secret = os.getenv("GATE_SESSION_SECRET"),
    store = stores.shared(), sessions = "server", cookie_name = "node", ticket_audience = "game.example" }
  for k, v in pairs(o or {}) do opts[k] = v end
  return gate.new(opts)
end

MAKERS.nodea = function() return store_gate("nodea") end
MAKERS.nodeb = function() return store_gate("nodeb") end
MAKERS.cookiestore = function() return store_gate("cookiestore", { sessions = "cookie", cookie_name = "cs" }) end
MAKERS.idle = function() return store_gate("idle", { idle_ttl = 3, cache_ttl = 0, cookie_name = "idle" }) end
MAKERS.flaky = function() return store_gate("flaky", { store = stores.flaky(), cookie_name = "flaky", cache_ttl = 0 }) end
MAKERS.hooked = function()
  return store_gate("hooked", { cookie_name = "hooked",
    on_signin = function(user, token)
      if user.display_name == "Bob" then return false, "Bob is not invited to this game." end
      return type(token) == "table" and type(token.access_token) == "string"
    end,
    on_error = function(status, reason, info)
      if status ~= 403 then return false end
      ngx.print('<!DOCTYPE html><html><head><title>Custom refusal</title></head><body><p id="custom">',
        status, " ", reason, " (", tostring(info and info.code), ')</p><a href="/">Home</a></body></html>')
      return true
    end })
end

function M.gate(kind)
  local g = gates[kind]
  if not g then
    g = assert(MAKERS[kind], "no such fake gate")()
    gates[kind] = g
  end
  return g
end

local function json(status, v)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.print(core.json_encode(v))
  return ngx.exit(ngx.HTTP_OK)
end

-- /_fake/...: the hostile Eternaltwin, or a fake gate's page.
function M.serve()
  local uri = ngx.var.uri
  if uri == "/_fake/oauth/token" then
    ngx.req.read_body()
    local body = core.json_decode(ngx.req.get_body_data() or "") or {}
    local code = body.code
    if type(code) ~= "string" or code:find("^junk") then return json(400, { error = "invalid_grant" }) end
    if code:find("^badclient") then return json(401, { error = "invalid_client" }) end
    return json(200, { access_token = code, token_type = "Bearer", expires_in = 3600 })
  elseif uri == "/_fake/api/v1/auth/self" then
    local token = (ngx.var.http_authorization or ""):match("^Bearer (%S+)$")
    local spec = token and core.b64url_decode(token)
    local u = spec and core.json_decode(spec)
    if type(u) ~= "table" then return json(401, { error = "Unauthorized" }) end
    return json(200, { type = "AccessToken", scope = "Default",
      client = { type = "OauthClient", id = "00000000-0000-4000-8000-000000000000", key = "hostile@clients",
                 display_name = "Hostile" },
      user = { type = "User", id = u.id, display_name = { current = { value = u.name } } } })
  end
  local kind, what = uri:match("^/_fake/(%a+)/(%a+)")
  if not kind or not MAKERS[kind] then return ngx.exit(404) end
  local g = M.gate(kind)
  if what == "private" then
    local user = g:protect()
    return json(200, { id = user.id, display_name = user.display_name })
  elseif what == "callback" then
    return g:callback()
  elseif what == "logout" then
    return g:logout()
  elseif what == "ticket" then
    return g:ticket()
  elseif what == "user" then
    local user = g:user()
    return json(200, user and { id = user.id, display_name = user.display_name } or { none = true })
  elseif what == "token" then
    local t, err = g:token()
    if not t then return json(200, { error = err }) end
    local res, rerr = g.client.users:me(t)
    if not res then return json(200, { error = tostring(rerr) }) end
    return json(200, { me = res:json(), access_token = t.access_token, expires_in = t:seconds_left() })
  elseif what == "revoke" then
    local ok, err = g:revoke(ngx.var.arg_id, { ban = ngx.var.arg_ban == "1" })
    return json(200, { ok = ok, error = err })
  elseif what == "unban" then
    local ok, err = g:unban(ngx.var.arg_id)
    return json(200, { ok = ok, error = err })
  elseif what == "redeem" then
    local v = require("eternaltwin").tickets.verifier{ key = os.getenv("GATE_TICKET_SECRET"),
      audience = "game.example", revocations = stores.shared() }
    local claims, err = v:redeem(ngx.var.arg_t)
    return json(200, claims and { sub = claims.sub } or { error = err.message })
  end
  return ngx.exit(404)
end

-- Gate marks in the shared dict (single-use states and sign-in budgets).
function M.marks()
  local n = 0
  for _, k in ipairs(ngx.shared.eternaltwin:get_keys(0)) do
    if k:find("^eternaltwin:gate:") then n = n + 1 end
  end
  return n
end

return M
