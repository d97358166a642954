-- SPDX-License-Identifier: MIT
--- Internal: what the gate keeps in its `store` (eternaltwin.gate): server-side session records with
-- the access token sealed (AES-256-GCM), per-user revocation and ban marks, and a short per-worker
-- cache of what it read (`cache_ttl`). Not part of the public API.
--
-- Keys (the store adds its own prefix):
--   gate:CLIENT_ID:sess:H   a session record; H = base64url(HMAC-SHA256(fixed label, session id)), so
--                           a dump of the store holds no session id (and a rotation of
--                           session_secret keeps the records)
--   revoked:USER_ID         the time of the user's last revocation, epoch seconds ("%.3f"); sessions
--                           and tickets issued at or before it are refused (eternaltwin.tickets reads it)
--   banned:USER_ID          present while the user may not sign in
-- A record is JSON: { v = 1, u = user id, n = display name, c = created (epoch ms), s = last seen
-- (epoch s), e = absolute expiry (epoch s), t = base64url(nonce || AES-256-GCM(token JSON) || tag) }
-- where the token JSON is { a = access token, x = its expiry (epoch s), y = token type
-- [, r = refresh token] }, sealed under HKDF-SHA256(session_secret, salt "eternaltwin-gate v1",
-- info "token key\0" .. client id) with the record's key as associated data (a blob moved to another
-- record does not open).
-- @module eternaltwin.gate_session

local core = require("eternaltwin.core")
local token_mod = require("eternaltwin.token")

local type, tostring, pcall, tonumber, format, floor = type, tostring, pcall, tonumber, string.format, math.floor
local b64e, b64d = core.b64url_encode, core.b64url_decode
local json_encode, json_decode = core.json_encode, core.json_decode

-- luacheck: globals ngx
local M = {}

local ID_HASH = assert(core.hmac_key("HS256", "eternaltwin-gate session id v1"))
local TOKEN_AAD = "eternaltwin-gate token v1\0"
local CACHE_MAX = 10000
local BAN_TTL = 10 * 365 * 86400
-- The same key as eternaltwin.tickets.revocation_key (which the verifier reads); not required from
-- there, so that the gate loads no ticket code.
local function revocation_key(id) return "revoked:" .. id end
M.revocation_key = revocation_key
function M.ban_key(id) return "banned:" .. id end

--- HKDF-SHA256 (RFC 5869) of one 32-byte block: Extract with `salt`, Expand with `info`.
function M.hkdf32(secret, salt, info)
  local prk = assert(core.hmac_key("HS256", salt):sign(secret))
  return assert(core.hmac_key("HS256", prk):sign(info .. "\1"))
end

--- The token keys of a gate, one per session secret (the first seals, all open).
function M.token_keys(secrets, client_id)
  local out = {}
  for i = 1, #secrets do out[i] = M.hkdf32(secrets[i], "eternaltwin-gate v1", "token key\0" .. client_id) end
  return out
end

-- A store call that never raises: value, or nil and a message.
local function call(store, method, ...)
  local ok, v, err = pcall(store[method], store, ...)
  if not ok then return nil, tostring(v) end
  if v == nil and err == nil and method ~= "get" then return nil, "no answer" end
  -- A store's error may be an object (RedisStore: a TransportError): callers take the second value
  -- as a message and tell "store failed" (a string) from "absent" (nil), so make it one.
  if v == nil and err ~= nil and type(err) ~= "string" then err = tostring(err) end
  return v, err
end
M.call = call

--- Several store calls (`{ "get", key }`, `{ "check_and_add", key, exp, now }`, `{ "set", key, value,
-- exp }`, `{ "delete", key }`) in one round trip when the store has `batch` (RedisStore), else one
-- after another: the list of results (`get`: a string or false), or nil and a message.
function M.batch(store, ops)
  if store.batch then
    local ok, r, err = pcall(store.batch, store, ops)
    if not ok then return nil, tostring(r) end
    if not r then return nil, err ~= nil and tostring(err) or "no answer" end
    return r
  end
  local out = {}
  for i = 1, #ops do
    local op = ops[i]
    local v, err = call(store, op[1], op[2], op[3], op[4])
    if v == nil then
      if err ~= nil then return nil, err end
      v = false
    end
    out[i] = v
  end
  return out
end

------------------------------------------------------------------------------------------------
-- The per-worker cache: key -> { value (false: absent), time read }.

local function cache_put(g, key, value, now)
  local c = g._cache
  if g._cache_n >= CACHE_MAX then c = {} g._cache, g._cache_n = c, 0 end
  if c[key] == nil then g._cache_n = g._cache_n + 1 end
  c[key] = { value, now }
end

function M.forget(g, key)
  if g._cache[key] ~= nil then g._cache[key] = nil g._cache_n = g._cache_n - 1 end
end

--- What the store holds at `key`: a string, false when absent, or nil and a message. Cached for at
-- most `cache_ttl` seconds; a third value true when it came from this worker's cache.
function M.read(g, key)
  local now = ngx.now()
  local hit = g._cache[key]
  if hit and now - hit[2] < g.cache_ttl then return hit[1], nil, true end
  local v, err = call(g._kv, "get", key)
  if v == nil then
    if err ~= nil then return nil, err end
    v = false
  elseif type(v) ~= "string" then
    v = tostring(v)
  end
  if g.cache_ttl > 0 then cache_put(g, key, v, now) end
  return v
end

--- The user's revocation time in epoch milliseconds, false when none, or nil and a message.
function M.revoked_at(g, user_id)
  local v, err = M.read(g, revocation_key(user_id))
  if v == nil then return nil, err end
  if v == false then return false end
  local t = tonumber(v)
  if not t then return 1 / 0 end          -- an unreadable mark revokes (fail closed)
  return floor(t * 1000 + 0.5)
