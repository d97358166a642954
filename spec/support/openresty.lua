-- SPDX-License-Identifier: MIT
-- Starts a real nginx (Debian's nginx-light + libnginx-mod-http-lua) for the OpenResty specs, with
-- the LuaJIT build of our module on its paths, and stops it at exit.
--
--   local openresty = require("spec.support.openresty")
--   local srv = openresty.start{
--     http = "lua_ssl_trusted_certificate /path/cert.pem;",   -- http-level directives
--     server = "location /x { content_by_lua_block { ngx.say('x') } }",  -- inside server { }
--     workers = 1,                                            -- default 1
--   }
--   srv.url, srv.port, srv.prefix; srv:log() (error.log text); srv:stop()
--
-- Every server also has `POST /run`: the body is a Lua chunk, run in the content phase; it returns
-- a table, answered as JSON (a Lua error becomes `{"error": message}` with status 500).
-- nginx runs its own LuaJIT whatever Lua runs the specs, so build/luajit must be built
-- (`make LUA=luajit`; `make test` does it). Uses only the standard library and shell commands.
local mock = require("spec.support.mock")

local M = {}
local instances = {}
local shell_quote, read_file = mock.shell_quote, mock.read_file

local function root()
  local src = debug.getinfo(1, "S").source
  local dir = src:match("^@(.*)/spec/support/[^/]*$")
  if dir == nil or dir == "" then return "." end
  if dir:sub(1, 1) ~= "/" then
    local p = io.popen("pwd")
    local cwd = p:read("*l")
    p:close()
    dir = cwd .. "/" .. dir
  end
  return dir
end
M.root = root

local function nginx_bin()
  for _, p in ipairs({ "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/sbin/nginx" }) do
    if io.open(p) then return p end
  end
  return "nginx"
end

--- Whether the pieces are there: nginx, its Lua module, and our LuaJIT build.
function M.available()
  local so = root() .. "/build/luajit/eternaltwin/core.so"
  if not io.open(so) then return false, so .. " is missing (make LUA=luajit)" end
  if not io.open("/usr/lib/nginx/modules/ngx_http_lua_module.so") then
    return false, "libnginx-mod-http-lua is not installed"
  end
  return true
end

local TEMPLATE = [[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off;
master_process on;
worker_processes @WORKERS@;
pid "@PREFIX@/nginx.pid";
error_log "@PREFIX@/error.log" warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path "@PREFIX@/client_body";
    proxy_temp_path "@PREFIX@/proxy";
    fastcgi_temp_path "@PREFIX@/fastcgi";
    uwsgi_temp_path "@PREFIX@/uwsgi";
    scgi_temp_path "@PREFIX@/scgi";
    client_max_body_size 1m;
    client_body_buffer_size 1m;
    lua_package_path "@ROOT@/lua/?.lua;@ROOT@/lua/?/init.lua;@ROOT@/?.lua;/usr/share/lua/5.1/?.lua;;";
    lua_package_cpath "@ROOT@/build/luajit/?.so;;";
    lua_socket_log_errors off;
@HTTP@
    server {
        listen 127.0.0.1:@PORT@;
        location = /__ping { return 204; }
        location = /run {
            content_by_lua_block {
                local core = require("eternaltwin.core")
                ngx.req.read_body()
                local code = ngx.req.get_body_data() or ""
                local fn, err = loadstring(code, "=run")
                local ok, res
                if fn then ok, res = pcall(fn) else ok, res = false, err end
                if not ok then
                    ngx.status = 500
                    res = { error = tostring(res) }
                end
                ngx.header["Content-Type"] = "application/json"
                ngx.print(assert(core.json_encode(res)))
            }
        }
@SERVER@
    }
}
]]

local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() ([ZX])")
end

local function sleep(s) os.execute("sleep " .. s) end

local STARTUP_TIMEOUT = 60   -- seconds: a deadline, not a wait (start returns as soon as nginx answers)

-- A random 16-bit number from the system (math.random is not seeded on 5.1 and LuaJIT, so every
-- run would try the same ports).
local function random_u16()
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(2) or ""
  if f then f:close() end
  if #b < 2 then return math.random(0, 65535) end
  return b:byte(1) * 256 + b:byte(2)
end

local Server = {}
Server.__index = Server

function Server:log() return read_file(self.prefix .. "/error.log") or "" end

function Server:stop(keep_files)
  if self.stopped then return end
  self.stopped = true
  local pid = self.pid
  if pid then
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    -- nginx stops its workers first; a SIGKILL too early would leave them running (orphans).
    local deadline = os.time() + 30
    while alive(pid) and os.time() <= deadline do sleep(0.05) end
    if alive(pid) then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  if self.watcher then os.execute("kill " .. self.watcher .. " 2>/dev/null") end
  if not keep_files then os.execute("rm -rf " .. shell_quote(self.prefix)) end
  for i, other in ipairs(instances) do
    if other == self then table.remove(instances, i) break end
  end
