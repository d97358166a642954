-- SPDX-License-Identifier: MIT
-- `make bench-cluster`: what many nodes cost the gate (issue 21, "Performance"), same-run ratios by
-- the wall clock, medians over rounds (rounds alternate the two sides):
--   1. Gate callbacks per second with single use in Redis (RedisStore) against the shared dict, both
--      with cookie sessions: target >= 0.8x; server sessions in Redis shown beside (against the
--      same baseline, no target: they add a record and a sealed token). Each callback checks the state,
--      uses it up, exchanges the code and reads auth/self at the mock, then sets the session (and in
--      Redis: the ban mark read, the SET NX, the session record written).
--   2. protect() with a valid session: server mode (RedisStore, cache_ttl = 1) against cookie mode
--      (no store): target >= 0.8x.
--   lua5.4 bench/cluster.lua [--rounds N] [--seconds S (protect runs)] [--callback-seconds S (1)] [--out FILE]
-- One nginx worker (examples/openresty/run + bench/cluster-site.conf), a redis-server child of this
-- script (spec/support/redis.lua), the mock; nginx, Redis, the mock and wrk share the last core when
-- taskset is there (as bench/gate.lua).
package.path = "./?.lua;" .. package.path
local core = require("eternaltwin.core")
local gate_site = require("spec.support.gate_site")
local util = require("bench.util")
local redis = require("spec.support.redis")

local o = util.options({ rounds = 5, seconds = 1, callback_seconds = 1,
  out = (os.getenv("BENCH_DIR") or "build/bench") .. "/cluster.md" },
  "bench/cluster.lua [--rounds N] [--seconds S] [--callback-seconds S] [--out FILE]")
local rounds, seconds, n, cb_seconds, outfile = o.rounds, o.seconds, 2000, o.callback_seconds, o.out
local sh, PIN = util.sh, util.pin()
assert(os.execute("command -v wrk >/dev/null 2>&1"), "bench-cluster needs wrk (make bench-deps)")

local srv = redis.start{ password = "bench-" .. core.random_hex(12) }
if PIN ~= "" then os.execute(PIN:gsub("-c (%d+) $", "-cp %1 ") .. srv.pid .. " >/dev/null") end
local site = gate_site.start{ workers = 1, include = gate_site.root() .. "/bench/cluster-site.conf",
  command_prefix = PIN,
  env = { GATE_REDIS_URL = ("redis://:%s@127.0.0.1:%d/0"):format(srv.password, srv.port) } }

local median = util.median

