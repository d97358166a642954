-- SPDX-License-Identifier: MIT
-- Issue 22, "the conf to copy": the README's nginx.conf, taken from between its markers, with its
-- placeholders filled as the README says (the resolver from /etc/resolv.conf), passes `nginx -t`
-- run on its own (`nginx -p DIR -c FILE`, whatever /etc/nginx holds); and the stock-nginx variant,
-- included in a copy of Debian's /etc/nginx/nginx.conf (which loads the Lua module through
-- modules-enabled/), has no load_module line and passes `nginx -t` there too.
local V = require("spec.support.compat")
local mock = require("spec.support.mock")

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
if ROOT:sub(1, 1) ~= "/" then ROOT = assert(os.getenv("PWD")) .. (ROOT == "." and "" or "/" .. ROOT) end
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local read = mock.read_file

local function ok_exec(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

local NGINX = (function()
  local p = io.popen('PATH="$PATH:/usr/sbin:/sbin" command -v nginx 2>/dev/null')
  local s = p:read("*l")
  p:close()
  return s
end)()
local has_lua_module = read("/usr/lib/nginx/modules/ngx_http_lua_module.so") ~= nil
local has_luajit_build = read(ROOT .. "/build/luajit/eternaltwin/core.so") ~= nil

-- The block between <!-- conf:NAME:begin --> and its end marker, without the ``` fence.
local function block(name)
  local readme = assert(read(ROOT .. "/README.md"))
  local body = readme:match("<!%-%- conf:" .. name .. ":begin %-%->\n```nginx\n(.-)```\n<!%-%- conf:" .. name .. ":end %-%->")
  assert.is_string(body, "no conf:" .. name .. " block in the README")
  return body
end

-- The resolver as the README says: the first nameserver of /etc/resolv.conf, IPv6 in brackets.
local function resolver()
  local p = io.popen([[awk '/^nameserver/{a=$2; if (a ~ /:/) a="[" a "]"; print a; exit}' /etc/resolv.conf]])
  local r = p:read("*l")
  p:close()
  return (r and r ~= "") and r or "127.0.0.53"
end

local function fill(text, dir, port)
  local out = text:gsub("@SITE_DIR@", dir):gsub("@ETERNALTWIN@", ROOT):gsub("@RESOLVER@", resolver())
    :gsub("@PORT@", tostring(port))
  assert.falsy(out:find("@[%u_]+@"), "a placeholder left: " .. tostring(out:match("@[%u_]+@")))
  return out
end

local function write(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

local ENV = "-u LUA_PATH -u LUA_CPATH ETERNALTWIN_CLIENT_SECRET=spec-secret GATE_STATE_SECRET=spec-state-secret-0123456789abcdef "
  .. "GATE_SESSION_SECRET=spec-session-secret-0123456789abcdef0123 "

local run_it = (NGINX and has_lua_module and has_luajit_build) and it or pending

describe("the README's conf to copy", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(ok_exec("mkdir -p " .. q(dir)))
  end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  run_it("the standalone nginx.conf passes nginx -t once filled in (nginx -p DIR -c FILE)", function()
    local conf = block("standalone")
    for _, w in ipairs({ "events {}", "listen @PORT@;", "pid ", "resolver @RESOLVER@", "load_module " }) do
      assert.truthy(conf:find(w, 1, true), w)
    end
    write(dir .. "/nginx.conf", fill(conf, dir, 18080))
    local out, code = V.run(("cd / && env %s %s -t -p %s -e %s -c %s 2>&1"):format(ENV, NGINX, q(dir .. "/"),
      q(dir .. "/error.log"), q(dir .. "/nginx.conf")))
    assert.are.equal(0, code, out)
    assert.truthy(out:find("test is successful", 1, true), out)
  end)

  run_it("starts with the secrets (and serves its public page); without them, the start fails", function()
    local port
    do   -- a free port: the kernel's pick, when LuaSocket is there
      local ok, socket = pcall(require, "socket")
      local srv = ok and socket.bind("127.0.0.1", 0)
      if srv then local _, pt = srv:getsockname(); port = tonumber(pt); srv:close() else port = 18082 end
    end
    write(dir .. "/nginx.conf", fill(block("standalone"), dir, port))
    local start = ("cd / && %s %s -p %s -e %s -c %s -g 'daemon off;' >%s 2>&1"):format("%s", NGINX, q(dir .. "/"),
      q(dir .. "/error.log"), q(dir .. "/nginx.conf"), q(dir .. "/out"))
    -- Without the secrets: init_by_lua raises, nginx exits at once.
    local _, code = V.run("env -u LUA_PATH -u LUA_CPATH -u GATE_SESSION_SECRET -u GATE_STATE_SECRET timeout 30 "
      .. start:format(""):gsub("^cd / && ", ""))
    assert.are_not.equal(0, code)
    local log = (read(dir .. "/error.log") or "") .. (read(dir .. "/out") or "")
    assert.truthy(log:find("init_by_lua error", 1, true), log)
    -- With them: it serves; stopped through its pid file.
    os.execute(start:format("env " .. ENV) .. " &")
    local body
    for _ = 1, 200 do
      local p = io.popen("curl -s --max-time 1 http://127.0.0.1:" .. port .. "/ 2>/dev/null")
      body = p:read("*a")
      p:close()
      if body ~= "" then break end
      os.execute("sleep 0.1")
    end
    local pid = (read(dir .. "/nginx.pid") or ""):match("%d+")
    if pid then os.execute("kill -QUIT " .. pid) end
    assert.are.equal("a public page\n", body, read(dir .. "/error.log"))
  end)

  local stock = read("/etc/nginx/nginx.conf")
  local stock_it = (stock and stock:find("modules%-enabled") and read("/etc/nginx/modules-enabled/50-mod-http-lua.conf")
    and NGINX and has_luajit_build) and it or pending
  stock_it("the stock-nginx variant: no load_module, and nginx -t passes inside Debian's nginx.conf", function()
    local part = block("stock")
    assert.falsy(part:find("load_module", 1, true))
    write(dir .. "/mysite.conf", fill(part, dir, 18081))
    -- Debian's own nginx.conf, as it stands but for its logs and pid (kept in the temporary folder),
    -- the env lines the README asks for, and our file in place of conf.d/ and sites-enabled/.
    local conf = stock:gsub("\npid [^\n]*", "\npid " .. dir .. "/nginx.pid;")
      :gsub("\nerror_log [^\n]*", "\nerror_log " .. dir .. "/error.log;")
      :gsub("access_log [^;\n]*;", "access_log " .. dir .. "/access.log;")
      :gsub("include /etc/nginx/conf%.d/%*%.conf;", "include " .. dir .. "/mysite.conf;")
      :gsub("include /etc/nginx/sites%-enabled/%*;", "")
    conf = conf:gsub("(include /etc/nginx/modules%-enabled/%*%.conf;)",
      "%1\nenv ETERNALTWIN_CLIENT_SECRET; env GATE_SESSION_SECRET; env GATE_STATE_SECRET;")
    assert.truthy(conf:find("include /etc/nginx/modules-enabled/*.conf;", 1, true))
    assert.truthy(conf:find("include " .. dir .. "/mysite.conf;", 1, true))
    write(dir .. "/nginx.conf", conf)
    local out, code = V.run(("cd / && env %s %s -t -e %s -c %s 2>&1"):format(ENV, NGINX, q(dir .. "/error.log"),
      q(dir .. "/nginx.conf")))
    assert.are.equal(0, code, out)
    -- And the standalone conf's load_module lines in that same file would fail: the reason for the variant.
    write(dir .. "/mysite.conf", "")
    write(dir .. "/nginx.conf", "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n" .. conf)
    out, code = V.run(("cd / && env %s %s -t -e %s -c %s 2>&1"):format(ENV, NGINX, q(dir .. "/error.log"),
      q(dir .. "/nginx.conf")))
    assert.are_not.equal(0, code)
    assert.truthy(out:find("already loaded", 1, true), out)
  end)
end)
