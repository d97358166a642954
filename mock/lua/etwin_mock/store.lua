-- SPDX-License-Identifier: MIT
-- In-memory state of the Eternaltwin mock: seeded clients and users, sessions, codes, tokens,
-- knobs, clock offset and counters. Lives in the single nginx worker.
local toml = require("etwin_mock.toml")
local util = require("etwin_mock.util")

local M = {
  clients = {},          -- array, in config order
  users = {},            -- array, in config order
  secret = nil,          -- HS256 key of authorization codes (random per start)
}

local client_by_name, client_by_id = {}, {}
local user_by_id, user_by_login = {}, {}

local DEFAULT_KNOBS = { allow_code_reuse = false, refresh_tokens = false, expires_in = 3600 }
M.KNOB_TYPES = { allow_code_reuse = "boolean", refresh_tokens = "boolean", expires_in = "integer" }

local CLIENT_NAME = "^[a-z_][a-z0-9_]+$"

local function check(cond, msg)
  if not cond then
    error("etwin-mock config: " .. msg, 0)
  end
end

local function opt_string(t, key, where)
  check(t[key] == nil or type(t[key]) == "string", where .. "." .. key .. " must be a string")
  return t[key]
end

local function add_client(name, c)
  local where = "app." .. name
  check(type(c) == "table", where .. " must be a table")
  check(#name >= 2 and #name <= 32 and name:find(CLIENT_NAME), where .. ": name must match ^[a-z_][a-z0-9_]{1,31}$")
  check(not client_by_name[name], where .. " defined twice")
  local id = opt_string(c, "id", where) or util.uuid5("client:" .. name)
  check(util.is_uuid(id), where .. ".id must be a UUID")
  id = id:lower()
  local secret = opt_string(c, "secret", where)
  check(secret and secret ~= "", where .. ".secret is required")
  local callback = opt_string(c, "oauth_callback", where) or opt_string(c, "callback_uri", where)
  check(callback, where .. ".oauth_callback is required")
  local client = {
    name = name,
    key = name .. "@clients",
    id = id,
    display_name = opt_string(c, "display_name", where) or name,
    uri = opt_string(c, "uri", where) or opt_string(c, "app_uri", where) or callback,
    callback = callback,
    secret = secret,
  }
  check(not client_by_id[id], where .. ": id already used")
  client_by_name[name], client_by_id[id] = client, client
  M.clients[#M.clients + 1] = client
end

local function add_user(name, u, index)
  local where = "user." .. name
  check(type(u) == "table", where .. " must be a table")
  local username = opt_string(u, "username", where) or name
  local password = opt_string(u, "password", where)
  check(password, where .. ".password is required")
  local id = opt_string(u, "id", where) or util.uuid5("user:" .. username)
  check(util.is_uuid(id), where .. ".id must be a UUID")
  id = id:lower()
  local admin = u.is_administrator
  check(admin == nil or type(admin) == "boolean", where .. ".is_administrator must be a boolean")
  if admin == nil then
    admin = index == 1
  end
  local user = {
    id = id,
    username = username,
    password = password,
    display_name = opt_string(u, "display_name", where) or username,
    email = opt_string(u, "email", where),
    is_administrator = admin,
    -- Stable creation times, one minute apart, in config order.
    created_at = util.iso_time(1609459200 + 60 * (index - 1)),
  }
  check(not user_by_id[id], where .. ": id already used")
  check(not user_by_login[username], where .. ": username already used")
  user_by_id[id], user_by_login[username] = user, user
  if user.email then
    user_by_login[user.email] = user_by_login[user.email] or user
  end
  M.users[#M.users + 1] = user
end

-- Loads the seed config (recent `[seed.app.NAME]`/`[seed.user.NAME]`, or 2021 `[clients.NAME]`).
function M.load(path)
  local root, orders = toml.parse_file(path)
  local seed = type(root.seed) == "table" and root.seed or {}
  local apps = type(seed.app) == "table" and seed.app or root.clients or {}
  local users = type(seed.user) == "table" and seed.user or {}
  for _, name in ipairs(orders[apps] or {}) do
    add_client(name, apps[name])
  end
  for i, name in ipairs(orders[users] or {}) do
    add_user(name, users[name], i)
  end
  M.secret = util.random_bytes(32)
  M.reset()
end

-- Forgets everything that happened since the seed: sessions, codes, tokens, knobs, clock, counters.
function M.reset()
  M.sessions = {}        -- sid -> { user = user }
  M.tokens = {}          -- access token -> { user, client, expires_at }
  M.refresh_tokens = {}  -- refresh token -> { user, client }
  M.used_codes = {}      -- jti -> true
  M.knobs = {}
  for k, v in pairs(DEFAULT_KNOBS) do M.knobs[k] = v end
  M.offset = 0
  M.flaky = {}           -- /_mock/flaky key -> requests seen
  M.stats = { requests = 0, token_requests = 0, token_grants = 0, paths = {}, distinct_paths = 0 }
end

function M.now()
  return ngx.now() + M.offset
end

-- A client by `NAME@clients`, `UUID@clients` or bare UUID; nil when unknown or malformed.
function M.find_client(ref)
  if type(ref) ~= "string" or #ref > 100 then
    return nil
  end
  local inner = ref:match("^(.+)@clients$")
  if inner then
    if util.is_uuid(inner) then
      return client_by_id[inner:lower()]
    end
    return client_by_name[inner]
  end
  if util.is_uuid(ref) then
    return client_by_id[ref:lower()]
  end
  return nil
end

function M.user_by_id(id)
  return user_by_id[id]
end

-- A user by username or email.
function M.user_by_login(login)
  return user_by_login[login]
end

function M.new_session(user)
  local sid = util.uuid4()
  M.sessions[sid] = { user = user }
  return sid
end

function M.issue_token(user, client)
  local token = util.uuid4()
  local expires_in = M.knobs.expires_in
  M.tokens[token] = { user = user, client = client, expires_at = M.now() + expires_in }
  local body = { token_type = "Bearer", access_token = token, expires_in = expires_in }
  if M.knobs.refresh_tokens then
    local rt = util.uuid4()
    M.refresh_tokens[rt] = { user = user, client = client }
    body.refresh_token = rt
  end
  M.stats.token_grants = M.stats.token_grants + 1
  return body
end

-- The record of a live access token, or nil (unknown or expired).
function M.find_token(token)
  local t = M.tokens[token]
  if t and M.now() < t.expires_at then
    return t
  end
  return nil
end

function M.count_request(path)
  local s = M.stats
  s.requests = s.requests + 1
  if s.paths[path] then
    s.paths[path] = s.paths[path] + 1
  elseif s.distinct_paths < 1000 and #path <= 200 then
    s.paths[path] = 1
    s.distinct_paths = s.distinct_paths + 1
  end
end

return M
