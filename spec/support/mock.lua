-- SPDX-License-Identifier: MIT
-- Starts the local Eternaltwin mock (mock/etwin-mock) for the specs and stops it at exit.
--
--   local mock = require("spec.support.mock")
--   mock.get()    -- the shared instance: { url, port, tls_url, tls_port, cert, stop }
--   mock.reset()  -- POST /_mock/reset on the shared instance
--   mock.start{ config = "path/to.toml", tls = true }  -- a private instance
--   mock.stop_all()
--
-- Uses only the Lua standard library and the curl/sleep/kill commands (our own client may not be
-- built yet).
local V = require("spec.support.compat")
local M = {}

local STARTUP_TIMEOUT = 90  -- seconds: a deadline (start returns as soon as the mock answers)
local instances = {}
local shared

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

M.shell_quote, M.read_file = shell_quote, read_file

--- The whole file (binary); raises naming it when it cannot be read.
function M.must_read(path)
  return (assert(read_file(path), "cannot read " .. path))
end

local function sleep(s)
  os.execute("sleep " .. s)
end

-- The repository root (this file is spec/support/mock.lua).
local function root()
  local src = debug.getinfo(1, "S").source
  local dir = src:match("^@(.*)/spec/support/[^/]*$")
  if dir == nil or dir == "" then
    return "."
  end
  return dir
end

-- True while the process runs (a zombie counts as gone: PID 1 may reap orphans late).
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if stat then
    return not stat:match("^%d+ %b() ([ZX])")
  end
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

local function stop(inst)
  if inst.stopped then return end
  inst.stopped = true
  if inst.pid then
    os.execute("kill -TERM " .. inst.pid .. " 2>/dev/null")
    local deadline = os.time() + 30   -- the mock stops its nginx first (up to 5 s, then SIGKILL)
    while alive(inst.pid) and os.time() <= deadline do sleep(0.05) end
  end
  for _, f in ipairs({ inst.out, inst.err, inst.pidfile }) do os.remove(f) end
  for i, other in ipairs(instances) do
    if other == inst then table.remove(instances, i) break end
  end
  if shared == inst then shared = nil end
end

--- Starts a mock instance. opts: `config` (seed file), `port` (default 0), `tls` (default true),
--- `tls_port` (default 0). Raises with the mock's output when it does not come up in time.
function M.start(opts)
  opts = opts or {}
  local out, err, pidfile = os.tmpname(), os.tmpname(), os.tmpname()
  os.remove(pidfile)
  local cmd = { shell_quote(root() .. "/mock/etwin-mock"), "--port", tostring(opts.port or 0),
                "--pidfile", shell_quote(pidfile) }
  if opts.tls ~= false then
    cmd[#cmd + 1] = "--tls-port " .. tostring(opts.tls_port or 0)
  end
  -- Our own pid (the stat of /proc/self is this process's): the mock stops if we die abruptly.
  local self_pid = (read_file("/proc/self/stat") or ""):match("^(%d+)")
  if self_pid then
    cmd[#cmd + 1] = "--watch-pid " .. self_pid
  end
  if opts.config then
    cmd[#cmd + 1] = "--config " .. shell_quote(opts.config)
  end
  -- Detached from our stdin; its output goes to files we poll (bounded wait, no blocking read).
  os.execute(table.concat(cmd, " ") .. " </dev/null >" .. shell_quote(out) .. " 2>" .. shell_quote(err) .. " &")
  local inst = { out = out, err = err, pidfile = pidfile }
  inst.stop = function() stop(inst) end
  instances[#instances + 1] = inst
  local deadline = os.time() + STARTUP_TIMEOUT + 1
  local tls_wanted = opts.tls ~= false
  while true do
    local pid = read_file(pidfile)
    inst.pid = inst.pid or (pid and V.tointeger(tonumber(pid:match("%d+"))))
    local text = read_file(out) or ""
    local port = text:match("listening (%d+)")
    local tls_port = text:match("tls (%d+)")
    local cert = text:match("cert ([^\n]+)\n")
    if port and (not tls_wanted or (tls_port and cert)) then
      inst.port = V.tointeger(tonumber(port))
      inst.url = "http://127.0.0.1:" .. port .. "/"
      if tls_port then
        inst.tls_port = V.tointeger(tonumber(tls_port))
        inst.tls_url = "https://localhost:" .. tls_port .. "/"
        inst.cert = cert
      end
      return inst
    end
    local dead = inst.pid and not alive(inst.pid)
    if dead or os.time() > deadline then
      local log = (read_file(err) or "") .. (read_file(out) or "")
      stop(inst)
      error("etwin-mock did not start" .. (dead and " (it exited)" or " within " .. STARTUP_TIMEOUT .. " s")
        .. "; its output:\n" .. log, 2)
    end
    sleep(0.05)
  end
end

--- The shared instance, started on first use (HTTP and TLS on free ports, default seed).
function M.get()
  if not shared then
    shared = M.start()
  end
  return shared
end

-- Runs curl; returns the HTTP status code (number) and the body.
function M.curl(args)
  local p = assert(io.popen("curl -s -S --max-time 10 -w '\\n%{http_code}' " .. args .. " 2>&1"))
  local text = p:read("*a")
  p:close()
  local body, code = text:match("^(.*)\n(%d+)$")
  return tonumber(code), body or text
end

--- Resets the shared instance's state (sessions, codes, tokens, knobs, clock, counters).
function M.reset()
  local code, body = M.curl("-X POST " .. shell_quote(M.get().url .. "_mock/reset"))
  if code ~= 200 then
    error("mock reset failed: " .. tostring(code) .. " " .. tostring(body), 2)
  end
end

--- Stops every instance this process started.
function M.stop_all()
  for i = #instances, 1, -1 do
    stop(instances[i])
  end
end

-- Stop the instances when the Lua state closes (os.exit(code, true), as busted does, or normal end).
M._sentinel = setmetatable({}, { __gc = function() M.stop_all() end })

return M