local ok, err = pcall(function()
  local http = core.session({ timeout = 10 })
  local basic = gate_site.basic
  local AUTH = { basic("alice") }
  local registered = "redirect_uri=" .. core.form_encode(site.url .. "oauth/callback")

  -- One prepared sign-in at gate `kind`: the callback's path and its binding cookie. (The mock is
  -- asked with the site's registered callback; the code then goes to the kind's own callback.)
  local function prepare(kind)
    local status, h = http:request("GET", site.url .. "bench/" .. kind .. "/gated")
    assert(status == 302, "protect did not redirect")
    local cookie = assert(h["set-cookie"]:match("^([^;]+)"))
    local url = h.location:gsub("redirect_uri=[^&]+", function() return registered end)
    local s2, h2 = http:request("GET", url, AUTH)
    assert(s2 == 302, "the mock did not authorize")
    return "/bench/" .. kind .. "/callback?" .. assert(h2.location:match("%?(.*)$")), cookie
  end

  local function session(kind)
    local path, bind = prepare(kind)
    local status, h = http:request("GET", site.url .. path:sub(2), { "Cookie: " .. bind })
    assert(status == 302, kind .. ": the callback failed: " .. tostring(status))
    local c = assert(("\n" .. h["set-cookie"]):match("\n(b" .. kind .. "=[^;]+)"))
    assert(http:request("GET", site.url .. "bench/" .. kind .. "/gated", { "Cookie: " .. c }) == 200, "session refused")
    return c
  end

  local function wrk(args, env)
    local out = sh((env or "") .. PIN .. "wrk " .. args)
    local rps = tonumber(out:match("Requests/sec:%s*([%d.]+)"))
    local total = tonumber(out:match("(%d+) requests in"))
    local non = tonumber(out:match("Non%-2xx or 3xx responses: (%d+)")) or 0
    assert(rps, out)
    return rps, total, non
  end

  -- 1. Callbacks: more prepared than one run of cb_seconds can take (bench/gate-callbacks.lua sends
  -- each once); a run that used them all up is run again with twice as many.
  local function callbacks(kind)
    while true do
      local file = os.tmpname()
      local f = assert(io.open(file, "w"))
      for _ = 1, n do
        local path, c = prepare(kind)
        f:write(path, "\t", c, "\n")
      end
      f:close()
      local rps, total, non = wrk(("-t1 -c4 -d%gs -s %s/bench/gate-callbacks.lua %s"):format(cb_seconds,
        gate_site.root(), site.url), "GATE_CALLBACKS=" .. file .. " ")
      os.remove(file)
      if non == 0 then return rps end
      -- Used up (or some refused: then doubling does not help, and this stops it).
      assert(n < 64000, ("%s: %d of %d callbacks were refused"):format(kind, non, total))
      n = n * 2
    end
  end
  -- The store alone (the same cookie sessions, single use in Redis instead of the shared dict) is
  -- the target's comparison; server sessions (a record written and a token sealed per sign-in) are
  -- shown beside it against the same baseline.
  local cb = { dict = {}, rcookie = {}, redis = {} }
  local cb_ratio, cbs_ratio = {}, {}
  local order = { "dict", "rcookie", "redis" }
  for r = 1, rounds do
    for i = 0, 2 do
      local kind = order[(r + i - 1) % 3 + 1]          -- each round starts with the next kind
      cb[kind][r] = callbacks(kind)
    end
    cb_ratio[r] = cb.rcookie[r] / cb.dict[r]
    cbs_ratio[r] = cb.redis[r] / cb.dict[r]
  end

  -- 2. protect() with a valid session.
  local cookies = { cookie = session("cookie"), redis = session("redis") }
  local pr = { cookie = {}, redis = {} }
  local pr_ratio = {}
  for r = 1, rounds do
    local first, second = "cookie", "redis"
    if r % 2 == 0 then first, second = second, first end
    for _, kind in ipairs({ first, second }) do
      local v, _, non = wrk(("-t1 -c10 -d%gs -H 'Cookie: %s' %sbench/%s/gated"):format(seconds, cookies[kind],
        site.url, kind))
      assert(non == 0, kind .. ": protected requests failed")
      pr[kind][r] = v
    end
    pr_ratio[r] = pr.redis[r] / pr.cookie[r]
  end

  local unpack = table.unpack or unpack
  local function row(name, t, ratio, target)
    local m = ratio and median(ratio)
    return ("| %s | %.0f | %.0f | %.0f | %s | %s | %s |"):format(name, median(t), math.min(unpack(t)),
      math.max(unpack(t)), m and ("%.2fx"):format(m) or "", target or "",
      (m and target) and (m >= 0.8 and "yes" or "no") or "")
  end
  local lines = {
    ("`make bench-cluster`, %d rounds of %g s (alternating sides), one nginx worker (LuaJIT build), redis-server"
      .. " and the mock%s; %s."):format(rounds, seconds, PIN ~= "" and ", nginx, Redis and wrk on one CPU" or "",
      os.date("!%Y-%m-%d %H:%M UTC")),
    "",
    "| workload | median req/s | min | max | ratio (median of per-round ratios) | target | met |",
    "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    row("gate callbacks, shared dict (cookie sessions)", cb.dict),
    row("gate callbacks, RedisStore (cookie sessions: the store alone)", cb.rcookie, cb_ratio, ">= 0.80x"),
    row("gate callbacks, RedisStore and server sessions", cb.redis, cbs_ratio),
    row("protect(), cookie mode (no store)", pr.cookie),
    row("protect(), server mode (RedisStore, cache_ttl = 1)", pr.redis, pr_ratio, ">= 0.80x"),
    "",
    ("(callbacks: wrk -t1 -c4, %g s per run, %d prepared per run (never used up), each answered 302 with a"
      .. " session; protect: wrk -t1 -c10, %g s per run)"):format(cb_seconds, n, seconds),
  }
  local text = table.concat(lines, "\n") .. "\n"
  io.write(text)
  os.execute("mkdir -p " .. outfile:match("^(.*)/"))
  local out = io.open(outfile, "w")
  if out then out:write(text); out:close() end
end)
site:stop()
srv:stop()
if not ok then error(err, 0) end
