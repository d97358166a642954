-- SPDX-License-Identifier: MIT
-- A two-node site for the specs: examples/openresty/cluster (node A and node B, each an nginx with
-- two workers running the demo site with `store = RedisStore`, `sessions = "server"`, sharing the mock)
-- on a redis-server of the spec's own (spec/support/redis.lua: a child on a free port, --requirepass,
-- no persistence), with spec/support/gate-cluster.conf's test locations on both nodes.
--
--   local cluster = require("spec.support.gate_cluster")
--   local c = cluster.start{ env = { GATE_IDLE_TTL = "4" } }
--   c.a, c.b (node URLs, "http://127.0.0.1:PORT/"), c.mock, c.redis (spec.support.redis server),
--   c.redis_url, c.session_secret, c.state_secret, c.ticket_secret, c.client_secret
--   c:logs() (both nodes' error.log), c:redis_conn() (a blocking eternaltwin.core Redis connection)
--   c:stop()
local core = require("eternaltwin.core")
local mock = require("spec.support.mock")
local redis = require("spec.support.redis")
local gate_site = require("spec.support.gate_site")
local M = {}

local STARTUP_TIMEOUT = 60     -- seconds: includes `make LUA=luajit` and a loaded machine
local q, read_file = mock.shell_quote, mock.read_file

local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() ([ZX])")
end

function M.start(opts)
  opts = opts or {}
  local c = { out = os.tmpname(), err = os.tmpname(), pidfile = os.tmpname(),
              session_secret = core.random_hex(32), state_secret = core.random_hex(32),
              ticket_secret = core.random_hex(32) }
  c.redis = redis.start{ password = "cluster-" .. core.random_hex(12) }
  c.redis_url = "redis://:" .. c.redis.password .. "@127.0.0.1:" .. c.redis.port .. "/0"
  local env = { GATE_SESSION_SECRET = c.session_secret, GATE_STATE_SECRET = c.state_secret,
                GATE_TICKET_SECRET = c.ticket_secret, GATE_REDIS_URL = c.redis_url }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local assigns = {}
  for k, v in pairs(env) do assigns[#assigns + 1] = k .. "=" .. q(v) end
  local self_pid = (read_file("/proc/self/stat") or ""):match("^(%d+)")
  local root = gate_site.root()
  local cmd = "env " .. table.concat(assigns, " ")
    .. " sh -c 'echo $$ > " .. c.pidfile .. "; exec \"$0\" \"$@\"' "
    .. q(root .. "/examples/openresty/cluster") .. " --workers " .. (opts.workers or 2)
    .. " --include " .. q(root .. "/spec/support/gate-cluster.conf")
    .. (self_pid and " --watch-pid " .. self_pid or "")
  os.execute(cmd .. " </dev/null >" .. q(c.out) .. " 2>" .. q(c.err) .. " &")
  local deadline = os.time() + STARTUP_TIMEOUT
  while true do
    c.pid = c.pid or tonumber((read_file(c.pidfile) or ""):match("%d+"))
    local text = read_file(c.out) or ""
    if text:find("\nopen ", 1, true) then
      c.a, c.b, c.mock = text:match("node_a (%S+)"), text:match("node_b (%S+)"), text:match("mock (%S+)")
      c.prefix_a, c.prefix_b = text:match("prefix_a (%S+)"), text:match("prefix_b (%S+)")
      c.client_secret = (read_file(c.prefix_a .. "/../seed.toml") or ""):match('%[seed%.app%.site%].-secret = "(%x+)"')
      break
    end
    if (c.pid and not alive(c.pid)) or os.time() > deadline then
      local log = (read_file(c.err) or "") .. text
      M.stop(c)
      error("examples/openresty/cluster did not start; its output:\n" .. log, 2)
    end
    os.execute("sleep 0.1")
  end
  return setmetatable(c, { __index = M })
end

function M.logs(c)
  return (read_file(c.prefix_a .. "/error.log") or "") .. (read_file(c.prefix_b .. "/error.log") or "")
end

--- A blocking connection to the spec's Redis (core.redis_connect), for SCAN/GET/DUMP/DEBUG.
function M.redis_conn(c, timeout)
  return assert(core.redis_connect{ host = "127.0.0.1", port = c.redis.port, password = c.redis.password,
                                    timeout = timeout or 5 })
end

function M.stop(c)
  if c.stopped then return end
  c.stopped = true
  if c.pid then
    os.execute("kill -TERM " .. c.pid .. " 2>/dev/null")
    for _ = 1, 150 do
      if not alive(c.pid) then break end
      os.execute("sleep 0.05")
    end
  end
  if c.redis then c.redis:stop() end
  for _, f in ipairs({ c.out, c.err, c.pidfile }) do os.remove(f) end
end

return M
