-- SPDX-License-Identifier: MIT
-- `make bench-gate`: the OpenResty gate's costs, in one session on this machine.
--   1. Protected requests per second: wrk against a location with GATE:protect() and a valid session
--      cookie, against the same location without the gate (round by round, alternately); target
--      >= 0.95x (median of the per-round ratios). Beside it, the floor of any gate with this API
--      (read the Cookie header, set ngx.ctx.eternaltwin_user; nothing verified), and protect()
--      against that floor.
--   2. Gate callbacks per second: prepared sign-ins (state, binding cookie, code from the mock), each
--      callback sent once by wrk; each one checks the state, uses it up in the shared dict, exchanges
--      the code and reads /api/v1/auth/self at the mock, then sets the session.
--   3. The shared replay store's cost per check: empty dict, half-full, and full of live entries
--      (where it fails closed): flat.
--   lua5.4 bench/gate.lua [--rounds N] [--seconds S] [--out FILE]
-- One nginx worker; the site, the mock and wrk share the last core when taskset is there (as in
-- bench/run.lua: cross-core wake-ups on this kind of VM would measure the hypervisor).
package.path = "./?.lua;" .. package.path
local core = require("eternaltwin.core")
local gate_site = require("spec.support.gate_site")
local util = require("bench.util")

local o = util.options({ rounds = 5, seconds = 2.0, out = (os.getenv("BENCH_DIR") or "build/bench") .. "/gate.md" },
  "bench/gate.lua [--rounds N] [--seconds S] [--out FILE]")
local rounds, seconds, outfile = o.rounds, o.seconds, o.out
local sh, PIN = util.sh, util.pin()

local site = gate_site.start{ workers = 1, include = gate_site.root() .. "/bench/gate-site.conf",
                              command_prefix = PIN }
