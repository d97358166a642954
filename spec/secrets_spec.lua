-- No secret in any message: every error message, error field and tostring produced across the
-- fault and bad-input paths (blocking and inside poller tasks, and the core's own messages) is
-- gathered, then searched for the client secret, its Basic credentials, the access and refresh
-- tokens, the authorization code, the state key secret and the private key text.
local V = require("spec.support.compat")
local eternaltwin = require("eternaltwin")
local core = require("eternaltwin.core")
local keys = require("eternaltwin.keys")
local mock = require("spec.support.mock")

local CLIENT_SECRET = "cs-Zq7clientsecret-9f3"
local ACCESS = "at-Zq7accesstoken-11aa"
local REFRESH = "rt-Zq7refreshtoken-22bb"
local CODE = "code-Zq7authcode-33cc"
local STATE_SECRET = "sk-Zq7statekey-44dd"

local function b64(s)
  local t = core.b64url_encode(s):gsub("[-_]", { ["-"] = "+", ["_"] = "/" })
  return t .. ("="):rep((4 - #t % 4) % 4)
end

local function slurp(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("*a")
  p:close()
  return s
end

-- An EC private key made for this run, and its public half.
local PRIV = slurp("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null")
local PUB = slurp("printf '%s' '" .. PRIV .. "' | openssl pkey -pubout 2>/dev/null")

local FORBIDDEN = { CLIENT_SECRET, b64("demo@clients:" .. CLIENT_SECRET), ACCESS, REFRESH, CODE, STATE_SECRET }
do -- every 16-byte piece of the private key's base64 body
  local body = PRIV:gsub("%-%-%-%-%-[^\n]*%-%-%-%-%-", ""):gsub("%s", "")
  for i = 1, #body - 15, 8 do FORBIDDEN[#FORBIDDEN + 1] = body:sub(i, i + 15) end
end

local texts = {}
local function gather(v, depth)
  depth = depth or 0
  if v == nil or depth > 3 then return end
  if type(v) == "string" then texts[#texts + 1] = v return end
  texts[#texts + 1] = tostring(v)
  -- An error's fields are walked (a Token's or a key's fields are the secrets themselves: only
  -- their tostring counts).
  if eternaltwin.errors.is_error(v) then
    for k, x in pairs(v) do
      -- a Response's content and headers are the server's words; the state claims are data
      if k ~= "content" and k ~= "state" and k ~= "headers" then gather(x, depth + 1) end
    end
  end
end
-- Calls fn and gathers everything it returned (values and errors).
local function try(fn, ...)
  local r = V.pack(pcall(fn, ...))
  for i = 2, r.n do gather(r[i]) end
  return V.unpack(r, 2, r.n)
end

local function client(opts)
  local o = { client_id = "demo@clients", client_secret = CLIENT_SECRET,
              redirect_uri = "http://localhost:8000/oauth/callback",
              state_key = keys.HS256Key(STATE_SECRET), url = mock.get().url }
  for k, v in pairs(opts or {}) do o[k] = v end
  return eternaltwin.new(o)
end

local TOKEN = eternaltwin.Token{ access_token = ACCESS, refresh_token = REFRESH, expires_in = 3600,
                                 token_type = "Bearer" }

-- The calls that carry secrets, against a client that fails in some way.
local function exercise(c)
  try(c.token, c, CODE)
  try(c.refresh, c, TOKEN)
  try(c.refresh, c, REFRESH)
  try(function() return c.users:me(TOKEN) end)
  try(function() return c.users:me(ACCESS) end)
  try(function() return c.users:get("00000000-0000-4000-8000-000000000000", TOKEN) end)
  try(function() return c.users:search("a", 10, 0, ACCESS) end)
  try(c.get, c, "_mock/status/500", { token = TOKEN, params = { code = CODE, refresh_token = REFRESH } })
  try(c.get, c, "_mock/status/503?code=" .. CODE .. "#" .. ACCESS, { token = ACCESS })
  try(c.post, c, "_mock/status/429", { json = { code = CODE, client_secret = CLIENT_SECRET } })
  try(c.post, c, "_mock/reset-connection", { data = { code = CODE }, token = TOKEN })
  try(c.get, c, "_mock/redirect-loop?code=" .. CODE, { token = ACCESS })
  try(c.get, c, "_mock/delay", { params = { ms = 600, code = CODE }, token = TOKEN })
  try(c.get, c, "_mock/badjson", { token = TOKEN })
  local res = try(c.get, c, "_mock/badjson?code=" .. CODE)
  if type(res) == "table" and res.json then try(res.json, res) end
  local port = mock.get().port
  try(c.get, c, ("http://user:%s@127.0.0.1:%d/_mock/status/500?code=%s"):format(CLIENT_SECRET, port, CODE))
  try(c.get, c, ("http://%s:%s@127.0.0.1:1/x"):format(ACCESS, CLIENT_SECRET))
  gather(c)
  gather(c.users)
end

describe("secrets", function()
  setup(function()
    texts = {}
    gather(TOKEN)
    local base = mock.get().url
    local clients = {
      client(),                                                   -- the mock: bad code, 401s
      client{ url = "http://127.0.0.1:1/", timeout = 1 },         -- refused
      client{ url = mock.get().tls_url },                         -- TLS verification fails
      client{ url = base .. "_mock/flaky/secrets/", retries = 2, retry_max_wait = 0.01 },  -- 503, then 200 garbage
      client{ timeout = 0.3, allow_redirects = true, retries = 1, retry_max_wait = 0.01 },
      client{ max_body_size = 8 },
      client{ state_key = keys.ES256Key(PUB, PRIV) },
    }
    for _, c in ipairs(clients) do exercise(c) end

    -- The same calls inside poller tasks.
    local p = eternaltwin.poller()
    for _, c in ipairs({ clients[1], clients[2], clients[4] }) do p:spawn(exercise, c) end
    p:run(30)
    p:close()

    -- States: bad, foreign, expired, replayed; keys that do not load.
    local c = client()
    local good = assert(c:generate_state())
    try(c.validate_state, c, good, good .. "x")
    try(c.validate_state, c, good:sub(1, -3))
    try(c.validate_state, c, client{ state_key = keys.HS256Key("other") }:generate_state())
    try(c.validate_state, c, assert(c:generate_state(-100)))
    try(c.validate_state, c, good, nil, { once = true })
    try(c.validate_state, c, good, nil, { once = true })
    try(keys.ES256Key, PUB, PRIV:gsub("A", "B", 3))
    try(keys.ES256Key, PRIV:gsub("PRIVATE", "PUBLIC"), nil)
    try(keys.RS256Key, PUB, PRIV)
    try(keys.ES256Key, nil, PRIV:sub(1, 120))
    try(keys.HS256Key, "")
    local ek = keys.ES256Key(PUB, PRIV)
    gather(ek)
    try(ek.decode, ek, good)
    try(client{ state_key = ek }.generate_state, client{ state_key = ek })

    -- The core's own messages, with secrets in headers, bodies, queries and userinfo.
    local s = core.session({ timeout = 0.5 })
    local hdrs = { "Authorization: Bearer " .. ACCESS, "X-Secret: " .. CLIENT_SECRET }
    for _, url in ipairs({ "http://127.0.0.1:1/?code=" .. CODE, base .. "_mock/reset-connection?c=" .. CODE,
                           ("http://u:%s@127.0.0.1:1/"):format(CLIENT_SECRET), mock.get().tls_url .. "?c=" .. CODE,
                           base .. "_mock/delay?ms=900&code=" .. CODE }) do
      local r = V.pack(s:request("POST", url, hdrs, '{"code":"' .. CODE .. '"}', { fresh = true }))
      if r[1] == nil then gather(r[2]); gather(r[3]) end   -- (a success gives back the URL asked for)
    end
    s:close()
    try(core.json_decode, '{"code":"' .. CODE .. '",')
    try(core.json_decode, '{"' .. CODE .. '"')
    try(core.b64url_decode, CODE .. "!")
  end)

  it("gathered messages from the fault and bad-input paths", function()
    assert.is_true(#texts > 200, "only " .. #texts .. " texts")
    local kinds = {}
    for _, t in ipairs(texts) do
      for _, k in ipairs({ "tls", "connect", "timeout", "HTTP 5", "HTTP 4", "redirect", "too_large",
                           "invalid state", "JSON", "key" }) do
        if t:find(k, 1, true) then kinds[k] = true end
      end
    end
    for _, k in ipairs({ "HTTP 5", "HTTP 4", "invalid state", "JSON", "key" }) do
      assert.is_true(kinds[k], "no message about " .. k)
    end
  end)

  it("never contain a secret, token, code or private key text", function()
    for _, t in ipairs(texts) do
      for _, secret in ipairs(FORBIDDEN) do
        assert.is_nil(t:find(secret, 1, true), ("%q appears in %q"):format(secret, t))
      end
    end
  end)
end)
