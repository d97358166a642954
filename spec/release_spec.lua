-- SPDX-License-Identifier: MIT
-- The release (issue 13): the versions agree (_VERSION, the versioned rockspec, CHANGELOG.md, the
-- User-Agent, `etwin --version`), LICENSE is the MIT text, the versioned rockspec builds what the scm
-- one builds from the tarball `make dist` makes, and the tarball holds what a release needs.
-- (tools/run-tests.sh installs that tarball with luarocks into a temporary tree and loads it.)
local eternaltwin = require("eternaltwin")
local mock = require("spec.support.mock")

-- Lua 5.1's loaders, looked up so that luacheck (set for 5.4) accepts them.
local setfenv, loadstring = rawget(_G, "setfenv"), rawget(_G, "loadstring")

local readfile = mock.must_read

-- A rockspec is Lua assigning globals: run it in an empty environment.
local function rockspec(path)
  local src, env = readfile(path), {}
  local chunk
  if setfenv then
    chunk = assert(loadstring(src, "@" .. path))
    setfenv(chunk, env)
  else
    chunk = assert(load(src, "@" .. path, "t", env))
  end
  chunk()
  return env
end

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local VERSION = eternaltwin._VERSION:match("^eternaltwin (%d+%.%d+%.%d+)$")

describe("release", function()
  it("_VERSION is 'eternaltwin X.Y.Z'", function()
    assert.is_string(VERSION, eternaltwin._VERSION)
  end)

  it("the versioned rockspec has the same version, and builds what the scm rockspec builds", function()
    local path = "rockspec/eternaltwin-" .. VERSION .. "-1.rockspec"
    local rel, scm = rockspec(path), rockspec("rockspec/eternaltwin-scm-1.rockspec")
    assert.are.equal("eternaltwin", rel.package)
    assert.are.equal(VERSION .. "-1", rel.version)
    assert.are.equal("MIT", rel.description.license)
    -- Its source is the tarball `make dist` makes, unpacking to eternaltwin-VERSION/.
    local tarball = "eternaltwin-" .. VERSION .. ".tar.gz"
    assert.are.equal(tarball, rel.source.url:match("[^/]+$"))
    assert.truthy(rel.source.url:match("^https://"))
    assert.are.equal("eternaltwin-" .. VERSION, rel.source.dir)
    for _, field in ipairs({ "build", "dependencies", "external_dependencies", "description",
                             "test", "test_dependencies", "rockspec_format" }) do
      assert.is_true(same(scm[field], rel[field]), field .. " differs between the scm and the versioned rockspec")
    end
    -- Every Lua module of the tree is installed (the internal runtime too: the others need it).
    for file in io.popen("ls lua/eternaltwin"):lines() do
      local name = file == "init.lua" and "eternaltwin" or "eternaltwin." .. file:gsub("%.lua$", "")
      assert.are.equal("lua/eternaltwin/" .. file, rel.build.modules[name], name)
    end
  end)

  it("the newest CHANGELOG.md release is this version, dated, with an Unreleased section above", function()
    local log = readfile("CHANGELOG.md")
    assert.truthy(log:find("Keep a Changelog", 1, true))
    local first = log:match("\n## %[(%d+%.%d+%.%d+)%] %- %d%d%d%d%-%d%d%-%d%d\n")
    assert.are.equal(VERSION, first)
    assert.truthy(log:find("\n## [Unreleased]\n", 1, true) < log:find("\n## [" .. VERSION .. "]", 1, true))
  end)

  it("the default User-Agent and `etwin --version` carry the version", function()
    local client = eternaltwin.new("a@clients", "s", "http://localhost/cb",
      require("eternaltwin.keys").HS256Key("k"), { url = "http://localhost/" })
    assert.are.equal("eternaltwin-lua/" .. VERSION, client.user_agent)
    local p = io.popen("bin/etwin --version")
    local out = p:read("*a")
    p:close()
    assert.are.equal(eternaltwin._VERSION .. "\n", out)
  end)

  it("LICENSE is the MIT license of the eternaltwin-lua authors", function()
    local text = readfile("LICENSE")
    assert.truthy(text:find("^MIT License\n"))
    assert.truthy(text:find("Copyright (c) 2026 The eternaltwin-lua authors", 1, true))
    assert.truthy(text:find("Permission is hereby granted, free of charge", 1, true))
    assert.truthy(text:find("THE SOFTWARE IS PROVIDED \"AS IS\"", 1, true))
  end)

  it("make dist makes a tarball under eternaltwin-VERSION/ with the sources, docs and rockspec", function()
    local p = io.popen("make -s dist >/dev/null 2>&1 && tar -tzf build/eternaltwin-" .. VERSION .. ".tar.gz")
    local files, n = {}, 0
    for line in p:lines() do files[line] = true; n = n + 1 end
    p:close()
    local top = "eternaltwin-" .. VERSION .. "/"
    for _, f in ipairs({ "LICENSE", "CHANGELOG.md", "README.md", "Makefile", "config.ld",
                         "rockspec/eternaltwin-" .. VERSION .. "-1.rockspec", "lua/eternaltwin/init.lua",
                         "csrc/l_core.c", "bin/etwin", "mock/etwin-mock", "spec/release_spec.lua" }) do
      assert.is_true(files[top .. f] ~= nil, f .. " missing from the tarball")
    end
    for f in pairs(files) do
      assert.are.equal(top, f:sub(1, #top))
      assert.is_nil(f:find("/build/", 1, true), f)
      assert.is_nil(f:find("%.so$"), f)
    end
    assert.is_true(n > 50)
  end)

  it("make dist gives the same bytes twice (sorted names, fixed owner and time)", function()
    local function sum()
      local p = io.popen("make -s dist >/dev/null 2>&1 && sha256sum build/eternaltwin-" .. VERSION .. ".tar.gz")
      local s = p:read("*a"):match("^%x+")
      p:close()
      return s
    end
    local a = sum()
    assert.is_string(a)
    assert.are.equal(a, sum())
  end)
end)

describe("reference docs (make docs)", function()
  -- LDoc (Debian's lua-ldoc) builds them; without it this part is pending.
  local has_ldoc = os.execute("command -v ldoc >/dev/null 2>&1")
  local run_it = (has_ldoc == true or has_ldoc == 0) and it or pending
  local built = false
  local function page(name)
    if not built then
      local p = io.popen("make -s docs 2>&1")
      local out = p:read("*a")
      p:close()
      assert.truthy(out:find("docs: build/docs/index.html", 1, true), out)
      built = true
    end
    local f = io.open("build/docs/" .. name .. ".html", "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
  end
  local PAGES = { "index", "modules/eternaltwin", "modules/eternaltwin.keys", "modules/eternaltwin.errors",
                  "modules/eternaltwin.users", "modules/eternaltwin.poller", "modules/eternaltwin.connections",
                  "classes/User" }

  run_it("has every public module, and not the internal eternaltwin.runtime", function()
    for _, name in ipairs(PAGES) do assert.is_string(page(name), name) end
    assert.is_nil(page("modules/eternaltwin.runtime"))
    assert.falsy(page("index"):find("eternaltwin.runtime", 1, true))
  end)

  run_it("describes every parameter, and leaves no stray backtick outside code", function()
    for _, name in ipairs(PAGES) do
      local html = page(name)
      for param, body in html:gmatch('<li><span class="parameter">([^<]*)</span>(.-)</li>') do
        local text = body:gsub('<span class="types">.-</span>', ""):gsub("%(<em>default</em>.-%)", "")
          :gsub("%(<em>optional</em>%)", ""):gsub("<[^>]*>", "")
        assert.truthy(text:find("%a"), name .. ": parameter '" .. param .. "' has no description")
      end
      local text = html:gsub("<pre.-</pre>", ""):gsub("<code>.-</code>", ""):gsub("<[^>]*>", "")
      assert.falsy(text:find("`", 1, true), name .. ": " .. tostring(text:match("[^\n]*`[^\n]*")))
    end
  end)

  run_it("shows User's functions with a dot and its method with a colon", function()
    local html = page("classes/User")
    for _, fn in ipairs({ "get", "search", "count", "from_token", "from_authorization_code",
                          "start_authorization", "new", "from_data", "is_user" }) do
      assert.truthy(html:find("<strong>User." .. fn .. "(", 1, true), fn)
      assert.falsy(html:find("User:" .. fn .. "(", 1, true), fn)
    end
    assert.truthy(html:find("<strong>User:logout()</strong>", 1, true))
  end)

  run_it("lists every client option in the reference, and the index introduces the library", function()
    local src = io.open("lua/eternaltwin/init.lua"):read("*a")
    local types = src:match("local OPTION_TYPES = (%b{})")
    local html = page("modules/eternaltwin")
    local n = 0
    for name in types:gmatch("([%a_]+) = \"") do
      n = n + 1
      assert.truthy(html:find('<li><span class="parameter">' .. name .. '</span>', 1, true), name)
    end
    assert.is_true(n >= 20)
    local index = page("index")
    assert.truthy(index:find("client:validate_state", 1, true))
    assert.truthy(index:find("Where to start", 1, true))
    -- The layout fixes are in the stylesheet (no clipped sidebar, tables within the column).
    assert.truthy(io.open("build/docs/ldoc.css"):read("*a"):find("table-layout: fixed", 1, true))
  end)
end)
