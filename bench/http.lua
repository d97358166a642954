-- SPDX-License-Identifier: MIT
-- HTTP and memory workloads against the mock's static route (nginx alone, no Lua behind it).
--   lua5.4 bench/http.lua blocking URL SECONDS ROUNDS        -> `round N REQ/S` (client:get, keep-alive)
--   lua5.4 bench/http.lua inflight URL CONC SECONDS ROUNDS   -> `round N REQ/S` (CONC poller tasks)
--   lua5.4 bench/http.lua memory URL                         -> `rss1k KiB` and `rss100k KiB`
--   lua5.4 bench/http.lua peak URL TASKS                     -> `peak KiB` (VmHWM, TASKS in flight,
--                                                               256 connections)
-- URL is the mock's base URL; the workloads GET `_mock/static/user` and check each status.
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local monotime = require("eternaltwin.core").monotime

local mode, base = arg[1], arg[2]
local ENDPOINT = "_mock/static/user"

-- BENCH_UA="" makes clients that send no User-Agent (the request the C and lua-curl loops send).
local function new_client()
  return eternaltwin.new("bench@clients", "secret", "http://localhost/cb", assert(keys.HS256Key("bench")),
                         { url = base, user_agent = os.getenv("BENCH_UA") })
end

local function status_kib(field)
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match(field .. ":%s*(%d+) kB"))
end

local function out(fmt, ...)
  io.write(fmt:format(...), "\n")
  io.flush()
end

if mode == "blocking" then
  local seconds, rounds = tonumber(arg[3]), tonumber(arg[4])
  local client = new_client()
  for _ = 1, 200 do assert(client:get(ENDPOINT)) end           -- warm: connection, allocator, caches
  for r = 1, rounds do
    local n, t0 = 0, monotime()
    local deadline = t0 + seconds
    repeat
      for _ = 1, 100 do
        local res = client:get(ENDPOINT)
        if not res then error("request failed") end
      end
      n = n + 100
    until monotime() >= deadline
    out("round %d %.1f", r, n / (monotime() - t0))
  end
elseif mode == "inflight" then
  local conc, seconds, rounds = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
  local client = new_client()
  local poller = eternaltwin.poller()
  local function run(deadline)
    local n = 0
    for _ = 1, conc do
      poller:spawn(function()
        repeat
          local res, err = client:get(ENDPOINT)
          if not res then error(err) end
          n = n + 1
        until monotime() >= deadline
      end)
    end
    local t0 = monotime()
    poller:run()
    return n, monotime() - t0
  end
  run(monotime() + 0.3)                                        -- warm: open the connections
  for r = 1, rounds do
    local n, dt = run(monotime() + seconds)
    out("round %d %.1f", r, n / dt)
  end
elseif mode == "memory" then
  local client = new_client()
  local done = 0
  local function upto(n)
    while done < n do
      local res = client:get(ENDPOINT)
      if not res then error("request failed") end
      done = done + 1
    end
    collectgarbage()
    collectgarbage()
    return status_kib("VmRSS")
  end
  out("rss1k %d", upto(1000))
  out("rss100k %d", upto(100000))
elseif mode == "peak" then
  local tasks = tonumber(arg[3])
  local client = new_client()
  -- The transfers wait in the multi for one of 256 connections (nginx's worker has 1024).
  local poller = eternaltwin.poller({ max_connections = 256 })
  local ok = 0
  for _ = 1, tasks do
    poller:spawn(function()
      local res, err = client:get(ENDPOINT)
      if not res then error(err) end
      ok = ok + 1
    end)
  end
  poller:step()                                                -- every task started, its transfer added
  local inflight = poller.live
  poller:run()
  if ok ~= tasks then error(("only %d of %d requests succeeded"):format(ok, tasks)) end
  out("inflight %d", inflight)
  out("peak %d", status_kib("VmHWM"))
elseif mode == "count" then
  -- Exactly N blocking requests after a warm-up: two runs under callgrind give the instructions
  -- of one request (their difference over the difference of N).
  local n = tonumber(arg[3])
  local client = new_client()
  for _ = 1, 100 do assert(client:get(ENDPOINT)) end
  for _ = 1, n do
    local res = client:get(ENDPOINT)
    if not res or res.status_code ~= 200 then error("request failed") end
  end
  out("done %d", n)
elseif mode == "pcount" then
  -- Exactly N requests through CONC poller tasks (each task loops while requests are left to
  -- make), after a warm-up round that opens the connections.
  local conc, total = tonumber(arg[3]), tonumber(arg[4])
  local client = new_client()
  local poller = eternaltwin.poller()
  local function run(count)
    local left = count
    for _ = 1, conc do
      poller:spawn(function()
        while left > 0 do
          left = left - 1
          local res, err = client:get(ENDPOINT)
          if not res then error(err) end
        end
      end)
    end
    poller:run()
  end
  run(conc * 2)
  run(total)
  out("done %d", total)
elseif mode == "mcount" then
  -- The floor of the poller: the same N requests, CONC at a time, through the C binding alone
  -- (core.multi: add, perform, poll, finished, result), driven by a plain Lua loop: no client, no
  -- tasks, no coroutines.
  local conc, total = tonumber(arg[3]), tonumber(arg[4])
  local core = require("eternaltwin.core")
  -- As the client's session (headers packed) and the poller (each finished transfer reused).
  local session = core.session({ timeout = 5, user_agent = os.getenv("BENCH_UA"), packed_headers = true })
  local multi = core.multi()
  local url = base .. ENDPOINT
  local function run(count)
    local started, done = 0, 0
    while started < conc and started < count do
      multi:add(session, "GET", url, nil, nil, nil, true)
      started = started + 1
    end
    while done < count do
      multi:perform()
      local finished = multi:finished()
      for i = 1, #finished do
        local xfer = finished[i]
        local status = xfer:result()
        if status ~= 200 then error("request failed") end
        done = done + 1
        if started < count then
          multi:add(session, "GET", url, nil, nil, nil, true, xfer)
          started = started + 1
        end
      end
      if #finished == 0 then multi:poll(0.1) end
    end
  end
  run(conc * 2)
  run(total)
  out("done %d", total)
elseif mode == "big" then
  -- CONC tasks each GET a 1 MiB body (`_mock/static/1m`) ROUNDS times, CONC in flight at once;
  -- prints the peak RSS (VmHWM) and the RSS before the first request, in KiB.
  local conc, rounds = tonumber(arg[3]), tonumber(arg[4] or 4)
  local client = new_client()
  local poller = eternaltwin.poller()
  collectgarbage()
  local base_rss = status_kib("VmRSS")
  local bytes = 0
  -- Each body used, then dropped (as a program that handles it in a function would): a body the
  -- task's loop still held in a register while its next request runs would count twice.
  local function fetch()
    local res, err = client:get("_mock/static/1m")
    if not res then error(err) end
    return #res.content
  end
  for _ = 1, conc do
    poller:spawn(function()
      for _ = 1, rounds do
        local n = fetch()                    -- (not `bytes + fetch()`: bytes would be read before)
        bytes = bytes + n
      end
    end)
  end
  poller:run()
  assert(bytes == conc * rounds * 1048576, "short bodies")
  out("base %d", base_rss)
  out("peak %d", status_kib("VmHWM"))
else
  error("usage: bench/http.lua blocking|inflight|memory|peak|count|pcount|big URL ...")
end