end

--- Writes the user's revocation mark (and ban mark): true, or nil and a message.
function M.revoke(g, user_id, ban)
  local now = ngx.now()
  local sec = floor(now)
  if ban then
    local ok, err = call(g._kv, "set", M.ban_key(user_id), format("%.3f", now), sec + BAN_TTL)
    if not ok then return nil, err end
  end
  -- Lives as long as anything issued before it: a session, a ticket (600 s at most).
  local life = g.session_ttl > 600 and g.session_ttl or 600
  local ok, err = call(g._kv, "set", revocation_key(user_id), format("%.3f", now), sec + life + 60)
  M.forget(g, revocation_key(user_id))
  if not ok then return nil, err end
  return true
end

function M.unban(g, user_id)
  local ok, err = call(g._kv, "delete", M.ban_key(user_id))
  if not ok then return nil, err end
  return true
end


------------------------------------------------------------------------------------------------
-- Server-side sessions

function M.record_key(g, sid)
  return g._key_prefix .. "sess:" .. b64e(assert(ID_HASH:sign(sid)))
end

--- Makes a session record for `user` holding `token` sealed: the session id (32 random bytes), or
-- nil and a message.
-- A new session's id, record key, record value and record, not yet written; or nil and a message.
function M.prepare(g, user, token, now)
  local sid = core.random_bytes(32)
  if not sid then return nil, "no session id from the CSPRNG" end
  local key = M.record_key(g, sid)
  local plain = json_encode({ a = token.access_token, x = token.server_expiration, y = token.token_type,
                              r = token.refresh_token })
  local ok, blob = pcall(core.aead_seal, g._token_keys[1], plain, TOKEN_AAD .. key)
  if not ok then return nil, "cannot seal the token" end
  local sec = floor(now)
  local rec = { v = 1, u = user.id, n = user.display_name, c = floor(now * 1000), s = sec,
                e = sec + g.session_ttl, t = b64e(blob) }
  return sid, key, json_encode(rec), rec
end

-- A record written (by `create`, or in a batch of the caller's): cached for this worker.
function M.written(g, key, value)
  if g.cache_ttl > 0 then cache_put(g, key, value, ngx.now()) end
end

function M.create(g, user, token, now)
  local sid, key, value, rec = M.prepare(g, user, token, now)
  if not sid then return nil, key end
  local set, err = call(g._kv, "set", key, value, rec.e)
  if not set then return nil, err end
  M.written(g, key, value)
  return sid, rec
end

--- The live record of session id `sid`: record, key; or false (no live session); or nil and a
-- message (the store failed). Checks expiry, idleness and the user's revocation mark, and writes
-- "last seen" at most every `_touch` seconds.
function M.lookup(g, sid)
  local key = M.record_key(g, sid)
  local value, err, cached = M.read(g, key)
  if value == nil then return nil, err end
  if value == false then return false end
  local rec = json_decode(value)
  if type(rec) ~= "table" or rec.v ~= 1 or type(rec.u) ~= "string" or type(rec.n) ~= "string"
     or type(rec.c) ~= "number" or type(rec.s) ~= "number" or type(rec.e) ~= "number" then
    return false
  end
  local now = ngx.now()
  if rec.e < now then return false end
  if g.idle_ttl and now - rec.s > g.idle_ttl then
    call(g._kv, "delete", key)
    M.forget(g, key)
    return false
  end
  local mark, merr = M.revoked_at(g, rec.u)
  if mark == nil then return nil, merr end
  if mark and rec.c <= mark then return false end
  -- "Last seen" is written back only from a record just read from the store: written from a cached
  -- copy, it would bring back a record another node deleted meanwhile (logout), for good.
  if not cached and now - rec.s >= g._touch then
    rec.s = floor(now)
    local fresh = json_encode(rec)
    local ok, werr = call(g._kv, "set", key, fresh, rec.e)
    if ok then
      if g.cache_ttl > 0 then cache_put(g, key, fresh, now) end
    else
      ngx.log(ngx.WARN, "eternaltwin.gate: cannot write a session's last-seen time: ", tostring(werr))
    end
  end
  return rec, key
end

--- Deletes a session record (logout): true, or nil and a message.
function M.delete(g, sid)
  local key = M.record_key(g, sid)
  M.forget(g, key)
  local ok, err = call(g._kv, "delete", key)
  if not ok then return nil, err end
  return true
end

--- The record's token as an `eternaltwin.Token`, or nil and why.
function M.token(g, rec, key)
  local blob = type(rec.t) == "string" and b64d(rec.t)
  if not blob then return nil, "eternaltwin.gate: the session holds no token" end
  local plain
  for i = 1, #g._token_keys do
    plain = core.aead_open(g._token_keys[i], blob, TOKEN_AAD .. key)
    if plain then break end
  end
  local t = plain and json_decode(plain)
  if type(t) ~= "table" or type(t.a) ~= "string" or type(t.x) ~= "number" then
    return nil, "eternaltwin.gate: the session's token does not open (session_secret changed?)"
  end
  local ok, tok = pcall(token_mod.new, { access_token = t.a, token_type = type(t.y) == "string" and t.y or "Bearer",
                                         expires_in = t.x - os.time(), refresh_token = t.r })
  if not ok then return nil, "eternaltwin.gate: the session's token is unreadable" end
  if tok:has_expired() then return nil, "eternaltwin.gate: the access token expired" end
  return tok
end

return M
