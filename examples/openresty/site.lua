-- SPDX-License-Identifier: MIT
-- The demo site behind the Eternaltwin gate (examples/openresty/nginx.conf.in loads it).
-- Configuration comes from the environment (nginx passes the variables its `env` lines name), so
-- no secret sits in nginx.conf:
--   ETERNALTWIN_URL            the Eternaltwin instance (http://127.0.0.1:50320/ for the mock)
--   ETERNALTWIN_CLIENT_ID      this site's OAuth client (NAME@clients)
--   ETERNALTWIN_CLIENT_SECRET  its secret
--   ETERNALTWIN_REDIRECT_URI   this site's callback (http://HOST:PORT/oauth/callback)
--   GATE_SESSION_SECRET        32+ random bytes: signs the session cookies
--   GATE_OLD_SESSION_SECRET    optional: the previous session secret, still accepted (rotation)
--   GATE_STATE_SECRET          32+ random bytes: signs the OAuth states
--   GATE_TICKET_SECRET         32+ random bytes: signs the game tickets (never the state key); the
--                              same variable and development default as examples/game_server.lua
--   ETERNALTWIN_CA_FILE        optional: CA bundle for an https Eternaltwin with a private CA; `run`
--                              makes it nginx's lua_ssl_trusted_certificate (cosockets trust that
--                              directive only: a client's ca_file is refused inside nginx)
--   GATE_REDIS_URL             optional: redis://:PASSWORD@HOST:PORT[/DB]. Given, the gate keeps its
--                              single-use marks, revocations and (server) sessions in this Redis,
--                              shared by every node (examples/openresty/cluster runs two)
--   GATE_SESSIONS              "server" (the default with GATE_REDIS_URL) or "cookie"
--   GATE_IDLE_TTL, GATE_CACHE_TTL, GATE_REDIS_TIMEOUT   optional numbers (seconds) for those options
-- luacheck: globals ngx GATE
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local gate = require("eternaltwin.gate")

local M = {}

local function env(name, optional)
  local v = os.getenv(name)
  if (v == nil or v == "") and not optional then
    error("examples/openresty: environment variable " .. name .. " is not set (nginx.conf needs `env " .. name .. ";`)")
  end
  return v ~= "" and v or nil
end

--- Called once from init_by_lua_block: builds the client and the gate (global GATE).
function M.init()
  local client = eternaltwin.new{
    client_id = env("ETERNALTWIN_CLIENT_ID"),
    client_secret = env("ETERNALTWIN_CLIENT_SECRET"),
    redirect_uri = env("ETERNALTWIN_REDIRECT_URI"),
    state_key = keys.HS256Key(env("GATE_STATE_SECRET")),
    ticket_key = keys.HS256Key(env("GATE_TICKET_SECRET")),
    url = env("ETERNALTWIN_URL"),
    timeout = 10,
  }
  M.client = client
  local redis_url, store = env("GATE_REDIS_URL", true), nil
  if redis_url then
    store = eternaltwin.RedisStore{ url = redis_url, timeout = tonumber(env("GATE_REDIS_TIMEOUT", true)) }
  end
  M.store = store
  GATE = gate.new{
    client = client,
    session_secret = { env("GATE_SESSION_SECRET"), env("GATE_OLD_SESSION_SECRET", true) },
    shared_dict = "eternaltwin",
    ticket_audience = "game.example",
    store = store,
    sessions = store and (env("GATE_SESSIONS", true) or "server") or nil,
    idle_ttl = tonumber(env("GATE_IDLE_TTL", true)),
    cache_ttl = tonumber(env("GATE_CACHE_TTL", true)),
  }
  return GATE
end

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
local function esc(s) return (tostring(s):gsub("[&<>\"']", ESC)) end

local function html(title, body)
  ngx.header["Content-Type"] = "text/html; charset=utf-8"
  ngx.header["Cache-Control"] = "no-store"
  ngx.print('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>', esc(title), "</title></head>\n<body>",
    body, "</body></html>\n")
end

--- `/`: public; says who is signed in (GATE:user(): no redirect).
function M.home()
  local user = GATE:user()
  if user then
    html("Eternaltwin gate demo", '<h1>Hello, <span id="who">' .. esc(user.display_name) .. "</span></h1>"
      .. '<p><a href="/private">Private page</a> · <a href="/ticket">Game ticket</a> · '
      .. '<form method="post" action="/logout" style="display:inline"><button id="logout">Sign out</button></form></p>')
  else
    html("Eternaltwin gate demo", '<h1 id="who">Not signed in</h1>'
      .. '<p><a id="private" href="/private">Private page</a> (signs you in with Eternaltwin)</p>')
  end
end

--- `/private...`: runs after GATE:protect() in access_by_lua_block.
function M.private()
  local user = ngx.ctx.eternaltwin_user
  html("Private", '<h1>Private page</h1><p>Signed in as <span id="user">' .. esc(user.display_name)
    .. '</span> (<span id="user-id">' .. esc(user.id) .. '</span>).</p><p>You asked for <code id="uri">'
    .. esc(ngx.var.request_uri) .. '</code>.</p><p><a href="/">Home</a> · '
    .. '<a id="logout" href="/logout">Sign out</a> (a page with a sign-out button)</p>')
end

return M
