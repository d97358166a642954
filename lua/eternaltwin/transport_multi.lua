-- SPDX-License-Identifier: MIT
--- Internal: the transport of a poller task, a transfer on the poller's curl multi handle; the
-- task yields until it finishes. Uses the client's libcurl session for its settings (the easy
-- transport's). See `eternaltwin.runtime` for the shape every transport has.
-- @module eternaltwin.transport_multi
local easy = require("eternaltwin.transport_easy")

local co_yield = coroutine.yield
local monotime = require("eternaltwin.core").monotime

local M = {}

--- What a task yields when it waits on its poller (anything else is a plain yield).
M.WAKE = {}
local WAKE = M.WAKE
local session = easy.session

--- One exchange from inside `task`: start the transfer, yield until it finishes.
function M.send(conn, method, url, headers, body, flags, task)
  local p = task.poller
  local spare = p.spare_xfers
  local n = #spare
  local reuse = spare[n]
  if n > 0 then spare[n] = nil end
  -- The task rides with its transfer (the multi's tag): no table keyed by transfer to maintain.
  local xfer = p.multi:add(conn.session or session(conn), method, url, headers, body, flags, task, reuse)
  task.xfer = xfer
  co_yield(WAKE)
  task.xfer = nil
  -- status, headers, body, url (or nil, code, message), taken: nothing of it stays with the
  -- transfer, which goes back to the poller for a later request (multi:add's reuse: no new
  -- userdata, finalizer or header buffers per request).
  local a, b, c, d = xfer:take()
  spare[#spare + 1] = xfer
  return a, b, c, d
end

--- Waits `seconds` from inside `task` (the poller wakes it).
function M.sleep(task, seconds)
  task.poller.timers[task] = monotime() + seconds
  co_yield(WAKE)
end

--- Waits from inside `task` until descriptor `fd` is readable (or writable when `write`), or
-- until `deadline` (monotonic seconds) passes: the poller polls it with curl's sockets (a Redis
-- store's connection, eternaltwin.redis_store). Returns true when the descriptor was found ready.
function M.wait_fd(task, fd, write, deadline)
  local p = task.poller
  local entry = { fd = fd, read = not write, write = write or false, ready = false }
  p.fd_waits[task] = entry
  p.timers[task] = deadline
  co_yield(WAKE)
  p.fd_waits[task], p.timers[task] = nil, nil
  return entry.ready
end

return M
