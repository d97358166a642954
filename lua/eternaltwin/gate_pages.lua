-- SPDX-License-Identifier: MIT
--- Internal: the gate's pages (eternaltwin.gate). A page has a status, a short reason meant for the
-- player (never a secret, never an internal message: those go to the log), a link back to the site,
-- and a "Try again" link only where trying again can help. A site's `on_error(status, reason, info)`
-- renders them itself when it returns true. Not part of the public API.
-- @module eternaltwin.gate_pages

local tostring, pcall, format = tostring, pcall, string.format
local core = require("eternaltwin.core")

-- luacheck: globals ngx
local M = {}

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
local function html_escape(s) return (tostring(s):gsub("[&<>\"']", ESC)) end
M.html_escape = html_escape

local TITLES = { [200] = "Sign out", [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
                 [405] = "Method Not Allowed", [429] = "Too Many Requests", [501] = "Not Implemented",
                 [502] = "Bad Gateway", [503] = "Service Unavailable" }

local function no_store(ngx) ngx.header["Cache-Control"] = "no-store" end
M.no_store = no_store

--- Answers a page and ends the request. `o`: `code` (a short stable name for on_error: "declined",
-- "misconfigured", "store_unavailable"...), `retry` (a path of this site where trying again can
-- help), `extra` (HTML after the reason), `retry_after` (seconds, for 429 and 503; default 60).
function M.page(gate, status, reason, o)
  local ngx = ngx
  o = o or {}
  ngx.status = status
  ngx.header["Content-Type"] = "text/html; charset=utf-8"
  ngx.header["X-Frame-Options"] = "DENY"
  ngx.header["Content-Security-Policy"] = "default-src 'none'; form-action 'self'; frame-ancestors 'none'"
  if status == 503 or status == 429 then ngx.header["Retry-After"] = tostring(o.retry_after or 60) end
  no_store(ngx)
  local home = gate.home
  if status >= 400 and gate.on_error then
    local ok, answered = pcall(gate.on_error, status, reason, { code = o.code, retry = o.retry, home = home })
    if not ok then
      ngx.log(ngx.ERR, "eternaltwin.gate: on_error raised (the default page is shown): ", tostring(answered))
      -- Its headers may have changed: the default page's again.
      ngx.status = status
      ngx.header["Content-Type"] = "text/html; charset=utf-8"
    elseif answered then
      return ngx.exit(ngx.HTTP_OK)
    end
  end
  local title = status == 200 and TITLES[200] or format("%d %s", status, TITLES[status] or "Error")
  local links = {}
  if o.retry then links[#links + 1] = '<a id="try-again" href="' .. html_escape(o.retry) .. '">Try again</a>' end
  links[#links + 1] = '<a id="back" href="' .. html_escape(home) .. '">Back to the site</a>'
  ngx.print(format('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>%s</title></head>\n'
    .. '<body><h1>%s</h1>\n<p>%s</p>%s\n<nav>%s</nav>\n</body></html>\n', title, title, html_escape(reason),
    o.extra or "", table.concat(links, " · ")))
  return ngx.exit(ngx.HTTP_OK)
end

-- The page of a store failure: 503, Retry-After, logged (the store's message, never a value).
M.STORE_RETRY_AFTER = 5
function M.store_down(gate, what, err, retry)
  ngx.log(ngx.ERR, "eternaltwin.gate: the store failed (", what, "): ", tostring(err))
  return M.page(gate, 503, "This site cannot check sign-ins right now; try again in a few seconds.",
    { code = "store_unavailable", retry = retry, retry_after = M.STORE_RETRY_AFTER })
end

function M.json_reply(status, value)
  local ngx = ngx
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  no_store(ngx)
  ngx.print(core.json_encode(value))
  return ngx.exit(ngx.HTTP_OK)
end

return M
