-- SPDX-License-Identifier: MIT
--- A store in Redis, shared by every node: single-use nonces (states, tickets) and session records.
--
--    local store = eternaltwin.RedisStore{ url = "redis://:secret@10.0.0.5:6379/0" }
--    store:check_and_add(nonce, exp)   --> true (new) | false (seen) | nil, err
--    store:set(key, value, exp)        --> true | nil, err
--    store:get(key)                    --> value | nil (absent) | nil, err
--    store:delete(key)                 --> true | nil, err
--    store:batch{ { "get", k1 }, { "check_and_add", k2, exp } }   --> { v1, v2 } | nil, err (one round trip)
--
-- **The convention** (the same for `ReplayStore` and `SharedDictStore`): `exp` is an absolute epoch
-- time in seconds; values are strings. `get` returns the string, or `nil` *alone* when the key is
-- absent (or expired), or `nil, err` when the store cannot tell: a caller tells them apart by the
-- second value (`local v, err = store:get(k); if err then fail closed end`). `check_and_add` returns
-- `true`, `false` (the key is live), or `nil, err`. `set` and `delete` return `true` or `nil, err`.
-- `err` is an `eternaltwin.errors` TransportError with `code = "store"`, `retryable = true`,
-- `reason` (`connect`, `timeout`, `auth`, `reset`, `protocol`, `server`) and a message naming the
-- cause and the server (`redis store 127.0.0.1:6379: timed out after 1000 ms ...`), never the
-- password. Argument mistakes raise, naming the option or argument.
--
-- Commands: `SET prefix..key 1 NX PX ttl` (check_and_add: one atomic command; remembered until
-- `exp`, and a second more, like the shared dict), `SET prefix..key value PX ttl` (a `set` whose
-- `exp` has passed deletes the key instead), `GET`, `DEL`. Every key has a TTL, and every command
-- names one key: with a hash tag in `prefix` (`"{etwin}:"`) every key lands in one Redis Cluster slot.
--
-- Transports (chosen per call, as for HTTP: `eternaltwin.runtime`):
--
-- * inside nginx, in a phase with cosockets (rewrite, access, content, ngx.timer...): `ngx.socket.tcp`
--   with the keep-alive pool `eternaltwin:redis:host:port:db:user:tag` (tag: a digest of the
--   password, so stores with other credentials never share a connection); AUTH and SELECT go only on
--   a fresh connection, in the same write as the command; `timeout` bounds the call (connect, send,
--   each read gets the time left); a connection goes back to the pool only after a complete reply.
--   In `init_by_lua` (start-up may block) the blocking connection below. Other phases raise.
-- * inside a poller task: the call yields. A connection of the C core driven without blocking
--   (`r:send`, `r:recv`), whose descriptor the poller waits on beside curl's sockets
--   (`Poller:sockets()` lists it too, for outside loops). One connection per task in flight, kept
--   for reuse (at most 16 idle per store).
-- * elsewhere: one blocking connection of the C core (`core.redis_connect`), at most `timeout` per
--   call (connect, AUTH and SELECT included when it has to connect).
--
-- A failed connection is dropped; the next call connects again, so Redis restarted on the same port
-- works without restarting anything. A call that timed out may still have run on the server (a
-- `SET NX` may have added its key): callers fail closed.
-- @module eternaltwin.redis_store
local core = require("eternaltwin.core")
local errors = require("eternaltwin.errors")
local check = require("eternaltwin.check")
local runtime = require("eternaltwin.runtime")
local multi = require("eternaltwin.transport_multi")
local math_type = require("eternaltwin.compat").math_type

local type, tostring, tonumber, setmetatable, pairs = type, tostring, tonumber, setmetatable, pairs
local format, floor = string.format, math.floor
local argfail = check.fail
local monotime, redis_format = core.monotime, core.redis_format

local M = {}

local RedisStore = {}
RedisStore.__index = RedisStore
RedisStore.__name = "eternaltwin.RedisStore"

-- The secrets and connections of each store, out of the object (a dump of the object shows none).
local private = setmetatable({}, { __mode = "k" })

