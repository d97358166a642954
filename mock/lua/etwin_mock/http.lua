-- SPDX-License-Identifier: MIT
-- Request and response helpers shared by the mock's handlers.
local util = require("etwin_mock.util")

local M = {}

local JSON_TYPE = "application/json; charset=utf-8"
M.JSON_TYPE = JSON_TYPE

-- Sends a JSON response; `headers` is an optional table of extra headers.
function M.json(status, value, headers)
  local body = util.json_encode(value)
  ngx.status = status
  ngx.header["Content-Type"] = JSON_TYPE
  ngx.header["Content-Length"] = #body
  if headers then
    for k, v in pairs(headers) do ngx.header[k] = v end
  end
  ngx.print(body)
end

function M.error(status, name, headers)
  M.json(status, { error = name }, headers)
end

function M.html(status, body, headers)
  ngx.status = status
  ngx.header["Content-Type"] = "text/html; charset=utf-8"
  if headers then
    for k, v in pairs(headers) do ngx.header[k] = v end
  end
  ngx.print(body)
end

function M.redirect(location, status, headers)
  ngx.status = status or 302
  ngx.header["Location"] = location
  if headers then
    for k, v in pairs(headers) do ngx.header[k] = v end
  end
end

-- Query arguments (at most 1000). Values are strings, `true` (no `=`) or arrays.
function M.args()
  local args = ngx.ctx.args
  if not args then
    args = ngx.req.get_uri_args(1000)
    ngx.ctx.args = args
  end
  return args
end

-- First value of a query or form argument as a string; a bare key gives "".
function M.first(value)
  if type(value) == "table" then
    value = value[1]
  end
  if value == true then
    return ""
  end
  if type(value) == "string" then
    return value
  end
  return nil
end

function M.arg(name)
  return M.first(M.args()[name])
end

-- The raw request body ("" when none).
function M.body()
  if ngx.ctx.body then
    return ngx.ctx.body
  end
  ngx.req.read_body()
  local data = ngx.req.get_body_data()
  if not data then
    local file = ngx.req.get_body_file()
    if file then
      local f = io.open(file, "rb")
      if f then
        data = f:read("*a")
        f:close()
      end
    end
  end
  ngx.ctx.body = data or ""
  return ngx.ctx.body
end

-- Body parameters from a JSON object or a form body: a table of string or other JSON values,
-- or nil, "bad_json" when a JSON body does not parse to an object.
function M.body_params()
  local body = M.body()
  local ctype = ngx.var.http_content_type
  ctype = type(ctype) == "string" and ctype:lower() or ""
  -- JSON by type, or by look (`curl -d '{...}'` labels JSON as a form): a form never starts with `{`.
  local is_json = ctype:find("^application/json") or ctype:find("%+json") or body:find("^%s*{")
  if is_json then
    if body:find("^%s*$") then
      return {}
    end
    local v = util.json_decode(body)
    if type(v) ~= "table" or v[1] ~= nil then
      return nil, "bad_json"
    end
    return v
  end
  local args = ngx.decode_args(body, 1000) or {}
  local out = {}
  for k, v in pairs(args) do
    out[k] = M.first(v)
  end
  return out
end

-- Non-negative integer from a query string value (math.huge when absurdly long), or nil.
function M.uint(s)
  if type(s) ~= "string" or not s:find("^%d+$") then
    return nil
  end
  if #s > 15 then
    return math.huge
  end
  return tonumber(s)
end

return M
