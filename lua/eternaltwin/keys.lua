-- SPDX-License-Identifier: MIT
--- Keys that sign and verify state JWTs.
-- Built-in keys wrap a C key parsed once at construction. Any table with `algorithm`, `encode` and
-- `decode` works as a client's `state_key`; `KeyABC` is a base for such tables.
-- @module eternaltwin.keys

local core = require("eternaltwin.core")
local errors = require("eternaltwin.errors")

local type, error, setmetatable, pcall, tostring = type, error, setmetatable, pcall, tostring
local format = string.format

local M = {}

local function argerror(fname, n, msg)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

local function opt_kid(fname, n, opts)
  if opts == nil then return nil end
  if type(opts) ~= "table" then argerror(fname, n, "options table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if k ~= "kid" then argerror(fname, n, format("unknown option '%s'", tostring(k))) end
  end
  local kid = opts.kid
  if kid ~= nil and (type(kid) ~= "string" or kid == "") then
    argerror(fname, n, "option 'kid' must be a non-empty string")
  end
  return kid
end

--- Base for keys written in Lua: `setmetatable(mykey, { __index = keys.KeyABC })`.
-- Its `encode` and `decode` raise "not implemented" until the table defines its own. A key is any
-- table with `algorithm` (a string), `encode(self, claims) -> jwt | nil, err` and
-- `decode(self, jwt) -> claims | nil, err`.
-- @table KeyABC
M.KeyABC = {}
function M.KeyABC.encode() error("eternaltwin.keys: encode not implemented", 2) end
function M.KeyABC.decode() error("eternaltwin.keys: decode not implemented", 2) end

local Key = {}
Key.__index = Key
Key.__name = "eternaltwin.keys.Key"

function Key.__tostring(k)
  local parts = { k.algorithm }
  if k.kid then parts[#parts + 1] = "kid=" .. k.kid end
  if not k.can_sign then parts[#parts + 1] = "verify-only" end
  return "<" .. k.name .. " " .. table.concat(parts, " ") .. ">"
end

--- Key: a built-in key, as the constructors below make it.
-- @type Key

--- Signs `claims` into a JWT, with the header `{"alg":ALG,"kid":KID,"typ":"JWT"}` (`kid` when set).
-- A built-in key has the fields `name` (`"HS256Key"`...), `algorithm`, `kid` (or nil) and
-- `can_sign`; `tostring(key)` never shows the key.
-- @tparam table claims a JSON object
-- @treturn string the token, or `nil, err` (KeyError: a public-only key, or claims that are not JSON)
function Key:encode(claims)
  if type(claims) ~= "table" then argerror("encode", 1, "table expected, got " .. type(claims)) end
  local tok, msg = self._key:encode(claims, self.kid)
  if not tok then return nil, errors.new(errors.KeyError, "cannot sign: " .. msg) end
  return tok
end

--- Verifies a JWT's `alg` and signature (not `exp`: the client checks it).
-- The header is not returned: read it with `eternaltwin.core.jwt_header(token)`.
-- @tparam string token the JWT
-- @treturn table the claims, or `nil, err` of kind InvalidStateError
function Key:decode(token)
  if type(token) ~= "string" then argerror("decode", 1, "string expected, got " .. type(token)) end
  local claims, msg = self._key:decode(token)
  if not claims then return nil, errors.new(errors.InvalidStateError, "invalid state: " .. msg) end
  return claims
end

-- For the client's hot path: the C key and kid of a built-in key as made (its own methods, a
-- string or nil kid), or nil for any other key (Lua keys, KeyRings), which go through `_call`.
function M._builtin(k)
  if getmetatable(k) ~= Key or rawget(k, "encode") ~= nil or rawget(k, "decode") ~= nil then return nil end
  local kid = k.kid
  if kid ~= nil and type(kid) ~= "string" then return nil end
  return k._key, kid
end

local function new_key(name, alg, ckey, kid)
  return setmetatable({ name = name, algorithm = alg, kid = kid, can_sign = ckey:can_sign(), _key = ckey }, Key)
end

local function hmac_ctor(alg)
  local name = alg .. "Key"
  return function(secret, opts)
    if type(secret) ~= "string" then argerror(name, 1, "secret string expected, got " .. type(secret)) end
    local kid = opt_kid(name, 2, opts)
    local k, msg = core.hmac_key(alg, secret)
    if not k then return nil, errors.new(errors.KeyError, name .. ": " .. msg) end
    return new_key(name, alg, k, kid)
  end
end

local function pkey_ctor(alg)
  local name = alg .. "Key"
  return function(public, private, opts)
    if public ~= nil and type(public) ~= "string" then
      argerror(name, 1, "public key text or nil expected, got " .. type(public))
    end
    if private ~= nil and type(private) ~= "string" then
      argerror(name, 2, "private key text or nil expected, got " .. type(private))
    end
    if public == nil and private == nil then argerror(name, 1, "a public or a private key is required") end
    local kid = opt_kid(name, 3, opts)
    local k, msg = core.pkey(alg, public, private)
    if not k then return nil, errors.new(errors.KeyError, name .. ": " .. msg) end
    return new_key(name, alg, k, kid)
  end
end

--- Constructors and helpers.
-- @section constructors

--- An HMAC-SHA-256 key (`HS384Key` and `HS512Key` likewise, with SHA-384 and SHA-512).
-- `keys.HS256Key("a long random secret", { kid = "2026-12" })`
-- @function HS256Key
-- @tparam string secret the shared secret (not empty; 32 random bytes or more is wise)
-- @tparam[opt] table opts `kid` (a non-empty string: the key id put in headers, needed in a KeyRing)
-- @treturn Key the key, or `nil, err` (KeyError) for an empty secret

--- An RSA PKCS#1 v1.5 SHA-256 key (`RS384Key`, `RS512Key` likewise; `PS256Key`, `PS384Key`,
-- `PS512Key` for RSA-PSS; `ES256Key` on P-256, `ES384Key` on P-384, `EdDSAKey` on Ed25519).
-- Key text: PEM (SPKI, PKCS#1, PKCS#8, SEC1) or an OpenSSH public key line. A private key alone can
-- sign and verify; a public key alone only verifies.
-- `keys.RS256Key(nil, keys.read_file("private.pem"))`
-- @function RS256Key
-- @tparam string|nil public the public key text (or nil)
-- @tparam string|nil private the private key text (or nil; one of the two is required)
-- @tparam[opt] table opts `kid`
-- @treturn Key the key, or `nil, err` (KeyError: does not parse, does not fit the algorithm, or the two do
-- not match; the message never shows the key)

M.HS256Key, M.HS384Key, M.HS512Key = hmac_ctor("HS256"), hmac_ctor("HS384"), hmac_ctor("HS512")
M.RS256Key, M.RS384Key, M.RS512Key = pkey_ctor("RS256"), pkey_ctor("RS384"), pkey_ctor("RS512")
M.PS256Key, M.PS384Key, M.PS512Key = pkey_ctor("PS256"), pkey_ctor("PS384"), pkey_ctor("PS512")
M.ES256Key, M.ES384Key = pkey_ctor("ES256"), pkey_ctor("ES384")
M.EdDSAKey = pkey_ctor("EdDSA")

--- Reads a key file's text, for the constructors: `keys.RS256Key(nil, keys.read_file("key.pem"))`.
-- @tparam string path the file to read (1 MiB at most)
-- @treturn string the text, or `nil, err` (KeyError naming the path, never the content)
function M.read_file(path)
  if type(path) ~= "string" then argerror("read_file", 1, "path string expected, got " .. type(path)) end
  local f, msg = io.open(path, "rb")
  if not f then return nil, errors.new(errors.KeyError, "cannot read key file: " .. msg) end
  local text = f:read(1024 * 1024 + 1)
  f:close()
  if text == nil or text == "" then return nil, errors.new(errors.KeyError, "key file is empty: " .. path) end
  if #text > 1024 * 1024 then return nil, errors.new(errors.KeyError, "key file is too large: " .. path) end
  return text
end

--- Whether `k` can serve as a state key (a table with `algorithm`, `encode` and `decode`).
-- @param k any value
-- @treturn boolean
function M.is_key(k)
  return type(k) == "table" and type(k.algorithm) == "string"
    and k.encode ~= nil and k.decode ~= nil
end

-- Calls a key's method protected: a Lua key that raises gives `nil, err` of the given kind.
function M._call(kind, key, method, arg)
  local ok, a, b = pcall(key[method], key, arg)
  if not ok then
    return nil, errors.new(kind, format("state key %s failed: %s", method, tostring(a)))
  end
  if a == nil then
    if errors.is_error(b) then return nil, b end
    return nil, errors.new(kind, format("state key %s failed: %s", method, tostring(b or "no result")))
  end
  return a -- alone: a key whose decode also returns its header must not look like `v, err`
end

local KeyRing = {}
KeyRing.__index = KeyRing
KeyRing.__name = "eternaltwin.keys.KeyRing"
function KeyRing.__tostring(r)
  local kids = {}
  for i, k in ipairs(r.keys) do kids[i] = k.kid end
  return "<KeyRing " .. table.concat(kids, ",") .. ">"
end

--- A key ring for key rotation: signs with the first key and accepts a token from any of them.
-- `keys.KeyRing{ newest, older... }` puts the first key's `kid` in the header, and finds the key to
-- check a token with by its `kid`, or by trying each when the header has none.
-- Every key needs a `kid` (the last argument of its constructor); a key without one raises.
--
--     local ring = keys.KeyRing{
--       keys.HS256Key(os.getenv("STATE_KEY"), { kid = "2026-12" }),      -- signs new states
--       keys.HS256Key(os.getenv("OLD_STATE_KEY"), { kid = "2026-06" }),  -- still accepted
--     }
--     local client = eternaltwin.new(client_id, secret, redirect_uri, ring, { url = url })
--
-- @tparam {key,...} list the keys, newest first, each with a `kid`
-- @treturn KeyRing a key (`algorithm`, `kid`, `encode`, `decode` as for a Key)
-- @raise when a key has no kid, two share one, or an element is not a key
function M.KeyRing(list)
  if type(list) ~= "table" or #list == 0 then argerror("KeyRing", 1, "non-empty array of keys expected") end
  local ring = { keys = {}, by_kid = {} }
  for i = 1, #list do
    local k = list[i]
    if not M.is_key(k) then argerror("KeyRing", 1, format("element %d is not a key", i)) end
    if type(k.kid) ~= "string" or k.kid == "" then
      argerror("KeyRing", 1, format("key %d has no kid: a KeyRing finds keys by kid, so give each one, " ..
        "e.g. keys.HS256Key(secret, { kid = \"2026-12\" })", i))
    end
    if ring.by_kid[k.kid] then argerror("KeyRing", 1, format("duplicate kid '%s'", k.kid)) end
    ring.keys[i], ring.by_kid[k.kid] = k, k
  end
  ring.algorithm = ring.keys[1].algorithm
  ring.kid = ring.keys[1].kid
  return setmetatable(ring, KeyRing)
end

function KeyRing:encode(claims)
  return M._call(errors.KeyError, self.keys[1], "encode", claims)
end

function KeyRing:decode(token)
  if type(token) ~= "string" then argerror("decode", 1, "string expected, got " .. type(token)) end
  local header, msg = core.jwt_header(token)
  if not header then return nil, errors.new(errors.InvalidStateError, "invalid state: " .. msg) end
  local kid = header.kid
  if kid ~= nil then
    local k = type(kid) == "string" and self.by_kid[kid]
    if not k then return nil, errors.new(errors.InvalidStateError, "invalid state: unknown key id") end
    return M._call(errors.InvalidStateError, k, "decode", token)
  end
  local last
  for i = 1, #self.keys do
    local claims, h = M._call(errors.InvalidStateError, self.keys[i], "decode", token)
    if claims then return claims end
    last = h
  end
  return nil, last
end

return M
