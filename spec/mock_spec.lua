-- SPDX-License-Identifier: MIT
-- The local Eternaltwin mock (mock/etwin-mock) against etwin-api.md, exercised with the curl CLI.
local mock = require("spec.support.mock")
local V = require("spec.support.compat")

local q, read_all = mock.shell_quote, mock.read_file

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function b64(s)
  local p = assert(io.popen("printf %s " .. q(s) .. " | base64 -w0"))
  local out = p:read("*a")
  p:close()
  return out
end

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- Minimal JSON decoding for the assertions: the mock's bodies are small, well-formed objects.
local function json(s)
  local pos = 1
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = s:sub(pos, pos)
      if c == '"' then pos = pos + 1 return table.concat(out) end
      if c == "\\" then
        local e = s:sub(pos + 1, pos + 1)
        local map = { n = "\n", t = "\t", r = "\r", b = "\b", f = "\f", ["/"] = "/", ['"'] = '"', ["\\"] = "\\" }
        if e == "u" then
          out[#out + 1] = V.utf8_char(tonumber(s:sub(pos + 2, pos + 5), 16))
          pos = pos + 6
        else
          out[#out + 1] = assert(map[e], "bad escape")
          pos = pos + 2
        end
      elseif c == "" then error("unterminated string")
      else out[#out + 1] = c pos = pos + 1 end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1 ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws()
        local k = str()
        ws() assert(s:sub(pos, pos) == ":", "expected :") pos = pos + 1
        t[k] = value()
        ws()
        local d = s:sub(pos, pos) pos = pos + 1
        if d == "}" then return t end
        assert(d == ",", "expected , in object")
      end
    elseif c == "[" then
      local t = {}
      pos = pos + 1 ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        t[#t + 1] = value()
        ws()
        local d = s:sub(pos, pos) pos = pos + 1
        if d == "]" then return t end
        assert(d == ",", "expected , in array")
      end
    elseif c == '"' then return str()
    elseif s:find("^true", pos) then pos = pos + 4 return true
    elseif s:find("^false", pos) then pos = pos + 5 return false
    elseif s:find("^null", pos) then pos = pos + 4 return json
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      assert(num and #num > 0, "bad JSON at " .. pos .. ": " .. s)
      pos = pos + #num
      return V.tointeger(tonumber(num)) or tonumber(num)
    end
  end
  local v = value()
  ws()
  assert(pos > #s, "trailing text in JSON: " .. s)
  return v
end
local NULL = json  -- json() decodes null to itself (a unique sentinel)

local hfile, bfile, dfile = os.tmpname(), os.tmpname(), os.tmpname()

-- One HTTP exchange through curl. opts: headers (array), body (string), json (raw JSON text),
-- form (raw form text), cookie, bearer, basic ({user, pass}), url (absolute), extra (curl args).
-- Returns { status, headers (lower-case names, arrays), body, exit (curl exit code), json() }.
local function request(method, path, opts)
  opts = opts or {}
  local url = opts.url or (mock.get().url .. path:gsub("^/", ""))
  local args = { "curl -s -X", q(method), "-D", q(hfile), "-o", q(bfile), "-w '%{http_code} %{num_redirects}'",
                 "--max-time 20" }
  local headers = opts.headers or {}
  if opts.json then
    headers[#headers + 1] = "Content-Type: application/json"
    opts.body = opts.json
  elseif opts.form then
    headers[#headers + 1] = "Content-Type: application/x-www-form-urlencoded"
    opts.body = opts.form
  end
  if opts.cookie then headers[#headers + 1] = "Cookie: sid=" .. opts.cookie end
  if opts.bearer then headers[#headers + 1] = "Authorization: Bearer " .. opts.bearer end
  if opts.basic then headers[#headers + 1] = "Authorization: Basic " .. b64(opts.basic[1] .. ":" .. opts.basic[2]) end
  for _, h in ipairs(headers) do args[#args + 1] = "-H " .. q(h) end
  if opts.body then
    local f = assert(io.open(dfile, "wb"))
    f:write(opts.body)
    f:close()
    args[#args + 1] = "--data-binary @" .. q(dfile)
  end
  if opts.extra then args[#args + 1] = opts.extra end
  args[#args + 1] = q(url)
  os.remove(hfile)
  os.remove(bfile)
  local out, exit = V.run(table.concat(args, " "))
  local res = { exit = exit, body = read_all(bfile) or "", headers = {} }
  res.status = tonumber(out:match("^(%d+)"))
  res.redirects = tonumber(out:match(" (%d+)$"))
  local head = read_all(hfile) or ""
  -- Keep the last header block (after redirects).
  for block in head:gmatch("HTTP/[^\r\n]*\r\n.-\r\n\r\n") do
    res.headers = {}
    for name, value in block:gmatch("\n([^:\r\n]+):%s*([^\r\n]*)") do
      name = name:lower()
      res.headers[name] = res.headers[name] or {}
      table.insert(res.headers[name], value)
    end
  end
  res.header = function(name) local v = res.headers[name:lower()] return v and v[1] end
  res.json = function() return json(res.body) end
  return res
end

local function get(path, opts) return request("GET", path, opts) end

local function assert_error(res, status, name)
  assert.are.equal(status, res.status, res.body)
  assert.are.equal("application/json; charset=utf-8", res.header("content-type"))
  assert.are.same({ error = name }, res.json())
end

-- Form-decodes a query string into a table.
local function parse_query(s)
  local t = {}
  for k, v in (s or ""):gmatch("([^&=]+)=([^&]*)") do
    local function dec(x) return (x:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end
    t[dec(k)] = dec(v)
  end
  return t
end

local PASSWORDS = { alice = "alice-password", bob = "bob-password", charlie = "charlie-password" }
local CALLBACK = "http://localhost:8000/oauth/callback"
local DEMO = { "demo@clients", "dev_secret" }

local function login(name)
  local res = request("PUT", "api/v1/auth/self?method=Etwin",
    { json = string.format('{"login":"%s","password":"%s"}', name, hex(PASSWORDS[name])) })
  assert.are.equal(200, res.status, res.body)
  return res.header("set-cookie"):match("^sid=([^;]+)"), res
end

local function authorize(sid, client, extra)
  local res = get("oauth/authorize?response_type=code&client_id=" .. (client or "demo@clients")
    .. "&scope=base&state=st4te" .. (extra or ""), { cookie = sid })
  assert.are.equal(302, res.status, res.body)
  local location = res.header("location")
  return parse_query(location:match("%?(.*)$")), location
end

local function code_for(name, client)
  local sid = login(name)
  return authorize(sid, client).code
end

local function exchange(code, opts)
  opts = opts or {}
  return request("POST", "oauth/token", {
    basic = opts.basic or DEMO,
    json = opts.json or string.format('{"grant_type":"authorization_code","code":"%s"}', code),
  })
end

local function token_for(name)
  local res = exchange(code_for(name))
  assert.are.equal(200, res.status, res.body)
  return res.json().access_token, res
end

local function put_json(path, text)
  local res = request("PUT", path, { json = text })
  assert.are.equal(200, res.status, res.body)
  return res.json()
end

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local TIME = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

describe("mock server", function()
  setup(function() mock.get() end)
  before_each(function() mock.reset() end)
  teardown(function()
    for _, f in ipairs({ hfile, bfile, dfile }) do os.remove(f) end
  end)

  describe("start-up", function()
    it("exposes URLs, ports and a certificate", function()
      local m = mock.get()
      assert.are.equal("http://127.0.0.1:" .. m.port .. "/", m.url)
      assert.are.equal("https://localhost:" .. m.tls_port .. "/", m.tls_url)
      assert.is_truthy(read_all(m.cert):find("BEGIN CERTIFICATE", 1, true))
    end)

    it("serves HTTP/2 over TLS with the generated certificate as CA", function()
      local m = mock.get()
      local res = get("", { url = m.tls_url .. "api/v1/clock", extra = "--http2 --cacert " .. q(m.cert) })
      assert.are.equal(200, res.status)
      assert.is_truthy(res.json().time:find(TIME))
      local p = assert(io.popen("curl -s -o /dev/null -w '%{http_version}' --http2 --cacert " .. q(m.cert) .. " "
        .. q(m.tls_url .. "api/v1/clock")))
      assert.are.equal("2", p:read("*a"))
      p:close()
    end)

    it("starts a private instance with another config, and stops it", function()
      local cfg = os.tmpname()
      local f = assert(io.open(cfg, "w"))
      f:write('[seed.app.solo]\ndisplay_name = "Solo"\nuri = "http://x/"\noauth_callback = "http://x/cb"\n',
              'secret = "s"\nid = "11111111-2222-4333-8444-555555555555"\n',
              '[seed.user.zed]\nusername = "zed"\npassword = "p"\nis_administrator = false\n')
      f:close()
      local inst = mock.start{ config = cfg, tls = false }
      local res = get("", { url = inst.url .. "api/v1/users?q=" })
      assert.are.equal(1, res.json().count)
      local ctx = get("", { url = inst.url .. "api/v1/auth/self", basic = { "11111111-2222-4333-8444-555555555555", "s" } })
      assert.are.same({ type = "OauthClient", id = "11111111-2222-4333-8444-555555555555", key = "solo@clients",
                        display_name = "Solo" }, ctx.json().client)
      inst.stop()
      assert.are_not.equal(0, get("", { url = inst.url .. "api/v1/clock" }).exit)
      os.remove(cfg)
    end)

    it("reports a bad config with the mock's log", function()
      local cfg = os.tmpname()
      local f = assert(io.open(cfg, "w"))
      f:write("[seed.user.x]\nusername = [1]\n")
      f:close()
      local ok, err = pcall(mock.start, { config = cfg, tls = false })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("unsupported value", 1, true))
      os.remove(cfg)
    end)
  end)

  describe("auth context and sessions", function()
    it("is Guest without credentials", function()
      local res = get("api/v1/auth/self")
      assert.are.equal(200, res.status)
      assert.are.equal("application/json; charset=utf-8", res.header("content-type"))
      assert.are.same({ type = "Guest", scope = "Default" }, res.json())
    end)

    it("logs in with a hex password, sets sid, returns the self view", function()
      local sid, res = login("alice")
      assert.is_truthy(sid:find(UUID))
      assert.are.equal("sid=" .. sid .. "; Path=/; HttpOnly", res.header("set-cookie"))
      local u = res.json()
      assert.are.equal("User", u.type)
      assert.are.equal("alice", u.username)
      assert.are.equal("Alice", u.display_name.current.value)
      assert.is_true(u.is_administrator)
      assert.is_true(u.has_password)
      assert.are.equal(NULL, u.deleted_at)
      assert.is_truthy(u.created_at:find(TIME))
    end)

    it("gives a User context for the session, then Guest after logout", function()
      local sid = login("bob")
      local ctx = get("api/v1/auth/self", { cookie = sid }).json()
      assert.are.equal("User", ctx.type)
      assert.are.equal("Default", ctx.scope)
      assert.is_false(ctx.is_administrator)
      assert.are.equal("Bob", ctx.user.display_name.current.value)
      assert.are.equal("User", ctx.user.type)
      local out = request("DELETE", "api/v1/auth/self", { cookie = sid })
      assert.are.equal(200, out.status)
      assert.are.same({ type = "Guest", scope = "Default" }, out.json())
      assert.are.equal("sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly", out.header("set-cookie"))
      assert.are.same({ type = "Guest", scope = "Default" }, get("api/v1/auth/self", { cookie = sid }).json())
    end)

    it("the first seeded user is the administrator", function()
      assert.is_true(get("api/v1/auth/self", { cookie = login("alice") }).json().is_administrator)
    end)

    it("refuses bad methods and credentials", function()
      local body = '{"login":"alice","password":"' .. hex("alice-password") .. '"}'
      assert_error(request("PUT", "api/v1/auth/self", { json = body }), 422, "InvalidMethod")
      assert_error(request("PUT", "api/v1/auth/self?method=etwin", { json = body }), 422, "InvalidMethod")
      assert_error(request("PUT", "api/v1/auth/self?method=Etwin",
        { json = '{"login":"alice","password":"' .. hex("nope") .. '"}' }), 401, "InvalidCredentials")
      assert_error(request("PUT", "api/v1/auth/self?method=Etwin",
        { json = '{"login":"alice","password":"alice-password"}' }), 401, "InvalidCredentials")
      assert_error(request("PUT", "api/v1/auth/self?method=Etwin",
        { json = '{"login":"nobody","password":"' .. hex("x") .. '"}' }), 401, "InvalidCredentials")
      assert_error(request("PUT", "api/v1/auth/self?method=Etwin",
        { json = '{"login":"alice","password":"' .. string.rep("61", 300) .. '"}' }), 401, "InvalidCredentials")
      assert_error(request("PUT", "api/v1/auth/self?method=Etwin", { json = '{"login":' }), 400, "InvalidJson")
      assert_error(request("PUT", "api/v1/auth/self?method=Etwin", { json = '{"login":5,"password":[]}' }),
        401, "InvalidCredentials")
    end)

    it("logs in by email too", function()
      local res = request("PUT", "api/v1/auth/self?method=Etwin",
        { json = '{"login":"alice@example.com","password":"' .. hex("alice-password") .. '"}' })
      assert.are.equal(200, res.status)
    end)

    it("gives an OauthClient context for Basic client credentials", function()
      local ctx = get("api/v1/auth/self", { basic = DEMO }).json()
      assert.are.equal("OauthClient", ctx.type)
      assert.are.equal("demo@clients", ctx.client.key)
      assert.are.equal("Demo", ctx.client.display_name)
      assert.is_truthy(ctx.client.id:find(UUID))
      assert_error(get("api/v1/auth/self", { basic = { "demo@clients", "wrong" } }), 401, "Unauthorized")
    end)

    it("ignores a malformed Authorization header", function()
      for _, h in ipairs({ "Basic !!!", "Basic " .. b64("nocolon"), "Bearer", "Weird xyz", "Basic" }) do
        local res = get("api/v1/auth/self", { headers = { "Authorization: " .. h } })
        assert.are.equal(200, res.status)
        assert.are.equal("Guest", res.json().type)
      end
    end)
  end)

  describe("GET /oauth/authorize", function()
    local base = "oauth/authorize?response_type=code&client_id=demo@clients&state=s1"

    it("rejects a missing, malformed or unknown client without redirect", function()
      assert_error(get("oauth/authorize?response_type=code"), 400, "InvalidClient")
      assert_error(get("oauth/authorize?response_type=code&client_id=Bad!"), 400, "InvalidClient")
      assert_error(get("oauth/authorize?response_type=code&client_id=ghost@clients"), 400, "InvalidClient")
      assert_error(get("oauth/authorize?response_type=code&client_id=00000000-0000-4000-8000-000000000000"),
        400, "InvalidClient")
    end)

    it("rejects a redirect_uri other than the registered callback", function()
      assert_error(get(base .. "&redirect_uri=" .. urlencode("http://localhost:8000/other")), 400, "RedirectUriMismatch")
      -- checked before response_type
      assert_error(get("oauth/authorize?client_id=demo@clients&redirect_uri=http://evil/"), 400, "RedirectUriMismatch")
      local sid = login("alice")
      local ok = get(base .. "&redirect_uri=" .. urlencode("HTTP://LOCALHOST:8000/oauth/callback"), { cookie = sid })
      assert.are.equal(302, ok.status)
      assert.is_truthy(ok.header("location"):find("^" .. CALLBACK:gsub("%p", "%%%0") .. "%?code="))
    end)

    it("redirects errors to the callback in the contract's order", function()
      local function err_of(path)
        local res = get(path)
        assert.are.equal(302, res.status)
        local loc = res.header("location")
        assert.are.equal(CALLBACK, loc:match("^[^?]*"))
        return parse_query(loc:match("%?(.*)$"))
      end
      assert.are.same({ error = "invalid_request", state = "s1" },
        err_of("oauth/authorize?client_id=demo@clients&state=s1&scope=bad"))
      assert.are.same({ error = "invalid_request", state = "s1" },
        err_of("oauth/authorize?response_type=xyz&client_id=demo@clients&state=s1"))
      assert.are.same({ error = "unsupported_response_type", state = "s1" },
        err_of("oauth/authorize?response_type=token&client_id=demo@clients&state=s1&scope=bad"))
      assert.are.same({ error = "invalid_scope", state = "s1" }, err_of(base .. "&scope=base+admin"))
      assert.are.same({ error = "invalid_scope" }, err_of("oauth/authorize?response_type=code&client_id=demo@clients&scope=x"))
    end)

    it("sends a guest to /login?next=<this request>", function()
      local res = get(base .. "&scope=base")
      assert.are.equal(302, res.status)
      assert.are.equal("/login?next=" .. urlencode("/" .. base .. "&scope=base"), res.header("location"))
      local bad = get(base, { cookie = "6b1c1d36-1111-4111-8111-111111111111" })
      assert.is_truthy(bad.header("location"):find("^/login%?next="))
    end)

    it("redirects a signed-in user with code then state", function()
      local sid = login("alice")
      for _, scope in ipairs({ "", "&scope=", "&scope=base", "&scope=base%20base" }) do
        local res = get(base .. scope .. "&access_type=offline", { cookie = sid })
        assert.are.equal(302, res.status)
        local loc = res.header("location")
        assert.is_truthy(loc:find("^" .. CALLBACK:gsub("%p", "%%%0") .. "%?code=[%w_%-]+%.[%w_%-]+%.[%w_%-]+&state=s1$"), loc)
      end
      local nostate = get("oauth/authorize?response_type=code&client_id=demo@clients", { cookie = sid })
      assert.is_nil(nostate.header("location"):find("state="))
    end)

    it("keeps the callback's own query and encodes the state", function()
      local sid = login("bob")
      local res = get("oauth/authorize?response_type=code&client_id=other@clients&state=" .. urlencode("a b&c=d/é"),
        { cookie = sid })
      local loc = res.header("location")
      assert.is_truthy(loc:find("^http://localhost:8001/callback%?from=etwin&code="), loc)
      assert.are.equal("a b&c=d/é", parse_query(loc:match("%?(.*)$")).state)
    end)

    it("issues HS256 JWT codes with the 2021 claims", function()
      local code = code_for("alice")
      local h, p = code:match("^([^.]+)%.([^.]+)%.[^.]+$")
      local function dec(s)
        s = s:gsub("-", "+"):gsub("_", "/")
        local pipe = assert(io.popen("printf %s " .. q(s .. string.rep("=", (4 - #s % 4) % 4)) .. " | base64 -d"))
        local out = pipe:read("*a")
        pipe:close()
        return json(out)
      end
      assert.are.same({ alg = "HS256", typ = "JWT" }, dec(h))
      local c = dec(p)
      assert.are.equal("etwin", c.iss)
      assert.are.equal(600, c.exp - c.iat)
      assert.are.same({ "base" }, c.scopes)
      assert.are.equal("demo@clients", c.aud[2])
      assert.are.equal(get("api/v1/auth/self", { cookie = login("alice") }).json().user.id, c.sub)
    end)
  end)

  describe("POST /oauth/token", function()
    it("exchanges a code once, for a Bearer token", function()
      local code = code_for("alice")
      local res = exchange(code)
      assert.are.equal(200, res.status, res.body)
      local t = res.json()
      assert.are.equal("Bearer", t.token_type)
      assert.are.equal(3600, t.expires_in)
      assert.is_truthy(t.access_token:find(UUID))
      assert.is_truthy(t.access_token:sub(15, 15) == "4")
      assert.is_nil(t.refresh_token)
      assert.are.equal("no-store", res.header("cache-control"))
      assert_error(exchange(code), 400, "invalid_grant")
    end)

    it("accepts key, UUID@clients and bare UUID, JSON and form bodies", function()
      local id = get("api/v1/auth/self", { basic = DEMO }).json().client.id
      for _, ref in ipairs({ "demo@clients", id .. "@clients", id, "demo%40clients" }) do
        local res = exchange(code_for("bob"), { basic = { ref, "dev_secret" } })
        assert.are.equal(200, res.status, ref)
      end
      local form = request("POST", "oauth/token", { basic = DEMO,
        form = "grant_type=authorization_code&code=" .. code_for("bob") .. "&client_id=x&redirect_uri=y" })
      assert.are.equal(200, form.status, form.body)
      local nogrant = exchange(nil, { json = '{"code":"' .. code_for("bob") .. '"}' })
      assert.are.equal(200, nogrant.status)
    end)

    it("refuses bad client authentication with 401 invalid_client", function()
      local code = code_for("alice")
      local none = request("POST", "oauth/token", { json = '{"code":"' .. code .. '"}' })
      assert_error(none, 401, "invalid_client")
      assert.is_truthy(none.header("www-authenticate"))
      assert_error(exchange(code, { basic = { "demo@clients", "nope" } }), 401, "invalid_client")
      assert_error(exchange(code, { basic = { "ghost@clients", "dev_secret" } }), 401, "invalid_client")
      assert_error(exchange(code, { basic = { "alice", "alice-password" } }), 401, "invalid_client")
      for _, h in ipairs({ "Basic ###", "Basic " .. b64("demo@clients"), "Bearer x", "Basic " .. string.rep("A", 5000) }) do
        assert_error(request("POST", "oauth/token", { headers = { "Authorization: " .. h },
          json = '{"code":"' .. code .. '"}' }), 401, "invalid_client")
      end
      assert.are.equal(200, exchange(code).status)  -- the code survived all that
    end)

    it("needs a code and a valid grant", function()
      assert_error(exchange(nil, { json = '{"grant_type":"authorization_code"}' }), 400, "invalid_request")
      assert_error(exchange(nil, { json = '{"code":12}' }), 400, "invalid_request")
      assert_error(exchange(nil, { json = '{"code":' }), 400, "invalid_request")
      assert_error(exchange(nil, { json = '[1,2]' }), 400, "invalid_request")
      assert_error(exchange("x.y.z"), 400, "invalid_grant")
      assert_error(exchange("not a jwt"), 400, "invalid_grant")
      assert_error(exchange(nil, { json = '{"grant_type":"password","code":"x"}' }), 400, "unsupported_grant_type")
      assert_error(exchange(nil, { json = '{"grant_type":"refresh_token","refresh_token":"x"}' }), 400,
        "unsupported_grant_type")
    end)

    it("refuses a tampered code and a code of another client", function()
      local code = code_for("alice")
      local h, p, s = code:match("^([^.]+)%.([^.]+)%.([^.]+)$")
      -- Flip the first character: the last one also carries unused bits a decoder may ignore.
      local flipped = (s:sub(1, 1) == "A" and "B" or "A") .. s:sub(2)
      assert_error(exchange(h .. "." .. p .. "." .. flipped), 400, "invalid_grant")
      local foreign = code_for("alice", "other@clients")
      assert_error(exchange(foreign), 400, "invalid_grant")
      assert.are.equal(200, exchange(foreign, { basic = { "other@clients", "other_secret" } }).status)
    end)

    it("codes expire after 600 s of mock time", function()
      local code = code_for("alice")
      put_json("_mock/clock", '{"offset":600}')
      assert_error(exchange(code), 400, "invalid_grant")
      put_json("_mock/clock", '{"offset":590}')
      assert.are.equal(200, exchange(code).status)
    end)

    it("allow_code_reuse emulates the 2021 stateless codes", function()
      put_json("_mock/config", '{"allow_code_reuse":true}')
      local code = code_for("alice")
      local a, b = exchange(code).json(), exchange(code).json()
      assert.are_not.equal(a.access_token, b.access_token)
    end)

    it("expires_in and refresh tokens follow the knobs", function()
      assert.are.same({ allow_code_reuse = false, refresh_tokens = true, expires_in = 120 },
        put_json("_mock/config", '{"refresh_tokens":true,"expires_in":120}'))
      local t = exchange(code_for("alice")).json()
      assert.are.equal(120, t.expires_in)
      assert.is_truthy(t.refresh_token:find(UUID))
      local r = exchange(nil, { json = '{"grant_type":"refresh_token","refresh_token":"' .. t.refresh_token .. '"}' })
      assert.are.equal(200, r.status, r.body)
      local t2 = r.json()
      assert.are_not.equal(t.access_token, t2.access_token)
      assert.are.equal("AccessToken", get("api/v1/auth/self", { bearer = t2.access_token }).json().type)
      assert_error(exchange(nil, { json = '{"grant_type":"refresh_token","refresh_token":"' .. t.refresh_token .. '"}' }),
        400, "invalid_grant")
      assert_error(exchange(nil, { basic = { "other@clients", "other_secret" },
        json = '{"grant_type":"refresh_token","refresh_token":"' .. t2.refresh_token .. '"}' }), 400, "invalid_grant")
      assert_error(exchange(nil, { json = '{"grant_type":"refresh_token"}' }), 400, "invalid_request")
    end)

    it("counts exchange attempts in /_mock/stats", function()
      local before = get("_mock/stats").json()
      exchange("bad")
      exchange(code_for("alice"))
      local after = get("_mock/stats").json()
      assert.are.equal(2, after.token_requests - before.token_requests)
      assert.are.equal(2, after.token_exchanges - before.token_exchanges)
      assert.are.equal(1, after.token_grants - before.token_grants)
    end)

    it("is POST only", function()
      local res = get("oauth/token")
      assert_error(res, 405, "MethodNotAllowed")
      assert.are.equal("POST", res.header("allow"))
    end)
  end)

  describe("Bearer tokens", function()
    it("give an AccessToken context", function()
      local token = token_for("bob")
      local ctx = get("api/v1/auth/self", { bearer = token }).json()
      assert.are.equal("AccessToken", ctx.type)
      assert.are.equal("Default", ctx.scope)
      assert.are.equal("Bob", ctx.user.display_name.current.value)
      assert.are.equal("demo@clients", ctx.client.key)
      assert.are.equal("OauthClient", ctx.client.type)
      local lower = get("api/v1/auth/self", { headers = { "Authorization: bearer " .. token } })
      assert.are.equal("AccessToken", lower.json().type)
    end)

    it("unknown or expired tokens give 401 on every API route", function()
      for _, path in ipairs({ "api/v1/auth/self", "api/v1/clock", "api/v1/users?q=a",
                              "api/v1/users/00000000-0000-4000-8000-000000000000" }) do
        assert_error(get(path, { bearer = "00000000-0000-4000-8000-000000000000" }), 401, "Unauthorized")
        assert_error(get(path, { bearer = "not-a-uuid" }), 401, "Unauthorized")
      end
      -- Live shortly before its hour is up, gone at the hour. (The mock's clock runs on: the margin
      -- before expiry must outlast the requests in between on a loaded machine, so not 1 s.)
      local token = token_for("alice")
      put_json("_mock/clock", '{"offset":3540}')
      assert.are.equal(200, get("api/v1/auth/self", { bearer = token }).status)
      put_json("_mock/clock", '{"offset":3600}')
      assert_error(get("api/v1/auth/self", { bearer = token }), 401, "Unauthorized")
    end)
  end)

  describe("GET /api/v1/users/{id}", function()
    local function ids()
      local out = {}
      for _, u in ipairs(get("api/v1/users?limit=100").json().items) do
        out[u.display_name.current.value] = u.id
      end
      return out
    end

    it("shows the public view to guests", function()
      local u = get("api/v1/users/" .. ids().Alice).json()
      assert.are.equal("User", u.type)
      assert.are.equal("Alice", u.display_name.current.value)
      assert.is_true(u.is_administrator)
      assert.are.equal(NULL, u.deleted_at)
      assert.is_truthy(u.created_at:find(TIME))
      assert.is_nil(u.username)
      assert.is_nil(u.email_address)
      local keys = {}
      for k, v in pairs(u.links) do
        keys[#keys + 1] = k
        assert.are.equal(NULL, v.current)
        assert.are.same({}, v.old)
      end
      table.sort(keys)
      assert.are.same({ "dinoparc_com", "en_dinoparc_com", "hammerfest_es", "hammerfest_fr", "hfest_net",
                        "sp_dinoparc_com", "twinoid" }, keys)
    end)

    it("adds private fields for the user's own session and for administrators only", function()
      local all = ids()
      local bob = login("bob")
      local own = get("api/v1/users/" .. all.Bob, { cookie = bob }).json()
      assert.are.equal("bob", own.username)
      assert.are.equal(NULL, own.email_address)
      assert.is_true(own.has_password)
      assert.is_nil(get("api/v1/users/" .. all.Alice, { cookie = bob }).json().username)
      local admin = get("api/v1/users/" .. all.Bob, { cookie = login("alice") }).json()
      assert.are.equal("bob", admin.username)
      local via_token = get("api/v1/users/" .. all.Bob, { bearer = token_for("bob") }).json()
      assert.is_nil(via_token.username)
      assert.are.equal("Bob", via_token.display_name.current.value)
    end)

    it("422 for a non-UUID id, 404 for an unknown one", function()
      assert_error(get("api/v1/users/alice"), 422, "InvalidId")
      assert_error(get("api/v1/users/" .. string.rep("z", 3000)), 422, "InvalidId")
      assert_error(get("api/v1/users/00000000-0000-4000-8000-000000000000"), 404, "UserNotFound")
      assert_error(get("api/v1/users/" .. ids().Alice .. "/links"), 404, "NotFound")
    end)
  end)

  describe("GET /api/v1/users (search)", function()
    local function names(res)
      local out = {}
      for _, u in ipairs(res.json().items) do out[#out + 1] = u.display_name.current.value end
      return out
    end

    it("lists everyone for an empty query, ordered by display name", function()
      local res = get("api/v1/users?q=")
      assert.are.equal(200, res.status)
      local body = res.json()
      assert.are.equal(6, body.count)
      assert.are.equal(0, body.offset)
      assert.are.equal(20, body.limit)
      assert.are.same({ "Alice", "Bob", "Charlie", "Dave", "Eve", "Frank" }, names(res))
      for _, u in ipairs(body.items) do
        assert.are.equal("User", u.type)
        assert.is_truthy(u.id:find(UUID))
      end
      assert.are.equal(6, get("api/v1/users").json().count)
    end)

    it("matches parts of username or display name, case-insensitively", function()
      assert.are.same({ "Alice", "Charlie" }, names(get("api/v1/users?q=LI")))
      assert.are.same({ "Eve" }, names(get("api/v1/users?q=eve")))
      assert.are.equal(0, get("api/v1/users?q=zzz").json().count)
      assert.are.equal(0, get("api/v1/users?q=" .. string.rep("a", 4000)).json().count)
    end)

    it("pages with offset and limit, count independent of paging", function()
      local res = get("api/v1/users?q=&limit=1&offset=1").json()
      assert.are.equal(6, res.count)
      assert.are.equal("Bob", res.items[1].display_name.current.value)
      assert.are.equal(1, #res.items)
      local zero = get("api/v1/users?limit=0")
      assert.are.equal(200, zero.status)
      assert.are.equal(6, zero.json().count)
      assert.are.same({}, zero.json().items)
      assert.is_truthy(zero.body:find('"items":[]', 1, true))
      assert.are.equal(100, get("api/v1/users?limit=1000").json().limit)
      assert.are.equal(0, #get("api/v1/users?offset=99999999999999999999").json().items)
      assert.are.same({ "Frank" }, names(get("api/v1/users?offset=5")))
    end)

    it("422 InvalidQuery for negative or non-integer paging", function()
      for _, qs in ipairs({ "offset=-1", "limit=-1", "limit=abc", "offset=1.5", "limit=", "limit=1e3" }) do
        assert_error(get("api/v1/users?" .. qs), 422, "InvalidQuery")
      end
    end)
  end)

  describe("the browser flow", function()
    it("login form, authorize, code, token, users/me", function()
      local start = "oauth/authorize?response_type=code&access_type=offline&client_id=demo%40clients&scope=base"
        .. "&state=xyz&redirect_uri=" .. urlencode(CALLBACK)
      local r1 = get(start)
      assert.are.equal(302, r1.status)
      local next_url = r1.header("location"):match("^/login%?next=(.*)$")
      assert.is_truthy(next_url)
      local form = get("login?next=" .. next_url)
      assert.are.equal(200, form.status)
      assert.is_truthy(form.header("content-type"):find("^text/html"))
      assert.is_truthy(form.body:find('name="password"', 1, true))
      local r2 = request("POST", "login", { form = "login=charlie&password=charlie-password&next=" .. next_url })
      assert.are.equal(302, r2.status)
      local sid = r2.header("set-cookie"):match("^sid=([^;]+); Path=/; HttpOnly$")
      assert.is_truthy(sid)
      assert.are.equal("/" .. start, r2.header("location"))
      local r3 = get(r2.header("location"), { cookie = sid })
      assert.are.equal(302, r3.status)
      local cb = parse_query(r3.header("location"):match("%?(.*)$"))
      assert.are.equal("xyz", cb.state)
      local tok = exchange(cb.code)
      assert.are.equal(200, tok.status)
      local me = get("api/v1/auth/self", { bearer = tok.json().access_token }).json()
      assert.are.equal("AccessToken", me.type)
      assert.are.equal("Charlie", me.user.display_name.current.value)
    end)

    it("the login form refuses bad passwords and unsafe next values", function()
      local bad = request("POST", "login", { form = "login=alice&password=wrong&next=/x" })
      assert.are.equal(401, bad.status)
      assert.is_nil(bad.header("set-cookie"))
      for _, n in ipairs({ "http://evil/", "//evil/", "" }) do
        local res = request("POST", "login", { form = "login=alice&password=alice-password&next=" .. urlencode(n) })
        assert.are.equal(200, res.status)
        assert.is_nil(res.header("location"))
        assert.is_truthy(res.header("set-cookie"))
      end
    end)
  end)

  describe("routing and hostile input", function()
    it("404 NotFound for unknown routes, 405 for wrong methods", function()
      assert_error(get("nope"), 404, "NotFound")
      assert_error(get("api/v1/nope"), 404, "NotFound")
      assert_error(get("api/v1/auth/self/"), 404, "NotFound")
      local res = request("POST", "api/v1/users")
      assert_error(res, 405, "MethodNotAllowed")
      assert.are.equal("GET", res.header("allow"))
      assert_error(request("PATCH", "api/v1/auth/self"), 405, "MethodNotAllowed")
      assert_error(request("DELETE", "_mock/reset"), 405, "MethodNotAllowed")
    end)

    it("answers huge URIs, headers and bodies with JSON errors", function()
      local uri = get("api/v1/users?q=" .. string.rep("a", 100000))
      assert.are.equal(414, uri.status)
      assert.are.equal("UriTooLong", uri.json().error)
      local hdr = get("api/v1/auth/self", { headers = { "X-Huge: " .. string.rep("h", 100000) } })
      assert.are.equal(400, hdr.status)
      assert.are.equal("BadRequest", hdr.json().error)
      local body = request("POST", "oauth/token", { basic = DEMO, json = string.rep(" ", 9 * 1024 * 1024) })
      assert.are.equal(413, body.status)
      assert.are.equal("PayloadTooLarge", body.json().error)
      assert.are.equal(200, get("api/v1/clock").status)  -- still alive
    end)

    it("survives binary and deeply nested bodies", function()
      assert_error(request("PUT", "_mock/config", { json = string.rep("[", 100000) }), 400, "InvalidJson")
      assert_error(exchange(nil, { json = '{"code":"\0\255\254"}' }), 400, "invalid_request")  -- not JSON
      assert_error(exchange(nil, { json = '{"code":"\\u0000\\u00ff.a.b"}' }), 400, "invalid_grant")
      assert_error(exchange(nil, { json = '{"code":"' .. string.rep("a.", 5000) .. '"}' }), 400, "invalid_grant")
      assert_error(request("PUT", "api/v1/auth/self?method=Etwin", { body = "\0\1\2" }), 401, "InvalidCredentials")
      assert.are.equal(200, get("api/v1/clock").status)
    end)
  end)

  describe("clock", function()
    it("GET /api/v1/clock follows the mock's clock offset", function()
      local function t() return get("api/v1/clock").json().time end
      assert.is_truthy(t():find(TIME))
      local c = put_json("_mock/clock", '{"offset":86400}')
      assert.are.equal(86400, c.offset)
      local shifted = t()
      local now = os.time()
      assert.are.equal(os.date("!%Y-%m-%d", now + 86400), shifted:sub(1, 10))
      assert.are.equal(86400, get("_mock/clock").json().offset)
      assert_error(request("PUT", "_mock/clock", { json = '{"offset":"soon"}' }), 400, "InvalidClock")
      mock.reset()
      assert.are.equal(os.date("!%Y-%m-%d", now), t():sub(1, 10))
    end)
  end)

  describe("/_mock routes", function()
    it("reset forgets sessions, tokens, knobs and the clock", function()
      local sid = login("alice")
      local token = token_for("bob")
      put_json("_mock/config", '{"expires_in":5}')
      put_json("_mock/clock", '{"offset":10}')
      local res = request("POST", "_mock/reset")
      assert.are.equal(200, res.status)
      assert.are.equal("Guest", get("api/v1/auth/self", { cookie = sid }).json().type)
      assert_error(get("api/v1/auth/self", { bearer = token }), 401, "Unauthorized")
      assert.are.same({ allow_code_reuse = false, refresh_tokens = false, expires_in = 3600 }, get("_mock/config").json())
      assert.are.equal(0, get("_mock/clock").json().offset)
    end)

    it("config validates its knobs", function()
      assert_error(request("PUT", "_mock/config", { json = '{"expires_in":"x"}' }), 400, "InvalidConfig")
      assert_error(request("PUT", "_mock/config", { json = '{"expires_in":-1}' }), 400, "InvalidConfig")
      assert_error(request("PUT", "_mock/config", { json = '{"bogus":true}' }), 400, "InvalidConfig")
      assert_error(request("PUT", "_mock/config", { json = '{"refresh_tokens":1}' }), 400, "InvalidConfig")
      assert.are.same({ allow_code_reuse = true, refresh_tokens = false, expires_in = 3600 },
        put_json("_mock/config", '{"allow_code_reuse":true}'))
    end)

    it("echo reflects the request", function()
      local res = request("POST", "_mock/echo/a%20b/c?x=1&x=2&y&z=%20", { headers = { "X-Test: yes", "X-Dup: 1", "X-Dup: 2" },
        body = "hello\0world" })
      assert.are.equal(200, res.status)
      local e = res.json()
      assert.are.equal("POST", e.method)
      assert.are.equal("/_mock/echo/a%20b/c", e.path)
      assert.are.equal("x=1&x=2&y&z=%20", e.query)
      assert.are.same({ x = { "1", "2" }, y = true, z = " " }, e.args)
      assert.are.equal("yes", e.headers["x-test"])
      assert.are.equal("1, 2", e.headers["x-dup"])
      assert.are.equal("hello\0world", e.body)
      local empty = get("_mock/echo").json()
      assert.are.equal("", empty.query)
      assert.are.equal("", empty.body)
      assert.are.same({}, empty.args)
      assert.are.equal("DELETE", request("DELETE", "_mock/echo").json().method)
    end)

    it("delay waits", function()
      local t0 = os.time()
      local p = assert(io.popen("curl -s -o /dev/null -w '%{time_total}' " .. q(mock.get().url .. "_mock/delay?ms=300")))
      local elapsed = tonumber(p:read("*a"))
      p:close()
      assert.is_true(elapsed >= 0.29 and elapsed < 5, tostring(elapsed))
      assert.are.same({ delayed_ms = 0 }, get("_mock/delay?ms=0").json())
      assert.are.same({ delayed_ms = 20 }, get("_mock/delay?ms=20").json())
      assert_error(get("_mock/delay?ms=-5"), 422, "InvalidQuery")
      assert_error(get("_mock/delay"), 422, "InvalidQuery")
      assert.is_true(os.time() - t0 < 10)
    end)

    it("status answers any status with Retry-After", function()
      local res = get("_mock/status/503?retry_after=7")
      assert.are.equal(503, res.status)
      assert.are.equal("7", res.header("retry-after"))
      assert.are.same({ status = 503 }, res.json())
      local post = request("POST", "_mock/status/429?retry_after=" .. urlencode("Wed, 21 Oct 2026 07:28:00 GMT"))
      assert.are.equal(429, post.status)
      assert.are.equal("Wed, 21 Oct 2026 07:28:00 GMT", post.header("retry-after"))
      assert.are.equal(200, get("_mock/status/200").status)
      assert.is_nil(get("_mock/status/418").header("retry-after"))
      assert.are.equal(204, get("_mock/status/204").status)
      assert.are.equal(599, get("_mock/status/599").status)
      assert_error(get("_mock/status/600"), 422, "InvalidQuery")
      assert_error(get("_mock/status/100"), 422, "InvalidQuery")
      assert_error(get("_mock/status/abc"), 404, "NotFound")
    end)

    it("reset-connection drops the connection, before or during the body", function()
      local res = get("_mock/reset-connection")
      assert.are.equal(52, res.exit)   -- curl: empty reply from server
      local mid = get("_mock/reset-connection?after=100")
      assert.are.equal(18, mid.exit)   -- curl: partial file
      assert.are.equal(200, mid.status)
      assert.are.equal("1000000", mid.header("content-length"))
      assert.are.equal(100, #mid.body)
    end)

    it("badjson sends a JSON type with a broken body", function()
      local res = get("_mock/badjson")
      assert.are.equal(200, res.status)
      assert.are.equal("application/json; charset=utf-8", res.header("content-type"))
      assert.are.equal('{"id": "abc",', res.body)
    end)

    it("bytes sends exactly n bytes, with Content-Length or chunked", function()
      local res = get("_mock/bytes/1000")
      assert.are.equal(string.rep("x", 1000), res.body)
      assert.are.equal("1000", res.header("content-length"))
      local chunked = get("_mock/bytes/5000?chunked=1")
      assert.are.equal(5000, #chunked.body)
      assert.is_nil(chunked.header("content-length"))
      assert.are.equal("chunked", chunked.header("transfer-encoding"))
      assert.are.equal(0, #get("_mock/bytes/0").body)
      local big = get("_mock/bytes/" .. 64 * 1024 * 1024)
      assert.are.equal(64 * 1024 * 1024, #big.body)
      assert.is_nil(big.body:find("[^x]"))
      assert_error(get("_mock/bytes/" .. 64 * 1024 * 1024 + 1), 422, "InvalidQuery")
    end)

    it("redirect, redirect-loop and redirect-chain", function()
      local r = get("_mock/redirect?to=" .. urlencode("http://example.invalid/x?y=1"))
      assert.are.equal(302, r.status)
      assert.are.equal("http://example.invalid/x?y=1", r.header("location"))
      local r307 = get("_mock/redirect?to=/_mock/echo&status=307")
      assert.are.equal(307, r307.status)
      assert.are.equal("/_mock/echo", r307.header("location"))
      assert_error(get("_mock/redirect?to=/x&status=200"), 422, "InvalidQuery")
      assert_error(get("_mock/redirect"), 422, "InvalidQuery")
      local followed = get("_mock/redirect?to=/_mock/echo%3Fa%3D1", { extra = "-L" })
      assert.are.equal(200, followed.status)
      assert.are.equal("1", followed.json().args.a)
      local loop = get("_mock/redirect-loop", { extra = "-L --max-redirs 5" })
      assert.are.equal(47, loop.exit)  -- curl: too many redirects
      local loop1 = get("_mock/redirect-loop")
      assert.are.equal("/_mock/redirect-loop", loop1.header("location"))
      local chain = get("_mock/redirect-chain/3", { extra = "-L" })
      assert.are.equal(200, chain.status)
      assert.are.equal(3, chain.redirects)
      assert.are.same({ redirects = 0 }, chain.json())
      assert.are.equal("/_mock/redirect-chain/2", get("_mock/redirect-chain/3").header("location"))
    end)

    it("headers sends many big headers; repeat-header repeats them", function()
      local res = get("_mock/headers?n=20&size=1000")
      assert.are.equal(200, res.status)
      for i = 1, 20 do
        assert.are.equal(string.rep("h", 1000), res.header("x-big-" .. i))
      end
      assert.is_nil(res.header("x-big-21"))
      local huge = get("_mock/headers?n=3&size=90000")
      assert.are.equal(90000, #huge.header("x-big-1"))
      assert.are.equal(90000, #huge.header("x-big-3"))
      assert_error(get("_mock/headers?n=100000&size=1000"), 422, "InvalidQuery")
      local rep = get("_mock/repeat-header")
      assert.are.same({ "a", "b" }, rep.headers["x-multi"])
      assert.are.same({ "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT", "b=2" }, rep.headers["set-cookie"])
    end)

    it("trickle sends one byte per interval", function()
      local p = assert(io.popen("curl -s -w ' %{time_total}' " .. q(mock.get().url .. "_mock/trickle?bytes=5&interval_ms=60")))
      local out = p:read("*a")
      p:close()
      local body, t = out:match("^(%S*) (%S+)$")
      assert.are.equal("xxxxx", body)
      assert.is_true(tonumber(t) >= 0.28, t)
      assert_error(get("_mock/trickle?bytes=x"), 422, "InvalidQuery")
    end)

    it("static/user is served by nginx", function()
      local res = get("_mock/static/user")
      assert.are.equal(200, res.status)
      assert.are.equal("application/json; charset=utf-8", res.header("content-type"))
      assert.are.equal("Static", res.json().display_name.current.value)
    end)

    it("stats count requests per path", function()
      local before = get("_mock/stats").json()
      get("_mock/status/503")
      get("_mock/status/503")
      local after = get("_mock/stats").json()
      assert.are.equal(3, after.requests - before.requests)
      assert.are.equal(2, after.paths["/_mock/status/503"] - (before.paths["/_mock/status/503"] or 0))
    end)
  end)
end)
