-- SPDX-License-Identifier: MIT
-- Issue 22: a core.so built for another Lua (LuaJIT loading the 5.4 build: `undefined symbol:
-- lua_rotate`) fails with the loader's own error and the build to make for the running interpreter.
local V = require("spec.support.compat")

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function build_of(name) return name == "lua5.4" and "build" or "build/" .. name end

-- require("eternaltwin") in `lua` with only `cpath_build` on LUA_CPATH: its output and exit code.
local function load_with(lua, cpath_build)
  return V.run(("cd %s && LUA_PATH='lua/?.lua;lua/?/init.lua' LUA_CPATH=%s %s -e 'require(\"eternaltwin\")' 2>&1")
    :format(q((debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or ".")), q(cpath_build .. "/?.so"), lua))
end

describe("a core.so built for another Lua", function()
  -- The wrong build for the Lua under test: LuaJIT's for the PUC ones, 5.4's for LuaJIT.
  local wrong = V.name == "luajit" and "lua5.4" or "luajit"
  local run_it = exists(build_of(wrong) .. "/eternaltwin/core.so") and it or pending

  run_it("fails with the loader's error and names `make LUA=" .. V.name .. "`", function()
    local out, code = load_with(V.lua, build_of(wrong))
    assert.are_not.equal(0, code)
    assert.truthy(out:find("undefined symbol", 1, true), out)                 -- the loader's own words
    assert.truthy(out:find("make LUA=" .. V.name .. "`", 1, true), out)       -- the build to make
    assert.truthy(out:find(build_of(V.name) .. "/?.so", 1, true), out)         -- and where it lands
  end)

  local jit_it = (exists("build/eternaltwin/core.so") and os.execute("command -v luajit >/dev/null 2>&1")) and it
    or pending
  jit_it("the issue's case: LuaJIT with LUA_CPATH=build/?.so says `make LUA=luajit`", function()
    local out, code = load_with("luajit", "build")
    assert.are_not.equal(0, code)
    assert.truthy(out:find("lua_rotate", 1, true), out)
    assert.truthy(out:find("make LUA=luajit`", 1, true), out)
    assert.truthy(out:find("LuaJIT", 1, true), out)
  end)

  it("the right build loads as before", function()
    local out, code = load_with(V.lua, build_of(V.name))
    assert.are.equal(0, code, out)
  end)
end)
