-- SPDX-License-Identifier: MIT
-- A redis-server of the spec's own: a child process on a free port, with a password, no
-- persistence (--save '' --appendonly no), DEBUG allowed (to stall it). Never through systemd.
--
--   local redis = require("spec.support.redis")
--   local srv = redis.start()          -- { port =, password =, pid = }; raises if it does not start
--   srv:kill()                         -- SIGKILL, waits until it is gone (the port is free again)
--   srv:restart()                      -- the same port and password again
--   srv:stop()                         -- SIGTERM (then SIGKILL); idempotent
--   redis.stop_all()                   -- every server still running (also at exit, by __gc)
local M = {}

local STARTUP_TIMEOUT = 5
local servers = {}

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function sleep(s)
  os.execute("sleep " .. s)
end

-- True while any thread of the process runs. (The main thread turns zombie before the others
-- have exited; the sockets close with the last one, so "the main thread is a zombie" is not yet
-- "the port is closed". The process is not our child: init reaps it.)
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then return false end
  if not stat:match("^%d+ %b() ([ZX])") then return true end
  local p = io.popen("ls /proc/" .. pid .. "/task 2>/dev/null")
  local n = 0
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n > 1
end

local function signal(srv, sig)
  if srv.pid and alive(srv.pid) then
    os.execute("kill -" .. sig .. " " .. srv.pid .. " 2>/dev/null")
    for _ = 1, 200 do
      if not alive(srv.pid) then break end
      sleep(0.02)
    end
  end
end

local function seeded()
  if not M._seeded then
    local bytes = read_file("/proc/sys/kernel/random/uuid") or tostring(os.time())
    local n = 0
    for c in bytes:gmatch("%x") do n = (n * 16 + tonumber(c, 16)) % 2147483647 end
    math.randomseed(n)
    M._seeded = true
  end
end

-- Starts redis-server on port (or a random one, retried when taken); true when it accepts.
local function launch(srv, port)
  local log = srv.log
  os.remove(log)
  local cmd = table.concat({
    "redis-server", "--port", tostring(port), "--bind", "127.0.0.1",
    "--requirepass", shell_quote(srv.password), "--save", "''", "--appendonly", "no",
    "--enable-debug-command", "yes", "--dir", "/tmp", "--daemonize", "no",
  }, " ")
  local p = assert(io.popen(cmd .. " </dev/null >" .. shell_quote(log) .. " 2>&1 & echo $!"))
  local pid = tonumber(p:read("*l"))
  p:close()
  srv.pid, srv.port = pid, port
  local deadline = os.time() + STARTUP_TIMEOUT + 1
  while os.time() <= deadline do
    local text = read_file(log) or ""
    if text:find("Ready to accept connections", 1, true) then return true end
    if not alive(pid) then return false, text end
    sleep(0.02)
  end
  signal(srv, "KILL")
  return false, (read_file(log) or "") .. "\n(not ready within " .. STARTUP_TIMEOUT .. " s)"
end

function M.available()
  return os.execute("command -v redis-server >/dev/null 2>&1") == true
    or os.execute("command -v redis-server >/dev/null 2>&1") == 0
end

--- opts: `password` (default a fixed test one), `port` (default: a free one).
function M.start(opts)
  opts = opts or {}
  assert(M.available(), "redis-server not found: a test dependency (make deps / tools/deps.sh test)")
  seeded()
  local srv = setmetatable({ password = opts.password or "spec-redis-pw-8c1f", log = os.tmpname() },
                           { __index = M })
  local ok, text
  for _ = 1, 8 do
    ok, text = launch(srv, opts.port or math.random(20000, 59999))
    if ok then
      servers[#servers + 1] = srv
      return srv
    end
    if opts.port then break end
  end
  os.remove(srv.log)
  error("redis-server did not start; its output:\n" .. tostring(text), 2)
end

function M:kill()
  signal(self, "KILL")
end

function M:restart()
  self:kill()
  local ok, text
  for _ = 1, 50 do   -- the port may take a moment to be free again
    ok, text = launch(self, self.port)
    if ok then return self end
    sleep(0.05)
  end
  error("redis-server did not restart on port " .. self.port .. ":\n" .. tostring(text), 2)
end

function M:stop()
  if self.stopped then return end
  self.stopped = true
  signal(self, "TERM")
  signal(self, "KILL")
  os.remove(self.log)
  for i, other in ipairs(servers) do
    if other == self then table.remove(servers, i) break end
  end
end

function M.stop_all()
  for i = #servers, 1, -1 do servers[i]:stop() end
end

-- Lua 5.1 has no __gc on tables: a userdata sentinel there (newproxy), a table elsewhere.
if newproxy then
  M._sentinel = newproxy(true)
  getmetatable(M._sentinel).__gc = function() M.stop_all() end
else
  M._sentinel = setmetatable({}, { __gc = function() M.stop_all() end })
end

return M
