-- SPDX-License-Identifier: MIT
--- Stores: where a state's or a ticket's nonce is used up, once, and where session records live.
-- `ReplayStore` (in the process), `SharedReplayStore` (an nginx shared dict; also named
-- `SharedDictStore`), `is_replay_store`; `eternaltwin.RedisStore` (eternaltwin.redis_store) is the
-- one many nodes share. The same functions are fields of `eternaltwin`; this module loads without
-- the client (the gate needs a store, not a client).
--
-- Every store has `check_and_add(key, exp [, now])` -> `true | false | nil, err`, and the session
-- methods, with one convention (exp: absolute epoch seconds; values: strings):
--
-- * `get(key)` -> the string, `nil` alone when absent or expired, or `nil, err` when the store
--   cannot tell (tell them apart by the second value, and fail closed on `err`);
-- * `set(key, value, exp)` -> `true | nil, err` (an `exp` already past deletes the key);
-- * `delete(key)` -> `true | nil, err` (absent is fine).
--
-- Keys share one namespace per store: a caller keeping several kinds of records puts a kind prefix
-- in its keys. A value set lives until `exp`; a nonce added by `check_and_add` is remembered
-- through `exp` (a second more).
-- @module eternaltwin.stores
local check = require("eternaltwin.check")
local math_type = require("eternaltwin.compat").math_type

local type, tostring, pcall, setmetatable, getmetatable = type, tostring, pcall, setmetatable, getmetatable
local format = string.format
local argfail, typename = check.fail, check.typename
local errors = require("eternaltwin.errors")

-- Wall-clock seconds: nginx's (sub-second) inside nginx, else os.time().
local function ngx_now()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and ngx.now then return ngx.now() end
  return os.time()
end

local M = {}

local ReplayStore = {}
ReplayStore.__index = ReplayStore
ReplayStore.__name = "eternaltwin.ReplayStore"

--- An in-process store of the nonces of accepted states, bounded, to accept each state once.
-- When full of live entries, the entry closest to expiry is forgotten first. Give it as
-- `validate_state(state, expected, { once = store })`, or use the client option `replay_protection`.
-- Every check costs O(log n): a binary min-heap of expiries (`heap`: nonces, `exps`: their
-- expiries, `pos`: nonce -> heap index) beside the map `seen` (nonce -> expiry).
-- @tparam[opt=100000] integer max_entries the most nonces remembered at once
-- @treturn ReplayStore
function M.ReplayStore(max_entries)
  if max_entries ~= nil and (math_type(max_entries) ~= "integer" or max_entries < 1) then
    argfail("ReplayStore", "max_entries: positive integer expected")
  end
  return setmetatable({ seen = {}, count = 0, max = max_entries or 100000, heap = {}, exps = {}, pos = {},
    values = {} }, ReplayStore)
end

function ReplayStore.__tostring(r) return format("<eternaltwin.ReplayStore %d/%d>", r.count, r.max) end

local function heap_swap(r, i, j)
  local h, e, pos = r.heap, r.exps, r.pos
  h[i], h[j], e[i], e[j] = h[j], h[i], e[j], e[i]
  pos[h[i]], pos[h[j]] = i, j
end

local function heap_up(r, i)
  local e = r.exps
  while i > 1 do
    local p = (i - i % 2) / 2
    if e[p] <= e[i] then break end
    heap_swap(r, i, p)
    i = p
  end
end

local function heap_down(r, i)
  local e, n = r.exps, r.count
  while true do
    local l = 2 * i
    if l > n then break end
    local c = (l < n and e[l + 1] < e[l]) and l + 1 or l
    if e[i] <= e[c] then break end
    heap_swap(r, i, c)
    i = c
  end
end

-- Removes the entry at heap index i.
local function heap_remove(r, i)
  local n = r.count
  local nonce = r.heap[i]
  if i ~= n then heap_swap(r, i, n) end
  r.heap[n], r.exps[n] = nil, nil
  r.pos[nonce], r.seen[nonce], r.values[nonce] = nil, nil, nil
  r.count = n - 1
  if i < n then heap_up(r, i); heap_down(r, i) end
end