local OPTIONS = { url = "string", host = "string", port = "number", password = "string", username = "string",
                  db = "number", prefix = "string", timeout = "number" }
local MAX_IDLE = 16            -- idle non-blocking connections kept per store (poller tasks)
local READ_SIZE = 16384

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- redis://[[user]:password@]host[:port][/db] -> fields, or raises.
local function parse_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then argfail("RedisStore", "option 'url': redis://[[user]:password@]host[:port][/db] expected", 4) end
  scheme = scheme:lower()
  if scheme == "rediss" then
    argfail("RedisStore", "option 'url': rediss:// (TLS) is not supported (hiredis 0.14 has no TLS): reach Redis"
      .. " over a private network, or through a local TLS tunnel (stunnel, spiped) with redis://127.0.0.1", 4)
  end
  if scheme ~= "redis" then argfail("RedisStore", "option 'url': scheme redis:// expected", 4) end
  local o = {}
  local userinfo, hostpart = rest:match("^(.*)@([^@]*)$")
  if userinfo then
    local user, pass = userinfo:match("^([^:]*):(.*)$")
    if not user then user = userinfo end   -- redis://user@host: a user without a password
    if user ~= "" then o.username = unescape(user) end
    if pass and pass ~= "" then o.password = unescape(pass) end
  else
    hostpart = rest
  end
  local hostport, path = hostpart:match("^([^/?#]*)(.*)$")
  local host, port = hostport:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = hostport:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then argfail("RedisStore", "option 'url': no host", 4) end
  o.host = host
  if port ~= "" then o.port = tonumber(port) end
  if path ~= "" and path ~= "/" then
    local db = path:match("^/(%d+)$")
    if not db then argfail("RedisStore", "option 'url': the path is a database number (/0)", 4) end
    o.db = tonumber(db)
  end
  return o
end

