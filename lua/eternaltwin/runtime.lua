-- SPDX-License-Identifier: MIT
--- Where a client call runs, and which transport its request takes: the one place that decides.
-- * inside a poller task: `eternaltwin.transport_multi`, the poller's curl multi handle (the call
--   yields to the poller);
-- * inside nginx (lua-nginx-module), in a phase with cosockets: `eternaltwin.transport_cosocket`, so
--   the worker never blocks; in `init_by_lua` the blocking transport (start-up may block); in any
--   other nginx phase (`init_worker`, `set`, `header_filter`, `log`...) an error naming it;
-- * anywhere else: `eternaltwin.transport_easy`, the blocking libcurl session.
-- Every transport has the same shape: `send(conn, method, url, headers, body, flags [, task])`
-- with `conn` the client's private record (`conn.settings` its frozen options), the URL resolved
-- and checked, `headers` a list of `"Name: value"` lines or nil, `flags` nil or `{ fresh = true,
-- redirects = false }`; it returns `status, headers, body, url` (headers packed in one string, for
-- `core.headers_table`; url nil when it is the one asked) or `nil, code, message`. No transport
-- follows redirects: `eternaltwin.http` does, above the seam.
-- @module eternaltwin.runtime
local core = require("eternaltwin.core")
local easy = require("eternaltwin.transport_easy")
local multi = require("eternaltwin.transport_multi")

local M = {}

-- nginx's Lua module: `ngx` with a phase getter (a plain Lua that happens to define a global
-- named ngx does not count).
local ngx = rawget(_G, "ngx")
local get_phase = type(ngx) == "table" and ngx.get_phase or nil
-- The phases where `ngx.socket.tcp` and `ngx.sleep` work (lua-nginx-module's documentation).
local COSOCKET_PHASES = { rewrite = true, access = true, content = true, timer = true,
                          ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true }
local cosocket

--- Inside nginx: "cosocket", "block" (init) or raises naming the phase; nil outside nginx.
function M.nginx_mode()
  if not get_phase then return nil end
  local phase = get_phase()
  if COSOCKET_PHASES[phase] then return "cosocket" end
  if phase == "init" then return "block" end
  error(("eternaltwin: no client call in nginx's %s phase: it has no cosockets and must not block"
    .. " (call from rewrite, access, content or an ngx.timer, or from init_by_lua at start-up)"):format(
    tostring(phase)), 0)
end

--- Whether this Lua runs inside nginx (whatever the phase).
function M.in_nginx() return get_phase ~= nil end

-- coroutine -> task, for the tasks of every live poller. Weak keys and values: a task holds its
-- coroutine (task.co), and Lua 5.1 and LuaJIT have no ephemerons, so with weak keys alone an entry
-- would keep itself alive for ever. A live task is held by its poller (ready queue, its transfer's tag,
-- timers, waiters), so it stays here exactly as long as it can still run.
M.tasks = setmetatable({}, { __mode = "kv" })

local co_running = coroutine.running
local tasks = M.tasks

--- The poller task running the current coroutine, or nil (main thread, foreign coroutine). The
-- main thread is never a key (and on 5.1 coroutine.running() gives nil there, which reads as nil).
function M.current()
  return tasks[co_running()]
end

--- The transport a request made here and now takes (a module with `send`), and the poller task
-- when it is the multi one.
function M.transport()
  local task = tasks[co_running()]
  if task then return multi, task end
  if get_phase and M.nginx_mode() == "cosocket" then
    cosocket = cosocket or require("eternaltwin.transport_cosocket")
    return cosocket
  end
  return easy
end

local easy_send, multi_send = easy.send, multi.send

--- Performs one HTTP exchange through the transport `transport()` names (inline here: this runs on
-- every request). Returns `status, headers, body, url` or `nil, code, message`.
function M.transfer(conn, method, url, headers, body, flags)
  local task = tasks[co_running()]
  if task then return multi_send(conn, method, url, headers, body, flags, task) end
  if get_phase and M.nginx_mode() == "cosocket" then
    cosocket = cosocket or require("eternaltwin.transport_cosocket")
    return cosocket.send(conn, method, url, headers, body, flags)
  end
  return easy_send(conn, method, url, headers, body, flags)
end

--- Waits `seconds`: yields inside a task, `ngx.sleep` inside nginx, blocks elsewhere.
function M.sleep(seconds)
  local task = M.current()
  if task then return multi.sleep(task, seconds) end
  if get_phase and M.nginx_mode() == "cosocket" then return ngx.sleep(seconds) end
  core.sleep(seconds)
end

return M
