-- SPDX-License-Identifier: MIT
--- Where a client call runs: blocking on the calling thread, or yielding inside a poller task.
-- The poller registers its tasks here; the client asks `transfer` and `sleep`, which pick the mode.
-- @module eternaltwin.runtime
local core = require("eternaltwin.core")

local M = {}

-- coroutine -> task, for the tasks of every live poller. Weak keys and values: a task holds its
-- coroutine (task.co), and Lua 5.1 and LuaJIT have no ephemerons, so with weak keys alone an entry
-- would keep itself alive for ever. A live task is held by its poller (ready queue, its transfer's tag,
-- timers, waiters), so it stays here exactly as long as it can still run.
M.tasks = setmetatable({}, { __mode = "kv" })

--- The poller task running the current coroutine, or nil (main thread, foreign coroutine).
function M.current()
  local co, main = coroutine.running()
  if co == nil or main then return nil end
  return M.tasks[co]
end

--- Performs one HTTP exchange: yields inside a task, blocks elsewhere.
-- Returns `status, headers, body, url` or `nil, code, message`.
local co_running = coroutine.running
function M.transfer(session, method, url, headers, body, flags)
  local co, main = co_running()                -- M.current(), inline: this runs on every request
  local task = co ~= nil and not main and M.tasks[co]
  if task then return task.poller:_transfer(task, session, method, url, headers, body, flags) end
  return session:request(method, url, headers, body, flags)
end

--- Waits `seconds`: yields inside a task, blocks elsewhere.
function M.sleep(seconds)
  local task = M.current()
  if task then return task.poller:_sleep(task, seconds) end
  core.sleep(seconds)
end

return M