local ok, err = pcall(function()
  local http = core.session({ timeout = 10 })
  local basic = gate_site.basic
  local AUTH = { basic("alice") }
  assert(http:request("GET", site.url .. "bench/unbudget") == 200, "bench/unbudget")

  -- One prepared sign-in: the callback's path and its binding cookie.
  local function prepare()
    local status, h = http:request("GET", site.url .. "bench/gated")
    assert(status == 302, "protect did not redirect")
    local cookie = assert(h["set-cookie"]:match("^([^;]+)"))
    local s2, h2 = http:request("GET", h.location, AUTH)
    assert(s2 == 302, "the mock did not authorize")
    return assert(h2.location:match("^%a+://[^/]+(/.*)$")), cookie
  end

  -- A session cookie, through one real sign-in.
  local cb, bind = prepare()
  local status, h = http:request("GET", site.url .. cb:sub(2), { "Cookie: " .. bind })
  assert(status == 302, "the callback failed: " .. tostring(status))
  local session = assert(("\n" .. h["set-cookie"]):match("\n(eternaltwin=[^;]+)"))
  assert(http:request("GET", site.url .. "bench/gated", { "Cookie: " .. session }) == 200, "session refused")

  local function wrk(args, env)
    local out = sh((env or "") .. PIN .. "wrk " .. args)
    local rps = tonumber(out:match("Requests/sec:%s*([%d.]+)"))
    local total = tonumber(out:match("(%d+) requests in"))
    local non = tonumber(out:match("Non%-2xx or 3xx responses: (%d+)")) or 0
    local errs = out:match("Socket errors: ([^\n]+)")
    assert(rps, out)
    return rps, total, non, errs, out
  end

  -- 1. Protected vs open.
  local cookie = ("-H 'Cookie: %s'"):format(session)
  local PATHS = { "open", "gated", "floor", "noop-access", "gated-content" }
  local rate, ratio, vs_floor = {}, {}, {}
  for _, p in ipairs(PATHS) do rate[p], ratio[p] = {}, {} end
  for r = 1, rounds do
    -- Each round starts at another location: none always runs right after the same other one.
    for i = 0, #PATHS - 1 do
      local p = PATHS[(r + i - 1) % #PATHS + 1]
      local v, _, non = wrk(("-t1 -c10 -d%gs %s %sbench/%s"):format(seconds, cookie, site.url, p))
      assert(non == 0, p .. ": requests failed")
      rate[p][r] = v
    end
    for _, p in ipairs(PATHS) do ratio[p][r] = rate[p][r] / rate.open[r] end
    vs_floor[r] = rate.gated[r] / rate.floor[r]
  end

  -- 2. Callbacks: more prepared than one run can take.
  local n = math.ceil(seconds * 6000)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  local t0 = os.clock()
  for _ = 1, n do
    local path, c = prepare()
    f:write(path, "\t", c, "\n")
  end
  f:close()
  local prep = os.clock() - t0
  local rps, total, non = wrk(("-t1 -c4 -d%gs -s %s/bench/gate-callbacks.lua %s"):format(seconds,
    gate_site.root(), site.url), "GATE_CALLBACKS=" .. file .. " ")
  os.remove(file)
  -- Every request must have been a prepared callback answered 302 (none ran out, none refused).
  assert(non == 0, ("%d of %d callbacks were refused or the prepared ones ran out"):format(non, total))
  local done_ok, cb_rate = total, rps

  -- GATE:user() alone, in a loop (median of 5).
  local loops = {}
  for i = 1, 5 do
    local s, _, body = http:request("GET", site.url .. "bench/user-loop", { "Cookie: " .. session })
    assert(s == 200, body)
    loops[i] = tonumber(body)
  end

  -- 3. The store.
  local store = {}
  for _, case in ipairs({ { "empty", 0 }, { "half full", 15000 }, { "full (fails closed)", 1e9 } }) do
    local s, _, body = http:request("GET", site.url .. ("bench/store?fill=%d&checks=20000"):format(case[2]))
    assert(s == 200, body)
    local t = core.json_decode(body)
    t.name = case[1]
    store[#store + 1] = t
  end

  local median = util.median
  local unpack = table.unpack or unpack
  local function row(name, p, target)
    return ("| %s | %.0f | %.0f | %.0f | %s | %s |"):format(name, median(rate[p]), math.min(unpack(rate[p])),
      math.max(unpack(rate[p])), p == "open" and "" or ("%.2fx"):format(median(ratio[p])), target or "")
  end
  local lines = {
    ("Gate bench: %d rounds of %g s, one nginx worker (LuaJIT build), wrk -t1 -c10%s."):format(rounds, seconds,
      PIN ~= "" and ", all on one core" or ""),
    "",
    "| workload | median req/s | min | max | ratio (median) | target |",
    "| --- | ---: | ---: | ---: | ---: | --- |",
    row("same location, no gate (`/bench/open`)", "open"),
    row("GATE:protect() in access_by_lua + valid cookie (`/bench/gated`)", "gated", ">= 0.95x"),
    row("the floor: Cookie header read + ngx.ctx set in access_by_lua, nothing checked (`/bench/floor`)", "floor"),
    ("| GATE:protect() against the floor (same rounds) | | | | %.2fx | |"):format(median(vs_floor)),
    row("an empty access_by_lua_block alone (`/bench/noop-access`)", "noop-access"),
    row("GATE:protect() in content_by_lua + valid cookie (`/bench/gated-content`)", "gated-content"),
    ("| gate callbacks (code exchange + auth/self at the mock) | %.0f | | | | |"):format(cb_rate),
    "",
    ("GATE:user() on a valid session cookie, in a loop inside one request: %.2f us per call (median of 5)."):format(
      median(loops)),
    "",
    "| shared replay store (20,000 checks) | live entries | us per check | stored | failed closed |",
    "| --- | ---: | ---: | ---: | ---: |",
  }
  for _, t in ipairs(store) do
    lines[#lines + 1] = ("| %s | %d | %.2f | %d | %d |"):format(t.name, t.filled, t.us_per_check, t.stored,
      t.failed_closed)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ("(%d callbacks prepared in %.1f s of CPU; %d sent, each answered 302 with a session)")
    :format(n, prep, done_ok)
  local text = table.concat(lines, "\n") .. "\n"
  io.write(text)
  os.execute("mkdir -p " .. outfile:match("^(.*)/") )
  local out = io.open(outfile, "w")
  if out then out:write(text); out:close() end
end)
site:stop()
if not ok then error(err, 0) end
