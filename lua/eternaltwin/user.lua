-- SPDX-License-Identifier: MIT
--- `eternaltwin.User`: Eternaltwin users as objects (the Python `User`), over `eternaltwin.connections`.
--
--    local User = require("eternaltwin").User
--    -- sign-in: keep state in the player's session, send them to url
--    local state, url = User.start_authorization()
--    -- on the callback, whose query is q:
--    local user, err = User.from_authorization_code(q.code, q.state, state)
--    if not user then error("sign-in failed: " .. err) end
--    print(user, user.identifier)    -- <User Alice> 5b0b...
--
-- Every function takes an optional last `using` argument: the alias of the connection to use
-- (default `"default"`; an unknown alias raises). Run-time failures return `nil, err` (the
-- client's errors, or DecodeError when the server's JSON lacks a field a user needs or gives it
-- the wrong type; extra fields are ignored). Argument mistakes raise. Inside a poller task every
-- call yields instead of blocking, as the client does.
--
-- A user has the fields `identifier` (the id, a UUID string), `username` (the display name,
-- `display_name.current.value`), `is_administrator` (boolean, or nil when the server does not say),
-- `created_at` and `deleted_at` (ISO 8601 strings, or nil), `token` (the Token or access-token
-- string it signed in with, or nil) and `is_authenticated` (true while it has a token).
-- `tostring(user)` is `<User NAME>`; users are equal when their identifiers are.
-- @classmod User

local core = require("eternaltwin.core")
local errors = require("eternaltwin.errors")
local compat = require("eternaltwin.compat")
local math_type, tointeger = compat.math_type, compat.tointeger
local connections = require("eternaltwin.connections")

local type, tostring, setmetatable, getmetatable, error = type, tostring, setmetatable, getmetatable, error
local format = string.format

local User = {}
User.__index = User
User.__name = "eternaltwin.User"


local null = core.null

local function argfail(fname, n, what, level)
  error(format("bad argument #%d to 'User.%s' (%s)", n, fname, what), (level or 2) + 1)
end

local function check_opt(fname, n, v, want, what)
  if v ~= nil and type(v) ~= want then
    argfail(fname, n, format("%s expected, got %s", what or want, type(v)), 3)
  end
end

local function decode_error(msg, res)
  return nil, errors.new(errors.DecodeError, msg, { response = res })
end

-- An ISO 8601 date or date-time, as Python's datetime.fromisoformat would take it (loosely).
local function is_iso8601(s)
  return s:match("^%d%d%d%d%-%d%d%-%d%d$") ~= nil
      or s:match("^%d%d%d%d%-%d%d%-%d%d[T ]%d%d:%d%d[%d:.,]*[Zz]?$") ~= nil
      or s:match("^%d%d%d%d%-%d%d%-%d%d[T ]%d%d:%d%d[%d:.,]*[+-]%d%d:?%d%d$") ~= nil
end

local function optional(data, name, want, what)
  local v = data[name]
  if v == nil or v == null then return true, nil end
  if type(v) ~= want then return false, format("field '%s' must be %s or null", name, what) end
  if want == "string" and not is_iso8601(v) then
    return false, format("field '%s' is not an ISO 8601 time", name)
  end
  return true, v
end

local function build(fields)
  fields.is_authenticated = fields.token ~= nil
  return setmetatable(fields, User)
end

--- Functions (called with a dot: User.get).
-- @section Functions

--- Builds a user from the JSON of the API (a user object: `id`, `display_name.current.value`, and
-- optionally `is_administrator`, `created_at`, `deleted_at`).
-- @tparam table data a decoded user object
-- @param[opt] token the Token to attach
-- @param[opt] res the Response it came from (kept in the error)
-- @return a User, or `nil, err` (DecodeError)
-- @static
function User.from_data(data, token, res)
  if type(data) ~= "table" or data == null then return decode_error("user: JSON object expected", res) end
  if type(data.id) ~= "string" or data.id == "" then
    return decode_error("user: field 'id' is missing or not a string", res)
  end
  local dn = data.display_name
  local cur = type(dn) == "table" and dn.current
  local name = type(cur) == "table" and cur.value
  if type(name) ~= "string" then
    return decode_error("user: field 'display_name.current.value' is missing or not a string", res)
  end
  local ok, admin = optional(data, "is_administrator", "boolean", "a boolean")
  if not ok then return decode_error("user: " .. admin, res) end
  local ok2, created = optional(data, "created_at", "string", "a time string")
  if not ok2 then return decode_error("user: " .. created, res) end
  local ok3, deleted = optional(data, "deleted_at", "string", "a time string")
  if not ok3 then return decode_error("user: " .. deleted, res) end
  return build({
    identifier = data.id, username = name, is_administrator = admin, created_at = created,
    deleted_at = deleted, token = token,
  })
