-- SPDX-License-Identifier: MIT
-- Helpers of the Eternaltwin mock: JSON encoding, crypto (libcrypto through FFI), ids, times.
local ffi = require("ffi")
local bit = require("bit")

local M = {}

-- JSON ------------------------------------------------------------------------------------------
-- Own encoder: stable key order (sorted) and explicit arrays (cjson cannot tell `[]` from `{}`).

local array_mt = { __name = "json array" }
M.null = setmetatable({}, { __name = "json null", __tostring = function() return "null" end })

-- Marks a table as a JSON array (needed for empty arrays only, but harmless otherwise).
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

-- Bytes that are not valid UTF-8 are escaped as their Latin-1 code point so the output stays JSON.
local function fix_utf8(s)
  if not s:find("[\128-\255]") then
    return s
  end
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = 0
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then len = 3
    elseif c >= 0xF0 and c <= 0xF4 then len = 4 end
    local ok = len > 0 and i + len - 1 <= n
    if ok then
      for j = i + 1, i + len - 1 do
        local d = s:byte(j)
        if d < 0x80 or d > 0xBF then ok = false break end
      end
    end
    if ok then
      out[#out + 1] = s:sub(i, i + len - 1)
      i = i + len
    else
      out[#out + 1] = string.format("\\u%04x", c)
      i = i + 1
    end
  end
  return table.concat(out)
end

local function encode_string(s)
  s = s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end)
  return '"' .. fix_utf8(s) .. '"'
end

local function is_array(t)
  if getmetatable(t) == array_mt then
    return true
  end
  local n = #t
  if n == 0 then
    return false
  end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function encode(v, out, depth)
  if depth > 64 then
    error("json: too deep")
  end
  local tv = type(v)
  if v == nil or v == M.null then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    elseif v == math.floor(v) and math.abs(v) < 2^53 then
      out[#out + 1] = string.format("%d", v)
    else
      out[#out + 1] = string.format("%.17g", v)
    end
  elseif tv == "string" then
    out[#out + 1] = encode_string(v)
  elseif tv == "table" then
    if is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ":"
        local val = v[k]
        if val == nil then val = v[tonumber(k)] end
        encode(val, out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    out[#out + 1] = "null"
  end
end

function M.json_encode(v)
  local out = {}
  encode(v, out, 0)
  return table.concat(out)
end

-- Decodes JSON text; returns the value or nil, message. Never raises.
local cjson_ok, cjson = pcall(require, "cjson.safe")
function M.json_decode(s)
  if type(s) ~= "string" or s == "" then
    return nil, "empty body"
  end
  if not cjson_ok then
    return nil, "no JSON decoder"
  end
  local v, err = cjson.decode(s)
  if v == nil then
    return nil, err or "invalid JSON"
  end
  if v == cjson.null then
    return M.null
  end
  return v
end
M.cjson_null = cjson_ok and cjson.null or nil

-- Crypto ----------------------------------------------------------------------------------------

ffi.cdef[[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
int RAND_bytes(unsigned char *buf, int num);
int CRYPTO_memcmp(const void *a, const void *b, size_t len);
]]
local crypto = ffi.load("libcrypto.so.3")

function M.hmac_sha256(key, data)
  local md = ffi.new("unsigned char[32]")
  local len = ffi.new("unsigned int[1]")
  if crypto.HMAC(crypto.EVP_sha256(), key, #key, data, #data, md, len) == nil then
    error("HMAC failed")
  end
  return ffi.string(md, len[0])
end

function M.random_bytes(n)
  local buf = ffi.new("unsigned char[?]", n)
  if crypto.RAND_bytes(buf, n) ~= 1 then
    error("RAND_bytes failed")
  end
  return ffi.string(buf, n)
end

-- Constant-time comparison of two strings (length leaks, content does not).
function M.secure_equal(a, b)
  if type(a) ~= "string" or type(b) ~= "string" or #a ~= #b then
    return false
  end
  return crypto.CRYPTO_memcmp(a, b, #a) == 0
end

function M.to_hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- Lower or upper case hex to bytes; nil when not hex.
function M.from_hex(h)
  if #h % 2 ~= 0 or h:find("[^%x]") then
    return nil
  end
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

-- Base64url ---------------------------------------------------------------------------------------

function M.b64url_encode(s)
  return (ngx.encode_base64(s):gsub("[+/=]", { ["+"] = "-", ["/"] = "_", ["="] = "" }))
end

function M.b64url_decode(s)
  if type(s) ~= "string" or s:find("[^%w%-_]") or #s % 4 == 1 then
    return nil
  end
  s = s:gsub("[-_]", { ["-"] = "+", ["_"] = "/" })
  s = s .. string.rep("=", (4 - #s % 4) % 4)
  return ngx.decode_base64(s)
end

-- Ids -----------------------------------------------------------------------------------------------

local function format_uuid(b)
  local h = M.to_hex(b)
  return h:sub(1, 8) .. "-" .. h:sub(9, 12) .. "-" .. h:sub(13, 16) .. "-" .. h:sub(17, 20) .. "-" .. h:sub(21, 32)
end

local function set_version(b, version)
  local b7 = bit.bor(bit.band(b:byte(7), 0x0f), version * 16)
  local b9 = bit.bor(bit.band(b:byte(9), 0x3f), 0x80)
  return b:sub(1, 6) .. string.char(b7) .. b:sub(8, 8) .. string.char(b9) .. b:sub(10, 16)
end

function M.uuid4()
  return format_uuid(set_version(M.random_bytes(16), 4))
end

-- Namespace of the mock's name-based ids (a fixed random UUID).
local NAMESPACE = M.from_hex("6f1d2c0a9b3e4d5f8a7b1c2d3e4f5a6b")

-- RFC 4122 version 5 (SHA-1, name based): the same name always gives the same id.
function M.uuid5(name)
  return format_uuid(set_version(ngx.sha1_bin(NAMESPACE .. name):sub(1, 16), 5))
end

function M.is_uuid(s)
  return type(s) == "string" and #s == 36
    and s:find("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

-- Times -----------------------------------------------------------------------------------------

-- `YYYY-MM-DDTHH:MM:SS.sssZ` for a Unix time in (fractional) seconds.
function M.iso_time(t)
  local s = math.floor(t)
  local ms = math.floor((t - s) * 1000 + 0.5)
  if ms >= 1000 then
    s, ms = s + 1, ms - 1000
  end
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. string.format(".%03dZ", ms)
end

-- URLs ----------------------------------------------------------------------------------------------

-- Form encoding as Python's quote_plus (unreserved kept, space `+`).
function M.form_encode(s)
  s = tostring(s):gsub("[^%w%-%._~ ]", function(c) return string.format("%%%02X", c:byte()) end)
  return (s:gsub(" ", "+"))
end

-- Percent encoding of everything but the unreserved characters.
function M.percent_encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function M.html_escape(s)
  return (tostring(s):gsub("[&<>\"']", {
    ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;",
  }))
end

return M