--- A store in Redis (see the module's text).
-- @tparam table opts `url` (`redis://[[user]:password@]host[:port][/db]`, user and password
-- percent-decoded) or `host` (default `127.0.0.1`), `port` (6379), `password`, `username` (Redis 6
-- ACL), `db` (0); `prefix` (default `"eternaltwin:"`, put before every key); `timeout` (seconds,
-- default 1). A field may come from `url` or from its option, not both. Nothing connects here.
-- @treturn RedisStore
function M.new(opts)
  if type(opts) ~= "table" then argfail("RedisStore", "options table expected, got " .. check.typename(opts)) end
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if not want then argfail("RedisStore", "unknown option '" .. tostring(k) .. "'") end
    if type(v) ~= want then argfail("RedisStore", format("option '%s': %s expected, got %s", k, want, type(v))) end
  end
  local o = {}
  if opts.url then
    o = parse_url(opts.url)
    for _, k in ipairs({ "host", "port", "password", "username", "db" }) do
      if opts[k] ~= nil and o[k] ~= nil then
        argfail("RedisStore", format("option '%s': given both in 'url' and as an option", k))
      end
    end
  end
  for _, k in ipairs({ "host", "port", "password", "username", "db" }) do
    if opts[k] ~= nil then o[k] = opts[k] end
  end
  o.host = o.host or "127.0.0.1"
  o.port = o.port or 6379
  o.db = o.db or 0
  if o.host:find("[%s/@]") then argfail("RedisStore", "option 'host': a host name or address expected") end
  if math_type(o.port) ~= "integer" or o.port < 1 or o.port > 65535 then
    argfail("RedisStore", "option 'port': integer in 1..65535 expected")
  end
  if math_type(o.db) ~= "integer" or o.db < 0 then argfail("RedisStore", "option 'db': non-negative integer expected") end
  if o.username and (o.username == "" or o.username:find("[%s%z]")) then
    argfail("RedisStore", "option 'username': non-empty, without blanks")
  end
  if o.password == "" then o.password = nil end
  local timeout = opts.timeout or 1
  if not (timeout > 0 and timeout <= 86400) then argfail("RedisStore", "option 'timeout': seconds in (0, 86400] expected") end
  local prefix = opts.prefix or "eternaltwin:"

  local p = { host = o.host, port = o.port, db = o.db, username = o.username, password = o.password,
              timeout = timeout, idle = {} }
  -- The bytes that open a fresh connection (AUTH, SELECT), and how many replies they bring.
  local prelude, n = {}, 0
  if o.password then
    prelude[#prelude + 1] = redis_format(o.username and { "AUTH", o.username, o.password } or { "AUTH", o.password })
    n = n + 1
  end
  if o.db ~= 0 then prelude[#prelude + 1] = redis_format({ "SELECT", o.db }); n = n + 1 end
  p.prelude, p.prelude_n = table.concat(prelude), n
  local tag = ""
  if o.password then
    tag = core.b64url_encode(core.hmac_key("HS256", "eternaltwin redis pool"):sign(o.password)):sub(1, 12)
  end
  p.pool = format("eternaltwin:redis:%s:%d:%d:%s:%s", o.host, o.port, o.db, o.username or "", tag)
  p.endpoint = (o.host:find(":", 1, true) and "[" .. o.host .. "]" or o.host) .. ":" .. o.port
  p.conf = { host = o.host, port = o.port, password = o.password, username = o.username, db = o.db,
             timeout = timeout, lazy = true }
  local self = setmetatable({ prefix = prefix, timeout = timeout }, RedisStore)
  private[self] = p
  return self
end

function RedisStore.__tostring(s)
  local p = private[s]
  return format("<eternaltwin.RedisStore redis://%s%s/%d prefix %s>", p.username and p.username .. "@" or "",
    p.endpoint, p.db, s.prefix)
end

local function store_error(p, reason, msg)
  msg = tostring(msg or reason)
  if p.password and msg:find(p.password, 1, true) then msg = "error (message withheld)" end
  -- The C core's messages start "redis host:port: "; the cosocket's do not.
  msg = msg:gsub("^redis [^ ]+: ", "")
  return nil, errors.new(errors.TransportError, format("redis store %s: %s", p.endpoint, msg),
    { code = "store", reason = reason, retryable = true })
end

-- ---------------------------------------------------------------- blocking (C core)

local function blocking_conn(p)
  local c = p.conn
  if not c then
    c = core.redis_connect(p.conf)
    p.conn = c
  end
  return c
end

-- ---------------------------------------------------------------- poller task (yields)

-- One command from a poller task: the C connection driven without blocking; the task waits on its
-- descriptor (and its deadline) in the poller. Returns the reply (a nil reply: nil alone) or
-- nil, reason, message.
-- An idle non-blocking connection of this store (or a new one, not connected yet), and back.
local function take_conn(p)
  local idle = p.idle
  local n = #idle
  local c = idle[n]
  if c then idle[n] = nil return c end
  return core.redis_connect(p.conf)
end

local function give_back(p, c)
  local idle = p.idle
  if #idle < MAX_IDLE then idle[#idle + 1] = c end
end

-- The request bytes of a batch: its commands formatted, one after another.
local function format_batch(argvs, count)
  local parts = {}
  for i = 1, count do parts[i] = redis_format(argvs[i]) end
  return table.concat(parts)
end

local function task_command(p, task, argv)
  local c = take_conn(p)
  local deadline = monotime() + p.timeout
  local ok, code, msg = c:send(argv)
  if not ok then
    give_back(p, c)   -- dropped its socket: reconnects next time
    return nil, code, msg
  end
  while true do
    local v, want, m = c:recv()
    if v == false then
      if monotime() >= deadline then
        c:reset()
        code, msg = "timeout", format("timed out after %d ms", floor(p.timeout * 1000 + 0.5))
        break
      end
      multi.wait_fd(task, c:fd(), want == "write", deadline)
    else
      give_back(p, c)
      return v, want, m
    end
  end
  give_back(p, c)
  return nil, code, msg
end

-- A batch over a C connection driven without blocking: every command queued, then each reply
-- read in turn; `wait(c, want, deadline)` waits for the descriptor (a poller task yields, a plain
-- caller polls). Returns the list of replies (a nil reply: false), or nil, reason, message.
local function nb_batch(p, argvs, count, wait)
  local c = take_conn(p)
  local deadline = monotime() + p.timeout
  local ok, code, msg = c:send_raw(format_batch(argvs, count), count)
  if not ok then
    give_back(p, c)   -- dropped its socket: reconnects next time
    return nil, code, msg
  end
  local out, i, ecode, emsg = {}, 1, nil, nil
  while i <= count do
    local v, want, m = c:recv()
    if v == false then
      if monotime() >= deadline then
        c:reset()
        give_back(p, c)
        return nil, "timeout", format("timed out after %d ms", floor(p.timeout * 1000 + 0.5))
      end
      wait(c, want, deadline)
    elseif v == nil and want ~= nil then
      if want == "server" then
        -- An error reply is complete: the rest still comes, the connection stays clean.
        if not ecode then ecode, emsg = want, m end
        out[i], i = false, i + 1
      else
        c:reset()
        give_back(p, c)
        return nil, want, m
      end
    else
      if v == nil then v = false end
      out[i], i = v, i + 1
    end
  end
  give_back(p, c)
  if ecode then return nil, ecode, emsg end
  return out
end

local function poll_wait(c, want, deadline)
  local left = deadline - monotime()
  if left > 0 then core.redis_poll({ { fd = c:fd(), read = want ~= "write", write = want == "write" } }, left) end
end

-- ---------------------------------------------------------------- nginx cosockets

local ngx = rawget(_G, "ngx")
local get_phase = type(ngx) == "table" and ngx.get_phase or nil
local COSOCKET_PHASES = { rewrite = true, access = true, content = true, timer = true,
                          ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true }
local readers = {}              -- spare readers (emptied by a complete exchange), this worker's
local co_connect                -- transport_cosocket's bounded connect (names race a timer)

local function cosocket_fail(sock, reader, code, msg, retry)
  sock:close()
  if reader then reader:close() end
  return nil, code, msg, retry
end

-- One command over a pooled cosocket. Returns the reply (nil alone for a nil reply) or
-- nil, reason, message, retry (retry: a reused connection that failed before any byte of the
-- answer came: it had died in the pool, the command did not reach Redis).
local function cosocket_exchange(p, req, deadline, timeout_ms, count)
  local sock = ngx.socket.tcp()
  local left = floor((deadline - ngx.now()) * 1000)
  if left < 1 then return nil, "timeout", format("timed out after %d ms", timeout_ms) end
  sock:settimeouts(left, left, left)
  local host = p.host
  if host == "localhost" then host = "127.0.0.1" end
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  local ok, err = co_connect(sock, host, p.port, { pool = p.pool }, left)
  if not ok then
    if err == "timeout" then return nil, "timeout", format("connect timed out after %d ms", timeout_ms) end
    return nil, "connect", "connect failed: " .. tostring(err)
  end
  local skip = 0
  local reused = sock:getreusedtimes() > 0
  if p.prelude_n > 0 and not reused then
    req, skip = p.prelude .. req, p.prelude_n
  end
  local sent
  sent, err = sock:send(req)
  if not sent then
    if err == "timeout" then return cosocket_fail(sock, nil, "timeout", format("timed out after %d ms (sending)", timeout_ms)) end
    return cosocket_fail(sock, nil, "reset", "connection lost (sending: " .. tostring(err) .. ")", reused)
  end
  local got = false
  local nr = #readers
  local reader = readers[nr]
  if reader then readers[nr] = nil else reader = core.redis_reader() end
  -- A batch (count: its size) collects its replies here (a nil reply: false); its first error reply
  -- is kept, and the rest read, so the connection stays clean.
  local out, nout, ecode, emsg = count and {} or nil, 0, nil, nil
  while true do
    local v, code, msg = reader:reply()
    if v == false then
      local ms = floor((deadline - ngx.now()) * 1000)
      if ms < 1 then
        return cosocket_fail(sock, reader, "timeout", format("timed out after %d ms (waiting for the reply)", timeout_ms))
      end
      sock:settimeouts(ms, ms, ms)
      local data
      data, err = sock:receiveany(READ_SIZE)
      if not data then
        if err == "timeout" then
          return cosocket_fail(sock, reader, "timeout", format("timed out after %d ms (waiting for the reply)", timeout_ms))
        end
        if err == "closed" then
          return cosocket_fail(sock, reader, "reset", "connection closed by the server", reused and not got)
        end
        return cosocket_fail(sock, reader, "reset", "connection lost (" .. tostring(err) .. ")", reused and not got)
      end
      got = true
      ok, code, msg = reader:feed(data)
      if not ok then return cosocket_fail(sock, reader, code, msg) end
    elseif code == "protocol" then
      return cosocket_fail(sock, reader, code, msg)
    elseif skip > 0 then
      -- AUTH's reply, then SELECT's: an error there ends the exchange (and the connection).
      if code then
        if skip == p.prelude_n and p.password then
          return cosocket_fail(sock, reader, "auth", "authentication failed (" .. tostring(msg) .. ")")
        end
        return cosocket_fail(sock, reader, "server", "SELECT: " .. tostring(msg))
      end
      skip = skip - 1
    elseif out and nout + 1 < count then
      nout = nout + 1
      if code then
        if not ecode then ecode, emsg = code, msg end
        out[nout] = false
      else
        if v == nil then v = false end
        out[nout] = v
      end
    else
      -- The (last) command's reply (an error reply is complete too): the connection is clean.
      sock:setkeepalive()
      readers[#readers + 1] = reader
      if out then
        nout = nout + 1
        if v == nil or code ~= nil then v = false end
        out[nout] = v
        if not ecode and code then ecode, emsg = code, msg end
        if not ecode then return out end
        code, msg = ecode, emsg
      end
      if code then
        if msg:find("^NOAUTH") or msg:find("^WRONGPASS") then return nil, "auth", msg end
        return nil, "server", msg
      end
      return v
    end
  end
end

-- One command (argv), or a batch (a list of argvs, `count` of them: one write, `count` replies).
local function cosocket_command(p, argv, count)
  if not co_connect then co_connect = require("eternaltwin.transport_cosocket").connect end
  local timeout_ms = floor(p.timeout * 1000 + 0.5)
  local deadline = ngx.now() + p.timeout
  local req = count and format_batch(argv, count) or redis_format(argv)
  local v, code, msg, retry = cosocket_exchange(p, req, deadline, timeout_ms, count)
  if retry then v, code, msg = cosocket_exchange(p, req, deadline, timeout_ms, count) end
  return v, code, msg
end

-- ---------------------------------------------------------------- one command, any transport

-- Where a store call runs: the caller's poller task, "cosocket" (nginx, in a phase with
-- cosockets), or false (blocking: outside nginx, or init_by_lua, where start-up may block). Raises
-- in an nginx phase without cosockets, at `level` (the store method's caller).
local function where(level)
  local task = runtime.current()
  if task then return task end
  if get_phase then
    local phase = get_phase()
    if COSOCKET_PHASES[phase] then return "cosocket" end
    if phase ~= "init" then
      error(format("eternaltwin.RedisStore: no store call in nginx's %s phase: it has no cosockets and must"
        .. " not block (call from rewrite, access, content or an ngx.timer, or from init_by_lua)", tostring(phase)),
        level + 1)
    end
  end
  return false
end

-- Runs argv at `w` (where()'s answer). Returns the reply, or nil, reason, message.
local function run(p, w, argv)
  if w == "cosocket" then return cosocket_command(p, argv) end
  if w then return task_command(p, w, argv) end
  local v, code, msg = blocking_conn(p):command(argv)
  return v, code, msg
end

-- Runs argv where the caller of the store method is.
local function command(p, argv)
  return run(p, where(3), argv)
end

-- Runs a batch (a list of `count` argvs) where the caller of the store method is, in one round
-- trip. Returns the list of replies (a nil reply: false), or nil, reason, message.
local function batch_command(p, argvs, count)
  local w = where(3)
  if w == "cosocket" then return cosocket_command(p, argvs, count) end
  if w then
    return nb_batch(p, argvs, count, function(c, want, deadline) multi.wait_fd(w, c:fd(), want == "write", deadline) end)
  end
  return nb_batch(p, argvs, count, poll_wait)
end

-- How long a single-use key lives: until `exp` and a second more, at least a second (milliseconds).
local function single_use_ms(exp, now)
  local ms = floor((exp - now + 1) * 1000)
  if ms < 1000 then ms = 1000 end
  return ms
end

local function wall_now()
  if ngx and ngx.now then return ngx.now() end
  return os.time()
end

local function check_key(fname, key)
  if type(key) ~= "string" or key == "" then
    argfail(fname, "key: non-empty string expected, got " .. check.typename(key), 3)
  end
end

local function check_exp(fname, exp, what)
  if not check.finite(exp) then argfail(fname, (what or "exp") .. ": epoch seconds expected, got " .. check.typename(exp), 3) end
end

--- Records `key` until `exp` unless it is there already: one `SET key 1 NX PX ttl`.
-- @tparam string key a nonce
-- @tparam number exp epoch seconds until which it is remembered (and a second more)
-- @tparam[opt] number now epoch seconds (default the clock)
-- @return true (added), false (already there), or nil, err
function RedisStore:check_and_add(key, exp, now)
  check_key("check_and_add", key)
  check_exp("check_and_add", exp)
  if now ~= nil then check_exp("check_and_add", now, "now") end
  local p = private[self]
  local ms = single_use_ms(exp, now or wall_now())
  local v, code, msg
  local w = where(2)
  if w == false then
    v, code, msg = blocking_conn(p):set_nx_px(self.prefix .. key, "1", ms)   -- the C fast path
    if v ~= nil then return v end
  else
    v, code, msg = run(p, w, { "SET", self.prefix .. key, "1", "PX", ms, "NX" })
    if v == "OK" then return true end
    if v == nil and code == nil then return false end
    if code == nil then code, msg = "protocol", "unexpected reply to SET NX" end
  end
  return store_error(p, code, msg)
end

--- The value of `key`: the string, `nil` alone when absent (or expired), or `nil, err`.
-- @tparam string key
-- @return string | nil | nil, err
function RedisStore:get(key)
  check_key("get", key)
  local p = private[self]
  local v, code, msg = command(p, { "GET", self.prefix .. key })
  if v == nil and code == nil then return nil end
  if type(v) == "string" then return v end
  if code == nil then code, msg = "protocol", "unexpected reply to GET" end
  return store_error(p, code, msg)
end

--- Stores `value` under `key` until `exp` (`SET key value PX ttl`); an `exp` already past deletes it.
-- @tparam string key
-- @tparam string value
-- @tparam number exp epoch seconds
-- @return true, or nil, err
function RedisStore:set(key, value, exp)
  check_key("set", key)
  if type(value) ~= "string" then argfail("set", "value: string expected, got " .. check.typename(value)) end
  check_exp("set", exp)
  local p = private[self]
  local ms = floor((exp - wall_now()) * 1000)
  if ms < 1 then return self:delete(key) end
  local v, code, msg = command(p, { "SET", self.prefix .. key, value, "PX", ms })
  if v == "OK" then return true end
  if code == nil then code, msg = "protocol", "unexpected reply to SET" end
  return store_error(p, code, msg)
end

--- Removes `key` (absent is fine).
-- @tparam string key
-- @return true, or nil, err
function RedisStore:delete(key)
  check_key("delete", key)
  local p = private[self]
  local v, code, msg = command(p, { "DEL", self.prefix .. key })
  if math_type(v) == "integer" then return true end
  if code == nil then code, msg = "protocol", "unexpected reply to DEL" end
  return store_error(p, code, msg)
end

--- Runs several store calls in one round trip (pipelined: one write, the replies read in turn; not
-- atomic, and each still names one key). `ops` is a list of calls, each a list:
-- `{ "get", key }`, `{ "check_and_add", key, exp [, now] }`, `{ "set", key, value, exp }`,
-- `{ "delete", key }` (at most 64). Returns the list of their results, in order: `get` a string or
-- `false` (absent), `check_and_add` `true` (added) or `false` (already there), `set` and `delete`
-- `true`; or `nil, err` (a TransportError, as the other methods) when the round trip or any call in
-- it failed: then some calls may have run. The gate uses it to save round trips per sign-in.
-- @tparam table ops
-- @return table, or nil, err
function RedisStore:batch(ops)
  if type(ops) ~= "table" then argfail("batch", "ops: list of calls expected, got " .. check.typename(ops)) end
  local count = #ops
  if count < 1 or count > 64 then argfail("batch", "ops: 1 to 64 calls expected") end
  local p, prefix = private[self], self.prefix
  local argvs, kinds, wall = {}, {}, nil
  for i = 1, count do
    local op = ops[i]
    if type(op) ~= "table" then argfail("batch", format("ops[%d]: a call (list) expected, got %s", i, check.typename(op))) end
    local name, key = op[1], op[2]
    local fname = "batch: ops[" .. i .. "]"
    check_key(fname, key)
    if name == "get" then
      argvs[i] = { "GET", prefix .. key }
    elseif name == "delete" then
      argvs[i] = { "DEL", prefix .. key }
    elseif name == "check_and_add" then
      local exp, now = op[3], op[4]
      check_exp(fname, exp)
      if now ~= nil then check_exp(fname, now, "now") end
      wall = wall or wall_now()
      argvs[i] = { "SET", prefix .. key, "1", "PX", single_use_ms(exp, now or wall), "NX" }
    elseif name == "set" then
      local value, exp = op[3], op[4]
      if type(value) ~= "string" then argfail(fname, "value: string expected, got " .. check.typename(value)) end
      check_exp(fname, exp)
      wall = wall or wall_now()
      local ms = floor((exp - wall) * 1000)
      if ms < 1 then argvs[i], name = { "DEL", prefix .. key }, "delete"
      else argvs[i] = { "SET", prefix .. key, value, "PX", ms } end
    else
      argfail(fname, "unknown call '" .. tostring(name) .. "' (get, check_and_add, set, delete)")
    end
    kinds[i] = name
  end
  local out, code, msg = batch_command(p, argvs, count)
  if not out then return store_error(p, code, msg) end
  for i = 1, count do
    local v, k = out[i], kinds[i]
    if k == "get" then
      if v ~= false and type(v) ~= "string" then return store_error(p, "protocol", "unexpected reply to GET") end
    elseif k == "check_and_add" then
      if v == "OK" then out[i] = true
      elseif v ~= false then return store_error(p, "protocol", "unexpected reply to SET NX") end
    elseif k == "set" then
      if v ~= "OK" then return store_error(p, "protocol", "unexpected reply to SET") end
      out[i] = true
    elseif math_type(v) == "integer" then
      out[i] = true
    else
      return store_error(p, "protocol", "unexpected reply to DEL")
    end
  end
  return out
end

--- Checks that Redis answers with these credentials (`PING`): true, or nil, err. For start-up checks
-- and health endpoints; the other methods do not need it.
function RedisStore:ping()
  local p = private[self]
  local v, code, msg = command(p, { "PING" })
  if v == "PONG" then return true end
  if code == nil then code, msg = "protocol", "unexpected reply to PING" end
  return store_error(p, code, msg)
end

--- Closes the blocking and idle connections of this process (cosocket pools are nginx's). The
-- store stays usable: the next call connects again.
function RedisStore:close()
  local p = private[self]
  if p.conn then p.conn:close(); p.conn = nil end
  for i = #p.idle, 1, -1 do p.idle[i]:close(); p.idle[i] = nil end
end

M.RedisStore = RedisStore
return M
