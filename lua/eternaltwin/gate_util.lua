-- SPDX-License-Identifier: MIT
--- Internal: the gate's checks of what enters it (return URLs, user ids, display names, origins),
-- its signed values and its cookies (eternaltwin.gate). Not part of the public API.
-- @module eternaltwin.gate_util

local core = require("eternaltwin.core")

local type = type
local format, concat, byte, find, sub = string.format, table.concat, string.byte, string.find, string.sub
local b64e, b64d = core.b64url_encode, core.b64url_decode

-- luacheck: globals ngx
local M = {}

local MAX_RETURN = 1024        -- bytes of a remembered URL; a longer one comes back to "/"
local MAX_KEPT = 400           -- bytes of it a binding cookie holds: beyond, its path alone, else "/"
local MAX_NAME_CHARS = 64      -- a display name: 1 to 64 characters of UTF-8, no control character

--- Whether `s` is a path of this site: one leading `/`, never `//` or `/\` (which browsers read as
-- another host), no control characters or spaces, at most MAX_RETURN bytes.
local function local_path(s)
  if type(s) ~= "string" or #s > MAX_RETURN or s:sub(1, 1) ~= "/" then return false end
  local second = s:sub(2, 2)
  if second == "/" or second == "\\" then return false end
  if s:find("[%c ]") then return false end
  return true
end
M.local_path = local_path

-- The URL a binding cookie keeps: the request's own when short, else its path alone, else "/".
local function kept_return(uri)
  if not local_path(uri) then return "/" end
  if #uri <= MAX_KEPT then return uri end
  local path = uri:match("^[^?#]*")
  if #path <= MAX_KEPT and local_path(path) then return path end
  return "/"
end
M.kept_return = kept_return

--- Whether `s` is a user id as Eternaltwin writes them: a lower-case hyphenated UUID.
local function valid_id(s)
  return type(s) == "string" and #s == 36
    and s:find("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
    and not s:find("%u")
end
M.valid_id = valid_id

--- Whether `s` is a display name the gate keeps: valid UTF-8, 1 to MAX_NAME_CHARS characters, no
-- C0 or C1 control character, no DEL.
local function valid_name(s)
  if type(s) ~= "string" or s == "" or #s > MAX_NAME_CHARS * 4 then return false end
  local i, n, chars = 1, #s, 0
  while i <= n do
    local c = byte(s, i)
    local len, cp
    if c < 0x80 then
      if c < 0x20 or c == 0x7f then return false end
      len, cp = 1, c
    elseif c >= 0xc2 and c <= 0xdf then len, cp = 2, c - 0xc0
    elseif c >= 0xe0 and c <= 0xef then len, cp = 3, c - 0xe0
    elseif c >= 0xf0 and c <= 0xf4 then len, cp = 4, c - 0xf0
    else return false end
    if i + len - 1 > n then return false end
    for k = i + 1, i + len - 1 do
      local cc = byte(s, k)
      if cc < 0x80 or cc > 0xbf then return false end
      cp = cp * 64 + (cc - 0x80)
    end
    -- Overlong forms, surrogates, beyond U+10FFFF, C1 controls.
    if (len == 3 and cp < 0x800) or (len == 4 and (cp < 0x10000 or cp > 0x10ffff))
       or (cp >= 0xd800 and cp <= 0xdfff) or (cp >= 0x80 and cp <= 0x9f) then
      return false
    end
    chars = chars + 1
    i = i + len
  end
  return chars <= MAX_NAME_CHARS
end
M.valid_name = valid_name

-- "scheme://host[:port]" of an absolute URL, lower case, default port left out; or nil.
local function origin_of(url)
  if type(url) ~= "string" then return nil end
  local scheme, authority = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme or authority == "" or authority:find("@", 1, true) then return nil end
  scheme, authority = scheme:lower(), authority:lower()
  if (scheme == "https" and authority:sub(-4) == ":443") or (scheme == "http" and authority:sub(-3) == ":80") then
    authority = authority:match("^(.*):%d+$")
  end
  return scheme .. "://" .. authority
end
M.origin_of = origin_of

------------------------------------------------------------------------------------------------
-- Signed values: b64url(payload) "." b64url(HMAC-SHA256(tag .. payload))
-- @section internals

-- The payload text of a signed value, or nil. Every key is tried (rotation).
function M.verified(self, tag, value)
  if type(value) ~= "string" or #value > 4096 then return nil end
  local p, s = value:match("^([%w_-]+)%.([%w_-]+)$")
  if not p then return nil end
  local payload, sig = b64d(p), b64d(s)
  if not payload or not sig then return nil end
  local data = tag .. payload
  local keys = self._keys
  for i = 1, #keys do
    if keys[i]:verify(data, sig) then return payload end   -- CRYPTO_memcmp: constant time
  end
  return nil
end

function M.signed_value(self, tag, payload)
  return b64e(payload) .. "." .. b64e(assert(self._keys[1]:sign(tag .. payload)))
end

------------------------------------------------------------------------------------------------
-- Cookies

-- The request's cookies: name -> list of values. Names compare exactly (nginx's $cookie_NAME
-- ignores case, which would let `__host-x` stand in for `__Host-x`); a name sent twice keeps both.
-- (Scanned with plain finds and byte tests, and no loop that turns in the usual case: this runs
-- on every protected request, LuaJIT compiles neither gmatch nor match, and an inner loop keeps
-- the callers out of its traces.) As RFC 6265 writes pairs: `name=value`, separated by `;` and
-- blanks; a name holding a blank is skipped, blanks around a value are dropped.
local function is_blank(b) return b == 32 or b == 9 end

local function blank_in(s, a, b)
  local i = find(s, " ", a, true)
  if i and i <= b then return true end
  i = find(s, "\t", a, true)
  return i ~= nil and i <= b
end

function M.request_cookies(header)
  local jar = {}
  if header == nil then header = ngx.var.http_cookie end
  if type(header) ~= "string" then return jar end
  local pos, len = 1, #header
  while pos <= len do
    local stop = find(header, ";", pos, true) or len + 1
    while is_blank(byte(header, pos)) do pos = pos + 1 end
    local eq = find(header, "=", pos, true)
    if eq and eq < stop and eq > pos and not blank_in(header, pos, eq - 1) then
      local c, d = eq + 1, stop - 1
      while c <= d and is_blank(byte(header, c)) do c = c + 1 end
      while d >= c and is_blank(byte(header, d)) do d = d - 1 end
      local name = sub(header, pos, eq - 1)
      local list = jar[name]
      if not list then list = {} jar[name] = list end
      list[#list + 1] = sub(header, c, d)
    end
    pos = stop + 1
  end
  return jar
end

local function add_set_cookie(value)
  local h = ngx.header["Set-Cookie"]
  if h == nil then
    ngx.header["Set-Cookie"] = value
  elseif type(h) == "table" then
    h[#h + 1] = value
    ngx.header["Set-Cookie"] = h
  else
    ngx.header["Set-Cookie"] = { h, value }
  end
end

-- Every cookie of the gate: Path=/, no Domain (host-only), HttpOnly, SameSite=Lax, Secure when the
-- gate is (which `__Host-` names need).
function M.set_cookie(self, name, value, max_age)
  local parts = { name .. "=" .. value, "Path=/" }
  if max_age > 0 then
    parts[#parts + 1] = "Max-Age=" .. format("%d", max_age)
    parts[#parts + 1] = "Expires=" .. ngx.cookie_time(ngx.time() + max_age)
  else
    parts[#parts + 1] = "Max-Age=0"
    parts[#parts + 1] = "Expires=Thu, 01 Jan 1970 00:00:00 GMT"
  end
  parts[#parts + 1] = "HttpOnly"
  parts[#parts + 1] = "SameSite=Lax"
  if self.secure then parts[#parts + 1] = "Secure" end
  add_set_cookie(concat(parts, "; "))
end

return M
