-- SPDX-License-Identifier: MIT
-- The examples, run the way a newcomer runs them: from the root or from examples/, without LUA_PATH,
-- as each header says; the README tour is examples/tour.lua word for word; game_tick and copas_loop.
local V = require("spec.support.compat")
local mock = require("spec.support.mock")

local LUA = V.lua
local q = mock.shell_quote
local readfile = mock.must_read

-- Runs a shell command; its output (stdout and stderr) and whether it exited 0.
local function run(cmd)
  local p = io.popen("{ " .. cmd .. "; } 2>&1; echo \"exit=$?\"")
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("exit=(%d+)\n$"))
  return out:gsub("exit=%d+\n$", ""), code == 0
end

-- An example run the way a newcomer runs it: no LUA_PATH or LUA_CPATH, from `dir`.
-- An example run the way a newcomer runs it: no LUA_PATH or LUA_CPATH, from `dir`.
local function example(dir, file, env)
  return run(("cd %s && env -u LUA_PATH -u LUA_CPATH %s %s %s"):format(q(dir), env or "", LUA, q(file)))
end

local function url_env() return "ETERNALTWIN_URL=" .. q(mock.get().url) end

describe("the examples run as their headers say, without LUA_PATH", function()
  it("login.lua from examples/, starting its own mock", function()
    local out, ok = example("examples", "login.lua")
    assert.is_true(ok, out)
    assert.truthy(out:find("signed in:         Alice", 1, true), out)
  end)

  it("luv_loop.lua from examples/ and login.lua from the root, against a given server", function()
    local out, ok = example("examples", "luv_loop.lua", url_env())
    assert.is_true(ok, out)
    assert.truthy(out:find("luv_loop: 50 of 50 requests done", 1, true), out)
    out, ok = example(".", "examples/login.lua", url_env())
    assert.is_true(ok, out)
  end)

  it("every example's header says how to run it from the root and from examples/", function()
    for _, f in ipairs({ "login", "game_tick", "luv_loop", "tour", "copas_loop" }) do
      local src = readfile("examples/" .. f .. ".lua")
      local header = src:match("^(.-)\ndo\n")
      assert.truthy(header and header:find("examples/" .. f .. ".lua", 1, true), f)
      assert.truthy(header:find("from examples/", 1, true), f)
      assert.truthy(src:find('package.cpath = root .. (lua == "lua5.4" and "/build/" or "/build/" .. lua .. "/")', 1, true), f)
    end
  end)
end)

describe("game_tick's longest step includes the poller's step", function()
  it("measures poller:step(0) inside the tick, so the figure is not zero", function()
    local out, ok = example(".", "examples/game_tick.lua", url_env())
    assert.is_true(ok, out)
    local ms = tonumber(out:match("longest step ([%d.]+) ms"))
    assert.is_number(ms, out)
    -- The old loop started its timer after step(0) and timed an empty body: it printed 0.00.
    assert.is_true(ms > 0, out)
    local src = readfile("examples/game_tick.lua")
    assert.truthy(src:find("local t0 = core.monotime()\n    local live = poller:step(0)", 1, true))
  end)
end)

describe("the README tour is a complete script", function()
  it("is examples/tour.lua word for word, and runs against the mock", function()
    local readme = readfile("README.md")
    local block = readme:match("## A short tour\n.-```lua\n(.-)```\n")
    assert.is_string(block)
    local src = readfile("examples/tour.lua")
    assert.are.equal(block, src:sub(-#block))
    for _, word in ipairs({ "reject(", "fail(" }) do assert.falsy(block:find(word, 1, true), word) end
    local out, ok = example(".", "examples/tour.lua", url_env())
    assert.is_true(ok, out)
    assert.truthy(out:find("AccessToken\tAlice\tc5020923-b4b2-51a5-8a1d-ee5a10de03a3", 1, true), out)
    assert.truthy(out:find("\n1\tAlice\n", 1, true), out)
  end)
end)

describe("copas", function()
  -- Debian's lua-copas (1.1.7) is installed for Lua 5.1 and 5.2 only; this runs where the Lua running
  -- the specs can load it (and LuaSocket), and is pending elsewhere.
  local has_copas = pcall(require, "copas") and pcall(require, "socket")

  it("the outer-loop pattern is documented", function()
    local readme = readfile("README.md")
    assert.truthy(readme:find("examples/copas_loop.lua", 1, true))
    assert.truthy(readme:find("copas.step", 1, true))
  end)

  local run_it = has_copas and it or pending
  run_it("examples/copas_loop.lua: ten copas threads get their lookups without blocking copas", function()
    local out, ok = example(".", "examples/copas_loop.lua", url_env())
    assert.is_true(ok, out)
    assert.truthy(out:find("copas_loop: 10 of 10 replies", 1, true), out)
  end)
end)
