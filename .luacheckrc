-- SPDX-License-Identifier: MIT
-- luacheck configuration (`make lint`): Lua 5.4 code in lua/, spec/, bin/ and examples/.
std = "lua54"
max_line_length = 130
codes = true
exclude_files = { "build/", "mock/", "bench/" }

files["spec/"] = { std = "+busted" }
files["bin/etwin"] = { std = "lua54" }

-- The Lua layer keeps to the 5.1-5.4 subset: `table.unpack or unpack` reads the 5.1 global.
files["lua/"] = { read_globals = { "unpack" } }
