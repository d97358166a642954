-- SPDX-License-Identifier: MIT
-- Stores for the gate's specs, inside nginx (loaded by spec/support/gate_fake.lua):
--   shared()  the store interface (check_and_add, get, set, delete) over the site's shared dict
--             `eternaltwin`, keys under "spec:store:" (the SharedDictStore's own session methods when
--             stores.lua has them; a minimal adapter here until then). With GATE_SPEC_REDIS_URL set
--             and eternaltwin.RedisStore present, a RedisStore instead.
--   flaky()   shared(), but every method answers nil, "connection refused (spec)" while the dict's
--             "spec:down" is set (/_test/store-down?on=1)
--   dump()    every key and value of shared()'s store (the spec scans it for tokens)
-- luacheck: globals ngx
local eternaltwin = require("eternaltwin")

local M = {}
local PREFIX = "spec:store:"
local shared_store

local Adapter = {}
Adapter.__index = Adapter

function Adapter:check_and_add(key, exp, now)
  local ttl = exp - (now or ngx.time()) + 1
  if ttl < 1 then ttl = 1 end
  local ok, err = self.dict:safe_add(PREFIX .. key, tostring(exp), ttl)
  if ok then return true end
  if err == "exists" then return false end
  return nil, err
end

function Adapter:get(key)
  local v, err = self.dict:get(PREFIX .. key)
  if v == nil and err then return nil, err end
  return v
end

function Adapter:set(key, value, exp)
  local ttl = exp - ngx.time()
  if ttl < 1 then ttl = 1 end
  local ok, err = self.dict:safe_set(PREFIX .. key, value, ttl)
  if not ok then return nil, err end
  return true
end

function Adapter:delete(key)
  self.dict:delete(PREFIX .. key)
  return true
end

function M.shared()
  if shared_store then return shared_store end
  local url = os.getenv("GATE_SPEC_REDIS_URL")
  if url and eternaltwin.RedisStore then
    shared_store = eternaltwin.RedisStore{ url = url, prefix = "spec:store:" }
  else
    local native = eternaltwin.SharedDictStore(ngx.shared.eternaltwin, PREFIX)
    if type(native.get) == "function" and type(native.set) == "function" and type(native.delete) == "function" then
      shared_store = native
    else
      shared_store = setmetatable({ dict = ngx.shared.eternaltwin }, Adapter)
    end
  end
  return shared_store
end

function M.flaky()
  local inner = M.shared()
  local function down() return ngx.shared.eternaltwin:get("spec:down") end
  local s = {}
  for _, m in ipairs({ "check_and_add", "get", "set", "delete" }) do
    s[m] = function(_, ...)
      if down() then return nil, "connection refused (spec)" end
      return inner[m](inner, ...)
    end
  end
  return s
end

function M.dump()
  local out = {}
  local dict = ngx.shared.eternaltwin
  for _, k in ipairs(dict:get_keys(0)) do
    if k:sub(1, #PREFIX) == PREFIX then out[#out + 1] = { k, tostring(dict:get(k)) } end
  end
  return out
end

return M
