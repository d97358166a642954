-- SPDX-License-Identifier: MIT
-- A hostile Eternaltwin for spec/cli_terminal_spec.lua: every user it returns has terminal
-- control sequences in its display name, id and token fields (ESC, BEL, CR, LF, DEL, C1 controls in UTF-8
-- and as raw bytes, a bidi override). One connection at a time, `Connection: close` always.
--
--   lua5.4 spec/support/hostile_users.lua      -- prints "listening PORT", serves until killed
--
-- Routes: GET /api/v1/users/ID and /api/v1/auth/self (one user), GET /api/v1/users (a search of one),
-- POST /oauth/token (a token whose fields carry the same bytes).
local socket = require("socket")

local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
io.stdout:write("listening ", port, "\n")
io.stdout:flush()

-- JSON string escapes: the bytes arrive raw after decoding.
local NAME = [[Mallory\u001b]0;pwned\u0007\u001b[2J\r\nis_administrator  true\u007f\u0085\u009b\u202ex]]
  .. "\194\155\155" -- C1 CSI in UTF-8, then a raw 0x9b byte (not UTF-8)
local ID = [[id\u001b[1m\nforged]]
local DATE = "2020-01-01T00:00:00.000Z"     -- checked by the module: an ISO 8601 time
local USER = '{"type":"User","id":"' .. ID .. '","display_name":{"current":{"value":"' .. NAME .. '"}},'
  .. '"created_at":"' .. DATE .. '","deleted_at":null,"is_administrator":false}'

local function respond(c, status, body)
  c:send("HTTP/1.1 " .. status .. "\r\nContent-Type: application/json\r\nContent-Length: " .. #body
    .. "\r\nConnection: close\r\n\r\n" .. body)
end

while true do
  local c = server:accept()
  if c then
    c:settimeout(5)
    local line = c:receive("*l")
    local len = 0
    while line do
      local h = c:receive("*l")
      if not h or h == "" then break end
      local n = h:lower():match("^content%-length:%s*(%d+)")
      if n then len = tonumber(n) end
    end
    if line then
      if len > 0 then c:receive(len) end
      local path = (line:match("^%u+ (%S+)") or "/"):gsub("%?.*", "")
      if path:find("/oauth/token$") then
        respond(c, "200 OK", '{"access_token":"tok\\u001b[2J","token_type":"Bearer\\u0007\\r\\nx",'
          .. '"expires_in":3600}')
      elseif path:find("/api/v1/users$") then
        respond(c, "200 OK", '{"count":1,"offset":0,"limit":20,"items":[' .. USER .. ']}')
      elseif path:find("/api/v1/auth/self$") then
        respond(c, "200 OK", '{"type":"AccessToken","scope":"Default","user":' .. USER .. '}')
      elseif path:find("/api/v1/users/") then
        respond(c, "200 OK", USER)
      else
        respond(c, "404 Not Found", '{"error":"NotFound"}')
      end
    end
    c:close()
  end
end
