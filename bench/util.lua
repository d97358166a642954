-- SPDX-License-Identifier: MIT
-- What the gate benches (bench/gate.lua, bench/cluster.lua) share: options, shell, pinning, medians.
local M = {}

--- Reads `--name value` options into `values` (numbers where the default is one); `usage` on a stranger.
function M.options(values, usage)
  local i = 1
  while arg[i] do
    local name = arg[i]:match("^%-%-([%w-]+)$")
    local key = name and name:gsub("-", "_")
    if not key or values[key] == nil or arg[i + 1] == nil then error("usage: " .. usage, 0) end
    values[key] = type(values[key]) == "number" and assert(tonumber(arg[i + 1]), "--" .. name .. " N") or arg[i + 1]
    i = i + 2
  end
  return values
end

--- Runs `cmd`; its output (stderr too), or an error naming the command.
function M.sh(cmd)
  local f = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = f:read("*a")
  local ok, _, code = f:close()
  if not ok then error(("command failed (%s): %s\n%s"):format(tostring(code), cmd, out), 0) end
  return out
end

--- The command prefix that pins to the last CPU ("taskset -c N "), or "" on one CPU or without taskset.
function M.pin()
  local ncpu = tonumber(M.sh("nproc")) or 1
  if ncpu >= 2 and os.execute("command -v taskset >/dev/null 2>&1") then
    return ("taskset -c %d "):format(ncpu - 1)
  end
  return ""
end

--- The median of a list (the lower one of an even count), the list left as it was.
function M.median(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c[math.floor((#c + 1) / 2)]
end

return M
