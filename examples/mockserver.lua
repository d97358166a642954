-- SPDX-License-Identifier: MIT
-- For the examples: the Eternaltwin server to talk to. ETERNALTWIN_URL when set; otherwise the
-- bundled mock (mock/etwin-mock) started on a free port, with a function that stops it.
local M = {}

-- The repository root, from this file's path (examples/mockserver.lua), so that the examples start
-- the mock from any working directory.
local ROOT = debug.getinfo(1, "S").source:match("^@(.*)[/\\]examples[/\\][^/\\]*$") or "."

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- Starts the bundled mock on a free port, its command line after `prefix` (e.g. a `taskset` call);
-- returns its base URL and a stop function.
function M.spawn(prefix)
  local pidfile = os.tmpname()
  local cmd = shell_quote(ROOT .. "/mock/etwin-mock") .. " --port 0 --pidfile " .. pidfile
  local out = assert(io.popen((prefix or "exec ") .. cmd, "r"))
  local port
  for line in out:lines() do
    port = line:match("^listening (%d+)")
    if port then break end
  end
  local function stop()
    local f = io.open(pidfile)
    local pid = f and f:read("*n")
    if f then f:close() end
    if pid then os.execute(string.format("kill %d 2>/dev/null", pid)) end
    out:close()
    os.remove(pidfile)
  end
  if not port then stop(); error("the mock server did not start (see its output above)") end
  return "http://127.0.0.1:" .. port .. "/", stop
end

--- Returns the base URL (ETERNALTWIN_URL, or the mock started here) and a stop function.
function M.start()
  local url = os.getenv("ETERNALTWIN_URL")
  if url then return url, function() end end
  return M.spawn()
end

--- Runs `main(url)` against the server, stops the mock whatever happens, exits 1 on failure.
function M.run(main)
  local url, stop = M.start()
  local ok, result, err = pcall(main, url)
  stop()
  if not ok then error(result, 0) end
  if not result then
    io.stderr:write("example failed: ", tostring(err), "\n")
    os.exit(1)
  end
end

return M
