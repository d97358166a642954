-- SPDX-License-Identifier: MIT
--- `client.users`: the user endpoints of the Eternaltwin API. Each call returns a Response or `nil, err`.
-- @module eternaltwin.users
local core = require("eternaltwin.core")
local math_type = require("eternaltwin.compat").math_type

local Users = {}
Users.__index = Users
Users.__name = "eternaltwin.Users"

local M = {}

-- The sub-client of `client` (made by eternaltwin.new).
function M.new(client)
  return setmetatable({ client = client }, Users)
end

function Users.__tostring(u) return "<eternaltwin.Users " .. u.client.url .. ">" end

-- `client.users.get(id)` (a dot for a colon) passes the id as `self`: say how to call it.
local function check_self(self, name)
  if type(self) ~= "table" then
    error(string.format("bad self to 'users:%s' (client.users expected, got %s: call it as " ..
      "client.users:%s(...), with a colon)", name, type(self), name), 3)
  end
end

local function check_token(fname, token)
  if token ~= nil and type(token) ~= "string" and type(token) ~= "table" then
    error(string.format("bad argument to '%s' (token: Token or access-token string expected, got %s)",
      fname, type(token)), 3)
  end
end

--- The caller's auth context: `GET /api/v1/auth/self` (with the token, the signed-in user).
-- Without a token the server answers 200 for a Guest, `{"type":"Guest","scope":"Default"}`, with no
-- `user` field: check `me.type` (`"AccessToken"` with a token) before reading `me.user`.
-- @tparam[opt] Token|string token the player's Token or access-token string
-- @treturn Response or `nil, err`; `res:json()` is the auth context
function Users:me(token)
  check_self(self, "me")
  check_token("users:me", token)
  return self.client:get("api/v1/auth/self", { token = token })
end

--- One user: `GET /api/v1/users/<id>`, the id percent-encoded as a path segment.
-- @tparam string user_id the user's id (a UUID)
-- @tparam[opt] Token|string token
-- @treturn Response or `nil, err` (a RequestError with `status_code` 404 for an unknown id)
function Users:get(user_id, token)
  check_self(self, "get")
  if type(user_id) ~= "string" or user_id == "" then
    error("bad argument #1 to 'users:get' (user id string expected)", 2)
  end
  check_token("users:get", token)
  -- "." and ".." are unreserved, so path_encode keeps them; curl would then resolve them as dot
  -- segments (`/api/v1/` or `/api/v1/users/`, with the token): spelled %2E instead.
  local seg = core.path_encode(user_id)
  if seg == "." or seg == ".." then seg = seg:gsub("%.", "%%2E") end
  return self.client:get("api/v1/users/" .. seg, { token = token })
end

--- Searches users by (part of) their display name: `GET /api/v1/users?q=&limit=&offset=`.
-- @tparam[opt=""] string query part of a display name (empty: everyone)
-- @tparam[opt=20] integer limit the most users in the answer
-- @tparam[opt=0] integer offset how many matching users to skip (for pages)
-- @tparam[opt] Token|string token
-- @treturn Response or `nil, err`; `res:json()` is `{ count = n, items = {...} }`
function Users:search(query, limit, offset, token)
  check_self(self, "search")
  if query ~= nil and type(query) ~= "string" then error("bad argument #1 to 'users:search' (string expected)", 2) end
  if limit ~= nil and math_type(limit) ~= "integer" then
    error("bad argument #2 to 'users:search' (integer limit expected)", 2)
  end
  if offset ~= nil and math_type(offset) ~= "integer" then
    error("bad argument #3 to 'users:search' (integer offset expected)", 2)
  end
  check_token("users:search", token)
  return self.client:get("api/v1/users", {
    params = { { "q", query or "" }, { "limit", limit or 20 }, { "offset", offset or 0 } },
    token = token,
  })
end

return M
