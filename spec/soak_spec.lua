-- Soak (tag #soak): 50,000 requests through one poller with 2% injected faults (503s, dropped
-- connections, timeouts), in a fresh Lua process (spec/support/soak.lua) so that its file descriptors
-- and RSS are its own. Every call returns a value or an error, none hangs, the counts add up exactly,
-- and open file descriptors, RSS and the Lua heap come back to their baseline. Bounded: under 60 s.
local V = require("spec.support.compat")
local mock = require("spec.support.mock")

local TOTAL = tonumber(os.getenv("ETWIN_SOAK_REQUESTS")) or 50000

describe("soak #soak", function()
  it(("%d requests through the poller with 2%% faults"):format(TOTAL), function()
    -- ETWIN_LUA: how `make check` starts a Lua like this one (with the sanitizer runtime).
    local cmd = ("%s -e %q spec/support/soak.lua %s %d 2>&1"):format(V.lua,
      ("package.path = %q; package.cpath = %q"):format(package.path, package.cpath), mock.get().url, TOTAL)
    -- `timeout` bounds the whole run: a hang fails the spec instead of the suite.
    local p = assert(io.popen("timeout 90 " .. cmd))
    local out = p:read("*a")
    p:close()
    local line = out:match("soak [^\n]*")
    assert.truthy(line, out)
    local n = {}
    for k, v in line:gmatch("(%a+)=([%d.,/]+)") do n[k] = v end
    local function pair(k) local a, b = n[k]:match("([%d.]+)[,/]([%d.]+)") return tonumber(a), tonumber(b) end
    assert.are.equal("0", n.live, "tasks still live after 90 s: something hangs")
    assert.are.equal(TOTAL, tonumber(n.calls))
    assert.are.equal("0", n.other, line)
    for _, k in ipairs({ "ok", "status", "reset", "timeout" }) do
      local got, want = pair(k)
      assert.are.equal(want, got, k .. ": " .. line)
    end
    assert.is_true(tonumber(n.took) < 60, line)
    local fds, fds2 = pair("fds")
    assert.is_true(fds2 <= fds + 1, line)
    local heap, heap2 = pair("heap")
    assert.is_true(heap2 <= heap + 1024, line)
    -- (AddressSanitizer's quarantine holds freed memory on purpose: no RSS bound under make check)
    if not os.getenv("ASAN_OPTIONS") then
      local rss, rss2 = pair("rss")
      assert.is_true(rss2 <= rss + 16 * 1024, line)
    end
    print("\n" .. line)
  end)
end)
