-- SPDX-License-Identifier: MIT
-- `make bench`: every workload next to its ceiling, measured in the same session on the same
-- machine, round by round (workload, then ceiling, alternately), and a table of medians, min, max
-- and ratios (median of the per-round workload / ceiling ratios).
--   lua5.4 bench/run.lua [--rounds N] [--seconds S] [--out FILE]
-- Needs build/bench/limit (mk/bench.mk builds it), wrk, openssl, the mock (mock/etwin-mock).
local LUA = os.getenv("LUA") or "lua5.4"
local BUILD = os.getenv("BENCH_DIR") or "build/bench"

local rounds, seconds, outfile = 7, 1.0, BUILD .. "/last.md"
do
  local i = 1
  while arg[i] do
    if arg[i] == "--rounds" then rounds = assert(tonumber(arg[i + 1]), "--rounds N"); i = i + 2
    elseif arg[i] == "--seconds" then seconds = assert(tonumber(arg[i + 1]), "--seconds S"); i = i + 2
    elseif arg[i] == "--out" then outfile = arg[i + 1]; i = i + 2
    else error("usage: bench/run.lua [--rounds N] [--seconds S] [--out FILE]") end
  end
end
assert(rounds >= 5, "at least 5 rounds")

local function sh(cmd)
  local f = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = f:read("*a")
  local ok, _, code = f:close()
  if not ok then error(("command failed (%s): %s\n%s"):format(tostring(code), cmd, out), 0) end
  return out
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- Pinning. On this kind of virtual machine a wake-up across cores costs about a millisecond, which
-- would measure the hypervisor, not the code: the server (one nginx worker) and every client
-- (ours, wrk, the C limit) share one core, the last one, when taskset is there.
local ncpu = tonumber(sh("nproc")) or 1
local PIN = ""
if ncpu >= 2 and os.execute("command -v taskset >/dev/null 2>&1") then
  PIN = ("taskset -c %d "):format(ncpu - 1)
end

-- Keys for the state round trip: made once, shared by both sides.
local keys = {
  HS256 = BUILD .. "/keys/hs256.key", RS256 = BUILD .. "/keys/rsa.pem", PS256 = BUILD .. "/keys/rsa.pem",
  ES256 = BUILD .. "/keys/ec.pem", EdDSA = BUILD .. "/keys/ed.pem",
}
sh("mkdir -p " .. BUILD .. "/keys")
if not exists(keys.HS256) then
  local f = assert(io.open(keys.HS256, "w")); f:write("bench: a long random secret for HS256 states"); f:close()
end
if not exists(keys.RS256) then sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " .. keys.RS256) end
if not exists(keys.ES256) then sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. keys.ES256) end
if not exists(keys.EdDSA) then sh("openssl genpkey -algorithm ED25519 -out " .. keys.EdDSA) end

-- The mock, on the pinned core; stopped whatever happens.
local BASE, stop_mock = require("examples.mockserver").spawn(PIN)
local STATIC = BASE .. "_mock/static/user"

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2, s[1], s[n]
end

local function one(cmd, pattern)
  local out = sh(PIN .. cmd)
  local v = out:match(pattern)
  if not v then error(("no figure in the output of %s:\n%s"):format(cmd, out), 0) end
  return tonumber(v)
end

local function lua_round(args) return one(LUA .. " " .. args, "round 1 ([%d.]+)") end
local function wrk(conns)
  return one(("wrk -t1 -c%d -d%ds %s"):format(conns, math.max(1, math.floor(seconds + 0.5)), STATIC),
             "Requests/sec:%s*([%d.]+)")
end

