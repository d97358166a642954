-- SPDX-License-Identifier: MIT
-- The Lua side of bench/redisloop.c: the same SET NX PX loop through core.redis_connect, to know
-- what the binding costs over bare hiredis (issue 21). Not wired into make bench yet.
--   lua bench/redisloop.lua PORT PASSWORD SECONDS [command]
--   -> `redisloop.lua set_nx_px: N ops/s` (or `command`: the generic r:command{...} path)
local core = require("eternaltwin.core")
local port, password, seconds, mode = tonumber(arg[1]), arg[2], tonumber(arg[3]), arg[4] or "set_nx_px"
local r = assert(core.redis_connect({ port = port, password = password, timeout = 1 }))
local n, added = 0, 0
local t0 = core.monotime()
local stamp = math.floor(t0)
local t
repeat
  for _ = 1, 256 do
    local key = "bench:l:" .. stamp .. ":" .. n
    n = n + 1
    local ok
    if mode == "command" then
      ok = r:command({ "SET", key, "1", "NX", "PX", "10000" })
    else
      ok = r:set_nx_px(key, "1", 10000)
    end
    if ok == nil then error("SET failed") end
    if ok then added = added + 1 end
  end
  t = core.monotime() - t0
until t >= seconds
print(("redisloop.lua %s: %.0f ops/s (%d added of %d)"):format(mode, n / t, added, n))
r:close()
