-- Client construction, options, URLs, authorization_url, tostring.
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")

local SECRET = "s3cr3t-client-secret-value"

local function new(opts)
  local o = { client_id = "demo@clients", client_secret = SECRET,
              redirect_uri = "http://localhost:8000/oauth/callback",
              state_key = keys.HS256Key("state key for tests") }
  for k, v in pairs(opts or {}) do o[k] = v end
  return eternaltwin.new(o)
end

-- Python's urllib.parse.urlencode, for byte-for-byte comparison.
local function python_urlencode(pairs_list)
  local args = {}
  for _, p in ipairs(pairs_list) do
    local function hex(v) return (v:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
    args[#args + 1] = string.format("(bytes.fromhex('%s'), bytes.fromhex('%s'))", hex(p[1]), hex(p[2]))
  end
  local script = "import sys, urllib.parse; sys.stdout.write(urllib.parse.urlencode([" ..
    table.concat(args, ",") .. "]))"
  local f = assert(io.popen('/usr/bin/python3 -c "' .. script .. '"'))
  local out = f:read("*a")
  f:close()
  return out
end

describe("eternaltwin.new", function()
  it("accepts the positional form and the table form alike", function()
    local key = keys.HS256Key("k")
    local a = eternaltwin.new("demo@clients", SECRET, "http://cb/", key, { url = "http://localhost:50320" })
    local b = eternaltwin.new{ client_id = "demo@clients", client_secret = SECRET, redirect_uri = "http://cb/",
                               state_key = key, host = "localhost", port = 50320 }
    assert.are.equal("http://localhost:50320/", a.url)
    assert.are.equal(a.url, b.url)
    assert.are.equal("demo@clients", b.client_id)
    assert.are.equal(5, a.timeout)
    assert.is_true(a.verify_ssl)
    assert.is_false(a.allow_redirects)
  end)

  it("builds the base URL from scheme, host, port and prefix", function()
    assert.are.equal("https://etwin.example/", new{ scheme = "https", host = "etwin.example" }.url)
    assert.are.equal("http://h:8080/etwin/", new{ host = "h", port = "8080", prefix = "etwin" }.url)
    assert.are.equal("http://h/a/b/", new{ host = "h", prefix = "/a/b/" }.url)
  end)

  it("resolves endpoints under the prefix, and absolute URLs as given", function()
    local c = new{ url = "http://h:1/etwin/" }
    assert.are.equal("http://h:1/etwin/oauth/token", c:resolve("/oauth/token"))
    assert.are.equal("http://h:1/etwin/api/v1/users", c:resolve("api/v1/users"))
    assert.are.equal("https://other/x", c:resolve("https://other/x"))
  end)

  it("raises an argument error naming the option", function()
    local cases = {
      { { url = nil }, "'url' or 'host'" },
      { { url = "http://a/", host = "b" }, "not both" },
      { { url = "ftp://a/" }, "option 'url'" },
      { { url = "http://a/", timeout = "5" }, "option 'timeout'" },
      { { url = "http://a/", timeout = -1 }, "option 'timeout'" },
      { { url = "http://a/", verify_ssl = 1 }, "option 'verify_ssl'" },
      { { url = "http://a/", retries = 1.5 }, "option 'retries'" },
      { { url = "http://a/", timout = 3 }, "unknown option 'timout'" },
      { { host = "h", port = 70000 }, "option 'port'" },
      { { host = "h", scheme = "gopher" }, "option 'scheme'" },
      { { url = "http://a/", state_key = "nope" }, "option 'state_key'" },
      { { url = "http://a/", client_secret = 42 }, "option 'client_secret'" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(new, case[1])
      assert.is_false(ok)
      assert.truthy(tostring(err):find(case[2], 1, true), tostring(err) .. " lacks " .. case[2])
    end
    assert.has_error(function() eternaltwin.new("id", SECRET, "http://cb/") end)
  end)

  it("never shows the secret", function()
    local c = new{ url = "http://localhost:1/" }
    local s = tostring(c)
    assert.truthy(s:find("demo@clients", 1, true))
    assert.falsy(s:find(SECRET, 1, true))
    for k, v in pairs(c) do
      assert.are_not.equal(SECRET, v, "field " .. tostring(k))
    end
  end)
end)

describe("client:authorization_url", function()
  it("matches Python's urlencode byte for byte", function()
    local cases = {
      { "state", "http://localhost:8000/oauth/callback", "demo@clients" },
      { "a b+c/d?e=f&g#h~i*j'k(l)m!n", "https://app.example/cb?x=1&y=z z", "ü@clients" },
      { "\1\2\127\255é中", "http://[::1]:8080/cb", "app_1.2-3~4" },
    }
    for _, c in ipairs(cases) do
      local client = new{ url = "http://localhost:50320/", redirect_uri = c[2], client_id = c[3] }
      local want = "http://localhost:50320/oauth/authorize?" .. python_urlencode({
        { "response_type", "code" }, { "access_type", "offline" }, { "client_id", c[3] },
        { "scope", "base" }, { "state", c[1] }, { "redirect_uri", c[2] } })
      assert.are.equal(want, client:authorization_url(c[1]))
    end
  end)

  it("takes a scope and keeps the parameter order", function()
    local url = new{ url = "http://h/p/" }:authorization_url("s", "base other")
    assert.are.equal("http://h/p/oauth/authorize?response_type=code&access_type=offline&client_id=demo%40clients"
      .. "&scope=base+other&state=s&redirect_uri=http%3A%2F%2Flocalhost%3A8000%2Foauth%2Fcallback", url)
  end)

  it("raises on a non-string state", function()
    assert.has_error(function() new{ url = "http://h/" }:authorization_url(nil) end)
    assert.has_error(function() new{ url = "http://h/" }:authorization_url({}) end)
  end)
end)

describe("eternaltwin.Token", function()
  it("computes the expiration as Python does and hides the secrets", function()
    local before = os.time()
    local t = eternaltwin.Token{ access_token = "AT-secret-123", expires_in = 3600, token_type = "Bearer",
                                 refresh_token = "RT-secret-456" }
    assert.is_true(t.expiration >= before + 3540 and t.expiration <= os.time() + 3540)
    assert.is_false(t:has_expired())
    local s = tostring(t)
    assert.falsy(s:find("AT-secret", 1, true))
    assert.falsy(s:find("RT-secret", 1, true))
    assert.truthy(s:find("Bearer", 1, true))
    assert.is_true(eternaltwin.Token{ access_token = "x", expires_in = 60, token_type = "Bearer" }:has_expired())
  end)

  it("raises on missing or ill-typed fields", function()
    assert.has_error(function() eternaltwin.Token{ expires_in = 1, token_type = "Bearer" } end)
    assert.has_error(function() eternaltwin.Token{ access_token = "a", expires_in = "1", token_type = "B" } end)
    assert.has_error(function() eternaltwin.Token("x") end)
  end)
end)

describe("eternaltwin module", function()
  it("exposes its version, null and error kinds", function()
    assert.truthy(eternaltwin._VERSION:match("^eternaltwin %d+%.%d+%.%d+"))
    assert.are.equal(require("eternaltwin.core").null, eternaltwin.null)
    assert.are.equal("RequestError", eternaltwin.errors.RequestError)
    local n = 0
    for k, v in pairs(eternaltwin.errors) do assert.are.equal(k, v); n = n + 1 end
    assert.are.equal(7, n)   -- with InvalidTicketError
  end)

  it("loads twice", function()
    package.loaded["eternaltwin"] = nil
    package.loaded["eternaltwin.core"] = nil
    local again = require("eternaltwin")
    assert.is_function(again.new)
  end)
end)

describe("userinfo in the base URL", function()
  local client = require("spec.support.fixtures").client

  it("is refused, and the message does not show the password", function()
    local ok, err = pcall(client, { url = "http://user:s3cr3t-pw@127.0.0.1:1/" })
    assert.is_false(ok)
    assert.matches("userinfo", err, 1, true)
    assert.is_nil(err:find("s3cr3t", 1, true))
    ok = pcall(client, { url = "http://user@127.0.0.1:1/" })
    assert.is_false(ok)
    -- An @ in the path is fine.
    assert(pcall(client, { url = "http://127.0.0.1:1/a@b/" }))
  end)
end)

describe("a dot for a colon says so", function()
  local fixtures = require("spec.support.fixtures")
  local client = fixtures.client()

  local function raises(pattern, f)
    local ok, msg = pcall(f)
    assert.is_false(ok)
    assert.truthy(tostring(msg):find(pattern, 1, true), msg)
    return msg
  end

  it("client.get, client.post, client.request, client.generate_state, client.validate_state, client.token", function()
    local msg = raises("bad self to 'get' (client expected, got string: call it as client:get(...), with a colon)",
      function() client.get("api/v1/clock") end)
    assert.truthy(msg:find("client_spec%.lua:%d+:"), msg)   -- points at the caller's line
    raises("call it as client:post(...)", function() client.post("api/v1/clock") end)
    raises("call it as client:request(...)", function() client.request("GET", "api/v1/clock") end)
    raises("bad self to 'generate_state' (client expected, got nil", function() client.generate_state() end)
    raises("call it as client:validate_state(...)", function() client.validate_state("x") end)
    raises("call it as client:token(...)", function() client.token("code") end)
    raises("call it as client:authorization_url(...)", function() client.authorization_url("s") end)
    raises("call it as client:refresh(...)", function() client.refresh("rt") end)
  end)

  it("client.users.get, .me and .search", function()
    raises("bad self to 'users:get' (client.users expected, got string: call it as client.users:get(...)",
      function() client.users.get("c5020923-b4b2-51a5-8a1d-ee5a10de03a3") end)
    raises("call it as client.users:me(...)", function() client.users.me() end)
    raises("call it as client.users:search(...)", function() client.users.search("ali") end)
  end)

  it("argument errors from get and post name get and post, not request", function()
    raises("bad argument to 'get' (endpoint string expected, got number)", function() client:get(3) end)
    raises("bad argument to 'post' (unknown option 'bogus')", function() client:post("x", { bogus = 1 }) end)
    raises("bad argument to 'get' ('params': table expected)", function() client:get("x", { params = 1 }) end)
    raises("bad argument to 'request' (method name expected)", function() client:request(1, "x") end)
  end)

  it("the colon calls still work", function()
    assert.are.equal(200, assert(client:get("api/v1/clock")).status_code)
    assert.are.equal(200, assert(client.users:me()).status_code)
  end)
end)
