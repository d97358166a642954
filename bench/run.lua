-- SPDX-License-Identifier: MIT
-- `make bench`: every workload next to its ceiling, measured in the same session on the same
-- machine, round by round (workload, then ceiling, alternately), and a table of medians, min, max
-- and ratios (median of the per-round workload / ceiling ratios).
--   lua5.4 bench/run.lua [--rounds N] [--seconds S] [--out FILE]
-- Needs build/bench/limit and build/bench/curlloop (mk/bench.mk builds them), wrk, openssl, the mock
-- (mock/etwin-mock); valgrind (callgrind) for the instruction counts and lua5.1 with Debian's
-- lua-curl for that comparison (each is skipped, and says so, when missing).
--
-- Two kinds of figures: wall-clock rates (noisy on a shared machine) and callgrind instruction
-- counts per request (steady): a workload run twice under callgrind with N1 and N2 requests gives
-- (I2 - I1) / (N2 - N1), start-up and warm-up cancelled. Where both exist the target is judged on
-- the instruction ratio and the wall-clock ratio is shown beside it.
local LUA = os.getenv("LUA") or "lua5.4"
local BUILD = os.getenv("BENCH_DIR") or "build/bench"

local rounds, seconds, outfile = 5, 1.0, BUILD .. "/last.md"
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

-- Pinning (taskset, two cores or more): by default the server (one nginx worker) and every client
-- (ours, wrk, libcurl alone, lua-curl, the C limit) share one core, the last one. On the virtual
-- machines these figures come from, waking a process on the other core costs about a millisecond:
-- with the server on a core of its own every blocking client drops to a few thousand requests per
-- second, which measures the hypervisor, not the clients. BENCH_PIN=split puts the server on the
-- core before (each side on a core of its own); instruction counts are the same either way.
local ncpu = tonumber(sh("nproc")) or 1
local PIN, SERVER_PIN, PIN_TEXT = "", nil, "not pinned"
if ncpu >= 2 and os.execute("command -v taskset >/dev/null 2>&1") then
  PIN = ("taskset -c %d "):format(ncpu - 1)
  if os.getenv("BENCH_PIN") == "split" then
    SERVER_PIN = ("taskset -c %d "):format(ncpu - 2)
    PIN_TEXT = ("mock (one nginx worker) pinned to CPU %d, clients to CPU %d, of %d"):format(ncpu - 2, ncpu - 1, ncpu)
  else
    SERVER_PIN = PIN
    PIN_TEXT = ("mock (one nginx worker) and clients pinned to CPU %d of %d"):format(ncpu - 1, ncpu)
  end
end
local HAVE_VALGRIND = os.execute("command -v valgrind >/dev/null 2>&1")
local HAVE_LUACURL = os.execute("lua5.1 -e 'require\"curl\"' >/dev/null 2>&1")
-- bench/luacurl.lua reads the clock from the module built for Lua 5.1 (build/lua5.1).
local LUA51_ENV = ""

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
local BASE, stop_mock = require("examples.mockserver").spawn(SERVER_PIN)
local STATIC = BASE .. "_mock/static/user"

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2, s[1], s[n]
end

local function one(cmd, pattern, env)
  local out = sh((env or "") .. PIN .. cmd)
  local v = out:match(pattern)
  if not v then error(("no figure in the output of %s:\n%s"):format(cmd, out), 0) end
  return tonumber(v)
end

local function lua_round(args) return one(LUA .. " " .. args, "round 1 ([%d.]+)") end

-- Instructions per unit of work: cmd (with %d for the count) under callgrind for n1 then n2.
local function icount(cmd, n1, n2, per, env)
  if not HAVE_VALGRIND then return nil end
  local function run(n)
    local out = sh((env or "") .. PIN .. "valgrind --tool=callgrind --callgrind-out-file=/dev/null " .. cmd:format(n))
    local v = out:match("Collected : (%d+)")
    if not v then error("no callgrind total for " .. cmd:format(n) .. ":\n" .. out, 0) end
    return tonumber(v)
  end
  local a, b = run(n1), run(n2)
  return (b - a) / ((n2 - n1) * (per or 1))
