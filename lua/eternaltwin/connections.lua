-- SPDX-License-Identifier: MIT
--- Named clients, configured once and looked up by alias (the Python `connections`).
-- One registry per Lua state. `eternaltwin.User` finds its client here: `using` is an alias, and
-- no alias means `"default"`.
--
--    local connections = require("eternaltwin").connections
--    connections.configure{
--      default = { client_id = "myapp@clients", client_secret = os.getenv("SECRET"),
--                  redirect_uri = "https://myapp.example/callback", state_key = keys.HS256Key(k),
--                  url = "https://eternaltwin.org/" },
--    }
--    local client = connections.get_connection()        -- the "default" client
--
-- The same client serves blocking calls and, inside poller tasks, yielding ones: there is no
-- separate async registry as in Python.
-- @module eternaltwin.connections

local type, pairs, next, tostring, error, setmetatable = type, pairs, next, tostring, error, setmetatable
local format, concat, sort = string.format, table.concat, table.sort

local M = {}

local clients = {} -- alias -> client

--- The alias used when none (nil or "") is given.
M.DEFAULT_ALIAS = "default"

local function check_alias(fname, alias, level)
  if type(alias) ~= "string" or alias == "" then
    error(format("bad argument #1 to '%s' (alias: non-empty string expected, got %s)", fname,
      alias == "" and "empty string" or type(alias)), level + 1)
  end
end

local function new_client(fname, alias, opts, level)
  if type(opts) ~= "table" then
    error(format("bad argument to '%s' (connection '%s': options table expected, got %s)", fname, alias,
      type(opts)), level + 1)
  end
  -- eternaltwin.new raises on a missing or ill-typed option; say which connection it was.
  local ok, client = pcall(require("eternaltwin").new, opts)
  if not ok then
    local msg = tostring(client):gsub("^[^:]*:%d+: ", "")
    error(format("connection '%s': %s", alias, msg), level + 1)
  end
  return client
end

--- Replaces every connection by the ones described.
-- `connections.configure{ default = opts, other = opts2 }`: each `opts` is what
-- `eternaltwin.new(opts)` takes. All the clients are built before any is registered, so a bad
-- entry raises (naming its alias) and leaves the registry as it was.
-- @tparam table config alias -> client options
function M.configure(config)
  if type(config) ~= "table" then
    error(format("bad argument #1 to 'configure' (table of alias = options expected, got %s)", type(config)), 2)
  end
  local fresh = {}
  for alias, opts in pairs(config) do
    check_alias("configure", alias, 2)
    fresh[alias] = new_client("configure", alias, opts, 2)
  end
  clients = fresh
end

--- Builds a client from `opts` (see `eternaltwin.new`) and registers it under `alias`, replacing
-- any client of that alias.
-- @tparam string alias the connection's name
-- @tparam table opts client options
-- @return the new client
function M.create_connection(alias, opts)
  check_alias("create_connection", alias, 2)
  local client = new_client("create_connection", alias, opts, 2)
  clients[alias] = client
  return client
end

--- The client registered under `alias` (default `"default"`). An unknown alias raises an error
-- naming it: a missing connection is a configuration mistake.
-- @tparam[opt="default"] string alias the connection's name (nil or "" is the default one)
-- @return the client
function M.get_connection(alias)
  if alias == nil or alias == "" then alias = M.DEFAULT_ALIAS end
  if type(alias) ~= "string" then
    error(format("bad argument #1 to 'get_connection' (alias: string expected, got %s)", type(alias)), 2)
  end
  local client = clients[alias]
  if client == nil then
    error(format("eternaltwin.connections: no connection found for alias '%s'", alias), 2)
  end
  return client
end

--- Registers an existing client (any table that behaves as one) under `alias`, replacing any
-- client of that alias.
-- @tparam string alias the connection's name
-- @param client a client from `eternaltwin.new`
-- @return the client
function M.add_connection(alias, client)
  check_alias("add_connection", alias, 2)
  if type(client) ~= "table" then
    error(format("bad argument #2 to 'add_connection' (client expected, got %s)", type(client)), 2)
  end
  clients[alias] = client
  return client
end

--- Unregisters the client of `alias` (it is not closed: whoever holds it may go on using it).
-- An unknown alias raises an error naming it, as Python's `del` does.
-- @tparam string alias the connection's name
-- @return the client removed
function M.remove_connection(alias)
  check_alias("remove_connection", alias, 2)
  local client = clients[alias]
  if client == nil then
    error(format("eternaltwin.connections: no connection found for alias '%s'", alias), 2)
  end
  clients[alias] = nil
  return client
end

--- The registered aliases, sorted.
-- @treturn {string,...}
function M.aliases()
  local list = {}
  for alias in pairs(clients) do list[#list + 1] = alias end
  sort(list)
  return list
end

--- Whether a client is registered under `alias`.
-- @tparam string alias the connection's name
-- @treturn boolean
function M.has_connection(alias)
  return clients[alias] ~= nil
end

return setmetatable(M, {
  __name = "eternaltwin.connections",
  __tostring = function()
    if next(clients) == nil then return "<eternaltwin.connections (none)>" end
    return "<eternaltwin.connections " .. concat(M.aliases(), ", ") .. ">"
  end,
})
