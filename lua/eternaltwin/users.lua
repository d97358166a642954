-- SPDX-License-Identifier: MIT
--- `client.users`: the user endpoints of the Eternaltwin API. Each call returns a Response or `nil, err`.
-- @module eternaltwin.users
local core = require("eternaltwin.core")

local Users = {}
Users.__index = Users
Users.__name = "eternaltwin.Users"

local M = {}

function M.new(client)
  return setmetatable({ client = client }, Users)
end

function Users.__tostring(u) return "<eternaltwin.Users " .. u.client.url .. ">" end

local function check_token(fname, token)
  if token ~= nil and type(token) ~= "string" and type(token) ~= "table" then
    error(string.format("bad argument to '%s' (token: Token or access-token string expected, got %s)",
      fname, type(token)), 3)
  end
end

--- The caller's auth context: `GET /api/v1/auth/self` (with the token, the signed-in user).
function Users:me(token)
  check_token("users:me", token)
  return self.client:get("api/v1/auth/self", { token = token })
end

--- One user: `GET /api/v1/users/<id>`, the id percent-encoded as a path segment.
function Users:get(user_id, token)
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

--- Searches users: `GET /api/v1/users?q=..&limit=..&offset=..` (limit 20, offset 0 by default).
function Users:search(query, limit, offset, token)
  if query ~= nil and type(query) ~= "string" then error("bad argument #1 to 'users:search' (string expected)", 2) end
  if limit ~= nil and math.type(limit) ~= "integer" then
    error("bad argument #2 to 'users:search' (integer limit expected)", 2)
  end
  if offset ~= nil and math.type(offset) ~= "integer" then
    error("bad argument #3 to 'users:search' (integer offset expected)", 2)
  end
  check_token("users:search", token)
  return self.client:get("api/v1/users", {
    params = { { "q", query or "" }, { "limit", limit or 20 }, { "offset", offset or 0 } },
    token = token,
  })
end

return M
