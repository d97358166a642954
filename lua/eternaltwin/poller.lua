-- SPDX-License-Identifier: MIT
--- The coroutine side of async calls: a poller over libcurl's multi interface (one multi handle;
-- past 256 transfers in flight, up to four: csrc/et_multi.h).
-- A task is a coroutine. Inside a task every client call yields (the C side only starts and
-- advances transfers, never blocks, never yields); outside, the same client blocks.
-- @module eternaltwin.poller
local core = require("eternaltwin.core")
local errors = require("eternaltwin.errors")
local runtime = require("eternaltwin.runtime")

local type, setmetatable, error = type, setmetatable, error
local compat = require("eternaltwin.compat")
local pack, unpack, math_type = compat.pack, compat.unpack, compat.math_type
local co_create, co_resume, co_yield, co_status = coroutine.create, coroutine.resume, coroutine.yield,
  coroutine.status
local co_close = coroutine.close
local monotime = core.monotime
local redis_poll = core.redis_poll

local M = {}

local Poller = {}
Poller.__index = Poller
Poller.__name = "eternaltwin.Poller"

local Task = {}
Task.__index = Task
Task.__name = "eternaltwin.Task"

-- What a task yields when it waits on the poller (anything else: a plain yield); its transfers and
-- sleeps are the multi transport's (eternaltwin.transport_multi).
local WAKE = require("eternaltwin.transport_multi").WAKE

