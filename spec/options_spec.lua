-- eternaltwin.options: the client options, declared once; fixed at creation; the generated tables.
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local options = require("eternaltwin.options")

local function client(opts)
  local o = { url = "http://localhost:50320/" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return eternaltwin.new("demo@clients", "dev_secret", "http://localhost:8000/cb", keys.HS256Key("k"), o)
end

local function message(f)
  local ok, err = pcall(f)
  assert.is_false(ok)
  return tostring(err)
end

describe("client options", function()
  it("are read as fields, defaults included", function()
    local c = client({ timeout = 2.5, retries = 3, verify_ssl = false })
    assert.are.equal(2.5, c.timeout)
    assert.are.equal(3, c.retries)
    assert.is_false(c.verify_ssl)
    assert.are.equal("http://localhost:50320/", c.url)
    assert.are.equal("demo@clients", c.client_id)
    assert.are.equal("http://localhost:8000/cb", c.redirect_uri)
    assert.is_true(keys.is_key(c.state_key))
    assert.is_nil(c.ticket_key)
    assert.are.equal(10, c.max_redirects)
    assert.is_false(c.allow_redirects)
    assert.are.equal(16 * 1024 * 1024, c.max_body_size)
    assert.is_nil(c.client_secret)                  -- never a field
  end)

  it("raise with DESIGN's message when assigned after creation, whatever the value", function()
    local c = client()
    for _, decl in ipairs(options.LIST) do
      local msg = message(function() c[decl.name] = c[decl.name] end)
      assert.truthy(msg:find("eternaltwin: client options are fixed at creation (" .. decl.name
        .. "); make a new client", 1, true), msg)
    end
    local msg = message(function() c.timeout = 0.001 end)
    assert.are.equal("eternaltwin: client options are fixed at creation (timeout); make a new client",
      msg:gsub("^[^:]*:%d+: ", ""))
    assert.truthy(message(function() c.timeout = "x" end):find("(timeout)", 1, true))
    assert.are.equal(5, c.timeout)                  -- unchanged
    assert.are.equal("http://localhost:50320/", c.url)
  end)

  it("let a client carry fields of its own", function()
    local c = client()
    c.my_field = 42
    assert.are.equal(42, c.my_field)
    c.my_field = nil
    assert.is_nil(c.my_field)
    assert.are.equal(getmetatable(c), eternaltwin.Client)
  end)

  it("keep their creation-time type errors", function()
    assert.truthy(message(function() client({ timeout = "x" }) end):find(
      "bad argument to 'eternaltwin.new' (option 'timeout': positive number expected, got string)", 1, true))
    assert.truthy(message(function() client({ nope = 1 }) end):find(
      "bad argument to 'eternaltwin.new' (unknown option 'nope')", 1, true))
    assert.truthy(message(function() client({ port = 0, url = false }) end):find("eternaltwin.new", 1, true))
  end)

  it("give the libcurl session its settings from the frozen value, never following redirects", function()
    local s = options.session_options(select(2, client({ timeout = 3, allow_redirects = true }):_session()))
    assert.are.equal(3, s.timeout)
    assert.is_false(s.allow_redirects)
    assert.is_true(s.packed_headers)
  end)

  it("are declared once: every entry has a name, a known type and a line of documentation", function()
    local seen = {}
    for _, decl in ipairs(options.LIST) do
      assert.is_string(decl.name)
      assert.is_nil(seen[decl.name])
      seen[decl.name] = true
      assert.is_string(decl.doc)
      assert.truthy(options.markdown():find("| `" .. decl.name .. "` |", 1, true))
      assert.truthy(options.ldoc():find("@tfield %S+ " .. decl.name .. " "))
    end
    assert.is_true(#options.LIST >= 20)
  end)

  it("generate the README's table and the reference's, which are current", function()
    local lua = os.getenv("ETWIN_LUA") or "lua5.4"
    local p = io.popen(lua .. " tools/gen-options.lua --check 2>&1; echo rc=$?")
    local out = p:read("*a")
    p:close()
    assert.truthy(out:find("rc=0", 1, true), out)
    local readme = io.open("README.md"):read("*a")
    assert.truthy(readme:find("<!-- options:begin -->\n" .. options.markdown() .. "<!-- options:end -->", 1, true))
  end)
end)