-- Drops expired entries (soonest first); if still full, the one expiring soonest.
function ReplayStore:_make_room(now)
  while self.count > 0 and self.exps[1] < now do heap_remove(self, 1) end
  if self.count >= self.max then heap_remove(self, 1) end
end

--- Records `nonce` (valid until `exp`); false if it was already recorded and has not expired.
-- @tparam string nonce the state's nonce claim
-- @tparam number exp epoch seconds until which it is remembered
-- @tparam[opt] number now epoch seconds (default `os.time()`)
-- @treturn boolean true if it was new
function ReplayStore:check_and_add(nonce, exp, now)
  now = now or os.time()
  local known = self.seen[nonce]
  if known and known >= now then return false end
  if known then
    local i = self.pos[nonce]
    self.seen[nonce], self.exps[i], self.values[nonce] = exp, exp, nil
    heap_up(self, i)
    heap_down(self, self.pos[nonce])
    return true
  end
  if self.count >= self.max then self:_make_room(now) end
  local n = self.count + 1
  self.count = n
  self.seen[nonce], self.heap[n], self.exps[n], self.pos[nonce] = exp, nonce, exp, n
  heap_up(self, n)
  return true
end

local function check_key(fname, key)
  if type(key) ~= "string" or key == "" then
    argfail(fname, "key: non-empty string expected, got " .. typename(key), 3)
  end
end

local function check_exp(fname, exp)
  if not check.finite(exp) then argfail(fname, "exp: epoch seconds expected, got " .. typename(exp), 3) end
end

local function check_value(fname, value)
  if type(value) ~= "string" then argfail(fname, "value: string expected, got " .. typename(value), 3) end
end

--- The value stored under `key`: the string, or `nil` when absent or expired (a nonce added by
-- `check_and_add` reads as `"1"`). Never fails.
-- @tparam string key
-- @treturn string|nil
function ReplayStore:get(key)
  check_key("get", key)
  local exp = self.seen[key]
  if exp == nil then return nil end
  local v = self.values[key]
  if v == nil then
    if exp < os.time() then return nil end
    return "1"
  end
  if exp <= os.time() then return nil end
  return v
end

--- Stores `value` under `key` until `exp` (epoch seconds); an `exp` already past deletes it. When
-- the store is full, the entry closest to expiry is forgotten first (a session among them).
-- @treturn boolean true
function ReplayStore:set(key, value, exp)
  check_key("set", key)
  check_value("set", value)
  check_exp("set", exp)
  local now = os.time()
  if exp <= now then return self:delete(key) end
  local i = self.pos[key]
  if i then
    self.seen[key], self.exps[i], self.values[key] = exp, exp, value
    heap_up(self, i)
    heap_down(self, self.pos[key])
    return true
  end
  if self.count >= self.max then self:_make_room(now) end
  local n = self.count + 1
  self.count = n
  self.seen[key], self.heap[n], self.exps[n], self.pos[key], self.values[key] = exp, key, exp, n, value
  heap_up(self, n)
  return true
end

--- Removes `key` (absent is fine).
-- @treturn boolean true
function ReplayStore:delete(key)
  check_key("delete", key)
  local i = self.pos[key]
  if i then heap_remove(self, i) end
  return true
end

--- Whether `v` can serve as a replay store (for `validate_state`'s `once` and `redeem_ticket`'s
-- `store`): an object whose `check_and_add(nonce, exp [, now])` remembers `nonce` until `exp` (epoch
-- seconds) and returns true the first time, false while it remembers it, or `nil, message` when it
-- cannot tell (the check then fails closed).
-- @param v any value
-- @treturn boolean whether it has a `check_and_add` method
function M.is_replay_store(v)
  local t = type(v)
  if t ~= "table" and t ~= "userdata" then return false end
  local ok, f = pcall(function() return v.check_and_add end)
  return ok and type(f) == "function"
end

-- A replay store in an nginx shared dict (`lua_shared_dict`): every worker sees every nonce.
local SharedReplayStore = {}
SharedReplayStore.__index = SharedReplayStore
SharedReplayStore.__name = "eternaltwin.SharedReplayStore"

