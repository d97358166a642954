-- SPDX-License-Identifier: MIT
-- `make bench-openresty`: inside nginx (one worker, the LuaJIT build), blocking-style GETs of the
-- mock's static user through `client:get` (the cosocket transport), against the ceiling: the same
-- keep-alive loop written on a bare `ngx.socket.tcp` (status line and headers read line by line,
-- the body by its Content-Length, the connection back to the pool). Same nginx, same session,
-- round after round (client, then bare); the ratio is the median of the per-round ratios.
--   lua bench/openresty.lua [--rounds N] [--requests N] [--out FILE]
-- The make target runs it pinned to one CPU (taskset), so the mock, nginx and the driver share it.
package.path = "./?.lua;" .. package.path
local openresty = require("spec.support.openresty")

local rounds, requests, outfile = 7, 20000, (os.getenv("BENCH_DIR") or "build/bench") .. "/openresty.md"
do
  local i = 1
  while arg[i] do
    if arg[i] == "--rounds" then rounds = assert(tonumber(arg[i + 1]), "--rounds N"); i = i + 2
    elseif arg[i] == "--requests" then requests = assert(tonumber(arg[i + 1]), "--requests N"); i = i + 2
    elseif arg[i] == "--out" then outfile = arg[i + 1]; i = i + 2
    else error("usage: bench/openresty.lua [--rounds N] [--requests N] [--out FILE]") end
  end
end
assert(rounds >= 3, "at least 3 rounds")

local BASE, stop_mock = require("examples.mockserver").spawn()
local host, port = BASE:match("^http://([^:/]+):(%d+)/")

local SERVER = ([[
    location = /bench/client {
        content_by_lua_block {
            local n = tonumber(ngx.var.arg_n)
            local c, url = CLIENT, "%s_mock/static/user"
            ngx.update_time()
            local t0 = ngx.now()
            for _ = 1, n do
                local res = c:get(url)
                if not res or #res.content < 100 then error("bad answer") end
            end
            ngx.update_time()
            ngx.say(ngx.now() - t0)
        }
    }
    location = /bench/bare {
        content_by_lua_block {
            local n = tonumber(ngx.var.arg_n)
            local host, port = "%s", %s
            local req = "GET /_mock/static/user HTTP/1.1\r\nHost: " .. host .. ":" .. port .. "\r\n\r\n"
            ngx.update_time()
            local t0 = ngx.now()
            for _ = 1, n do
                local sock = ngx.socket.tcp()
                sock:settimeouts(5000, 5000, 5000)
                assert(sock:connect(host, port))
                assert(sock:send(req))
                assert(sock:receive("*l"))
                local len
                while true do
                    local line = assert(sock:receive("*l"))
                    if line == "" then break end
                    local v = line:match("^[Cc]ontent%%-[Ll]ength:%%s*(%%d+)")
                    if v then len = tonumber(v) end
                end
                local body = assert(sock:receive(len))
                if #body < 100 then error("bad answer") end
                sock:setkeepalive()
            end
            ngx.update_time()
            ngx.say(ngx.now() - t0)
        }
    }
]]):format(BASE, host, port)

local HTTP = ([[
    init_by_lua_block {
        local eternaltwin = require("eternaltwin")
        CLIENT = eternaltwin.new("demo@clients", "dev_secret", "http://localhost:8000/oauth/callback",
                                 require("eternaltwin.keys").HS256Key("bench"), { url = "%s" })
    }
]]):format(BASE)

local srv
local ok, err = pcall(function()
  srv = openresty.start{ http = HTTP, server = SERVER }
  local function measure(which, n)
    local status, body = srv:get(("bench/%s?n=%d"):format(which, n), 120)
    if status ~= 200 then error(which .. ": HTTP " .. tostring(status) .. "\n" .. srv:log(), 0) end
    return n / tonumber(body)
  end
  measure("client", 300); measure("bare", 300)            -- warm-up (pools, JIT)
  local cl, bare, ratios = {}, {}, {}
  for r = 1, rounds do
    cl[r] = measure("client", requests)
    bare[r] = measure("bare", requests)
    ratios[r] = cl[r] / bare[r]
    io.stderr:write(("  round %d: client %.0f req/s, bare cosocket %.0f req/s (%.2fx)\n"):format(r, cl[r], bare[r], ratios[r]))
  end
  local function stats(t)
    local s = {}
    for i, v in ipairs(t) do s[i] = v end
    table.sort(s)
    return s[math.floor((#s + 1) / 2)], s[1], s[#s]
  end
  local cm, clo, chi = stats(cl)
  local bm, blo, bhi = stats(bare)
  local ratio = stats(ratios)
  local lines = {
    ("`make bench-openresty`, %d rounds of %d GETs each; nginx (one worker, LuaJIT) and the mock pinned to one CPU; %s."):format(
      rounds, requests, os.date("!%Y-%m-%d %H:%M UTC")),
    "",
    "| workload | unit | median | min | max | ceiling (median) | ratio | target | met |",
    "| --- | --- | ---: | ---: | ---: | --- | ---: | --- | --- |",
    ("| GET through client:get in nginx (cosockets, keep-alive) | req/s | %.0f | %.0f | %.0f | bare ngx.socket.tcp loop %.0f | %.2fx | >= 0.90x | %s |"):format(
      cm, clo, chi, bm, ratio, ratio >= 0.9 and "yes" or "NO"),
    ("| bare ngx.socket.tcp keep-alive loop | req/s | %.0f | %.0f | %.0f |  |  |  |  |"):format(bm, blo, bhi),
  }
  local text = table.concat(lines, "\n") .. "\n"
  io.write(text)
  os.execute("mkdir -p '" .. outfile:gsub("/[^/]*$", "") .. "'")
  local f = io.open(outfile, "w")
  if f then f:write(text); f:close() end
end)
if srv then srv:stop() end
stop_mock()
if not ok then io.stderr:write("bench-openresty: ", tostring(err), "\n"); os.exit(1) end
