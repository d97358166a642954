-- SPDX-License-Identifier: MIT
--- Internal, kept for compatibility: `request(settings, method, url, headers, body, flags)` over
-- the cosocket transport as it was before the transports shared one shape: the request checks
-- and the redirect policy of `eternaltwin.http`, then `eternaltwin.transport_cosocket`; headers as a
-- table. Use a client instead. Not part of the public API.
-- @module eternaltwin.cosocket
local core = require("eternaltwin.core")
local http = require("eternaltwin.http")

local M = {}

--- One HTTP request, following redirects when the settings allow (inside nginx, in a phase with
-- cosockets). Raises on the argument mistakes every transport is spared.
-- @return status, headers (a table), body, url; or nil, code, message
function M.request(settings, method, url, headers, body, flags)
  http.check_request(method, body, headers, 2)
  local status, h, content, eff = http.exchange({ settings = settings }, method, url, headers, body, flags)
  if status == nil then return nil, h, content end
  return status, core.headers_table(h), content, eff or url
end

return M
