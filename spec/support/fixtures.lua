-- Shared spec fixtures: a client of the seeded demo app pointed at the shared mock.
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local mock = require("spec.support.mock")

local M = {}

M.DEFAULTS = {
  client_id = "demo@clients", client_secret = "dev_secret",
  redirect_uri = "http://localhost:8000/oauth/callback",
}

--- A client for the mock's demo app; `opts` override any option (url defaults to the shared mock).
function M.client(opts)
  local o = { state_key = keys.HS256Key("spec state key"), url = mock.get().url }
  for k, v in pairs(M.DEFAULTS) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  return eternaltwin.new(o)
end

return M
