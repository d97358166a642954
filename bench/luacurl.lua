-- SPDX-License-Identifier: MIT
-- The blocking GET through Debian's lua-curl (luacurl 0.3, `require "curl"`, Lua 5.1), the way its
-- users write it: one easy handle reused (keep-alive), the body collected by a write function.
--   lua5.1 bench/luacurl.lua blocking URL SECONDS ROUNDS  -> `round N REQ/S`
--   lua5.1 bench/luacurl.lua count URL N                 -> N requests (callgrind: instructions)
local curl = require("curl")
local monotime = os.clock
do
  -- Wall-clock seconds: the module's own monotonic clock, from its Lua 5.1 build (`make bench`
  -- makes it; os.clock, CPU time, would overstate a client that waits on the server).
  package.cpath = (os.getenv("ETWIN_LUA51_BUILD") or "build/lua5.1") .. "/?.so;" .. package.cpath
  local ok, core = pcall(require, "eternaltwin.core")
  if ok and core.monotime then monotime = core.monotime
  elseif arg[1] == "blocking" then error("bench/luacurl.lua: build the module for Lua 5.1 first (make LUA=lua5.1)") end
end

local mode, url = arg[1], arg[2]
local e = curl.easy_init()
e:setopt(curl.OPT_URL, url)
e:setopt(curl.OPT_NOSIGNAL, 1)
e:setopt(curl.OPT_TCP_NODELAY, 1)
local chunks, n = {}, 0
e:setopt(curl.OPT_WRITEFUNCTION, function(s, len)
  n = n + 1
  chunks[n] = s
  return len
end)

local function get()
  n = 0
  local ok, err = e:perform()
  if not ok then error(err) end
  local body = n == 1 and chunks[1] or table.concat(chunks, "", 1, n)
  if #body == 0 then error("empty body") end
  return body
end

if mode == "blocking" then
  local seconds, rounds = tonumber(arg[3]), tonumber(arg[4])
  for _ = 1, 200 do get() end
  for r = 1, rounds do
    local k, t0 = 0, monotime()
    repeat
      for _ = 1, 100 do get() end
      k = k + 100
    until monotime() - t0 >= seconds
    io.write(("round %d %.1f\n"):format(r, k / (monotime() - t0)))
    io.flush()
  end
elseif mode == "count" then
  local count = tonumber(arg[3])
  for _ = 1, 100 + count do get() end
  io.write(("done %d\n"):format(count))
else
  error("usage: bench/luacurl.lua blocking|count URL ...")
end
