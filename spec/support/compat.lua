-- SPDX-License-Identifier: MIT
-- The one place where the specs know which Lua runs them (5.1, 5.2, 5.3, 5.4 or LuaJIT), so every
-- spec file parses and runs on all five and version-specific expectations live here.
--
--   local V = require("spec.support.compat")
--   V.name        -- "lua5.1" ... "lua5.4", "luajit": the interpreter under test
--   V.lua         -- the command that starts it (ETWIN_LUA from tools/run-tests.sh, else V.name)
--   V.integers    -- true on 5.3+: integer and float are distinct subtypes (math.type)
--   V.int(x)      -- what an integral JSON number or claim looks like: 1 (5.3+: the integer 1)
local M = {}

M.name = type(jit) == "table" and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
M.lua = os.getenv("ETWIN_LUA") or M.name
M.integers = math.type ~= nil
M.yieldable_pcall = _VERSION ~= "Lua 5.1" or type(jit) == "table"
M.unpack = table.unpack or unpack
M.pack = table.pack or function(...) return { n = select("#", ...), ... } end

--- The byte `b` with its lowest bit flipped (`b ~ 1` where there are bitwise operators).
function M.flip_low_bit(b)
  return b % 2 == 0 and b + 1 or b - 1
end

--- A 32-bit big-endian length followed by `s` (SSH wire string, `string.pack(">s4", s)`).
function M.ssh_string(s)
  local n = #s
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                     math.floor(n / 256) % 256, n % 256) .. s
end

--- UTF-8 encoding of one code point (`utf8.char`).
function M.utf8_char(cp)
  if utf8 then return utf8.char(cp) end
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
                     0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

--- `math.tointeger` (5.1/5.2/LuaJIT: any integral number is its own integer).
M.tointeger = math.tointeger or function(v)
  if type(v) == "number" and v % 1 == 0 then return v end
  return nil
end

--- `math.type`, with 5.1/5.2/LuaJIT's answer for an integral double ("integer").
M.math_type = math.type or function(v)
  if type(v) ~= "number" then return nil end
  return v % 1 == 0 and "integer" or "float"
end

--- A new object whose finalizer calls `fn` (5.1 and LuaJIT run `__gc` for userdata only: there
-- it is a `newproxy` userdata, elsewhere a table).
function M.on_gc(fn)
  if newproxy then
    local u = newproxy(true)
    getmetatable(u).__gc = fn
    return u
  end
  return setmetatable({}, { __gc = fn })
end

--- Runs a shell command and returns its standard output and exit status (128+N for signal N).
-- `io.popen(...):close()` gives the status only on 5.2+; this works everywhere.
function M.run(cmd)
  local p = assert(io.popen("{ " .. cmd .. "\n}; printf '\\n@exit=%d' $?"))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.*)\n@exit=(%d+)$")
  return body, tonumber(code)
end

-- JSON numbers. 5.3+ keep integers and floats apart: 1.0 encodes as "1.0", and every 64-bit integer
-- is exact. On 5.1, 5.2 and LuaJIT a number is a double: an integral one encodes as an integer
-- ("1"), and integers are exact up to 2^53 only (2^53 + 1, math.maxinteger do not exist there).
M.json_one = M.integers and "1.0" or "1"
M.exact_int64 = M.integers

return M
