-- SPDX-License-Identifier: MIT
-- Issue 22, "install like a rock": `make rock` makes a source rock that luarocks installs into a
-- temporary tree for the Lua under test with no network (in a network namespace of its own where
-- `unshare` allows it); from that tree alone, elsewhere on disk, `etwin` runs, `etwin mock --help`
-- lists the mock's flags, `etwin mock` starts the bundled mock, and `luarocks doc` finds the API
-- reference's index.html.
local V = require("spec.support.compat")
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")
local mock = require("spec.support.mock")

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local read = mock.read_file

local VERSION = eternaltwin._VERSION:match("(%d+%.%d+%.%d+)$")
local ROCK = "build/eternaltwin-" .. VERSION .. "-1.src.rock"
local LV = V.name == "luajit" and "5.1" or V.name:match("%d+%.%d+")

local function ok_exec(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

-- Offline for sure where a user network namespace can be made (root or unprivileged userns).
local OFFLINE = ok_exec("unshare -rn true >/dev/null 2>&1") and "unshare -rn " or ""

local has_nginx = ok_exec("PATH=$PATH:/usr/sbin command -v nginx >/dev/null 2>&1")
  and read("/usr/lib/nginx/modules/ngx_http_lua_module.so") ~= nil

describe("make rock", function()
  local tree
  setup(function()
    tree = os.tmpname()
    os.remove(tree)
  end)
  teardown(function()
    if tree then os.execute("rm -rf " .. q(tree)) end
  end)

  it("makes a source rock: the versioned rockspec and the release tarball, with the API reference", function()
    local out, code = V.run("make -s rock 2>&1")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("rock: " .. ROCK, 1, true), out)
    local list = V.run("unzip -Z1 " .. q(ROCK))
    assert.truthy(list:find("eternaltwin-" .. VERSION .. "-1.rockspec\n", 1, true), list)
    assert.truthy(list:find("eternaltwin-" .. VERSION .. ".tar.gz", 1, true), list)
    local files = V.run("tar -tzf build/eternaltwin-" .. VERSION .. ".tar.gz")
    assert.truthy(files:find("eternaltwin-" .. VERSION .. "/doc/index.html\n", 1, true))
    assert.truthy(files:find("eternaltwin-" .. VERSION .. "/mock/etwin-mock\n", 1, true))
  end)

  it("installs with luarocks --lua-version=" .. LV .. " --tree T, offline, and runs from that tree", function()
    local out, code = V.run(("cd / && %stimeout 900 luarocks --lua-version=%s install --tree %s %s 2>&1")
      :format(OFFLINE, LV, q(tree), q(os.getenv("PWD") .. "/" .. ROCK)))
    assert.are.equal(0, code, out)
    local etwin = tree .. "/bin/etwin"
    -- The command from the tree, in an empty environment, from another directory.
    out, code = V.run("cd / && env -i PATH=/usr/bin:/bin " .. q(etwin) .. " --version 2>&1")
    assert.are.equal(0, code, out)
    assert.are.equal(eternaltwin._VERSION .. "\n", out)
    -- The module from the tree alone, in the Lua under test.
    out, code = V.run(("cd / && env -i PATH=/usr/bin:/bin LUA_PATH=%s LUA_CPATH=%s %s -e %s 2>&1"):format(
      q(tree .. "/share/lua/" .. LV .. "/?.lua;" .. tree .. "/share/lua/" .. LV .. "/?/init.lua"),
      q(tree .. "/lib/lua/" .. LV .. "/?.so"), V.lua,
      q('local e = require("eternaltwin"); assert(e.keys.HS256Key("k") and e.poller()); print(e._VERSION)')))
    assert.are.equal(0, code, out)
    -- The reference: `luarocks doc` finds its index.html.
    out = V.run(("luarocks --lua-version=%s --tree %s doc --list eternaltwin 2>&1"):format(LV, q(tree)))
    assert.truthy(out:find("index.html", 1, true), out)
    -- mock --help lists the mock's flags only.
    out, code = V.run("cd / && env -i PATH=/usr/bin:/bin " .. q(etwin) .. " mock --help 2>&1")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("--tls-port", 1, true), out)
    assert.falsy(out:find("--client-secret", 1, true), out)
  end)

  local nginx_it = has_nginx and it or pending
  nginx_it("etwin mock starts the bundled mock from the installed rock", function()
    local etwin = tree .. "/bin/etwin"
    assert.truthy(read(etwin), "the previous test installs the rock")
    local out = os.tmpname()
    local p = assert(io.popen(("cd / && env -i PATH=/usr/bin:/bin:/usr/sbin %s mock --port 0 >%s 2>&1 & echo $!")
      :format(q(etwin), q(out))))
    local pid = assert(tonumber(p:read("*l")))
    p:close()
    local port
    local deadline = core.monotime() + 60
    while not port and core.monotime() < deadline do
      port = (read(out) or ""):match("listening (%d+)")
      if not port then core.sleep(0.1) end
    end
    local text = read(out) or ""
    assert.is_string(port, text)
    local c = eternaltwin.new{ client_id = "demo@clients", client_secret = "dev_secret",
      redirect_uri = "http://localhost:8000/oauth/callback", state_key = keys.HS256Key("k"),
      url = "http://127.0.0.1:" .. port .. "/", timeout = 10 }
    local users = assert(assert(c.users:search("ali")):json())
    assert.are.equal("Alice", users.items[1].display_name.current.value)
    c:close()
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    os.remove(out)
  end)
end)
