-- SPDX-License-Identifier: MIT
-- A scripted player's browser for the demo and the specs: signs in on an Eternaltwin server
-- (session cookie) and follows an authorization URL to the app's callback without a real browser.
-- It uses the module's own HTTP client, with absolute URLs.
local eternaltwin = require("eternaltwin")

local M = {}
local Browser = {}
Browser.__index = Browser

--- A browser over `client` (any eternaltwin client: only its HTTP side is used).
function M.new(client)
  return setmetatable({ client = client, cookies = {} }, Browser)
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

--- Decodes an application/x-www-form-urlencoded query into a table.
function M.parse_query(q)
  local t = {}
  for pair in (q or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function dec(s)
      return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end
    t[dec(k)] = dec(v)
  end
  return t
end

function Browser:_cookie_header()
  local parts = {}
  for k, v in pairs(self.cookies) do parts[#parts + 1] = k .. "=" .. v end
  table.sort(parts)
  return #parts > 0 and { Cookie = table.concat(parts, "; ") } or nil
end

function Browser:_keep_cookies(res)
  for line in (res.headers["set-cookie"] or ""):gmatch("[^\n]+") do
    local k, v = line:match("^%s*([^=;%s]+)=([^;]*)")
    if k then self.cookies[k] = v ~= "" and v or nil end
  end
end

--- Signs in on the server at `base` (PUT /api/v1/auth/self?method=Etwin, password sent as hex).
-- @return the response, or nil, err
function Browser:login(base, login, password)
  local res, err = self.client:request("PUT", base .. "api/v1/auth/self?method=Etwin", {
    json = { login = login, password = hex(password) },
  })
  if not res then return nil, err end
  self:_keep_cookies(res)
  return res
end

--- Opens an authorization URL as the signed-in player would and returns the callback's query
-- parameters (`code`, `state`, or `error`) and the callback URL.
function Browser:authorize(url)
  local res, err = self.client:request("GET", url, { headers = self:_cookie_header(), raise_on_error = false })
  if not res then return nil, err end
  local location = res.headers["location"]
  if res.status_code ~= 302 or not location then
    return nil, eternaltwin.errors.new("RequestError",
      string.format("authorization did not redirect (HTTP %d)", res.status_code), { response = res })
  end
  return M.parse_query(location:match("%?([^#]*)")), location
end

return M
