-- SPDX-License-Identifier: MIT
-- The soak of spec/soak_spec.lua, run in a fresh Lua process (so that its file descriptors and RSS
-- are its own): `lua -e '...' spec/support/soak.lua URL TOTAL`. Prints one line of results.
local V = require("spec.support.compat")
local eternaltwin = require("eternaltwin")
local core = require("eternaltwin.core")
local keys = require("eternaltwin.keys")

local URL = assert(arg[1], "mock URL expected")
local TOTAL = V.tointeger(tonumber(arg[2])) or 50000
local TASKS = 200

local function client(opts)
  local o = { client_id = "demo@clients", client_secret = "dev_secret",
              redirect_uri = "http://localhost:8000/oauth/callback",
              state_key = keys.HS256Key("soak spec"), url = URL }
  for k, v in pairs(opts or {}) do o[k] = v end
  return eternaltwin.new(o)
end

local function open_fds()
  local n = 0
  local p = io.popen("ls /proc/" .. io.open("/proc/self/stat"):read("*n") .. "/fd 2>/dev/null")
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n
end

local function rss_kib()
  local f = io.open("/proc/self/statm")
  local _, resident = f:read("*n", "*n")
  f:close()
  return resident * 4
end

-- The fault of request i (deterministic): 1% 503, 0.5% dropped connection, 0.5% timeout.
local function plan(i)
  local r = (i * 7919) % 1000
  if r < 10 then return "status" end
  if r < 15 then return "reset" end
  if r < 20 then return "timeout" end
  return "ok"
end

-- Runs n requests over TASKS tasks; returns the counts by outcome and the seconds taken.
local function soak(n)
  local c = client{ timeout = 5 }
  local slow = client{ timeout = 0.2 }
  local counts = { ok = 0, status = 0, reset = 0, timeout = 0, other = 0, calls = 0 }
  local want = { ok = 0, status = 0, reset = 0, timeout = 0 }
  for i = 1, n do want[plan(i)] = want[plan(i)] + 1 end
  local p = eternaltwin.poller({ max_connections = 32 })
  local next_i = 0
  for _ = 1, TASKS do
    p:spawn(function()
      while next_i < n do
        next_i = next_i + 1
        local kind = plan(next_i)
        local res, err
        if kind == "ok" then res, err = c:get("_mock/static/user")
        elseif kind == "status" then res, err = c:get("_mock/status/503")
        elseif kind == "reset" then res, err = c:get("_mock/reset-connection", { params = { after = 10 } })
        else res, err = slow:get("_mock/delay", { params = { ms = 1000 } }) end
        counts.calls = counts.calls + 1
        if res and res.status_code == 200 and kind == "ok" then counts.ok = counts.ok + 1
        elseif err and err.kind == "RequestError" and err.status_code == 503 and kind == "status" then
          counts.status = counts.status + 1
        elseif err and err.kind == "TransportError" and kind == "reset"
            and (err.code == "reset" or err.code == "empty_reply") then
          counts.reset = counts.reset + 1
        elseif err and err.kind == "TransportError" and err.code == "timeout" and kind == "timeout" then
          counts.timeout = counts.timeout + 1
        else
          counts.other = counts.other + 1
          counts.last_other = tostring(err or res)
        end
      end
    end)
  end
  local t0 = core.monotime()
  local live = p:run(90)
  local took = core.monotime() - t0
  p:close()
  c:close()
  slow:close()
  return counts, want, live, took
end


-- Warm-up: connection pools, caches, allocator arenas.
soak(2000)
collectgarbage(); collectgarbage()
local fds, rss, heap = open_fds(), rss_kib(), collectgarbage("count")
local counts, want, live, took = soak(TOTAL)
collectgarbage(); collectgarbage()
local fds2, rss2, heap2 = open_fds(), rss_kib(), collectgarbage("count")
print(("soak live=%d calls=%d other=%d ok=%d/%d status=%d/%d reset=%d/%d timeout=%d/%d took=%.2f "
  .. "fds=%d,%d rss=%d,%d heap=%.0f,%.0f last=%s")
  :format(live, counts.calls, counts.other, counts.ok, want.ok, counts.status, want.status, counts.reset, want.reset,
          counts.timeout, want.timeout, took, fds, fds2, rss, rss2, heap, heap2, tostring(counts.last_other)))
