-- SPDX-License-Identifier: MIT
--- Internal: the one URL parser of the Lua layer.
-- Takes an http(s) URL apart (scheme, userinfo, host, port, path, query), resolves a redirect's
-- Location against the URL it answered, tells whether a relative path climbs above its base
-- through `..` segments, and gives the form of a URL shown in messages. Used by the client's
-- options (the base URL), the request path (endpoints), the redirect policy, the cosocket transport
-- and `errors.safe_url`. Not part of the public API.
-- @module eternaltwin.url

local tonumber, tostring = tonumber, tostring

local M = {}

--- Splits `scheme://authority rest` for http and https (any case): the scheme as written, the
-- authority (possibly empty) and the rest (path, query, fragment); nil for any other URL.
function M.split(url)
  return url:match("^([hH][tT][tT][pP][sS]?)://([^/?#]*)(.*)$")
end

--- Whether `s` starts like an absolute http(s) URL.
function M.is_http(s)
  return s:match("^[hH][tT][tT][pP][sS]?://") ~= nil
end

--- Takes an http(s) URL apart for a request: scheme (lower case), host (brackets kept for IPv6),
-- port (a number, the scheme's default when absent), request target (path and query, no fragment,
-- `/` at least), Host header value; or nil for a URL a request cannot use (another scheme, no host,
-- userinfo, a bad port, spaces or control characters).
function M.parse(url)
  local scheme, authority, rest = M.split(url)
  if not scheme or authority == "" or authority:find("@", 1, true) then return nil end
  scheme = scheme:lower()
  local host, port = authority:match("^(%[[%x:.]+%])(.*)$")
  if not host then host, port = authority:match("^([^:]+)(.*)$") end
  if not host then return nil end
  if port ~= "" then
    port = port:match("^:(%d+)$")
    port = port and tonumber(port)
    if not port or port < 1 or port > 65535 then return nil end
  else
    port = scheme == "https" and 443 or 80
  end
  rest = rest:gsub("#.*$", "")
  if rest == "" then rest = "/" elseif rest:sub(1, 1) == "?" then rest = "/" .. rest end
  if rest:find("[%s%z\127]") then return nil end
  local default = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
  return scheme, host, port, rest, default and host or host .. ":" .. port
end

--- Whether two http(s) URLs have the same origin (scheme, host and port, as `parse` reads them).
function M.same_origin(a, b)
  local s1, h1, p1 = M.parse(a)
  local s2, h2, p2 = M.parse(b)
  return s1 ~= nil and s1 == s2 and h1:lower() == h2:lower() and p1 == p2
end

--- The URL a redirect's Location leads to from `base` (absolute, scheme-relative, path-absolute
-- or relative); nil when it names another scheme than http(s), which is refused.
function M.resolve(base, loc)
  if M.is_http(loc) then return loc end
  if loc:match("^%a[%w+.-]*:") then return nil end
  local scheme, authority, path = base:match("^(%a+)://([^/?#]*)([^?#]*)")
  if loc:sub(1, 2) == "//" then return scheme .. ":" .. loc end
  if loc:sub(1, 1) == "/" then return scheme .. "://" .. authority .. loc end
  local dir = path:match("^(.*/)") or "/"
  return scheme .. "://" .. authority .. dir .. loc
end

--- Whether a relative path climbs above its base through `..` segments (which curl resolves).
function M.climbs(path)
  local depth = 0
  for seg in (path:match("^[^?#]*") .. "/"):gmatch("([^/]*)/") do
    if seg == ".." then
      depth = depth - 1
      if depth < 0 then return true end
    elseif seg ~= "." and seg ~= "" then
      depth = depth + 1
    end
  end
  return false
end

--- The URL without its query string, fragment and user information, for messages.
function M.safe(url)
  url = tostring(url or "")
  url = url:gsub("^(%a[%w+.-]*://)[^/@]*@", "%1")
  return (url:gsub("[?#].*$", ""))
end

return M