end

--- Builds a user from its fields (to restore one from a session, or in tests).
-- `User.new{ identifier = "...", username = "..." }`. Bad fields raise.
-- @tparam table fields `identifier` and `username` (strings), and optionally `is_administrator`,
-- `created_at`, `deleted_at`, `token`
-- @treturn User
-- @static
function User.new(fields)
  if type(fields) ~= "table" then argfail("new", 1, "table expected, got " .. type(fields)) end
  if type(fields.identifier) ~= "string" then argfail("new", 1, "field 'identifier': string expected") end
  if type(fields.username) ~= "string" then argfail("new", 1, "field 'username': string expected") end
  if fields.is_administrator ~= nil and type(fields.is_administrator) ~= "boolean" then
    argfail("new", 1, "field 'is_administrator': boolean expected")
  end
  for _, k in ipairs({ "created_at", "deleted_at" }) do
    if fields[k] ~= nil and (type(fields[k]) ~= "string" or not is_iso8601(fields[k])) then
      argfail("new", 1, format("field '%s': ISO 8601 string expected", k))
    end
  end
  if fields.token ~= nil and type(fields.token) ~= "table" and type(fields.token) ~= "string" then
    argfail("new", 1, "field 'token': Token or access-token string expected")
  end
  return build({
    identifier = fields.identifier, username = fields.username, is_administrator = fields.is_administrator,
    created_at = fields.created_at, deleted_at = fields.deleted_at, token = fields.token,
  })
end

--- Whether `v` is a User.
-- @param v any value
-- @treturn boolean
-- @static
function User.is_user(v)
  return getmetatable(v) == User
end

function User.__tostring(u)
  return format("<User %s>", tostring(u.username))
end

-- Users are equal when their identifiers are (as in Python).
function User.__eq(a, b)
  return getmetatable(a) == User and getmetatable(b) == User and a.identifier == b.identifier
end

-- Decodes a response's JSON object, or nil, err.
-- The JSON object of an API call's result (`res, err` as the client returns them): `data, res`,
-- or `nil, err` when the call failed or the body is not a JSON object.
local MAX_USER_RESPONSE = 1024 * 1024 -- a user is about 300 bytes; a search page of 100, 30 KB

local function json_object(what, res, err)
  if not res then return nil, err end
  if #res.content > MAX_USER_RESPONSE then
    return decode_error(format("%s: response too large (%d bytes, at most %d)", what, #res.content,
      MAX_USER_RESPONSE), res)
  end
  local data, derr = res:json()
  if data == nil then return nil, derr end
  if type(data) ~= "table" or data == null then return decode_error(what .. ": JSON object expected", res) end
  return data, res
end

