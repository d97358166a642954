-- SPDX-License-Identifier: MIT
-- Writes the client options table, generated from their one declaration (lua/eternaltwin/options.lua),
-- into the README (between `<!-- options:begin -->` and `<!-- options:end -->`) and into the
-- reference's doc comment in lua/eternaltwin/init.lua (between `-- options:begin` and `-- options:end`).
--   lua tools/gen-options.lua          rewrite both files
--   lua tools/gen-options.lua --check  exit 1, naming the file, when either is not current
-- (`make options` and `make check-options`; spec/options_spec.lua runs the check.)
local options = require("eternaltwin.options")

local TARGETS = {
  { path = "README.md", open = "<!-- options:begin -->\n", close = "<!-- options:end -->",
    body = options.markdown },
  { path = "lua/eternaltwin/init.lua",
    open = "-- options:begin (generated from eternaltwin.options by tools/gen-options.lua: do not edit)\n",
    close = "-- options:end", body = options.ldoc },
}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- The file's text with the block regenerated (nil, message when the markers are missing).
local function render(t, text)
  local a, b = text:find(t.open, 1, true)
  local c = b and text:find(t.close, b + 1, true)
  if not c then return nil, t.path .. ": markers not found" end
  return text:sub(1, b) .. t.body() .. text:sub(c)
end

local function run(check_only)
  local stale = {}
  for _, t in ipairs(TARGETS) do
    local text = read(t.path)
    local new = assert(render(t, text))
    if new ~= text then
      stale[#stale + 1] = t.path
      if not check_only then
        local f = assert(io.open(t.path, "wb"))
        f:write(new)
        f:close()
      end
    end
  end
  return stale
end

local check_only = arg[1] == "--check"
local stale = run(check_only)
if check_only and #stale > 0 then
  io.stderr:write("options table out of date in: ", table.concat(stale, ", "), " (run `make options`)\n")
  os.exit(1)
end
for _, p in ipairs(stale) do print((check_only and "current: " or "updated ") .. p) end
