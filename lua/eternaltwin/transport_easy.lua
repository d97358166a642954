-- SPDX-License-Identifier: MIT
--- Internal: the blocking transport, one libcurl easy session per client (keep-alive), made on
-- the first request (never inside nginx: runtime sends there through cosockets). The session never
-- follows redirects (`eternaltwin.http` does) and gives packed headers. See `eternaltwin.runtime`
-- for the shape every transport has.
-- @module eternaltwin.transport_easy
local core = require("eternaltwin.core")
local options = require("eternaltwin.options")

local M = {}

--- The client's libcurl session, made on first use from its frozen settings.
function M.session(conn)
  local s = conn.session
  if not s then
    s = core.session(options.session_options(conn.settings))
    conn.session = s
  end
  return s
end
local session = M.session

--- One exchange: status, packed headers, body, url (nil when the one asked); or nil, code, message.
function M.send(conn, method, url, headers, body, flags)
  return (conn.session or session(conn)):request(method, url, headers, body, flags)
end

return M