--- Starts a sign-in: a new state (keep it in the player's session) and the URL to send the
-- player to.
-- @tparam[opt=600] number expiration seconds the state stays valid
-- @tparam[opt] string nonce (default: 128 random hex characters)
-- @tparam[opt] string using connection alias
-- @treturn string state
-- @treturn string url, or `nil, err` (KeyError) when the state cannot be signed
-- @static
function User.start_authorization(expiration, nonce, using)
  check_opt("start_authorization", 1, expiration, "number")
  check_opt("start_authorization", 2, nonce, "string")
  check_opt("start_authorization", 3, using, "string")
  local client = connections.get_connection(using)
  local state, err = client:generate_state(expiration, nonce)
  if not state then return nil, err end
  return state, client:authorization_url(state)
end

--- The user a token belongs to: `GET /api/v1/auth/self` with the token. A context without a
-- user (a guest, or a client's own credentials) gives a DecodeError.
-- @param token a Token or an access-token string
-- @tparam[opt] string using connection alias
-- @return a User with `token` set and `is_authenticated` true, or `nil, err`
-- @static
function User.from_token(token, using)
  if type(token) ~= "table" and type(token) ~= "string" then
    argfail("from_token", 1, "Token or access-token string expected, got " .. type(token))
  end
  check_opt("from_token", 2, using, "string")
  local client = connections.get_connection(using)
  local ctx, res = json_object("auth context", client.users:me(token))
  if not ctx then return nil, res end
  if ctx.user == nil or ctx.user == null then
    local kind = type(ctx.type) == "string" and ctx.type:match("^[%w_]+$") and ctx.type or "unknown"
    return nil, errors.new(errors.DecodeError,
      format("auth context of type %s has no user: the token does not sign anyone in", kind),
      { response = res, context_type = kind })
  end
  return User.from_data(ctx.user, token, res)
end

--- Completes a sign-in on the callback: validates `callback_state` (against `expected_state`
-- when given) first, then exchanges the code for a token, then reads the user it belongs to.
-- @tparam string code the callback's `code`
-- @tparam string callback_state the callback's `state` (nil gives an InvalidStateError)
-- @tparam[opt] string expected_state the state kept in the player's session
-- @tparam[opt] string using connection alias
-- @return a User, or `nil, err` (InvalidStateError, RequestError, TransportError, DecodeError)
-- @static
function User.from_authorization_code(code, callback_state, expected_state, using)
  if type(code) ~= "string" or code == "" then
    argfail("from_authorization_code", 1, "authorization code string expected, got " ..
      (code == "" and "empty string" or type(code)))
  end
  check_opt("from_authorization_code", 2, callback_state, "string")
  check_opt("from_authorization_code", 3, expected_state, "string")
  check_opt("from_authorization_code", 4, using, "string")
  local client = connections.get_connection(using)
  local claims, err = client:validate_state(callback_state, expected_state)
  if not claims then return nil, err end
  local token, terr = client:token(code)
  if not token then return nil, terr end
  return User.from_token(token, using)
end

--- One user by id: `GET /api/v1/users/<id>`.
-- @tparam string user_id the user's id (a UUID)
-- @tparam[opt] string using connection alias
-- @return a User (without token), or `nil, err` (a RequestError with `status_code` 404 when unknown)
-- @static
function User.get(user_id, using)
  if type(user_id) ~= "string" or user_id == "" then
    argfail("get", 1, "user id string expected, got " .. (user_id == "" and "empty string" or type(user_id)))
  end
  check_opt("get", 2, using, "string")
  local client = connections.get_connection(using)
  local data, res = json_object("user", client.users:get(user_id))
  if not data then return nil, res end
  return User.from_data(data, nil, res)
end

local function check_count(fname, n, v, what)
  if v ~= nil and (math_type(v) ~= "integer" or v < 0) then
    argfail(fname, n, what .. ": non-negative integer expected", 3)
  end
end

-- GET /api/v1/users and its decoded object, or nil, err.
local function search(query, limit, offset, using)
  return json_object("user search", connections.get_connection(using).users:search(query, limit, offset))
end

-- The array User.search returns: a plain array that prints its users in a REPL.
local List = {
  __name = "eternaltwin.User list",
  __tostring = function(list)
    local names = {}
    for i = 1, #list do names[i] = tostring(list[i]) end
    return "{" .. table.concat(names, ", ") .. "}"
  end,
}

--- Searches users by (part of) their name.
-- @tparam[opt=""] string query (empty: everyone)
-- @tparam[opt=20] integer limit the most users returned
-- @tparam[opt=0] integer offset how many matching users to skip (for pages)
-- @tparam[opt] string using connection alias
-- @return an array of Users (maybe empty; `tostring` lists them), or `nil, err`
-- @static
function User.search(query, limit, offset, using)
  check_opt("search", 1, query, "string")
  check_count("search", 2, limit, "limit")
  check_count("search", 3, offset, "offset")
  check_opt("search", 4, using, "string")
  local data, res = search(query, limit, offset, using)
  if not data then return nil, res end
  local items = data.items
  local n = 0
  if type(items) == "table" and items ~= null then
    for _ in pairs(items) do n = n + 1 end
  end
  if type(items) ~= "table" or items == null or n ~= #items then
    return decode_error("user search: field 'items' is missing or not an array", res)
  end
  local list = setmetatable({}, List)
  for i = 1, #items do
    local u, err = User.from_data(items[i], nil, res)
    if not u then return nil, err end
    list[i] = u
  end
  return list
end

--- The number of users whose name matches `query` (all users without one).
-- @tparam[opt] string query part of a display name (none: every user)
-- @tparam[opt] string using connection alias
-- @return an integer, or `nil, err`
-- @static
function User.count(query, using)
  check_opt("count", 1, query, "string")
  check_opt("count", 2, using, "string")
  local data, res = search(query, 0, 0, using)
  if not data then return nil, res end
  local n = data.count
  if math_type(n) ~= "integer" then
    if type(n) == "number" and n >= 0 and n == math.floor(n) and n < 2 ^ 53 then
      n = tointeger(n)
    else
      return decode_error("user search: field 'count' is missing or not an integer", res)
    end
  end
  if n < 0 then return decode_error("user search: field 'count' is negative", res) end
  return n
end

--- Methods (called with a colon: user:logout).
-- @section Methods

--- Signs the user out locally: drops the token (`is_authenticated` becomes false). The token is
-- not revoked on the server.
function User:logout()
  self.token = nil
  self.is_authenticated = false
end

-- The class itself prints as such in a REPL.
setmetatable(User, { __tostring = function() return "<eternaltwin.User class>" end })

return User
