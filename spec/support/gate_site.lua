-- SPDX-License-Identifier: MIT
-- Runs examples/openresty (nginx with our LuaJIT build + the gate, signing in against the mock) for
-- the gate specs, and a small scripted "browser": an HTTP client with a cookie jar that never
-- follows redirects on its own.
--
--   local site = require("spec.support.gate_site").start{ workers = 2, include = "spec/support/gate-site.conf" }
--   site.url, site.mock, site.prefix, site.session_secret, site.state_secret, site.ticket_secret; site:stop()
--   local b = site.browser([ca_file])   -- b:get(url [, headers]) -> status, headers, body; b.jar
local core = require("eternaltwin.core")
local mock = require("spec.support.mock")
local M = {}

local STARTUP_TIMEOUT = 120    -- seconds, a deadline: includes `make LUA=luajit` on a fresh tree, on a loaded machine
local q, read_file = mock.shell_quote, mock.read_file

-- The repository root, absolute (nginx resolves relative paths against its prefix).
local function root()
  local src = debug.getinfo(1, "S").source
  local dir = src:match("^@(.*)/spec/support/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then dir = (os.getenv("PWD") or ".") .. "/" .. dir:gsub("^%./", ""):gsub("^%.$", "") end
  return (dir:gsub("/%.?$", ""))
end
M.root = root

local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() ([ZX])")
end

local function hex(n) return core.random_hex(n) end

--- Starts the demo site. opts: `workers` (2), `include` (a file of extra server directives),
--- `env` (extra environment variables), `command_prefix` (such as "taskset -c 1 "). Raises with the
--- output when it does not come up.
function M.start(opts)
  opts = opts or {}
  local out, err, pidfile = os.tmpname(), os.tmpname(), os.tmpname()
  local site = { out = out, err = err, pidfile = pidfile,
                 session_secret = hex(32), old_session_secret = hex(32), state_secret = hex(32),
                 ticket_secret = hex(32) }
  local env = { GATE_SESSION_SECRET = site.session_secret, GATE_OLD_SESSION_SECRET = site.old_session_secret,
                GATE_STATE_SECRET = site.state_secret, GATE_TICKET_SECRET = site.ticket_secret }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local assigns = {}
  for k, v in pairs(env) do assigns[#assigns + 1] = k .. "=" .. q(v) end
  local self_pid = (read_file("/proc/self/stat") or ""):match("^(%d+)")
  local cmd = table.concat(assigns, " ") .. " " .. (opts.command_prefix or "")
    .. "sh -c 'echo $$ > " .. pidfile .. "; exec \"$0\" \"$@\"' "
    .. q(root() .. "/examples/openresty/run") .. " --workers " .. (opts.workers or 2)
    .. (opts.include and " --include " .. q(opts.include) or "")
    .. (self_pid and " --watch-pid " .. self_pid or "")
  os.execute(cmd .. " </dev/null >" .. q(out) .. " 2>" .. q(err) .. " &")
  local deadline = os.time() + STARTUP_TIMEOUT
  while true do
    site.pid = site.pid or tonumber((read_file(pidfile) or ""):match("%d+"))
    local text = read_file(out) or ""
    local url, mock_url, prefix = text:match("url (%S+)"), text:match("mock (%S+)"), text:match("prefix (%S+)")
    if url and mock_url and prefix then
      site.url, site.mock, site.prefix = url, mock_url, prefix
      site.port = tonumber(text:match("listening (%d+)"))
      break
    end
    if (site.pid and not alive(site.pid)) or os.time() > deadline then
      local log = (read_file(err) or "") .. text
      M.stop(site)
      error("examples/openresty/run did not start; its output:\n" .. log, 2)
    end
    os.execute("sleep 0.1")
  end
  site.stop = M.stop
  site.browser = M.browser
  return site
end

function M.stop(site)
  if site.stopped then return end
  site.stopped = true
  if site.pid then
    os.execute("kill -TERM " .. site.pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if not alive(site.pid) then break end
      os.execute("sleep 0.05")
    end
  end
  for _, f in ipairs({ site.out, site.err, site.pidfile }) do os.remove(f) end
end

--- Writes `dir`/site.conf, the server directives the gate specs add: spec/support/gate-site.conf, the
--- variable it reads ($spec_support) and, given `tls_port`, a TLS listener with `dir`/cert.pem and
--- `dir`/key.pem. Returns its path (for `start{ include = ... }`).
function M.include(dir, tls_port)
  local path = dir .. "/site.conf"
  local f = assert(io.open(path, "w"))
  f:write(("include %q;\nset $spec_support %q;\n"):format(root() .. "/spec/support/gate-site.conf",
    root() .. "/spec/support"))
  if tls_port then
    f:write(("listen 127.0.0.1:%d ssl;\nssl_certificate %q;\nssl_certificate_key %q;\n"):format(
      tls_port, dir .. "/cert.pem", dir .. "/key.pem"))
  end
  f:close()
  return path
end

--- The Authorization header the mock takes as `user` signing in (its users' password is
-- USER-password).
function M.basic(user)
  local t = core.b64url_encode(user .. ":" .. user .. "-password"):gsub("[-_]", { ["-"] = "+", ["_"] = "/" })
  return "Authorization: Basic " .. t .. ("="):rep((4 - #t % 4) % 4)
end

--- The error log of the site's nginx (for "no 500, no Lua error" checks).
function M.error_log(site)
  return read_file(site.prefix .. "/error.log") or ""
end

------------------------------------------------------------------------------------------------
-- A scripted browser: cookies by name (host-only, path-scoped), Max-Age=0 deletes.

local Browser = {}
Browser.__index = Browser

function M.browser(ca_file)
  return setmetatable({ jar = {}, http = core.session({ timeout = 60, ca_file = ca_file }) }, Browser)
end

-- Parses one Set-Cookie line into { name, value, attrs = { lower-case name = value or true } }.
function M.parse_set_cookie(line)
  local name, value, rest = line:match("^%s*([^=;%s]+)=([^;]*)(.*)$")
  if not name then return nil end
  local attrs = {}
  for part in rest:gmatch(";%s*([^;]+)") do
    local k, v = part:match("^([^=]+)=(.*)$")
    if k then attrs[k:lower():gsub("%s+$", "")] = v else attrs[part:lower():gsub("%s+$", "")] = true end
  end
  return { name = name, value = value, attrs = attrs, line = line }
end

local function path_of(url)
  return url:match("^%a+://[^/]+(/[^?#]*)") or "/"
end

function Browser:store(set_cookie)
  local got = {}
  for line in (set_cookie or ""):gmatch("[^\n]+") do
    local c = M.parse_set_cookie(line)
    if c then
      got[#got + 1] = c
      local key = c.name .. "|" .. (c.attrs.path or "/")
      if c.attrs["max-age"] == "0" then self.jar[key] = nil
      else self.jar[key] = { name = c.name, value = c.value, path = c.attrs.path or "/" } end
    end
  end
  return got
end

function Browser:cookie_header(url)
  local path, parts = path_of(url), {}
  for _, c in pairs(self.jar) do
    if path:sub(1, #c.path) == c.path then parts[#parts + 1] = c.name .. "=" .. c.value end
  end
  table.sort(parts)
  return #parts > 0 and table.concat(parts, "; ") or nil
end

--- One request; returns status, headers, body, and the Set-Cookie lines parsed.
function Browser:request(method, url, headers, body)
  local list = {}
  local cookie = self:cookie_header(url)
  if cookie then list[#list + 1] = "Cookie: " .. cookie end
  for _, h in ipairs(headers or {}) do list[#list + 1] = h end
  -- A fresh connection each time, so requests spread over the workers.
  local status, h, content = self.http:request(method, url, list, body, { fresh = true })
  assert(status, h)
  local set = self:store(h["set-cookie"])
  return status, h, content, set
end

function Browser:get(url, headers) return self:request("GET", url, headers) end

--- Follows redirects (GET), up to n, from `url`; returns the last status, headers, body and the URLs seen.
function Browser:follow(url, n, headers)
  local seen = { url }
  for _ = 1, n or 10 do
    local status, h, body = self:get(url, headers)
    if status < 300 or status >= 400 or not h.location then return status, h, body, seen end
    local loc = h.location
    if loc:sub(1, 1) == "/" then loc = url:match("^(%a+://[^/]+)") .. loc end
    url = loc
    seen[#seen + 1] = url
  end
  error("too many redirects from " .. seen[1])
end

return M