local rows = {}
local function row(name, unit, values, limit_name, limits, target, better)
  local m, lo, hi = median(values)
  local r = { name = name, unit = unit, median = m, min = lo, max = hi, target = target, better = better }
  if limits then
    -- Each round ran the workload and its ceiling back to back: the ratio is the median of the
    -- per-round ratios, so that a slow drift of the machine's load cancels out.
    local ratios = {}
    for i = 1, #values do ratios[i] = values[i] / limits[i] end
    r.limit_name = limit_name
    r.limit = median(limits)
    r.ratio = median(ratios)
  end
  rows[#rows + 1] = r
  io.stderr:write(("  %-28s %12.1f %s%s\n"):format(name, m, unit,
    r.ratio and (" (%.2fx %s)"):format(r.ratio, limit_name) or ""))
end

local ok, err = pcall(function()
  io.stderr:write(("bench: %d rounds, %s per round, mock on %s, %s\n"):format(rounds, seconds .. " s", BASE,
    PIN ~= "" and "server and clients pinned to CPU " .. (ncpu - 1) or "not pinned"))

  -- 1. State round trip per algorithm, against bench/limit; ticket redeem beside it.
  for _, alg in ipairs({ "HS256", "RS256", "PS256", "ES256", "EdDSA" }) do
    local lua_v, c_v = {}, {}
    local args = ("%s %s %s %s 1"):format(alg, keys[alg], BASE, seconds / 2)
    for r = 1, rounds do
      lua_v[r] = lua_round("bench/state.lua " .. args)
      c_v[r] = one(BUILD .. "/limit " .. args, "round 1 ([%d.]+)")
    end
    row("state round trip " .. alg, "rt/s", lua_v, "C limit", c_v, alg == "HS256" and 0.5 or 0.9)
    -- A game server's hot path: redeeming a ticket (verify, claims, replay store). No ceiling.
    local t_v = {}
    for r = 1, rounds do t_v[r] = lua_round("bench/ticket.lua " .. args) end
    row("  ticket redeem " .. alg, "redeem/s", t_v)
  end

  -- 2. Blocking GET with keep-alive, against wrk -t1 -c1.
  -- Also libcurl alone (bench/curlloop.c), not a target: the floor of any libcurl client.
  local CURL = BUILD .. "/curlloop"
  local lua_v, w_v, c_v = {}, {}, {}
  for r = 1, rounds do
    lua_v[r] = lua_round(("bench/http.lua blocking %s %s 1"):format(BASE, seconds))
    w_v[r] = wrk(1)
    c_v[r] = one(("%s blocking %s %s"):format(CURL, STATIC, seconds), "round 1 ([%d.]+)")
  end
  row("blocking GET (keep-alive)", "req/s", lua_v, "wrk -c1", w_v, 0.85)
  row("  libcurl alone, blocking (C)", "req/s", c_v, "wrk -c1", w_v)

  -- 3. 64 requests in flight through the poller, against wrk -t1 -c64.
  lua_v, w_v, c_v = {}, {}, {}
  for r = 1, rounds do
    lua_v[r] = lua_round(("bench/http.lua inflight %s 64 %s 1"):format(BASE, seconds))
    w_v[r] = wrk(64)
    c_v[r] = one(("%s multi %s 64 %s"):format(CURL, STATIC, seconds), "round 1 ([%d.]+)")
  end
  row("64 in flight (poller)", "req/s", lua_v, "wrk -c64", w_v, 0.4)
  row("  libcurl alone, 64 in a multi (C)", "req/s", c_v, "wrk -c64", w_v)

  -- 4. Memory.
  local r1k, r100k, growth, peak = {}, {}, {}, {}
  for r = 1, rounds do
    local out = sh(PIN .. LUA .. " bench/http.lua memory " .. BASE)
    r1k[r] = tonumber(out:match("rss1k (%d+)")) / 1024
    r100k[r] = tonumber(out:match("rss100k (%d+)")) / 1024
    growth[r] = r100k[r] - r1k[r]
    peak[r] = one(LUA .. " bench/http.lua peak " .. BASE .. " 1000", "peak (%d+)") / 1024
  end
  row("RSS after 1,000 requests", "MiB", r1k)
  row("RSS after 100,000 requests", "MiB", r100k)
  row("RSS growth 1,000 -> 100,000", "MiB", growth, nil, nil, 1, "below")
  row("peak RSS, 1,000 tasks in flight", "MiB", peak, nil, nil, 64, "below")

  -- 5. require("eternaltwin"), in a fresh process each time (CPU time).
  local req = {}
  for r = 1, math.max(rounds, 11) do
    req[r] = one(LUA .. [[ -e "local c = os.clock; local t = c(); require('eternaltwin'); io.write('t ', (c() - t) * 1000)"]],
                 "t ([%d.e-]+)")
  end
  row('require("eternaltwin")', "ms", req)
end)
stop_mock()
if not ok then error(err, 0) end

-- The table.
local function fmt(v)
  if v >= 1000 then return ("%.0f"):format(v) end
  if v >= 10 then return ("%.1f"):format(v) end
  return ("%.2f"):format(v)
end
local lines = {
  ("`make bench`, %d rounds of %s s each; %s; %s."):format(rounds, seconds,
    PIN ~= "" and ("mock (one nginx worker) and clients pinned to CPU %d of %d"):format(ncpu - 1, ncpu) or "no pinning",
    os.date("!%Y-%m-%d %H:%M UTC")),
  "",
  "| workload | unit | median | min | max | ceiling (median) | ratio | target | met |",
  "| --- | --- | ---: | ---: | ---: | --- | ---: | --- | --- |",
}
local missed = 0
for _, r in ipairs(rows) do
  local ceiling, ratio, target, met = "", "", "", ""
  if r.ratio then
    ceiling = ("%s %s"):format(r.limit_name, fmt(r.limit))
    ratio = ("%.2fx"):format(r.ratio)
    if r.target then
      target = (">= %.2fx"):format(r.target)
      met = r.ratio >= r.target and "yes" or "NO"
    end
  elseif r.target then
    target = ("< %s %s"):format(r.target, r.unit)
    met = r.median < r.target and "yes" or "NO"
  end
  if met == "NO" then missed = missed + 1 end
  lines[#lines + 1] = ("| %s | %s | %s | %s | %s | %s | %s | %s | %s |"):format(r.name, r.unit, fmt(r.median),
    fmt(r.min), fmt(r.max), ceiling, ratio, target, met)
end
local text = table.concat(lines, "\n") .. "\n"
io.write("\n", text)
if outfile then
  local f = io.open(outfile, "w")
  if f then f:write(text); f:close() end
end
io.write(missed == 0 and "bench: every target met\n" or ("bench: %d target(s) missed\n"):format(missed))
