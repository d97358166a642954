-- SPDX-License-Identifier: MIT
-- `make bench-store` (also the last part of `make bench`): RedisStore:check_and_add against its
-- ceilings, by the wall clock, in one session against one redis-server (spec/support/redis.lua,
-- started here), round after round; each ratio is the median of the per-round ratios.
--
-- * outside nginx (this Lua): `store:check_and_add(key, exp)` in a loop (the blocking C connection)
--   against bench/redisloop.c (hiredis alone: SET key 1 NX PX 10000, redisCommandArgv); target 0.8x;
-- * inside nginx (one worker, LuaJIT): `STORE:check_and_add` in a loop (cosockets, keep-alive pool)
--   against the same SET NX loop on a bare `ngx.socket.tcp` over the same pool (redis_format and
--   redis_reader for the bytes, as the store does; AUTH only on a fresh connection); target 0.8x.
--   `ngx.shared` safe_add in a loop beside it (one node's store).
--
--   lua bench/store.lua [--rounds N] [--seconds S] [--requests N] [--out FILE]
-- Needs build/bench/redisloop (mk/bench.mk builds it), redis-server, nginx with the Lua module and
-- build/luajit (as the OpenResty specs). The make target pins everything to one CPU (taskset).
package.path = "./lua/?.lua;./lua/?/init.lua;./?.lua;" .. package.path
local core = require("eternaltwin.core")
local eternaltwin = require("eternaltwin")
local redis = require("spec.support.redis")

local BUILD = os.getenv("BENCH_DIR") or "build/bench"
local rounds, seconds, requests, outfile = 7, 1.0, 20000, BUILD .. "/store.md"
do
  local i = 1
  while arg[i] do
    if arg[i] == "--rounds" then rounds = assert(tonumber(arg[i + 1]), "--rounds N"); i = i + 2
    elseif arg[i] == "--seconds" then seconds = assert(tonumber(arg[i + 1]), "--seconds S"); i = i + 2
    elseif arg[i] == "--requests" then requests = assert(tonumber(arg[i + 1]), "--requests N"); i = i + 2
    elseif arg[i] == "--out" then outfile = arg[i + 1]; i = i + 2
    else error("usage: bench/store.lua [--rounds N] [--seconds S] [--requests N] [--out FILE]") end
  end
end
assert(rounds >= 3, "at least 3 rounds")

local function sh(cmd)
  local f = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = f:read("*a")
  f:close()
  return out
end

local function stats(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2, s[1], s[n]
end

local srv = redis.start()
local url = ("redis://:%s@127.0.0.1:%d"):format(srv.password, srv.port)
local rows = {}

local function row(name, values, ceiling_name, ceilings, target)
  local m, lo, hi = stats(values)
  local r = { name = name, median = m, min = lo, max = hi }
  if ceilings then
    local ratios = {}
    for i = 1, #values do ratios[i] = values[i] / ceilings[i] end
    r.ceiling = ("%s %.0f"):format(ceiling_name, (stats(ceilings)))
    r.ratio = stats(ratios)
    r.target = target
  end
  rows[#rows + 1] = r
end

-- Outside nginx: ops/s of store:check_and_add for `seconds`.
local function lua_loop(store)
  local n = 0
  local t0 = core.monotime()
  local stamp = math.floor(t0 * 1000)
  local t
  repeat
    for _ = 1, 256 do
      local exp = os.time() + 10
      if store:check_and_add("bench:l:" .. stamp .. ":" .. n, exp) == nil then error("check_and_add failed") end
      n = n + 1
    end
    t = core.monotime() - t0
  until t >= seconds
  return n / t
end

local NGX_SERVER = [[
    location = /bench/store {
        content_by_lua_block {
            local n, tag = tonumber(ngx.var.arg_n), ngx.var.arg_tag
            local store = STORE
            ngx.update_time()
            local t0 = ngx.now()
            for i = 1, n do
                if store:check_and_add("bench:s:" .. tag .. ":" .. i, ngx.time() + 10) == nil then error("store failed") end
            end
            ngx.update_time()
            ngx.say(ngx.now() - t0)
        }
    }
    location = /bench/bare {
        content_by_lua_block {
            local core = require("eternaltwin.core")
            local n, tag = tonumber(ngx.var.arg_n), ngx.var.arg_tag
            local format, reader = core.redis_format, core.redis_reader()
            local auth = format({ "AUTH", REDIS_PASSWORD })
            ngx.update_time()
            local t0 = ngx.now()
            for i = 1, n do
                local sock = ngx.socket.tcp()
                sock:settimeouts(1000, 1000, 1000)
                assert(sock:connect("127.0.0.1", REDIS_PORT, { pool = REDIS_POOL }))
                local req = format({ "SET", "bench:b:" .. tag .. ":" .. i, "1", "PX", 11000, "NX" })
                local replies = 1
                if sock:getreusedtimes() == 0 then req, replies = auth .. req, 2 end
                assert(sock:send(req))
                while replies > 0 do
                    local v, code = reader:reply()
                    if v == false then
                        assert(reader:feed(assert(sock:receiveany(16384))))
                    else
                        if code then error(code) end
                        replies = replies - 1
                    end
                end
                sock:setkeepalive()
            end
            ngx.update_time()
            ngx.say(ngx.now() - t0)
        }
    }
    location = /bench/shared {
        content_by_lua_block {
            local n, tag = tonumber(ngx.var.arg_n), ngx.var.arg_tag
            local dict = ngx.shared.bench_store
            ngx.update_time()
            local t0 = ngx.now()
            for i = 1, n do
                local exp = ngx.time() + 10
                local ok, err = dict:safe_add("bench:d:" .. tag .. ":" .. i, exp, 11)
                if not ok and err ~= "exists" then error(err) end
            end
            ngx.update_time()
            ngx.say(ngx.now() - t0)
        }
    }
]]

local ngx_srv
local ok, err = pcall(function()
  io.stderr:write(("bench-store: %d rounds; redis-server on port %d\n"):format(rounds, srv.port))
  -- 1. Outside nginx.
  local redisloop = BUILD .. "/redisloop"
  local store = eternaltwin.RedisStore({ url = url })
  lua_loop(store)                                            -- warm-up
  local ours, theirs = {}, {}
  for r = 1, rounds do
    ours[r] = lua_loop(store)
    local out = sh(("%s %d %s %s"):format(redisloop, srv.port, srv.password, seconds))
    theirs[r] = tonumber(out:match("redisloop: (%d+) ops/s")) or error("redisloop: " .. out, 0)
    io.stderr:write(("  round %d: RedisStore %.0f ops/s, hiredis loop %.0f ops/s (%.2fx)\n"):format(
      r, ours[r], theirs[r], ours[r] / theirs[r]))
  end
  row("RedisStore:check_and_add, " .. _VERSION .. (jit and " (LuaJIT)" or "") .. ", blocking", ours,
    "C hiredis loop", theirs, 0.8)

  -- 2. Inside nginx.
  local openresty = require("spec.support.openresty")
  local pool = "eternaltwin:redis:127.0.0.1:" .. srv.port .. ":0::"
    .. core.b64url_encode(core.hmac_key("HS256", "eternaltwin redis pool"):sign(srv.password)):sub(1, 12)
  ngx_srv = openresty.start({
    workers = 1,
    http = ([[
      lua_shared_dict bench_store 64m;
      init_by_lua_block {
          STORE = require("eternaltwin").RedisStore({ url = %q })
          REDIS_PORT, REDIS_PASSWORD, REDIS_POOL = %d, %q, %q
      }
    ]]):format(url, srv.port, srv.password, pool),
    server = NGX_SERVER,
  })
  local tagn = 0
  local function measure(which, n)
    tagn = tagn + 1
    local status, body = ngx_srv:get(("bench/%s?n=%d&tag=%d"):format(which, n, tagn), 120)
    if status ~= 200 then error(which .. ": HTTP " .. tostring(status) .. "\n" .. ngx_srv:log(), 0) end
    return n / tonumber(body)
  end
  for _, w in ipairs({ "store", "bare", "shared" }) do measure(w, 500) end   -- warm-up (pool, JIT)
  local st, bare, shared = {}, {}, {}
  for r = 1, rounds do
    st[r] = measure("store", requests)
    bare[r] = measure("bare", requests)
    shared[r] = measure("shared", requests)
    io.stderr:write(("  round %d: nginx RedisStore %.0f ops/s, bare cosocket SET NX %.0f ops/s (%.2fx), ngx.shared %.0f ops/s\n")
      :format(r, st[r], bare[r], st[r] / bare[r], shared[r]))
  end
  row("RedisStore:check_and_add in nginx (cosockets, pool)", st, "bare cosocket SET NX loop", bare, 0.8)
  row("bare cosocket SET NX loop (same pool)", bare)
  row("ngx.shared safe_add (one node)", shared)
end)
if ngx_srv then ngx_srv:stop() end
srv:stop()
if not ok then io.stderr:write("bench-store: ", tostring(err), "\n"); os.exit(1) end

local lines = {
  ("`make bench-store`, %d rounds (%s s outside nginx, %d calls inside per round); redis-server, nginx (one worker)"
    .. " and the drivers on one CPU; %s."):format(rounds, seconds, requests, os.date("!%Y-%m-%d %H:%M UTC")),
  "",
  "| workload | unit | median | min | max | ceiling (median) | ratio | target | met |",
  "| --- | --- | ---: | ---: | ---: | --- | ---: | --- | --- |",
}
for _, r in ipairs(rows) do
  lines[#lines + 1] = ("| %s | ops/s | %.0f | %.0f | %.0f | %s | %s | %s | %s |"):format(r.name, r.median, r.min, r.max,
    r.ceiling or "", r.ratio and ("%.2fx"):format(r.ratio) or "", r.target and (">= %.2fx"):format(r.target) or "",
    r.target and (r.ratio >= r.target and "yes" or "NO") or "")
end
local text = table.concat(lines, "\n") .. "\n"
io.write(text)
os.execute("mkdir -p '" .. outfile:gsub("/[^/]*$", "") .. "'")
local f = io.open(outfile, "w")
if f then f:write(text); f:close() end