--- A new poller: `eternaltwin.poller([opts])` (the same function).
-- @tparam[opt] table opts `max_connections` (default 0: no bound; beyond it, transfers queue)
-- @treturn Poller
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #1 to 'poller' (table expected)", 2) end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "max_connections" then error("bad argument #1 to 'poller' (unknown option '" .. tostring(k) .. "')", 2) end
  end
  local maxc = opts.max_connections or 0
  if math_type(maxc) ~= "integer" or maxc < 0 then
    error("bad argument #1 to 'poller' (option 'max_connections': non-negative integer expected)", 2)
  end
  return setmetatable({
    multi = core.multi({ max_connections = maxc }),
    live = 0,          -- tasks not done
    ready = {},        -- FIFO of tasks to resume (a new task's arguments ride on it: task.args)
    spare = {},        -- the previous round's (emptied) queue, swapped back in
    timers = {},       -- task -> deadline (monotonic seconds)
    fd_waits = {},     -- task -> { fd =, read =, write =, ready = }: a task waiting on a descriptor
                       -- of its own (a Redis store's connection), polled with curl's sockets; such a
                       -- task also has a deadline in timers
    spare_xfers = {},  -- finished transfers, results read, for the next requests (at most one per
                       -- live task)
    inside = false,    -- true while resuming a task (run/step from a task raise)
  }, Poller)
end

function Poller.__tostring(p) return ("<eternaltwin.Poller %d live>"):format(p.live) end

local function push(p, task)
  local q = p.ready
  q[#q + 1] = task
end

local function finish(p, task, results)
  if task.done then return end
  task.done, task.results = true, results
  local live = p.live - 1
  p.live = live
  -- At most one spare transfer per live task: a burst's transfers go back to the collector as its
  -- tasks end.
  local spare = p.spare_xfers
  for i = #spare, live + 1, -1 do spare[i] = nil end
  runtime.tasks[task.co] = nil
  p.timers[task] = nil
  p.fd_waits[task] = nil
  local waiters = task.waiters
  task.waiters = nil
  if waiters then
    for i = 1, #waiters do push(p, waiters[i]) end
  end
end

-- What a resume gave. The coroutine runs the task's body through `task_body` below, without a pcall
-- (PUC Lua 5.1 cannot yield across pcall), so an error it raises ends the coroutine and comes back
-- here as `false, err`: it stays the task's own. A resume gives exactly `true, WAKE` for a task
-- that waits on the poller (the usual case), `true, DONE, results` for one that returned, and
-- anything else for a plain coroutine.yield: two results to look at, never a vararg call.
local DONE = {}
local function resumed(p, task, rok, a, b)
  p.inside = false
  if rok then
    if a == WAKE then return end
    if a == DONE and co_status(task.co) == "dead" then return finish(p, task, b) end
    return push(p, task) -- a plain coroutine.yield() in a task: resume it next round
  end
  if not errors.is_error(a) then a = tostring(a) end
  finish(p, task, pack(nil, a))
end

-- A task's coroutine function: its body, then its results packed, marked as the end.
local function task_body(fn, ...)
  return DONE, pack(fn(...))
end

-- The first resume of a new task: with its function and arguments.
local function start(p, task)
  local args = task.args
  task.args = nil
  p.inside = task
  return resumed(p, task, co_resume(task.co, unpack(args, 1, args.n)))
end

--- Schedules `fn(...)` as a task; it starts at the next `step` or `run`.
-- @tparam function fn the task's body; inside it, client calls yield
-- @param ... arguments for `fn`
-- @treturn Task with `done` (boolean), `wait` and `cancel`
function Poller:spawn(fn, ...)
  if type(fn) ~= "function" then error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2) end
  local task = setmetatable({ poller = self, done = false }, Task)
  task.co = co_create(task_body)
  task.args = pack(fn, ...)
  runtime.tasks[task.co] = task
  self.live = self.live + 1
  push(self, task)
  return task
end

-- The tasks whose descriptor is ready now (a poll that does not wait) go to the ready queue.
local fd_list = {}
local function collect_fds(p)
  local waits, n = p.fd_waits, 0
  for _, e in pairs(waits) do n = n + 1; fd_list[n] = e end
  for i = #fd_list, n + 1, -1 do fd_list[i] = nil end
  if redis_poll(fd_list, 0) > 0 then
    for task, e in pairs(waits) do
      if e.ready then waits[task] = nil; p.timers[task] = nil; push(p, task) end
    end
  end
  for i = 1, n do fd_list[i] = nil end
end

local function collect(p)
  local multi = p.multi
  if next(p.fd_waits) then collect_fds(p) end
  multi:perform()
  multi:finished(p.ready)         -- the finished transfers' tasks, appended to the ready queue
  if next(p.timers) then
    local now = monotime()
    for task, at in pairs(p.timers) do
      if at <= now then p.timers[task] = nil; p.fd_waits[task] = nil; push(p, task) end
    end
  end
end

local function run_ready(p)
  -- Only what is ready now: tasks made ready while this round runs wait for the next one. The
  -- two queues alternate (no new table per round); a resume that raises (a bug of ours: task
  -- errors are caught) leaves the round's queue dropped, as a fresh one would be.
  local q = p.ready
  local n = #q
  if n == 0 then return end
  p.ready, p.spare = p.spare or {}, nil
  for i = 1, n do
    local task = q[i]
    q[i] = nil
    if not task.done then                       -- (else cancelled while it waited here)
      if task.args then
        start(p, task)
      else
        p.inside = task
        resumed(p, task, co_resume(task.co))
      end
    end
  end
  p.spare = q
end

local function check_outside(p, name)
  if p.inside then error(name .. " called from inside one of this poller's own tasks", 3) end
end

--- Seconds until the poller needs a `step` (0 when tasks are ready), or nil when idle.
-- For outside loops (libuv, a game engine): wait on `sockets()` at most this long, then `step(0)`.
-- @treturn number|nil
function Poller:timeout()
  if #self.ready > 0 then return 0 end
  local t = self.multi:timeout()
  for _, at in pairs(self.timers) do
    local left = at - monotime()
    if left < 0 then left = 0 end
    if not t or left < t then t = left end
  end
  return t
end

--- The sockets the poller waits on, for outside loops.
-- @treturn table an array of `{ fd = n, read = bool, write = bool }`
function Poller:sockets()
  local list = self.multi:sockets()
  for _, e in pairs(self.fd_waits) do list[#list + 1] = { fd = e.fd, read = e.read, write = e.write } end
  return list
end

--- One bounded round: resumes ready tasks, advances transfers, waits for activity.
-- Raises when called from one of this poller's own tasks.
-- @tparam[opt=0] number timeout the longest wait in seconds (0: never blocks, for a game tick)
-- @treturn integer the number of live tasks
function Poller:step(timeout)
  check_outside(self, "step")
  timeout = timeout or 0
  if type(timeout) ~= "number" or not (timeout >= 0 and timeout < math.huge) then
    error("bad argument #1 to 'step' (finite non-negative seconds expected)", 2)
  end
  run_ready(self)
  collect(self)
  if #self.ready == 0 and timeout > 0 and self.live > 0 then
    local wait = self:timeout()
    if wait == nil or wait > timeout then wait = timeout end
    if wait > 0 then
      if next(self.fd_waits) then
        -- Tasks wait on descriptors of their own: one poll over curl's sockets and theirs (the
        -- transfers are then advanced by collect, whose perform looks at curl's sockets again).
        redis_poll(self:sockets(), wait)
      else
        self.multi:poll(wait)
      end
    end
    collect(self)
  end
  run_ready(self)
  return self.live
end

--- Runs until every task has finished, or `timeout` seconds passed.
-- Raises when called from one of this poller's own tasks.
-- @tparam[opt] number timeout seconds (default: no limit)
-- @treturn integer the number of live tasks (0 when all finished)
function Poller:run(timeout)
  check_outside(self, "run")
  if timeout ~= nil and (type(timeout) ~= "number" or not (timeout >= 0 and timeout < math.huge)) then
    error("bad argument #1 to 'run' (finite non-negative seconds expected)", 2)
  end
  local deadline = timeout and monotime() + timeout
  while self.live > 0 do
    local slice = 1
    if deadline then
      slice = deadline - monotime()
      if slice <= 0 then break end
      if slice > 1 then slice = 1 end
    end
    self:step(slice)
  end
  return self.live
end

--- Frees the multi handle and every transfer; live tasks are cancelled.
function Poller:close()
  for _, task in pairs(runtime.tasks) do
    if task.poller == self and task.xfer then task:cancel() end
  end
  for task in pairs(self.timers) do task:cancel() end
  self.multi:close()
end
Poller.__close = Poller.close

function Task.__tostring(t)
  return ("<eternaltwin.Task %s>"):format(t.done and "done" or "live")
end

--- Waits for the task. Inside a task of the same poller it yields; elsewhere it drives the poller.
-- @return the task function's results, or `nil, err` if it raised or was cancelled (kind Cancelled)
function Task:wait()
  local p = self.poller
  local me = runtime.current()
  if me == self then error("a task cannot wait for itself", 2) end
  if not self.done then
    if me and me.poller == p then
      self.waiters = self.waiters or {}
      self.waiters[#self.waiters + 1] = me
      co_yield(WAKE)
    else
      while not self.done do p:step(0.25) end
    end
  end
  local r = self.results
  return unpack(r, 1, r.n)
end

--- Cancels the task: `done` becomes true and `wait` returns `nil, err` of kind Cancelled.
function Task:cancel()
  if self.done then return end
  local p = self.poller
  if self.xfer then
    self.xfer:cancel()
    self.xfer = nil
  end
  finish(p, self, pack(nil, errors.new(errors.Cancelled, "task cancelled")))
  if co_close and co_status(self.co) == "suspended" then co_close(self.co) end
end

M.Poller, M.Task = Poller, Task
return M
