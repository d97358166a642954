-- bin/etwin through io.popen against the mock: outputs, --json shapes, exit codes, bad flags, and
-- no secret in any output. The command runs in a clean environment (no LUA_PATH): it must find the
-- module beside itself.
local V = require("spec.support.compat")
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local core = require("eternaltwin.core")
local mock = require("spec.support.mock")
local browser = require("examples.browser")

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
local ETWIN = ROOT .. "/bin/etwin"

local CLIENT_SECRET = "dev_secret"
local STATE_KEY = "cli-spec-state-key-0123456789"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local outputs = {} -- every stdout and stderr seen, for the secret check

-- Runs etwin with `args` (a string, already quoted) and `env` (name -> value, false to unset);
-- returns stdout, stderr, exit code.
local function etwin(args, env)
  local e = { "env -i PATH=/usr/local/bin:/usr/bin:/bin" }
  local base = { ETERNALTWIN_URL = mock.get().url, ETERNALTWIN_CLIENT_ID = "demo@clients",
                 ETERNALTWIN_CLIENT_SECRET = CLIENT_SECRET,
                 ETERNALTWIN_REDIRECT_URI = "http://localhost:8000/oauth/callback",
                 ETERNALTWIN_STATE_KEY = STATE_KEY }
  for k, v in pairs(env or {}) do base[k] = v end
  local names = {}
  for k in pairs(base) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    if base[k] then e[#e + 1] = k .. "=" .. q(base[k]) end
  end
  local errf = os.tmpname()
  local out, code = V.run(table.concat(e, " ") .. " " .. V.lua .. " " .. q(ETWIN) .. " " .. args .. " 2>" .. q(errf))
  local f = assert(io.open(errf))
  local err = f:read("*a")
  f:close()
  os.remove(errf)
  outputs[#outputs + 1] = out
  outputs[#outputs + 1] = err
  return out, err, code
end

local function decode(s)
  local v, msg = core.json_decode(s)
  assert(v ~= nil, "not JSON: " .. tostring(msg) .. ": " .. s)
  return v
end

local function sorted_keys(t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = k end
  table.sort(list)
  return table.concat(list, ",")
end

local function client()
  return eternaltwin.new({ client_id = "demo@clients", client_secret = CLIENT_SECRET,
    redirect_uri = "http://localhost:8000/oauth/callback", state_key = keys.HS256Key(STATE_KEY),
    url = mock.get().url })
end

-- A fresh authorization code for `who`.
local function code_for(who)
  local c = client()
  local b = browser.new(c)
  assert(b:login(c.url, who, who .. "-password"))
  return assert(b:authorize(c:authorization_url(assert(c:generate_state())))).code
end

local USER_KEYS = "created_at,deleted_at,identifier,is_administrator,username"

describe("bin/etwin", function()
  local alice_id
  setup(function()
    mock.reset()
    local c = client()
    alice_id = assert(assert(c.users:search("alice")):json()).items[1].id
  end)

  describe("help and usage", function()
    it("prints the general help with --help, -h and help", function()
      for _, a in ipairs({ "--help", "-h", "help" }) do
        local out, err, code = etwin(a)
        assert.are.equal(0, code, a)
        assert.are.equal("", err)
        assert.truthy(out:find("usage: etwin COMMAND", 1, true), a)
        for _, cmd in ipairs({ "authorize-url", "state new", "state check", "token CODE", "me TOKEN", "user USER_ID",
                               "search", "login", "mock" }) do
          assert.truthy(out:find(cmd, 1, true), cmd)
        end
      end
    end)

    it("prints each command's help", function()
      for _, cmd in ipairs({ "authorize-url", "state new", "state check", "token", "me", "user", "search", "login",
                             "mock" }) do
        local out, _, code = etwin(cmd .. " --help", { ETERNALTWIN_URL = false })
        assert.are.equal(0, code, cmd)
        assert.truthy(out:find("usage: etwin " .. cmd, 1, true), cmd .. ": " .. out)
        local out2 = etwin("help " .. cmd)
        assert.are.equal(out, out2)
      end
      local out = etwin("state --help")
      assert.truthy(out:find("etwin state new", 1, true))
      assert.truthy(out:find("etwin state check", 1, true))
    end)

    it("prints the version", function()
      local out, _, code = etwin("--version")
      assert.are.equal(0, code)
      assert.are.equal(eternaltwin._VERSION .. "\n", out)
    end)

    it("exits 2 with a message on stderr for usage mistakes", function()
      local cases = {
        { "", "no command given" },
        { "frobnicate", "unknown command 'frobnicate'" },
        { "state", "'new' or 'check' expected" },
        { "state burn", "unknown command 'state burn'" },
        { "search --bogus", "unknown flag --bogus" },
        { "search --bogus=1", "unknown flag --bogus" },
        { "user --limit 3 x", "unknown flag --limit" },
        { "search -x", "unknown flag -x" },
        { "search --limit", "--limit needs a value" },
        { "search --limit ten", "--limit: integer" },
        { "search --limit -1", "--limit: integer" },
        { "search --offset 1.5", "--offset: integer" },
        { "search --json=yes", "--json takes no value" },
        { "search --limit 1 --limit 2", "--limit given twice" },
        { "user", "etwin user: missing argument USER_ID" },
        { "user a b", "too many arguments" },
        { "token", "etwin token: missing argument CODE" },
        { "state check", "etwin state check: missing argument STATE" },
        { "search --limt 3", "etwin search: unknown flag --limt (did you mean --limit?)" },
        { "search --ofset=3", "unknown flag --ofset (did you mean --offset?)" },
        { "user --jsno x", "unknown flag --jsno (did you mean --json?)" },
        { "authorize-url --expiraton 5", "unknown flag --expiraton (did you mean --expiration?)" },
        { "search --zzzzzz", "unknown flag --zzzzzz\n" },
        { "mock --url http://x/", "etwin mock: unknown flag --url" },
        { "mock --json", "etwin mock: unknown flag --json" },
        { "state new --expiration soon", "--expiration" },
        { "state check x --leeway -3", "--leeway" },
        { "mock --port 70000", "--port: integer from 0 to 65535" },
        { "search --timeout 0", "--timeout" },
        { "search --url ftp://x/", "option 'url'" },
      }
      for _, case in ipairs(cases) do
        local out, err, code = etwin(case[1])
        assert.are.equal(2, code, case[1])
        assert.are.equal("", out, case[1])
        assert.truthy(err:find("^etwin[%w %-]*: "), case[1])
        assert.truthy(err:find(case[2], 1, true), case[1] .. " => " .. err)
        assert.truthy(err:find("see: etwin", 1, true), case[1])
        -- A mistake within a command shows that command's usage line.
        local name = err:match("^etwin ([%w %-]+): ")
        if name and name ~= "state" then
          assert.truthy(err:find("\nusage: etwin " .. name, 1, true), case[1] .. " => " .. err)
        end
      end
    end)

    it("mock --help lists only what the mock takes", function()
      local out, _, code = etwin("mock --help")
      assert.are.equal(0, code)
      for _, flag in ipairs({ "--port", "--tls-port", "--config" }) do assert.truthy(out:find(flag, 1, true), flag) end
      for _, flag in ipairs({ "--url", "--client-id", "--client-secret", "--redirect-uri", "--state-key", "--timeout",
                              "--json" }) do
        assert.falsy(out:find(flag, 1, true), flag)
      end
    end)

    it("exits 2 naming the missing configuration", function()
      local cases = {
        { "search", { ETERNALTWIN_URL = false }, "missing --url (or ETERNALTWIN_URL)" },
        { "token c", { ETERNALTWIN_CLIENT_SECRET = false }, "missing --client-secret (or ETERNALTWIN_CLIENT_SECRET)" },
        { "token c", { ETERNALTWIN_CLIENT_ID = "" }, "missing --client-id" },
        { "authorize-url", { ETERNALTWIN_REDIRECT_URI = false }, "missing --redirect-uri" },
        { "state new", { ETERNALTWIN_STATE_KEY = false }, "missing --state-key (or ETERNALTWIN_STATE_KEY)" },
      }
      for _, case in ipairs(cases) do
        local _, err, code = etwin(case[1], case[2])
        assert.are.equal(2, code, case[1])
        assert.truthy(err:find(case[3], 1, true), err)
      end
    end)
  end)

  describe("states", function()
    it("makes an authorization URL with a valid state", function()
      local out, err, code = etwin("authorize-url")
      assert.are.equal(0, code, err)
      local state = out:match("^state  (%S+)\n")
      local url = out:match("\nurl    (%S+)\n$")
      assert.is_string(state)
      assert.are.equal(client():authorization_url(state), url)
      assert.is_table(client():validate_state(state))
      local j = decode(etwin("authorize-url --json --nonce n1 --expiration 30 --scope base"))
      assert.are.equal("state,url", sorted_keys(j))
      local claims = assert(client():validate_state(j.state))
      assert.are.equal("n1", claims.nonce)
      assert.are.equal(30, claims.exp - claims.iat)
      assert.are.equal(client():authorization_url(j.state), j.url)
    end)

    it("makes and checks states", function()
      local out, _, code = etwin("state new --nonce abc")
      assert.are.equal(0, code)
      local state = out:match("^(%S+)\n$")
      assert.are.equal("abc", assert(client():validate_state(state)).nonce)
      local j = decode(etwin("state new --json"))
      assert.are.equal("state", sorted_keys(j))
      assert.are.equal(128, #assert(client():validate_state(j.state)).nonce)

      local text, err, ok = etwin("state check " .. q(state))
      assert.are.equal(0, ok, err)
      assert.truthy(text:find("^valid state: issued %d%d%d%d%-%d%d%-%d%dT"), text)
      assert.truthy(text:find("nonce abc", 1, true))
      local v = decode(etwin("state check --json " .. q(state) .. " --expected " .. q(state)))
      assert.is_true(v.valid)
      assert.are.equal("a,as,exp,iat,nonce,rfp", sorted_keys(v.claims))
      assert.are.equal(mock.get().url, v.claims.as)
    end)

    it("exits 1 for an invalid state, with the reason", function()
      local state = etwin("state new"):match("%S+")
      local other = etwin("state new"):match("%S+")
      local out, err, code = etwin("state check " .. q(state) .. " --expected " .. q(other))
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.truthy(err:find("does not match the expected state", 1, true), err)
      out, err, code = etwin("state check --json " .. q(state), { ETERNALTWIN_STATE_KEY = "another key" })
      assert.are.equal(1, code)
      local j = decode(out)
      assert.are.equal("error,valid", sorted_keys(j))
      assert.is_false(j.valid)
      assert.are.equal("InvalidStateError", j.error.kind)
      assert.truthy(err:find(j.error.message, 1, true))
      -- a state for another server
      local _
      out, _, code = etwin("state check --json " .. q(state), { ETERNALTWIN_URL = "http://elsewhere.invalid/" })
      assert.are.equal(1, code)
      assert.truthy(decode(out).error.message:find("another authorization server", 1, true))
    end)
  end)

  describe("token and users", function()
    it("exchanges a code and shows the token's user", function()
      local out, err, code = etwin("token " .. q(code_for("bob")))
      assert.are.equal(0, code, err)
      local access = out:match("access_token%s+(%S+)")
      assert.is_string(access)
      assert.truthy(out:find("token_type%s+Bearer"))
      assert.truthy(out:find("expires_in%s+3600"))
      assert.truthy(out:find("refresh_token%s+%-"))

      local me, merr, mcode = etwin("me " .. q(access))
      assert.are.equal(0, mcode, merr)
      assert.truthy(me:find("^username%s+Bob\n"), me)
      assert.truthy(me:find("identifier%s+%x+%-"))
      assert.falsy(me:find(access, 1, true))

      local t = decode(etwin("token --json " .. q(code_for("charlie"))))
      assert.are.equal("access_token,expiration,expires_in,refresh_token,token_type", sorted_keys(t))
      assert.are.equal(eternaltwin.null, t.refresh_token)
      assert.are.equal("Bearer", t.token_type)
      assert.is_true(t.expiration > os.time())
      local u = decode(etwin("me --json " .. q(t.access_token)))
      assert.are.equal(USER_KEYS, sorted_keys(u))
      assert.are.equal("Charlie", u.username)
      assert.are.equal(eternaltwin.null, u.is_administrator)
    end)

    it("exits 1 for a used code or an unknown token, without showing them", function()
      local c = code_for("alice")
      assert.are.equal(0, select(3, etwin("token " .. q(c))))
      local out, err, code = etwin("token --json " .. q(c))
      assert.are.equal(1, code)
      local j = decode(out)
      assert.are.equal("error", sorted_keys(j))
      assert.are.equal("RequestError", j.error.kind)
      assert.are.equal(400, j.error.status_code)
      assert.falsy(err:find(c, 1, true))
      assert.falsy(out:find(c, 1, true))
      local tok = "00000000-0000-4000-8000-00000000cafe"
      out, err, code = etwin("me " .. q(tok))
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.truthy(err:find("HTTP 401", 1, true))
      assert.falsy(err:find("cafe", 1, true))
    end)

    it("shows a user by id", function()
      local out, err, code = etwin("user " .. alice_id)
      assert.are.equal(0, code, err)
      assert.are.equal(table.concat({
        "username          Alice",
        "identifier        " .. alice_id,
        "is_administrator  true",
        "created_at        " .. assert(assert(client().users:get(alice_id)):json()).created_at,
        "deleted_at        -", "" }, "\n"), out)
      local u = decode(etwin("user --json " .. alice_id))
      assert.are.equal(USER_KEYS, sorted_keys(u))
      assert.are.equal(alice_id, u.identifier)
      assert.is_true(u.is_administrator)
      assert.are.equal(eternaltwin.null, u.deleted_at)
      local _, err2, code2 = etwin("user 00000000-0000-4000-8000-000000000000")
      assert.are.equal(1, code2)
      assert.truthy(err2:find("HTTP 404", 1, true))
      local j = decode((etwin("user --json 00000000-0000-4000-8000-000000000000")))
      assert.are.equal(404, j.error.status_code)
    end)

    it("searches users", function()
      local out, err, code = etwin("search ali")
      assert.are.equal(0, code, err)
      assert.are.equal(alice_id .. "  Alice\n(1 shown, 1 matching)\n", out)
      local all = decode(etwin("search --json"))
      assert.are.equal("count,limit,offset,users", sorted_keys(all))
      assert.are.equal(20, all.limit)
      assert.are.equal(0, all.offset)
      assert.is_true(all.count >= 6)
      assert.are.equal(USER_KEYS, sorted_keys(all.users[1]))
      local page = decode(etwin("search --json --limit 2 --offset 1 ''"))
      assert.are.equal(2, #page.users)
      assert.are.equal(all.users[2].identifier, page.users[1].identifier)
      assert.are.equal(all.count, page.count)
      local none = etwin("search --json nobody-has-this-name")
      assert.are.equal('{"count":0,"limit":20,"offset":0,"users":[]}\n', none)
      local text = etwin("search --limit=0")
      assert.truthy(text:find("^%(0 shown, %d+ matching%)\n$"), text)
    end)

    it("takes its configuration from flags over the environment", function()
      local url = mock.get().url
      local out, err, code = etwin("search ali --url " .. q(url), { ETERNALTWIN_URL = "http://127.0.0.1:1/" })
      assert.are.equal(0, code, err)
      assert.truthy(out:find("Alice", 1, true))
      out, err, code = etwin("token --json --client-id demo@clients --client-secret dev_secret --url=" .. q(url)
        .. " " .. q(code_for("dave")), { ETERNALTWIN_CLIENT_ID = false, ETERNALTWIN_CLIENT_SECRET = false,
        ETERNALTWIN_URL = false })
      assert.are.equal(0, code, err)
      assert.are.equal("Bearer", decode(out).token_type)
    end)

    it("exits 1 when the server is unreachable", function()
      local out, err, code = etwin("search --json ali", { ETERNALTWIN_URL = "http://127.0.0.1:1/" })
      assert.are.equal(1, code)
      local j = decode(out)
      assert.are.equal("TransportError", j.error.kind)
      assert.are.equal("connect", j.error.code)
      assert.truthy(err:find("^etwin: "))
    end)

    it("never shows the client secret or the state key", function()
      local secret, skey = "very-secret-client-secret-42", "very-secret-state-key-42"
      local env = { ETERNALTWIN_CLIENT_SECRET = secret, ETERNALTWIN_STATE_KEY = skey }
      local runs = {
        "token " .. q(code_for("eve")), "token --json nope", "authorize-url", "authorize-url --json",
        "state new --json", "state check --json x.y.z", "me x", "search --url bad",
        "token --client-secret=" .. q(secret) .. " --client-secret=" .. q(secret) .. " c",
        "search --state-key " .. q(skey) .. " --unknown=" .. q(secret),
      }
      for _, a in ipairs(runs) do
        local out, err = etwin(a, env)
        for _, s in ipairs({ secret, skey }) do
          assert.falsy(out:find(s, 1, true), a)
          assert.falsy(err:find(s, 1, true), a)
        end
      end
      -- and in nothing this spec saw, with its own configuration
      for _, text in ipairs(outputs) do
        assert.falsy(text:find(STATE_KEY, 1, true))
        assert.falsy(text:find(secret, 1, true))
      end
    end)
  end)

  describe("mock", function()
    it("runs the mock server from the source tree", function()
      local out = os.tmpname()
      local p = assert(io.popen("echo $$; exec " .. V.lua .. " " .. q(ETWIN) .. " mock --port 0 >" .. q(out) .. " 2>&1"))
      local pid = p:read("*l")
      local port
      for _ = 1, 200 do
        local f = io.open(out)
        port = f and f:read("*a"):match("listening (%d+)")
        if f then f:close() end
        if port then break end
        os.execute("sleep 0.05")
      end
      assert.is_string(port)
      local other = eternaltwin.new({ client_id = "demo@clients", client_secret = CLIENT_SECRET,
        redirect_uri = "http://localhost:8000/oauth/callback", state_key = keys.HS256Key("k"),
        url = "http://127.0.0.1:" .. port .. "/" })
      assert.are.equal(200, assert(other:get("api/v1/clock")).status_code)
      other:close()
      os.execute("kill -TERM " .. pid)
      p:close()
      -- etwin gone, the mock notices (--watch-pid) and stops
      local down
      for _ = 1, 100 do
        local c = eternaltwin.new({ client_id = "x", client_secret = "y", redirect_uri = "z",
          state_key = keys.HS256Key("k"), url = "http://127.0.0.1:" .. port .. "/", timeout = 1 })
        local _, err = c:get("api/v1/clock")
        c:close()
        if err and err.kind == "TransportError" then down = true break end
        os.execute("sleep 0.1")
      end
      os.remove(out)
      assert.is_true(down)
    end)
  end)
end)

describe("bin/etwin reads secrets from stdin or the environment", function()

  it("bin/etwin me and token read the secret from stdin (-) or the environment", function()
    local c = client()
    local env = "env -i PATH=/usr/bin:/bin ETERNALTWIN_URL=" .. q(mock.get().url) .. " "
    local function run(cmdline)
      return V.run(cmdline .. " 2>&1")
    end
    local out, code = run("echo not-a-token | " .. env .. V.lua .. " " .. q(ROOT .. "/bin/etwin") .. " me -")
    assert.are.equal(1, code, out)
    assert.matches("Unauthorized", out, 1, true)
    out, code = run(env .. "ETERNALTWIN_ACCESS_TOKEN=not-a-token " .. V.lua .. " " .. q(ROOT .. "/bin/etwin") .. " me")
    assert.are.equal(1, code, out)
    assert.matches("Unauthorized", out, 1, true)
    out, code = run(env .. V.lua .. " " .. q(ROOT .. "/bin/etwin") .. " me")
    assert.are.equal(2, code, out)
    assert.matches("ETERNALTWIN_ACCESS_TOKEN", out, 1, true)
    out, code = run("echo bad-code | " .. env .. "ETERNALTWIN_CLIENT_ID=demo@clients ETERNALTWIN_CLIENT_SECRET=dev_secret "
      .. V.lua .. " " .. q(ROOT .. "/bin/etwin") .. " token -")
    assert.are.equal(1, code, out)
    assert.is_nil(out:find("missing", 1, true))
    assert(c)
  end)
end)
