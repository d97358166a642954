-- SPDX-License-Identifier: MIT
-- A hostile HTTP server for the specs (spec/support/hostile_server.lua starts it): raw responses the
-- nginx mock cannot send (header lines that look like status lines, a 2 MiB header line, 20,000 headers, a redirecting
-- token endpoint, absurd token fields). One connection at a time, `Connection: close` always.
--
--   lua5.4 spec/support/hostile.lua      -- prints "listening PORT", serves until killed
--
-- Routes (by the path's last part(s), so a client's base URL can carry a prefix):
--   /redirect/oauth/token   307 to /steal on this server (which counts and answers a valid token)
--   /_count                 {"steal":N}: requests /steal received
--   /exp-huge/oauth/token   a token with expires_in = 1e400 (read as inf)
--   /exp-big/oauth/token    a token with expires_in = 1e20
--   /exp-nan/oauth/token    a token with expires_in = -1e400 (read as -inf)
--   /bigjson/oauth/token    a 1 MiB JSON array of zeros
--   /bigself/api/v1/auth/self  a 2 MiB JSON object
--   /bigarray               a JSON array of zeros just under 16 MiB
--   /http-lines             200 with 300,000 `HTTP/x: ...` header lines (11 MB)
--   /many-headers           200 with 20,000 distinct short headers (220 KB)
--   /long-header            200 with one 2 MiB header line
--   /header-mix             a 103 block, then 200 with repeats in mixed case, set-cookie twice, folded
--                           lines (one after a repeat with an empty value), names that are not tokens,
--                           empty and binary values
--   /many-repeats           200 with 6,000 Set-Cookie lines and 6,000 X-Rep lines, interleaved
local socket = require("socket")

local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
io.stdout:write("listening ", port, "\n")
io.stdout:flush()

local steal = 0

local function respond(c, status, headers, body)
  local out = { "HTTP/1.1 " .. status .. "\r\n" }
  for _, h in ipairs(headers) do out[#out + 1] = h .. "\r\n" end
  out[#out + 1] = "Content-Length: " .. #body .. "\r\nConnection: close\r\n\r\n"
  out[#out + 1] = body
  c:send(table.concat(out))
end

local function token(expires)
  return '{"access_token":"hostile-access","token_type":"Bearer","expires_in":' .. expires .. '}'
end

local function handle(c)
  c:settimeout(5)
  local line = c:receive("*l")
  if not line then return end
  local path = line:match("^%u+ (%S+)") or "/"
  path = path:gsub("%?.*", "")
  local len = 0
  while true do
    local h = c:receive("*l")
    if not h or h == "" then break end
    local n = h:lower():match("^content%-length:%s*(%d+)")
    if n then len = tonumber(n) end
  end
  if len > 0 then c:receive(len) end
  local J = { "Content-Type: application/json" }
  if path:find("/redirect/oauth/token$") then
    respond(c, "307 Temporary Redirect", { "Location: http://127.0.0.1:" .. port .. "/steal" }, "")
  elseif path:find("/steal$") then
    steal = steal + 1
    respond(c, "200 OK", J, token(3600))
  elseif path:find("/_count$") then
    respond(c, "200 OK", J, '{"steal":' .. steal .. '}')
  elseif path:find("/exp%-huge/oauth/token$") then
    respond(c, "200 OK", J, token("1e400"))
  elseif path:find("/exp%-big/oauth/token$") then
    respond(c, "200 OK", J, token("1e20"))
  elseif path:find("/exp%-nan/oauth/token$") then
    respond(c, "200 OK", J, token("-1e400"))
  elseif path:find("/bigjson/oauth/token$") then
    respond(c, "200 OK", J, "[" .. ("0,"):rep(512 * 1024 - 1) .. "0]")
  elseif path:find("/bigself/api/v1/auth/self$") then
    respond(c, "200 OK", J, '{"pad":"' .. ("a"):rep(2 * 1024 * 1024) .. '"}')
  elseif path:find("/bigarray$") then
    respond(c, "200 OK", J, "[" .. ("0,"):rep(8 * 1024 * 1024 - 2) .. "0]")
  elseif path:find("/http%-lines$") then
    local hs = {}
    for i = 1, 300000 do hs[i] = "HTTP/x: " .. i .. "-abcdefghijklmnopqrstuvwxyz" end
    respond(c, "200 OK", hs, "ok")
  elseif path:find("/many%-headers$") then
    local hs = {}
    for i = 1, 20000 do hs[i] = "h" .. i .. ": v" end
    respond(c, "200 OK", hs, "ok")
  elseif path:find("/header%-mix$") then
    c:send("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\nX-Early: dropped\r\n\r\n")
    respond(c, "200 OK", { "X-Multi: a", "Set-Cookie: s=1; Path=/", "x-MULTI:  b  ", "Folded: first",
      "   continued   ", "\tand more", "Set-Cookie: s=2", "Bad Name: ignored", ": empty name",
      "X-Empty:", "X-Bin: a\1b\255c", "HTTP/x: y", "X-Multi: c", "X-Empty:", "X-Fold: a",
      "X-Other: 1", "X-Fold:", "  tail", "X-Last: 1" }, "ok")
  elseif path:find("/many%-repeats$") then
    local hs = {}
    for i = 1, 6000 do hs[#hs + 1] = "Set-Cookie: c" .. i .. "=1"; hs[#hs + 1] = "X-Rep: " .. i end
    respond(c, "200 OK", hs, "ok")
  elseif path:find("/long%-header$") then
    respond(c, "200 OK", { "X-Long: " .. ("a"):rep(2 * 1024 * 1024) }, "ok")
  else
    respond(c, "404 Not Found", J, '{"error":"NotFound"}')
  end
end

while true do
  local c = server:accept()
  if c then
    pcall(handle, c)
    c:close()
  end
end
