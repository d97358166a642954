-- SPDX-License-Identifier: MIT
-- Starts spec/support/hostile.lua (raw responses the nginx mock cannot send) once, on demand:
--
--   local hostile = require("spec.support.hostile_server")
--   teardown(hostile.stop)
--   ... client({ url = hostile.url() .. "bigjson/" }) ...
local M = {}

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/support/[^/]*$") or "."

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local hostile

--- The server's base URL (ends with "/"), starting it on the first call.
function M.url()
  if hostile then return hostile.url end
  local out, pidf = os.tmpname(), os.tmpname()
  assert(os.execute("lua5.4 " .. q(ROOT .. "/spec/support/hostile.lua") .. " >" .. q(out)
    .. " 2>/dev/null & echo $! >" .. q(pidf)))
  local port
  for _ = 1, 200 do
    local f = io.open(out)
    local text = f and f:read("*a") or ""
    if f then f:close() end
    port = text:match("listening (%d+)")
    if port then break end
    os.execute("sleep 0.05")
  end
  local f = assert(io.open(pidf))
  local pid = f:read("*l")
  f:close()
  os.remove(out)
  os.remove(pidf)
  assert(port, "hostile server did not start")
  hostile = { url = "http://127.0.0.1:" .. port .. "/", pid = pid }
  return hostile.url
end

--- Stops the server if it runs (the next url() starts another).
function M.stop()
  if hostile then os.execute("kill " .. hostile.pid .. " 2>/dev/null") end
  hostile = nil
end

return M
