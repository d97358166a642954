-- eternaltwin.connections: the registry of named clients (Python semantics), against the mock.
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local mock = require("spec.support.mock")

local function opts(extra)
  local o = { client_id = "demo@clients", client_secret = "dev_secret",
              redirect_uri = "http://localhost:8000/oauth/callback", state_key = keys.HS256Key("k"),
              url = mock.get().url }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

describe("eternaltwin.connections", function()
  local connections = eternaltwin.connections

  before_each(function() connections.configure({}) end)
  teardown(function() connections.configure({}) end)

  it("is the module eternaltwin.connections, loaded on first use", function()
    assert.are.equal(require("eternaltwin.connections"), connections)
    assert.are.equal(connections, eternaltwin.connections)
    assert.is_function(connections.configure)
  end)

  it("configures clients by alias and gets the default one without an alias", function()
    connections.configure({ default = opts(), other = opts({ client_id = "other@clients",
      client_secret = "other_secret", redirect_uri = "http://localhost:8001/callback?from=etwin" }) })
    local c = connections.get_connection()
    assert.are.equal(getmetatable(c), eternaltwin.Client)
    assert.are.equal("demo@clients", c.client_id)
    assert.are.equal(c, connections.get_connection("default"))
    assert.are.equal(c, connections.get_connection(""))  -- Python: `alias or "default"`
    assert.are.equal("other@clients", connections.get_connection("other").client_id)
    assert.are.same({ "default", "other" }, connections.aliases())
    -- the configured clients really talk to the server
    local res = assert(connections.get_connection("other"):get("api/v1/clock"))
    assert.are.equal(200, res.status_code)
  end)

  it("replaces every connection on configure", function()
    connections.configure({ a = opts(), b = opts() })
    connections.configure({ c = opts() })
    assert.are.same({ "c" }, connections.aliases())
    assert.is_false(connections.has_connection("a"))
    assert.has_error(function() connections.get_connection("a") end,
      "eternaltwin.connections: no connection found for alias 'a'")
  end)

  it("leaves the registry as it was when one entry of configure is bad, naming it", function()
    connections.configure({ keep = opts() })
    local ok, msg = pcall(connections.configure, { fine = opts(), broken = opts({ timeout = "soon" }) })
    assert.is_false(ok)
    assert.truthy(msg:find("connection 'broken'", 1, true), msg)
    assert.truthy(msg:find("timeout", 1, true), msg)
    assert.are.same({ "keep" }, connections.aliases())
    assert.has_error(function() connections.configure("default") end)
    assert.has_error(function() connections.configure({ [1] = opts() }) end)
    assert.has_error(function() connections.configure({ x = "not options" }) end)
  end)

  it("never shows the client secret in a configuration error", function()
    local ok, msg = pcall(connections.configure, { x = opts({ client_secret = "s3cret-value", url = "nope" }) })
    assert.is_false(ok)
    assert.falsy(msg:find("s3cret-value", 1, true))
  end)

  it("creates a connection, replacing one of the same alias", function()
    local first = connections.create_connection("default", opts())
    assert.are.equal(first, connections.get_connection())
    local second = connections.create_connection("default", opts({ timeout = 2 }))
    assert.are_not.equal(first, second)
    assert.are.equal(second, connections.get_connection())
    assert.are.equal(2, connections.get_connection().timeout)
    assert.has_error(function() connections.create_connection(nil, opts()) end)
    assert.has_error(function() connections.create_connection("x", { client_id = "only" }) end)
    assert.is_false(connections.has_connection("x"))
  end)

  it("raises on an unknown alias, naming it", function()
    local ok, msg = pcall(connections.get_connection, "missing-alias")
    assert.is_false(ok)
    assert.truthy(msg:find("'missing-alias'", 1, true), msg)
    ok, msg = pcall(connections.get_connection)
    assert.is_false(ok)
    assert.truthy(msg:find("'default'", 1, true), msg)
    assert.has_error(function() connections.get_connection(42) end)
  end)

  it("adds an existing client and removes it", function()
    local c = eternaltwin.new(opts())
    assert.are.equal(c, connections.add_connection("mine", c))
    assert.are.equal(c, connections.get_connection("mine"))
    assert.are.equal(c, connections.remove_connection("mine"))
    assert.has_error(function() connections.get_connection("mine") end)
    -- the removed client is not closed: it still works
    assert.are.equal(200, assert(c:get("api/v1/clock")).status_code)
    local ok, msg = pcall(connections.remove_connection, "mine")
    assert.is_false(ok)
    assert.truthy(msg:find("'mine'", 1, true))
    assert.has_error(function() connections.add_connection("x", "not a client") end)
    assert.has_error(function() connections.add_connection("", c) end)
  end)

  it("serves blocking calls and yielding ones inside poller tasks alike", function()
    connections.configure({ default = opts() })
    local c = connections.get_connection()
    local p = eternaltwin.poller()
    local order = {}
    p:spawn(function()
      order[#order + 1] = "a start"
      local res = assert(connections.get_connection():get("_mock/delay", { params = { ms = 200 } }))
      order[#order + 1] = "a end " .. res.status_code
    end)
    p:spawn(function() order[#order + 1] = "b start" end)
    assert.are.equal(0, p:run())
    assert.are.same({ "a start", "b start", "a end 200" }, order)
    assert.are.equal(200, assert(c:get("api/v1/clock")).status_code)
  end)

  it("prints its aliases", function()
    assert.are.equal("<eternaltwin.connections (none)>", tostring(connections))
    connections.configure({ default = opts(), b = opts() })
    assert.are.equal("<eternaltwin.connections b, default>", tostring(connections))
  end)
end)
