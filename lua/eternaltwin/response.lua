-- SPDX-License-Identifier: MIT
--- Internal: the Response class (`eternaltwin.Response`) and the RequestError a status of 300 or
-- more gives. Documented with the module `eternaltwin`.
-- @module eternaltwin.response
local core = require("eternaltwin.core")
local errors = require("eternaltwin.errors")

local type, format, rawget = type, string.format, rawget
local new_error, safe_url = errors.new, errors.safe_url

local M = {}

local Response = {}
Response.__name = "eternaltwin.Response"
M.Response = Response

-- Every transport gives the headers packed in one string (`_headers`): most callers never read
-- them, and a table with two strings per header costs more than the rest of the call. The table is
-- built on the first read of `headers`, then kept as a plain field.
local headers_table = core.headers_table
function Response.__index(r, k)
  if k == "headers" then
    local packed = rawget(r, "_headers")
    if packed == nil then return nil end
    local h = headers_table(packed)
    r.headers, r._headers = h, nil
    return h
  end
  return Response[k]
end

function Response.__tostring(r) return format("<Response [%d]>", r.status_code) end

function Response:json()
  local v, msg = core.json_decode(self.content)
  if v == nil then
    return nil, new_error(errors.DecodeError,
      format("response from %s is not valid JSON: %s", safe_url(self.url), msg),
      { response = self })
  end
  return v
end

function Response:ok() return self.status_code >= 200 and self.status_code < 300 end

--- The RequestError of a response whose status is 300 or more.
function M.request_error(method, res)
  local detail = ""
  local ct = res.headers["content-type"] or ""
  if ct:find("json", 1, true) and #res.content <= 4096 then
    local body = core.json_decode(res.content)
    if type(body) == "table" and type(body.error) == "string" and body.error:match("^[%w_.%- ]+$")
        and #body.error <= 64 then
      detail = ": " .. body.error
    end
  end
  return new_error(errors.RequestError,
    format("HTTP %d from %s %s%s", res.status_code, method, safe_url(res.url), detail),
    { response = res, status_code = res.status_code, url = safe_url(res.url),
      retryable = res.status_code == 429 or res.status_code == 502 or res.status_code == 503
        or res.status_code == 504 })
end

return M