--- A replay store in an nginx shared dict (`lua_shared_dict`), for use inside nginx: every worker
-- sees every nonce. Entries go in with `safe_add` and a TTL of the ticket's (or state's) remaining
-- life, so a full dict never evicts a live nonce: the check fails closed instead.
-- @tparam string|table dict an `ngx.shared` dict, or the name of one
-- @tparam[opt="eternaltwin:nonce:"] string prefix put before each nonce to make its key
-- @treturn SharedReplayStore a store for `redeem_ticket`'s `store` or `validate_state`'s `once`
function M.SharedReplayStore(dict, prefix)
  if type(dict) == "string" then
    local name = dict
    local ngx = rawget(_G, "ngx")
    local shared = type(ngx) == "table" and ngx.shared
    dict = shared and shared[name]
    if not dict then argfail("SharedReplayStore", format("no lua_shared_dict named '%s'", name)) end
  end
  local t = type(dict)
  if (t ~= "table" and t ~= "userdata") or not pcall(function() return dict.safe_add end)
     or dict.safe_add == nil then
    argfail("SharedReplayStore", "ngx.shared dict or its name expected, got " .. typename(dict))
  end
  if prefix ~= nil and type(prefix) ~= "string" then argfail("SharedReplayStore", "prefix: string expected") end
  return setmetatable({ dict = dict, prefix = prefix or "eternaltwin:nonce:" }, SharedReplayStore)
end

function SharedReplayStore.__tostring(s) return format("<eternaltwin.SharedReplayStore %s>", s.prefix) end

local function dict_error(what, err)
  return nil, errors.new(errors.TransportError, "shared dict store: " .. what .. ": " .. tostring(err),
    { code = "store", reason = tostring(err), retryable = false })
end

--- The value stored under `key`: the string, `nil` alone when absent or expired, or `nil, err`.
-- (A nonce added by `check_and_add` holds its expiry, a number.)
function SharedReplayStore:get(key)
  check_key("get", key)
  local v, err = self.dict:get(self.prefix .. key)
  if v == nil and type(err) == "string" then return dict_error("get", err) end
  return v
end

--- Stores `value` under `key` until `exp` (epoch seconds) with `safe_set`: a full dict fails
-- (`nil, err`) rather than evicting another entry (a live nonce); an `exp` already past deletes it.
function SharedReplayStore:set(key, value, exp)
  check_key("set", key)
  check_value("set", value)
  check_exp("set", exp)
  local ttl = exp - ngx_now()
  if ttl <= 0 then return self:delete(key) end
  local ok, err = self.dict:safe_set(self.prefix .. key, value, ttl)
  if ok then return true end
  return dict_error("set", err or "the shared dict refused the entry")
end

--- Removes `key` (absent is fine).
function SharedReplayStore:delete(key)
  check_key("delete", key)
  self.dict:delete(self.prefix .. key)
  return true
end

--- Records `nonce` until `exp`, unless the dict already holds it.
-- @tparam string nonce the nonce claim
-- @tparam number exp epoch seconds until which it is remembered
-- @tparam[opt] number now epoch seconds (default `os.time()`)
-- @treturn boolean true if it was new, false if it is known; or `nil, message` when the dict
-- refused the entry (full)
function SharedReplayStore:check_and_add(nonce, exp, now)
  local ttl = exp - (now or os.time()) + 1
  if ttl < 1 then ttl = 1 end
  local ok, err = self.dict:safe_add(self.prefix .. nonce, exp, ttl)
  if ok then return true end
  if err == "exists" then return false end
  return nil, err or "the shared dict refused the entry"
end

--- The same constructor as `SharedReplayStore` (DESIGN's name for the `ngx.shared` store).
-- @function SharedDictStore
M.SharedDictStore = M.SharedReplayStore

-- Uses up a nonce: true, or nil and why not ("already used", or the store's failure).
function M.use_nonce(store, nonce, exp, now)
  local ok, msg
  if getmetatable(store) == ReplayStore then
    ok = store:check_and_add(nonce, exp, now)
  else
    local called
    called, ok, msg = pcall(store.check_and_add, store, nonce, exp, now)
    if not called then ok, msg = nil, ok end
  end
  if ok then return true end
  if ok == false then return nil, "already used" end
  return nil, "replay store failed: " .. tostring(msg or "no answer")
end


return M
