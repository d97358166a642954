-- SPDX-License-Identifier: MIT
-- Extra gates and a hostile "Eternaltwin" served by the demo site itself, for the gate's security
-- specs (spec/83-gate_security_spec.lua). Loaded inside nginx by spec/support/gate-site.conf.
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
-- luacheck: globals ngx GATE
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")
local gate = require("eternaltwin.gate")

local M = {}
local gates = {}

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
