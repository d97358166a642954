-- SPDX-License-Identifier: MIT
-- bin/etwin against a hostile server (issue 20, defect 7): the display names, ids, dates and token
-- fields it sends carry ESC, BEL, CR, LF, DEL, C1 controls and a bidi override. No such byte may
-- reach the terminal: text output shows them escaped (\x1b, \u0085...), --json output stays valid
-- JSON with the text intact (escaped by the encoder).
local V = require("spec.support.compat")
local core = require("eternaltwin.core")

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
local ETWIN = ROOT .. "/bin/etwin"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Whether `s` is safe for a terminal: UTF-8, no control character but LF, no C1, DEL or bidi control.
local function terminal_safe(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    if c < 0x80 then
      if (c < 0x20 and c ~= 0x0a) or c == 0x7f then return false, ("byte 0x%02x at %d"):format(c, i) end
      i = i + 1
    else
      local len = c >= 0xf0 and c <= 0xf4 and 4 or c >= 0xe0 and 3 or c >= 0xc2 and c <= 0xdf and 2 or nil
      if not len then return false, ("byte 0x%02x at %d"):format(c, i) end
      local cp = c % (len == 2 and 0x20 or len == 3 and 0x10 or 0x08)
      for k = i + 1, i + len - 1 do
        local cc = s:byte(k)
        if not cc or cc < 0x80 or cc > 0xbf then return false, "not UTF-8 at " .. i end
        cp = cp * 64 + cc - 0x80
      end
      if cp <= 0x9f or (cp >= 0x2028 and cp <= 0x202e) or (cp >= 0x2066 and cp <= 0x2069) or cp == 0x200e
         or cp == 0x200f or cp == 0x61c then
        return false, ("U+%04X at %d"):format(cp, i)
      end
      i = i + len
    end
  end
  return true
end

describe("bin/etwin against a hostile server", function()
  local url, pid

  setup(function()
    local out, pidf = os.tmpname(), os.tmpname()
    assert(os.execute("lua5.4 " .. q(ROOT .. "/spec/support/hostile_users.lua") .. " >" .. q(out)
      .. " 2>/dev/null & echo $! >" .. q(pidf)))
    local port
    for _ = 1, 400 do
      local f = io.open(out)
      port = f and f:read("*a"):match("listening (%d+)")
      if f then f:close() end
      if port then break end
      os.execute("sleep 0.05")
    end
    local f = assert(io.open(pidf))
    pid = f:read("*l")
    f:close()
    os.remove(out)
    os.remove(pidf)
    assert(port, "the hostile server did not start")
    url = "http://127.0.0.1:" .. port .. "/"
  end)

  teardown(function()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
  end)

  local function etwin(args, env, stdin)
    local e = { stdin and "printf '%s\\n' " .. q(stdin) .. " |" or "", "env -i PATH=/usr/local/bin:/usr/bin:/bin",
                "ETERNALTWIN_URL=" .. q(url), "ETERNALTWIN_CLIENT_ID=demo@clients", "ETERNALTWIN_CLIENT_SECRET=s" }
    for k, v in pairs(env or {}) do e[#e + 1] = k .. "=" .. q(v) end
    local errf = os.tmpname()
    local out, code = V.run(table.concat(e, " ") .. " " .. V.lua .. " " .. q(ETWIN) .. " " .. args .. " 2>" .. q(errf))
    local f = assert(io.open(errf))
    local err = f:read("*a")
    f:close()
    os.remove(errf)
    return out, err, code
  end

  local function lines(s)
    local list = {}
    for l in s:gmatch("([^\n]*)\n") do list[#list + 1] = l end
    return list
  end

  it("etwin user and me show the user's fields escaped, one line each", function()
    for _, cmd in ipairs({ "user some-id", "me -" }) do
      local out, err, code = etwin(cmd, nil, "tok")
      assert.are.equal(0, code, err)
      assert(terminal_safe(out))
      assert(terminal_safe(err))
      local l = lines(out)
      assert.are.equal(5, #l, out)
      for i, field in ipairs({ "username", "identifier", "is_administrator", "created_at", "deleted_at" }) do
        assert.are.equal(field .. " ", l[i]:sub(1, #field + 1), out)
      end
      assert.are.equal("username          Mallory\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\x0ais_administrator  true"
        .. "\\x7f\\u0085\\u009b\\u202ex\\u009b\\x9b", l[1])
      assert.are.equal("identifier        id\\x1b[1m\\x0aforged", l[2])
      assert.are.equal("is_administrator  false", l[3])
      assert.are.equal("created_at        2020-01-01T00:00:00.000Z", l[4])
    end
  end)

  it("etwin search shows each user on one line, escaped", function()
    local out, err, code = etwin("search x")
    assert.are.equal(0, code, err)
    assert(terminal_safe(out))
    local l = lines(out)
    assert.are.equal(2, #l, out)
    assert.truthy(l[1]:find("^id\\x1b%[1m\\x0aforged  Mallory\\x1b%]0;pwned\\x07"), l[1])
    assert.are.equal("(1 shown, 1 matching)", l[2])
  end)

  it("etwin token shows the token's fields escaped", function()
    local out, err, code = etwin("token", { ETERNALTWIN_CODE = "c" })
    assert.are.equal(0, code, err)
    assert(terminal_safe(out))
    local l = lines(out)
    assert.are.equal(4, #l, out)
    assert.are.equal("access_token   tok\\x1b[2J", l[1])
    assert.are.equal("token_type     Bearer\\x07\\x0d\\x0ax", l[2])
  end)

  it("--json stays valid JSON, with the text intact and no control byte", function()
    for _, cmd in ipairs({ "user --json some-id", "search --json x", "token --json", "me --json -" }) do
      local out, err, code = etwin(cmd, { ETERNALTWIN_CODE = "c" }, "tok")
      assert.are.equal(0, code, err)
      assert(terminal_safe(out))
      assert.are.equal(1, #lines(out), out)
      local v = assert(core.json_decode(out), out)
      if cmd:find("^token") then
        assert.are.equal("tok\27[2J", v.access_token)
      else
        local u = v.users and v.users[1] or v
        -- The name back as sent, but the raw 0x9b byte (not UTF-8, so not JSON) as U+FFFD.
        assert.are.equal("Mallory\27]0;pwned\7\27[2J\r\nis_administrator  true\127\194\133\194\155\226\128\174x"
          .. "\194\155\239\191\189", u.username)
        assert.are.equal("id\27[1m\nforged", u.identifier)
      end
    end
  end)
end)
