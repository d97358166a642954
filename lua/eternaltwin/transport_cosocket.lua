-- SPDX-License-Identifier: MIT
--- Internal: the transport inside nginx (lua-nginx-module), over cosockets.
-- `runtime.transfer` routes here in the phases that have cosockets (rewrite, access, content,
-- `ngx.timer`, ...): the request goes out through `ngx.socket.tcp`, so the nginx worker never
-- blocks. It has the shape of every transport (see `eternaltwin.runtime`): `send(conn, method, url,
-- headers, body, flags)` returns `status, headers, body, url` (headers packed, as libcurl's) or
-- `nil, code, message`, with the same codes and limits as the libcurl path; the checks of the
-- request and the redirect policy are `eternaltwin.http`'s, above the seam:
--
-- * framing (status line, headers, chunked, Content-Length, close) by the C core's response
--   parser (`core.response_parser`, csrc/et_resp.c), whose header rules are the libcurl path's;
-- * TLS: `sslhandshake` with SNI and verification against `lua_ssl_trusted_certificate`
--   (`verify_ssl = false` turns verification off; `ca_file` cannot apply: nginx gives cosockets
--   one trust store, the directive's, so an https request of a client with `ca_file` is refused,
--   TransportError `tls`, before any connection), TLS sessions resumed per pool;
-- * keep-alive through the cosocket pool, one pool per scheme, host, port, SNI name and
--   verification mode, so a connection never serves another origin or a weaker TLS setting;
-- * `timeout` bounds each request (name resolution, connect, send, every read: the time left),
--   `connect_timeout` the resolution and connect; `fresh` (the code exchange) opens a connection that is never pooled.
-- Not part of the public API.
-- @module eternaltwin.transport_cosocket
local core = require("eternaltwin.core")
local errors = require("eternaltwin.errors")
local parse_url = require("eternaltwin.url").parse

local ngx = ngx   -- luacheck: ignore (the nginx global; this module only loads inside nginx)
local tcp, now = ngx.socket.tcp, ngx.now
local format, tostring, floor, concat = string.format, tostring, math.floor, table.concat
local response_parser = core.response_parser

local M = {}

local WITH_BODY = { POST = true, PUT = true, PATCH = true }
local OVERRIDABLE = { host = true, ["user-agent"] = true, accept = true }
local NONE_GIVEN = {}
local READ_SIZE = 65536
local NO_LIMIT_MS = 86400 * 1000        -- `timeout = 0` (no limit): a day
-- TLS sessions to resume, per pool key (one worker's; emptied with the pool keys below).
local tls_sessions = {}

local function describe(method, url)
  return method .. " " .. errors.safe_url(url)
end

-- parse_url's results for the URLs seen lately (a client asks for the same few endpoints again
-- and again); emptied when it holds URL_CACHE_MAX of them.
local URL_CACHE_MAX = 256
local url_cache, url_cached = {}, 0
-- Each entry also keeps the whole request of a bodiless call without headers of its own (the usual
-- GET), per method, with the User-Agent it was made with (`heads`).
local function split_url(url)
  local p = url_cache[url]
  if p then return p[1], p[2], p[3], p[4], p[5], p end
  local scheme, host, port, target, host_header = parse_url(url)
  if not scheme then return nil end
  if url_cached >= URL_CACHE_MAX then url_cache, url_cached = {}, 0 end
  p = { scheme, host, port, target, host_header }
  url_cache[url], url_cached = p, url_cached + 1
  return scheme, host, port, target, host_header, p
end

-- Pool names: "eternaltwin:" scheme, host, port and (https) the verification mode, per scheme and
-- mode, then per Host header (which is host and port); bounded like the URL cache.
local POOL_KEYS = { httpv = {}, httpn = {}, httpsv = {}, httpsn = {} }
local pool_keys_n = 0
-- An address connect() takes without asking nginx's resolver: an IPv4 or bracketed IPv6 literal.
local function is_literal(addr)
  return addr:find("^%d+%.%d+%.%d+%.%d+$") ~= nil or addr:sub(1, 1) == "["
end

-- What a request to one origin needs, worked out once: the pool name, connect()'s options for a
-- pooled and for a fresh connection (a pool of its own that never keeps one), the address to
-- connect to ("localhost" and "*.localhost" are the loopback address without asking the
-- resolver, as libcurl does, RFC 6761; an IPv6 literal keeps its brackets, which nginx's URL
-- parser needs) and whether it is a literal.
local function pool_entry(cache, scheme, host, sni, port, verify, host_header)
  if pool_keys_n >= URL_CACHE_MAX then
    for _, t in pairs(POOL_KEYS) do for k in pairs(t) do t[k] = nil end end
    tls_sessions, pool_keys_n = {}, 0
  end
  local key = format("eternaltwin:%s:%s:%d:%s", scheme, sni, port,
    scheme == "https" and (verify and "verify" or "noverify") or "")
  local addr = host
  if sni == "localhost" or sni:sub(-10):lower() == ".localhost" then addr = "127.0.0.1" end
  local e = { key = key, opts = { pool = key }, fresh = { pool = key .. ":fresh" }, addr = addr,
              literal = is_literal(addr) }
  cache[host_header], pool_keys_n = e, pool_keys_n + 1
  return e
end

local spawn, wait, kill, sleep = ngx.thread.spawn, ngx.thread.wait, ngx.thread.kill, ngx.sleep
local function connect_in_thread(sock, addr, port, opts) return sock:connect(addr, port, opts) end
local function sleep_ms(ms) sleep(ms / 1000) return nil, "timeout" end

-- sock:connect, bounded by `ms` in all. A name goes through nginx's `resolver`, which waits up to
-- its own `resolver_timeout` (30 s by default) whatever the socket's timeouts say: there the
-- connect runs in a light thread raced against a timer, and the loser is killed (a pending
-- resolution is cancelled with its thread). Literal addresses connect directly (`literal`: already known, else found here).
local function connect(sock, addr, port, opts, ms, literal)
  if literal == nil then literal = is_literal(addr) end
  if literal then return sock:connect(addr, port, opts) end
  local t = spawn(connect_in_thread, sock, addr, port, opts)
  local timer = spawn(sleep_ms, ms)
  local done, ok, err = wait(t, timer)
  kill(t)
  kill(timer)
  if not done then return nil, tostring(ok) end
  return ok, err
end

-- Exported for the Redis store's cosockets (eternaltwin.redis_store): the same bounded connect.
M.connect = connect

local function connect_error(err)
  if err == "timeout" then return "timeout" end
  if err:find("resolve", 1, true) or err:find("resolver", 1, true) then return "resolve" end
  return "connect"
end

-- Milliseconds left before the deadline (at least 1), or nil when it has passed. nginx's cached
-- clock (`ngx.now`) is enough: it is updated at each turn of the event loop, that is after every
-- wait of this request, and nginx's own timers use it too.
local function left_ms(deadline)
  if not deadline then return NO_LIMIT_MS end
  local ms = (deadline - now()) * 1000
  if ms < 1 then return nil end
  return floor(ms)
end

-- The request's head (and body): as libcurl, Host, User-Agent and Accept unless the caller gives
-- its own. A table of pieces for `sock:send`; for the usual call (no headers of its own, no body)
-- one string, made once per URL, method and User-Agent and kept in the URL's cache entry.
local function request_parts(method, target, host_header, headers, body, ua)
  local req, n = { method, " ", target, " HTTP/1.1\r\n" }, 4
  local given = NONE_GIVEN
  if headers then
    given = {}
    for i = 1, #headers do
      local h = headers[i]
      local name = h:match("^([^:]*)"):lower()
      if OVERRIDABLE[name] then given[name] = true end
      req[n + 1], req[n + 2] = h, "\r\n"
      n = n + 2
    end
  end
  if not given.host then req[n + 1], req[n + 2], req[n + 3] = "Host: ", host_header, "\r\n"; n = n + 3 end
  if ua and ua ~= "" and not given["user-agent"] then   -- "": none, as on the libcurl path
    req[n + 1], req[n + 2], req[n + 3] = "User-Agent: ", ua, "\r\n"
    n = n + 3
  end
  if not given.accept then req[n + 1] = "Accept: */*\r\n"; n = n + 1 end
  if body or WITH_BODY[method] then
    req[n + 1] = format("Content-Length: %d\r\n", body and #body or 0)
    n = n + 1
  end
  req[n + 1] = "\r\n"
  if body then req[n + 2] = body end
  return req
end

local function request_head(parsed, method, target, host_header, headers, body, ua)
  if headers or body or WITH_BODY[method] then
    return request_parts(method, target, host_header, headers, body, ua)
  end
  local heads = parsed.heads
  if not heads then heads = {}; parsed.heads = heads end
  local h = heads[method]
  if h and h[1] == ua then return h[2] end
  local req = concat(request_parts(method, target, host_header, nil, nil, ua))
  heads[method] = { ua, req }
  return req
end

-- One exchange on one connection. Returns status, headers, body (keep_alive decided and the
-- socket pooled or closed), or nil, code, detail, retry (retry: a reused connection that died
-- before any byte of the answer, where libcurl also sends again on a new one).
local spare_parsers, MAX_SPARE_PARSERS = {}, 16

local function exchange(settings, method, url, headers, body, fresh, deadline, timeout_s)
  local scheme, host, port, target, host_header, parsed = split_url(url)
  if not scheme then return nil, "url", "malformed URL or one this transport cannot use" end
  local sni = host:sub(1, 1) == "[" and host:sub(2, -2) or host
  local verify = settings.verify_ssl ~= false
  local cache = POOL_KEYS[scheme .. (verify and "v" or "n")]
  local origin = cache[host_header] or pool_entry(cache, scheme, host, sni, port, verify, host_header)
  local key = origin.key
  if scheme == "https" and verify and settings.ca_file then
    -- Refused, not dropped: nginx gives cosockets one trust store, lua_ssl_trusted_certificate's,
    -- so a pinned CA cannot be honoured here, and nothing (a secret) may go to a server it refuses.
    return nil, "tls", "option 'ca_file' cannot be honoured inside nginx: cosockets trust only "
      .. "lua_ssl_trusted_certificate (point that directive at the file and make the client without ca_file)"
  end
  local sock = tcp()
  local ms = left_ms(deadline)
  if not ms then return nil, "timeout", format("timed out after %d ms", floor(timeout_s * 1000 + 0.5)) end
  local cms = ms
  if settings.connect_timeout and settings.connect_timeout > 0 then
    cms = math.min(cms, math.max(1, floor(settings.connect_timeout * 1000)))
  end
  sock:settimeouts(cms, ms, ms)
  local set_ms = ms
  -- A fresh connection goes in a pool of its own that never keeps one: nothing to reuse there.
  -- Names other than localhost go through nginx's `resolver`.
  local ok, err = connect(sock, origin.addr, port, fresh and origin.fresh or origin.opts, cms, origin.literal)
  if not ok then
    local code = connect_error(err)
    if code == "timeout" then return nil, code, format("connection timed out after %d ms", cms) end
    return nil, code, format("cannot connect to %s port %d: %s", sni, port, err)
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if scheme == "https" and not reused then
    -- Protected: lua-resty-core before its 2025 fix (Debian 12 has 0.1.25) raises "assertion failed!"
    -- instead of returning the error when a verification failure ends a handshake that completed
    -- at once, as on loopback (openresty/lua-resty-core#499): that is a refused certificate.
    local pok, session
    pok, session, err = pcall(sock.sslhandshake, sock, tls_sessions[key], sni, verify)
    if not pok then
      err = tostring(session):find("assertion failed", 1, true) and "certificate verification failed"
            or tostring(session)
      session = nil
    end
    if not session then
      sock:close()
      tls_sessions[key] = nil
      if err == "timeout" then return nil, "timeout", format("TLS handshake timed out after %d ms", ms) end
      return nil, "tls", "TLS handshake failed: " .. tostring(err)
    end
    if session ~= true then tls_sessions[key] = session end
  end

  local req = request_head(parsed, method, target, host_header, headers, body, settings.user_agent)
  local sent
  sent, err = sock:send(req)
  if not sent then
    sock:close()
    if err == "timeout" then return nil, "timeout", format("timed out after %d ms sending the request", ms) end
    return nil, "reset", "cannot send the request: " .. tostring(err), reused
  end

  -- Parsers are kept for reuse (this worker's spares; a request holds one only while it reads).
  local np = #spare_parsers
  local parser = spare_parsers[np]
  if parser then
    spare_parsers[np] = nil
    parser:reset(method == "HEAD", settings.max_body_size)
  else
    parser = response_parser(method == "HEAD", settings.max_body_size)
  end
  local done, left, code, msg
  local got = false
  while true do
    ms = left_ms(deadline)
    if not ms then code, msg = "timeout", format("timed out after %d ms", floor(timeout_s * 1000 + 0.5)) break end
    -- (nginx's clock moves once per turn of its event loop: often still the value set above.)
    if ms ~= set_ms then sock:settimeouts(cms, ms, ms); set_ms = ms end
    local data
    data, err = sock:receiveany(READ_SIZE)
    if data then
      got = true
      done, code, msg = parser:feed(data)
      if done then left = code break end
      if done == nil then break end
    elseif err == "closed" then
      done, code, msg = parser:eof()
      if done then left = 0 end
      break
    elseif err == "timeout" then
      code, msg = "timeout", format("timed out after %d ms", floor(timeout_s * 1000 + 0.5))
      break
    else
      code, msg = "reset", "receive failed: " .. tostring(err)
      break
    end
  end
  if not done then
    parser:close()
    sock:close()
    return nil, code, msg, reused and not got and code ~= "timeout"
  end
  local status, h, content, keep = parser:result(true)   -- headers packed, as libcurl's
  if #spare_parsers < MAX_SPARE_PARSERS then spare_parsers[#spare_parsers + 1] = parser else parser:close() end
  if keep and left == 0 and not fresh then
    sock:setkeepalive()
  else
    sock:close()
  end
  return status, h, content
end

--- One exchange (see `eternaltwin.runtime`): a reused connection that dies before any byte of the
-- answer is tried again, once, on a new one, as libcurl does.
-- @return status, packed headers, body; or nil, code, message
function M.send(conn, method, url, headers, body, flags)
  local settings = conn.settings
  local fresh = flags and flags.fresh or false
  local timeout_s = settings.timeout or 0
  local deadline
  if timeout_s > 0 then
    deadline = now() + timeout_s
  end
  local status, h, content, retry = exchange(settings, method, url, headers, body, fresh, deadline, timeout_s)
  if status == nil and retry then
    status, h, content = exchange(settings, method, url, headers, body, fresh, deadline, timeout_s)
  end
  if status == nil then
    return nil, h, describe(method, url) .. ": " .. content
  end
  return status, h, content
end

return M
