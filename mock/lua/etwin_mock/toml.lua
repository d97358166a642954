-- SPDX-License-Identifier: MIT
-- Parser for the TOML subset the mock's seed files use.
--
-- Supported: comments, `[dotted.table.headers]` (bare or quoted segments), `key = value` with bare,
-- quoted or dotted keys, basic "strings" (with escapes), literal 'strings', integers (sign,
-- underscores), floats, booleans. Anything else is an error naming the line.
local M = {}

local function parse_error(name, lineno, msg)
  error(string.format("%s:%d: %s", name, lineno, msg), 0)
end

local function utf8_char(cp)
  if cp < 0x80 then
    return string.char(cp)
  elseif cp < 0x800 then
    return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
  elseif cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
    0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local simple_escapes = { b = "\b", t = "\t", n = "\n", f = "\f", r = "\r", ['"'] = '"', ["\\"] = "\\" }

-- Reads a basic string starting at s[i] == '"'; returns the value and the index after it.
local function read_basic(s, i, fail)
  local out = {}
  i = i + 1
  while true do
    local c = s:sub(i, i)
    if c == "" then
      fail("unterminated string")
    elseif c == '"' then
      return table.concat(out), i + 1
    elseif c == "\\" then
      local e = s:sub(i + 1, i + 1)
      if simple_escapes[e] then
        out[#out + 1] = simple_escapes[e]
        i = i + 2
      elseif e == "u" or e == "U" then
        local len = e == "u" and 4 or 8
        local hex = s:sub(i + 2, i + 1 + len)
        if #hex ~= len or hex:find("[^%x]") then
          fail("bad unicode escape")
        end
        out[#out + 1] = utf8_char(tonumber(hex, 16))
        i = i + 2 + len
      else
        fail("bad escape \\" .. e)
      end
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
end

local function read_literal(s, i, fail)
  local j = s:find("'", i + 1, true)
  if not j then
    fail("unterminated string")
  end
  return s:sub(i + 1, j - 1), j + 1
end

-- Reads a key (possibly dotted) at s[i]; returns the list of parts and the next index.
local function read_key(s, i, fail)
  local parts = {}
  while true do
    i = s:find("[^ \t]", i) or #s + 1
    local c = s:sub(i, i)
    local part
    if c == '"' then
      part, i = read_basic(s, i, fail)
    elseif c == "'" then
      part, i = read_literal(s, i, fail)
    else
      part = s:match("^[%w_%-]+", i)
      if not part then
        fail("expected a key")
      end
      i = i + #part
    end
    parts[#parts + 1] = part
    i = s:find("[^ \t]", i) or #s + 1
    if s:sub(i, i) ~= "." then
      return parts, i
    end
    i = i + 1
  end
end

local function read_value(s, i, fail)
  local c = s:sub(i, i)
  if c == '"' then
    if s:sub(i, i + 2) == '"""' then
      fail("multi-line strings are not supported")
    end
    return read_basic(s, i, fail)
  elseif c == "'" then
    return read_literal(s, i, fail)
  end
  local word = s:match("^[^ \t#]+", i)
  if not word then
    fail("expected a value")
  end
  local nexti = i + #word
  if word == "true" then
    return true, nexti
  elseif word == "false" then
    return false, nexti
  end
  local digits = word:gsub("_", "")
  if digits:find("^[+-]?%d+$") then
    return math.tointeger and math.tointeger(tonumber(digits)) or tonumber(digits), nexti
  elseif digits:find("^[+-]?%d+%.?%d*[eE]?[+-]?%d*$") and tonumber(digits) then
    return tonumber(digits), nexti
  end
  fail("unsupported value '" .. word .. "'")
end

-- Walks (creating as needed) the table at `path` under `root`.
local function descend(root, path, fail, orders)
  local t = root
  for _, k in ipairs(path) do
    if t[k] == nil then
      t[k] = {}
      orders[t] = orders[t] or {}
      table.insert(orders[t], k)
    elseif type(t[k]) ~= "table" then
      fail("key '" .. k .. "' is not a table")
    end
    t = t[k]
  end
  return t
end

-- Parses TOML text; returns the table and a map from each table to its keys in file order,
-- or raises "NAME:LINE: message".
function M.parse(text, name)
  name = name or "toml"
  local orders = {}
  local root, current = {}, nil
  local defined = {}
  current = root
  local lineno = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    local function fail(msg) parse_error(name, lineno, msg) end
    line = line:gsub("\r$", "")
    local i = line:find("[^ \t]")
    local c = i and line:sub(i, i)
    if not i or c == "#" then
      -- blank or comment
    elseif c == "[" then
      if line:sub(i + 1, i + 1) == "[" then
        fail("arrays of tables are not supported")
      end
      local path, j = read_key(line, i + 1, fail)
      if line:sub(j, j) ~= "]" then
        fail("expected ']'")
      end
      local rest = line:sub(j + 1)
      if not rest:find("^[ \t]*$") and not rest:find("^[ \t]*#") then
        fail("unexpected text after table header")
      end
      local id = table.concat(path, "\0")
      if defined[id] then
        fail("table [" .. table.concat(path, ".") .. "] defined twice")
      end
      defined[id] = true
      current = descend(root, path, fail, orders)
    else
      local path, j = read_key(line, i, fail)
      if line:sub(j, j) ~= "=" then
        fail("expected '='")
      end
      j = line:find("[^ \t]", j + 1)
      if not j then
        fail("expected a value")
      end
      local value, k = read_value(line, j, fail)
      local rest = line:sub(k)
      if not rest:find("^[ \t]*$") and not rest:find("^[ \t]*#") then
        fail("unexpected text after value")
      end
      local last = table.remove(path)
      local t = descend(current, path, fail, orders)
      if t[last] ~= nil then
        fail("duplicate key '" .. last .. "'")
      end
      t[last] = value
      orders[t] = orders[t] or {}
      table.insert(orders[t], last)
    end
  end
  return root, orders
end

function M.parse_file(path)
  local f, err = io.open(path, "rb")
  if not f then
    error("cannot open config: " .. tostring(err), 0)
  end
  local text = f:read("*a")
  f:close()
  return M.parse(text, path)
end

return M
