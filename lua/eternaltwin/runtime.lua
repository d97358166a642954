-- SPDX-License-Identifier: MIT
--- Where a client call runs, and how its request leaves the process: the one place that decides.
-- * inside a poller task: the poller's curl multi handle (the call yields to the poller);
-- * inside nginx (lua-nginx-module), in a phase with cosockets: `eternaltwin.cosocket`, so the
--   worker never blocks; in `init_by_lua` the blocking libcurl session (start-up may block); in
--   any other nginx phase (`init_worker`, `set`, `header_filter`, `log`...) an error naming it;
-- * anywhere else: the blocking libcurl session.
-- The poller registers its tasks here; the client asks `transfer` and `sleep`, which pick the mode.
-- @module eternaltwin.runtime
local core = require("eternaltwin.core")

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

-- coroutine -> task, for the tasks of every live poller. Weak keys and values: a task holds its
-- coroutine (task.co), and Lua 5.1 and LuaJIT have no ephemerons, so with weak keys alone an entry
-- would keep itself alive for ever. A live task is held by its poller (ready queue, its transfer's tag,
-- timers, waiters), so it stays here exactly as long as it can still run.
M.tasks = setmetatable({}, { __mode = "kv" })
-- Poller:_transfer, set by eternaltwin.poller when it loads (a task exists only after that).
M.poller_transfer = nil

local co_running = coroutine.running
local tasks = M.tasks

--- The poller task running the current coroutine, or nil (main thread, foreign coroutine). The
-- main thread is never a key (and on 5.1 coroutine.running() gives nil there, which reads as nil).
function M.current()
  return tasks[co_running()]
end

--- Performs one HTTP exchange: yields inside a task, goes through cosockets inside nginx,
-- blocks elsewhere. `settings` are the session's options (the cosocket transport applies them).
-- Returns `status, headers, body, url` or `nil, code, message`.
function M.transfer(session, method, url, headers, body, flags, settings)
  local task = tasks[co_running()]            -- M.current(), inline: this runs on every request
  if task then return M.poller_transfer(task.poller, task, session, method, url, headers, body, flags) end
  if get_phase and M.nginx_mode() == "cosocket" then
    cosocket = cosocket or require("eternaltwin.cosocket")
    return cosocket.request(settings, method, url, headers, body, flags)
  end
  return session:request(method, url, headers, body, flags)
end

--- Waits `seconds`: yields inside a task, `ngx.sleep` inside nginx, blocks elsewhere.
function M.sleep(seconds)
  local task = M.current()
  if task then return task.poller:_sleep(task, seconds) end
  if get_phase and M.nginx_mode() == "cosocket" then return ngx.sleep(seconds) end
  core.sleep(seconds)
end

return M
