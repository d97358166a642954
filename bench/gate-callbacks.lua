-- SPDX-License-Identifier: MIT
-- wrk script for bench/gate.lua: each request is one prepared sign-in callback (its URL and its
-- binding cookie, one per line of the file named by GATE_CALLBACKS, tab-separated), never twice.
-- Threads take interleaved lines. Usage: GATE_CALLBACKS=file wrk -s bench/gate-callbacks.lua URL
local lines = {}
local f = assert(io.open(os.getenv("GATE_CALLBACKS")))
for line in f:lines() do lines[#lines + 1] = line end
f:close()

local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local i, step
function init()
  i = id + 1
  step = tonumber(os.getenv("GATE_THREADS") or "1")
end

function request()
  local line = lines[i]
  if not line then
    -- Out of prepared callbacks: a request the gate refuses fast (counted apart by status).
    return wrk.format("GET", "/oauth/callback")
  end
  i = i + step
  local path, cookie = line:match("^([^\t]+)\t(.*)$")
  return wrk.format("GET", path, { Cookie = cookie })
end

function done(summary, latency, requests)
end