end
local function wrk(conns)
  return one(("wrk -t1 -c%d -d%ds %s"):format(conns, math.max(1, math.floor(seconds + 0.5)), STATIC),
             "Requests/sec:%s*([%d.]+)")
end

local rows = {}
-- An instruction-count line: ours against the ceiling's (ratio = theirs / ours, as a rate would
-- be), or a bare figure.
local function irow(name, ours, theirs_name, theirs, target, wall)
  if not ours then
    rows[#rows + 1] = { name = name, skipped = "valgrind missing" }
    return
  end
  local r = { name = name, unit = "instr/req", median = ours, min = ours, max = ours, target = target,
              wall = wall }
  if theirs then
    r.limit_name, r.limit, r.ratio = theirs_name .. " instr", theirs, theirs / ours
  end
  rows[#rows + 1] = r
  io.stderr:write(("  %-28s %12.0f instr%s\n"):format(name, ours,
    r.ratio and (" (%.2fx %s)"):format(r.ratio, theirs_name) or ""))
end
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
    PIN_TEXT))

  -- 1. State round trip per algorithm, against bench/limit; ticket redeem beside it.
  -- HS256 against a C program doing the same work with the same libraries (cJSON both ways,
  -- EVP_MAC, RAND_bytes); the others against the cryptography alone (no regression: >= 0.9x).
  for _, alg in ipairs({ "HS256", "RS256", "PS256", "ES256", "EdDSA" }) do
    local lua_v, c_v = {}, {}
    local json = alg == "HS256" and " json" or ""
    local args = ("%s %s %s %s 1"):format(alg, keys[alg], BASE, seconds / 2)
    for r = 1, rounds do
      lua_v[r] = lua_round("bench/state.lua " .. args)
      c_v[r] = one(BUILD .. "/limit " .. args .. json, "round 1 ([%d.]+)")
    end
    -- Judged on instructions (steady; the public-key algorithms' wall-clock ratios swing by 0.1
    -- between runs on a loaded machine), the wall-clock ratio beside. SECONDS 0: each round is 16
    -- round trips, so N rounds are 16 N (plus one before); fewer for the slow public-key ones.
    local cargs = ("%s %s %s 0 %%d"):format(alg, keys[alg], BASE)
    local n1, n2 = 4, 24
    if alg ~= "HS256" then n1, n2 = 1, 4 end
    local ours = icount(LUA .. " bench/state.lua " .. cargs, n1, n2, 16)
    local c = icount(BUILD .. "/limit " .. cargs .. json, n1, n2, 16)
    local r = { }
    for i = 1, #lua_v do r[i] = lua_v[i] / c_v[i] end
    local limit_name = alg == "HS256" and "C (cJSON, EVP_MAC)" or "C limit"
    irow("state round trip " .. alg, ours, limit_name, c, alg == "HS256" and 0.75 or 0.9, median(r))
    row("  " .. alg .. ", wall clock", "rt/s", lua_v, limit_name, c_v)
    -- A game server's hot path: redeeming a ticket (verify, claims, replay store). No ceiling.
    local t_v = {}
    for r = 1, rounds do t_v[r] = lua_round("bench/ticket.lua " .. args) end
    row("  ticket redeem " .. alg, "redeem/s", t_v)
  end

  -- 2. Blocking GET with keep-alive, against wrk -t1 -c1.
  -- Also libcurl alone (bench/curlloop.c), not a target: the floor of any libcurl client.
  local CURL = BUILD .. "/curlloop"
  -- Two clients: one without User-Agent (BENCH_UA=""), the request the C and lua-curl loops send,
  -- which carries the targets; one with the default User-Agent line (libcurl's work for it shows).
  local NOUA = "BENCH_UA= "
  local lua_v, w_v, c_v, lc_v, ua_v = {}, {}, {}, {}, {}
  for r = 1, rounds do
    lua_v[r] = one(("%s bench/http.lua blocking %s %s 1"):format(LUA, BASE, seconds), "round 1 ([%d.]+)", NOUA)
    ua_v[r] = lua_round(("bench/http.lua blocking %s %s 1"):format(BASE, seconds))
    w_v[r] = wrk(1)
    c_v[r] = one(("%s blocking %s %s"):format(CURL, STATIC, seconds), "round 1 ([%d.]+)")
    if HAVE_LUACURL then
      lc_v[r] = one(("%slua5.1 bench/luacurl.lua blocking %s %s 1"):format(LUA51_ENV, STATIC, seconds),
                    "round 1 ([%d.]+)")
    end
  end
  do
    local ours = icount(("%s bench/http.lua count %s %%d"):format(LUA, BASE), 200, 1200, 1, NOUA)
    local ua = icount(("%s bench/http.lua count %s %%d"):format(LUA, BASE), 200, 1200)
    local c = icount(("%s count %s %%d"):format(CURL, STATIC), 200, 1200)
    local lc = HAVE_LUACURL and icount(("%slua5.1 bench/luacurl.lua count %s %%d"):format(LUA51_ENV, STATIC), 200, 1200)
    local r1, r2, r3 = {}, {}, {}
    for i = 1, #lua_v do
      r1[i] = lua_v[i] / c_v[i]
      r3[i] = ua_v[i] / c_v[i]
      if lc_v[i] then r2[i] = lua_v[i] / lc_v[i] end
    end
    irow("blocking GET", ours, "libcurl alone", c, 0.95, median(r1))
    if lc then irow("blocking GET vs lua-curl", ours, "lua-curl", lc, 1.0, #r2 > 0 and median(r2) or nil)
    else rows[#rows + 1] = { name = "blocking GET vs lua-curl", skipped = "lua5.1 with lua-curl missing" } end
    irow("  with the default User-Agent", ua, "libcurl alone", c, nil, median(r3))
  end
  row("blocking GET (keep-alive)", "req/s", lua_v, "wrk -c1", w_v)
  row("  with the default User-Agent", "req/s", ua_v, "wrk -c1", w_v)
  row("  libcurl alone, blocking (C)", "req/s", c_v, "wrk -c1", w_v)
  if HAVE_LUACURL then row("  lua-curl, blocking (Lua 5.1)", "req/s", lc_v, "wrk -c1", w_v) end

  -- 3. 64 and 1024 requests in flight through the poller, against libcurl's multi (C); the same
  -- request on both sides (no User-Agent).
  local per = {}
  for _, conc in ipairs({ 64, 1024 }) do
    lua_v, w_v, c_v = {}, {}, {}
    for r = 1, rounds do
      lua_v[r] = one(("%s bench/http.lua inflight %s %d %s 1"):format(LUA, BASE, conc, seconds), "round 1 ([%d.]+)",
                     NOUA)
      c_v[r] = one(("%s multi %s %d %s"):format(CURL, STATIC, conc, seconds), "round 1 ([%d.]+)")
    end
    local ours = icount(("%s bench/http.lua pcount %s %d %%d"):format(LUA, BASE, conc), 3000, 9000, 1, NOUA)
    local c = icount(("%s mcount %s %d %%d"):format(CURL, STATIC, conc), 3000, 9000)
    local r1 = {}
    for i = 1, #lua_v do r1[i] = lua_v[i] / c_v[i] end
    per[conc] = ours
    irow(conc .. " in flight (poller)", ours, "libcurl multi", c, conc == 64 and 0.9 or nil, median(r1))
    if conc == 64 then
      -- Where the rest goes: the C binding alone (core.multi from a plain Lua loop, no tasks).
      local floor = icount(("%s bench/http.lua mcount %s %d %%d"):format(LUA, BASE, conc), 3000, 9000, 1, NOUA)
      irow("  64, C binding alone (no tasks)", floor, "libcurl multi", c)
    end
    row(("  %d in flight, wall clock"):format(conc), "req/s", lua_v, "libcurl multi", c_v)
  end
  -- Flat to 1024: instructions per request at 1024 against 64 (at most 1.3x), and around 1024
  -- (1023, 1025: no power-of-two cliff; at most 1.1x apart).
  if per[64] and per[1024] then
    rows[#rows + 1] = { name = "1024 vs 64 in flight (instr/req)", unit = "x", median = per[1024] / per[64],
                        min = per[1024] / per[64], max = per[1024] / per[64], target = 1.3, better = "below" }
    local near = {}
    for _, conc in ipairs({ 1023, 1025 }) do
      near[#near + 1] = icount(("%s bench/http.lua pcount %s %d %%d"):format(LUA, BASE, conc), 3000, 9000, 1, NOUA)
    end
    local worst = math.max(near[1] / per[1024], per[1024] / near[1], near[2] / per[1024], per[1024] / near[2])
    io.stderr:write(("  1023 / 1024 / 1025 in flight: %.0f / %.0f / %.0f instr/req\n"):format(near[1], per[1024], near[2]))
    rows[#rows + 1] = { name = ("1023/1024/1025: %.0fk/%.0fk/%.0fk"):format(near[1] / 1e3, per[1024] / 1e3, near[2] / 1e3),
                        unit = "x", median = worst, min = worst, max = worst, target = 1.1, better = "below" }
  end

  -- 1 MB bodies, 256 in flight: peak RSS per task in flight, against libcurl's (each body kept).
  do
    local ours, theirs = {}, {}
    for r = 1, rounds do
      local out = sh(PIN .. LUA .. " bench/http.lua big " .. BASE .. " 256 4")
      ours[r] = (tonumber(out:match("peak (%d+)")) - tonumber(out:match("base (%d+)"))) / 256 / 1024
      out = sh(PIN .. CURL .. " big " .. BASE .. "_mock/static/1m 256 4")
      theirs[r] = (tonumber(out:match("peak (%d+)")) - tonumber(out:match("base (%d+)"))) / 256 / 1024
    end
    local m, lo, hi = median(ours)
    local ratios = {}
    for i = 1, #ours do ratios[i] = ours[i] / theirs[i] end
    rows[#rows + 1] = { name = "1 MB bodies, 256 in flight", unit = "MiB/task", median = m, min = lo, max = hi,
                        limit_name = "libcurl MiB/task", limit = median(theirs), ratio = median(ratios),
                        target = 1.5, better = "below" }
  end

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
    PIN_TEXT,
    os.date("!%Y-%m-%d %H:%M UTC")),
  "instr/req: callgrind instructions per request (client side), the steady figure; ratio = ceiling's / ours " ..
    "(as for a rate); wall: the same ratio from wall-clock rates in this run.",
  "",
  "| workload | unit | median | min | max | ceiling (median) | ratio | wall | target | met |",
  "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- | --- |",
}
local missed = 0
for _, r in ipairs(rows) do
  if r.skipped then
    lines[#lines + 1] = ("| %s | | | | | | | | | skipped: %s |"):format(r.name, r.skipped)
  else
    local ceiling, ratio, target, met = "", "", "", ""
    if r.ratio then
      ceiling = ("%s %s"):format(r.limit_name, fmt(r.limit))
      ratio = ("%.2fx"):format(r.ratio)
    end
    if r.target and r.better == "below" then
      local v = r.ratio or r.median
      target = r.ratio and ("<= %.2fx"):format(r.target) or ("< %s %s"):format(r.target, r.unit)
      met = v <= r.target and "yes" or "NO"
    elseif r.target and r.ratio then
      target = (">= %.2fx"):format(r.target)
      met = r.ratio >= r.target and "yes" or "NO"
    elseif r.target then
      target = ("< %s %s"):format(r.target, r.unit)
      met = r.median < r.target and "yes" or "NO"
    end
    if met == "NO" then missed = missed + 1 end
    lines[#lines + 1] = ("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"):format(r.name, r.unit, fmt(r.median),
      fmt(r.min), fmt(r.max), ceiling, ratio, r.wall and ("%.2fx"):format(r.wall) or "", target, met)
  end
end
local text = table.concat(lines, "\n") .. "\n"
io.write("\n", text)
if outfile then
  local f = io.open(outfile, "w")
  if f then f:write(text); f:close() end
end
io.write(missed == 0 and "bench: every target met\n" or ("bench: %d target(s) missed\n"):format(missed))
