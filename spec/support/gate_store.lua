-- SPDX-License-Identifier: MIT
-- Stores for the gate's specs, inside nginx (loaded by spec/support/gate_fake.lua):
--   shared()  the store interface (check_and_add, get, set, delete) over the site's shared dict
--             `eternaltwin`, keys under "spec:store:": SharedDictStore and its own session methods.
--             With GATE_SPEC_REDIS_URL set (and passed to nginx's workers: an `env` line), a
--             RedisStore instead.
--   flaky()   shared(), but every method answers nil, "connection refused (spec)" while the dict's
--             "spec:down" is set (/_test/store-down?on=1)
--   dump()    every key and value of shared()'s store (the spec scans it for tokens)
-- luacheck: globals ngx
local eternaltwin = require("eternaltwin")

local M = {}
local PREFIX = "spec:store:"
local shared_store

function M.shared()
  if shared_store then return shared_store end
  local url = os.getenv("GATE_SPEC_REDIS_URL")
  if url and eternaltwin.RedisStore then
    shared_store = eternaltwin.RedisStore{ url = url, prefix = "spec:store:" }
  else
    shared_store = eternaltwin.SharedDictStore(ngx.shared.eternaltwin, PREFIX)
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