end

--- POSTs a Lua chunk to /run; returns the decoded JSON table, the status and the seconds taken.
function Server:run(code, timeout)
  local core = require("eternaltwin.core")
  local session = core.session({ timeout = timeout or 120 })
  local t0 = core.monotime()
  local status, _, body, _ = session:request("POST", self.url .. "run", nil, code)
  local dt = core.monotime() - t0
  session:close()
  if not status then error("POST /run: " .. tostring(body), 2) end
  local v = core.json_decode(body)
  if type(v) ~= "table" then error("POST /run: not JSON: " .. tostring(body), 2) end
  return v, status, dt
end

--- GETs a path; returns status, body, seconds taken.
function Server:get(path, timeout)
  local core = require("eternaltwin.core")
  local session = core.session({ timeout = timeout or 120 })
  local t0 = core.monotime()
  local status, _, body = session:request("GET", self.url .. path:gsub("^/", ""))
  local dt = core.monotime() - t0
  session:close()
  return status, body, dt
end

--- Starts an nginx; raises with its log when it does not come up.
function M.start(opts)
  opts = opts or {}
  local ok, why = M.available()
  if not ok then error("openresty specs need " .. why, 2) end
  local prefix = os.tmpname()
  os.remove(prefix)
  assert(os.execute("mkdir -p " .. shell_quote(prefix) .. " && chmod 755 " .. shell_quote(prefix)))
  local self_pid = (read_file("/proc/self/stat") or ""):match("^(%d+)")
  local last
  for _ = 1, 20 do
    local port = 20000 + random_u16() % 41000
    local conf = TEMPLATE:gsub("@(%u+)@", {
      WORKERS = tostring(opts.workers or 1), PREFIX = prefix, ROOT = root(), PORT = tostring(port),
      HTTP = opts.http or "", SERVER = opts.server or "",
    })
    local f = assert(io.open(prefix .. "/nginx.conf", "w"))
    f:write(conf)
    f:close()
    os.remove(prefix .. "/error.log")
    local cmd = nginx_bin() .. " -p " .. shell_quote(prefix .. "/") .. " -e " .. shell_quote(prefix .. "/error.log")
      .. " -c " .. shell_quote(prefix .. "/nginx.conf") .. " >" .. shell_quote(prefix .. "/nginx.out") .. " 2>&1"
    -- In the foreground (daemon off), started in the background by the shell: its pid is known at
    -- once. (With `daemon on` the starting process exits before the daemon writes nginx.pid, so the
    -- pid file could be read too early on a loaded machine.)
    local p = io.popen(cmd .. " </dev/null & echo $!")
    local pid = tonumber(p:read("*l") or "")
    p:close()
    if pid then
      local srv = setmetatable({ prefix = prefix, port = port, pid = pid,
                                 url = "http://127.0.0.1:" .. port .. "/" }, Server)
      instances[#instances + 1] = srv
      -- Stops nginx if this process dies without running its finalizers.
      if self_pid then
        local w = io.popen("( while kill -0 " .. self_pid .. " 2>/dev/null && kill -0 " .. pid
          .. " 2>/dev/null; do sleep 0.5; done; kill -TERM " .. pid .. " 2>/dev/null ) </dev/null >/dev/null 2>&1 & echo $!")
        srv.watcher = tonumber(w:read("*l"))
        w:close()
      end
      -- Wait until a worker answers, or nginx exits (a port taken: try another), or a generous
      -- deadline passes (a loaded machine can take seconds to start nginx and its init_by_lua).
      local deadline = os.time() + STARTUP_TIMEOUT
      while alive(pid) do
        local code = mock.curl("-o /dev/null " .. shell_quote(srv.url .. "__ping"))
        if code and code > 0 then return srv end
        if os.time() > deadline then
          local log = srv:log()
          srv:stop()
          error("nginx did not answer within " .. STARTUP_TIMEOUT .. " s; its log:\n" .. log, 2)
        end
        sleep(0.05)
      end
      srv.pid = nil   -- gone already: nothing to stop
      srv:stop(true)
    end
    last = (read_file(prefix .. "/nginx.out") or "") .. (read_file(prefix .. "/error.log") or "")
    if not last:find("Address already in use", 1, true) then break end
  end
  os.execute("rm -rf " .. shell_quote(prefix))
  error("nginx did not start:\n" .. tostring(last), 2)
end

function M.stop_all()
  for i = #instances, 1, -1 do instances[i]:stop() end
end

M._sentinel = setmetatable({}, { __gc = function() M.stop_all() end })

return M
