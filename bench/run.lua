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

package.path = "./?.lua;" .. package.path
local sh = require("bench.util").sh

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- Pinning (taskset, two cores or more): every client (ours, wrk, libcurl alone, lua-curl, the C
-- limit) runs on the last core. Each HTTP line is measured against two mocks (one nginx worker
-- each), in both pinning modes, round by round: "shared", the mock on the clients' core (on the
-- virtual machines these figures come from, waking a process on the other core costs about a
-- millisecond, which measures the hypervisor, not the clients), and "split", the mock on the core
-- before (each side on a core of its own). Instruction counts are the same either way (taken
-- against the shared mock). BENCH_PIN=shared or split measures one mode only.
local ncpu = tonumber(sh("nproc")) or 1
local PIN, PIN_TEXT = "", "not pinned"
local MODES = { { name = "shared" } }
if ncpu >= 2 and os.execute("command -v taskset >/dev/null 2>&1") then
  PIN = ("taskset -c %d "):format(ncpu - 1)
  local only = os.getenv("BENCH_PIN")
  MODES = {}
  if only ~= "split" then MODES[#MODES + 1] = { name = "shared", server_pin = PIN } end
  if only ~= "shared" then
    MODES[#MODES + 1] = { name = "split", server_pin = ("taskset -c %d "):format(ncpu - 2) }
  end
  PIN_TEXT = ("clients on CPU %d of %d; mock on CPU %d (shared) and on CPU %d (split)"):format(ncpu - 1, ncpu,
    ncpu - 1, ncpu - 2)
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

-- The mocks, one per pinning mode; stopped whatever happens.
local stops = {}
local function stop_mock() for _, stop in ipairs(stops) do stop() end end
do
  local SYSCALLS = {}
local ok, err = pcall(function()
    for _, m in ipairs(MODES) do
      m.base, stops[#stops + 1] = require("examples.mockserver").spawn(m.server_pin)
      m.static = m.base .. "_mock/static/user"
    end
  end)
  if not ok then stop_mock(); error(err, 0) end
end
local BASE, STATIC = MODES[1].base, MODES[1].static
local HAVE_STRACE = os.execute("command -v strace >/dev/null 2>&1")

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
local function wrk(conns, static)
  return one(("wrk -t1 -c%d -d%ds %s"):format(conns, math.max(1, math.floor(seconds + 0.5)), static or STATIC),
             "Requests/sec:%s*([%d.]+)")
end

local rows = {}
-- An instruction-count line: ours against the ceiling's (ratio = theirs / ours, as a rate would
-- be), or a bare figure.
-- walls: the same-run wall-clock ratios, { shared = x, split = y } (or { client = x } for a line
-- without a server); a target is judged on them (every mode), else on the instruction ratio.
local function irow(name, ours, theirs_name, theirs, target, walls)
  if not ours then
    rows[#rows + 1] = { name = name, skipped = "valgrind missing", walls = walls, target = target }
    return
  end
  local r = { name = name, unit = "instr/req", median = ours, min = ours, max = ours, target = target,
              walls = walls }
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
    irow("state round trip " .. alg, ours, limit_name, c, alg == "HS256" and 0.75 or 0.9, { client = median(r) })
    row("  " .. alg .. ", wall clock", "rt/s", lua_v, limit_name, c_v)
    -- A game server's hot path: redeeming a ticket (verify, claims, replay store). No ceiling.
    local t_v = {}
    for r = 1, rounds do t_v[r] = lua_round("bench/ticket.lua " .. args) end
    row("  ticket redeem " .. alg, "redeem/s", t_v)
  end

  -- 2. Blocking GET with keep-alive, in each pinning mode, against libcurl alone (bench/curlloop.c,
  -- the floor of any libcurl client) and lua-curl; wrk -t1 -c1 beside (the server's ceiling).
  local CURL = BUILD .. "/curlloop"
  -- Two clients: one without User-Agent (BENCH_UA=""), the request the C and lua-curl loops send,
  -- which carries the targets; one with the default User-Agent line (shared mode only).
  local NOUA = "BENCH_UA= "
  local function ratios(a, b)
    local r = {}
    for i = 1, #a do if b[i] then r[#r + 1] = a[i] / b[i] end end
    return #r > 0 and median(r) or nil
  end
  local bw = {}
  for _, m in ipairs(MODES) do
    local v = { lua = {}, ua = {}, wrk = {}, curl = {}, lc = {} }
    bw[m.name] = v
    for r = 1, rounds do
      v.lua[r] = one(("%s bench/http.lua blocking %s %s 1"):format(LUA, m.base, seconds), "round 1 ([%d.]+)", NOUA)
      v.curl[r] = one(("%s blocking %s %s"):format(CURL, m.static, seconds), "round 1 ([%d.]+)")
      if HAVE_LUACURL then
        v.lc[r] = one(("%slua5.1 bench/luacurl.lua blocking %s %s 1"):format(LUA51_ENV, m.static, seconds),
                      "round 1 ([%d.]+)")
      end
      if m == MODES[1] then
        v.ua[r] = lua_round(("bench/http.lua blocking %s %s 1"):format(m.base, seconds))
        v.wrk[r] = wrk(1, m.static)
      end
    end
  end
  local function walls(f)
    local w = {}
    for _, m in ipairs(MODES) do w[m.name] = f(bw[m.name]) end
    return w
  end
  do
    local ours = icount(("%s bench/http.lua count %s %%d"):format(LUA, BASE), 200, 1200, 1, NOUA)
    local ua = icount(("%s bench/http.lua count %s %%d"):format(LUA, BASE), 200, 1200)
    local c = icount(("%s count %s %%d"):format(CURL, STATIC), 200, 1200)
    local lc = HAVE_LUACURL and icount(("%slua5.1 bench/luacurl.lua count %s %%d"):format(LUA51_ENV, STATIC), 200, 1200)
    irow("blocking GET", ours, "libcurl alone", c, 0.95, walls(function(v) return ratios(v.lua, v.curl) end))
    if lc then
      irow("blocking GET vs lua-curl", ours, "lua-curl", lc, 1.0, walls(function(v) return ratios(v.lua, v.lc) end))
    else rows[#rows + 1] = { name = "blocking GET vs lua-curl", skipped = "lua5.1 with lua-curl missing" } end
    local v1 = bw[MODES[1].name]
    irow("  with the default User-Agent", ua, "libcurl alone", c, nil,
         { [MODES[1].name] = ratios(v1.ua, v1.curl) })
  end
  for _, m in ipairs(MODES) do
    local v = bw[m.name]
    if m == MODES[1] then
      row(("blocking GET (keep-alive), %s"):format(m.name), "req/s", v.lua, "wrk -c1", v.wrk)
      row("  with the default User-Agent", "req/s", v.ua, "wrk -c1", v.wrk)
      row("  libcurl alone, blocking (C)", "req/s", v.curl, "wrk -c1", v.wrk)
      -- lua-curl against libcurl's own loop: how near that ceiling the >= 1.0x lua-curl target sits.
      if HAVE_LUACURL then row("  lua-curl, blocking (Lua 5.1)", "req/s", v.lc, "libcurl alone", v.curl) end
    else
      row(("blocking GET (keep-alive), %s"):format(m.name), "req/s", v.lua, "libcurl alone", v.curl)
      if HAVE_LUACURL then
        row(("  lua-curl, blocking, %s"):format(m.name), "req/s", v.lc, "libcurl alone", v.curl)
      end
    end
  end

  -- 3. 64 and 1024 requests in flight through the poller, against libcurl's multi (C); the same
  -- request on both sides (no User-Agent), in each pinning mode.
  local per = {}
  for _, conc in ipairs({ 64, 1024 }) do
    local iw = {}
    for _, m in ipairs(MODES) do
      local lua_v, c_v, s_v = {}, {}, {}
      for r = 1, rounds do
        lua_v[r] = one(("%s bench/http.lua inflight %s %d %s 1"):format(LUA, m.base, conc, seconds),
                       "round 1 ([%d.]+)", NOUA)
        c_v[r] = one(("%s multi %s %d %s"):format(CURL, m.static, conc, seconds), "round 1 ([%d.]+)")
        -- At 1024 the poller spreads its transfers over four multi handles (et_multi.h, shards):
        -- libcurl driven the same way is shown too (the target stays against one multi).
        if conc == 1024 then
          s_v[r] = one(("%s shards %s %d 4 %s"):format(CURL, m.static, conc, seconds), "round 1 ([%d.]+)")
        end
      end
      iw[m.name] = { lua = lua_v, curl = c_v, shards = s_v }
    end
    local ours = icount(("%s bench/http.lua pcount %s %d %%d"):format(LUA, BASE, conc), 3000, 9000, 1, NOUA)
    local c = icount(("%s mcount %s %d %%d"):format(CURL, STATIC, conc), 3000, 9000)
    per[conc] = ours
    local w = {}
    for _, m in ipairs(MODES) do w[m.name] = ratios(iw[m.name].lua, iw[m.name].curl) end
    irow(conc .. " in flight (poller)", ours, "libcurl multi", c, conc == 64 and 0.9 or 0.8, w)
    if conc == 64 then
      -- Where the rest goes: the C binding alone (core.multi from a plain Lua loop, no tasks).
      local floor = icount(("%s bench/http.lua mcount %s %d %%d"):format(LUA, BASE, conc), 3000, 9000, 1, NOUA)
      irow("  64, C binding alone (no tasks)", floor, "libcurl multi", c)
    end
    for _, m in ipairs(MODES) do
      row(("  %d in flight, %s"):format(conc, m.name), "req/s", iw[m.name].lua, "libcurl multi", iw[m.name].curl)
      if conc == 1024 then
        row(("  1024, %s, vs libcurl over 4 multis"):format(m.name), "req/s", iw[m.name].lua,
            "libcurl, 4 multis", iw[m.name].shards)
      end
    end
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

  -- Syscalls per request (strace -c -f), ours and libcurl's own loops (bench/curlloop.c), blocking
  -- and 64 in flight: each counted over N1 then N2 requests, (S2 - S1) / (N2 - N1), start-up and
  -- warm-up cancelled.
  if HAVE_STRACE then
    local function scount(cmd, n1, n2, env)
      local function run(n)
        local f = os.tmpname()
        sh((env or "") .. PIN .. ("strace -f -c -o %s "):format(f) .. cmd:format(n))
        local t = {}
        for line in io.lines(f) do
          local w = {}
          for x in line:gmatch("%S+") do w[#w + 1] = x end
          -- % time, seconds, usecs/call, calls, [errors], syscall
          if #w >= 5 and tonumber(w[1]) and tonumber(w[4]) and w[#w] ~= "total" then t[w[#w]] = tonumber(w[4]) end
        end
        os.remove(f)
        return t
      end
      local a, b = run(n1), run(n2)
      local per, total = {}, 0
      for name, v in pairs(b) do
        per[name] = (v - (a[name] or 0)) / (n2 - n1)
        total = total + per[name]
      end
      per.total = total
      return per
    end
    local sets = {
      { "blocking", "ours (client:get)", scount(("%s bench/http.lua count %s %%d"):format(LUA, BASE), 1000, 3000, NOUA) },
      { "blocking", "libcurl easy loop", scount(("%s count %s %%d"):format(CURL, STATIC), 1000, 3000) },
      { "64 in flight", "ours (poller)", scount(("%s bench/http.lua pcount %s 64 %%d"):format(LUA, BASE), 2000, 6000, NOUA) },
      { "64 in flight", "libcurl multi", scount(("%s mcount %s 64 %%d"):format(CURL, STATIC), 2000, 6000) },
    }
    -- The HS256 state round trip: bench/state.lua and bench/limit with SECONDS 0 make 16 round trips
    -- per round; counted over 50 then 250 rounds, per round trip.
    local function per_rt(t)
      for k, v in pairs(t) do t[k] = v / 16 end
      return t
    end
    local sargs = ("HS256 %s %s 0 %%d"):format(keys.HS256, BASE)
    sets[#sets + 1] = { "HS256 state round trip", "ours (generate_state, validate_state)",
                        per_rt(scount(LUA .. " bench/state.lua " .. sargs, 50, 250)) }
    sets[#sets + 1] = { "HS256 state round trip", "C (cJSON, EVP_MAC, RAND_bytes)",
                        per_rt(scount(BUILD .. "/limit " .. sargs .. " json", 50, 250)) }
    for i = 1, #sets, 2 do
      local ours, theirs = sets[i][3], sets[i + 1][3]
      rows[#rows + 1] = { name = "syscalls/req, " .. sets[i][1], unit = "calls", median = ours.total,
                          min = ours.total, max = ours.total, limit_name = sets[i + 1][2], limit = theirs.total,
                          ratio = ours.total / theirs.total, target = 1.0, better = "below" }
      io.stderr:write(("  syscalls/req, %-14s %6.2f (libcurl %.2f)\n"):format(sets[i][1], ours.total, theirs.total))
    end
    SYSCALLS = sets
  else
    rows[#rows + 1] = { name = "syscalls/req", skipped = "strace missing" }
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
local mode_names = {}
for _, m in ipairs(MODES) do mode_names[#mode_names + 1] = m.name end
local lines = {
  ("`make bench`, %d rounds of %s s each; %s; %s."):format(rounds, seconds,
    PIN_TEXT,
    os.date("!%Y-%m-%d %H:%M UTC")),
  "instr: callgrind instructions per request (client side) and their ratio (ceiling's / ours, as for a rate); " ..
    "wall: the median of the per-round wall-clock ratios in this run, per pinning mode (state lines have no " ..
    "server: one figure). A target is judged by the wall clock in every mode where there is one, else on the " ..
    "ratio.",
  "",
  "| workload | unit | median | min | max | ceiling (median) | instr ratio | wall " .. table.concat(mode_names, " | wall ") ..
    " | target | met |",
  "| --- | --- | ---: | ---: | ---: | --- | ---: |" .. (" ---: |"):rep(#MODES) .. " --- | --- |",
}
local missed = 0
local function meets(v, r)
  if r.better == "below" then return v <= r.target end
  return v >= r.target
end
for _, r in ipairs(rows) do
  local wall_cells, judged = {}, {}
  for i, name in ipairs(mode_names) do
    local v = r.walls and (r.walls[name] or (i == 1 and r.walls.client))
    wall_cells[i] = v and ("%.2fx"):format(v) or ""
    if v then judged[#judged + 1] = v end
  end
  if r.skipped then
    local met = ""
    if r.target and #judged > 0 then
      met = "yes"
      for _, v in ipairs(judged) do if not meets(v, r) then met = "NO" end end
      if met == "NO" then missed = missed + 1 end
    end
    lines[#lines + 1] = ("| %s | | | | | | skipped: %s | %s | %s | %s |"):format(r.name, r.skipped,
      table.concat(wall_cells, " | "), r.target and (">= %.2fx"):format(r.target) or "", met)
  else
    local ceiling, ratio, target, met = "", "", "", ""
    if r.ratio then
      ceiling = ("%s %s"):format(r.limit_name, fmt(r.limit))
      ratio = ("%.2fx"):format(r.ratio)
    end
    if r.target and #judged > 0 then
      target = (r.better == "below" and "<= %.2fx" or ">= %.2fx"):format(r.target)
      met = "yes"
      for _, v in ipairs(judged) do if not meets(v, r) then met = "NO" end end
    elseif r.target and r.better == "below" then
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
      fmt(r.min), fmt(r.max), ceiling, ratio, table.concat(wall_cells, " | "), target, met)
  end
end
if #SYSCALLS > 0 then
  local names = { "poll", "rt_sigaction", "getpid", "sendto", "recvfrom" }
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Syscalls per request or round trip (strace -c -f over N2 - N1 of them):"
  lines[#lines + 1] = ""
  lines[#lines + 1] = "| loop | client | " .. table.concat(names, " | ") .. " | other | total |"
  lines[#lines + 1] = "| --- | --- |" .. (" ---: |"):rep(#names + 2)
  for _, set in ipairs(SYSCALLS) do
    local per, cells, known = set[3], {}, 0
    for i, n in ipairs(names) do
      cells[i] = ("%.2f"):format(per[n] or 0)
      known = known + (per[n] or 0)
    end
    lines[#lines + 1] = ("| %s | %s | %s | %.2f | %.2f |"):format(set[1], set[2], table.concat(cells, " | "),
      per.total - known, per.total)
  end
end
local text = table.concat(lines, "\n") .. "\n"
io.write("\n", text)
if outfile then
  local f = io.open(outfile, "w")
  if f then f:write(text); f:close() end
end
io.write(missed == 0 and "bench: every target met\n" or ("bench: %d target(s) missed\n"):format(missed))
