-- SPDX-License-Identifier: MIT
-- luacheck configuration (`make lint`): code in lua/, spec/, bin/ and examples/ runs on Lua 5.1-5.4 and LuaJIT.
std = "max"
max_line_length = 130
codes = true
exclude_files = { "build/", "mock/", "bench/" }

files["spec/"] = { std = "+busted" }
files["bin/etwin"] = { std = "max" }

-- The Lua layer keeps to the 5.1-5.4 subset: `table.unpack or unpack` reads the 5.1 global.
files["lua/"] = { read_globals = { "unpack" } }
