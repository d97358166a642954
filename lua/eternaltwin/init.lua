-- SPDX-License-Identifier: MIT
--- Sign players in with Eternaltwin (OAuth 2.0) and call its API.
-- The client, its Token and Response objects, state JWTs and the HTTP helpers. HTTP, JSON and
-- cryptography run in C (`eternaltwin.core`: libcurl, cJSON, OpenSSL); this layer shapes the API.
--
-- Module fields: `_VERSION` (`"eternaltwin 0.1.0"`), `null` (JSON null, prints as
-- `eternaltwin.null`), `errors` (`eternaltwin.errors`), `keys` (`eternaltwin.keys`), and, loaded on
-- first use, `connections` (`eternaltwin.connections`) and `User` (`eternaltwin.User`).
--
-- Run-time failures return `nil, err` (an error object of `eternaltwin.errors`); argument mistakes
-- raise. Methods take a colon: `client:get(...)`, `client.users:me(...)`.
-- @module eternaltwin

-- The C core. A core.so built for another Lua (LuaJIT loading the 5.4 build: `undefined symbol:
-- lua_rotate`) or not built at all: keep the loader's error and name the build to make.
local core
do
  local ok, mod = pcall(require, "eternaltwin.core")
  if not ok then
    local jit_ = rawget(_G, "jit")
    local name = type(jit_) == "table" and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
    local dir = name == "lua5.4" and "build/" or "build/" .. name .. "/"
    error(string.format("%s\neternaltwin: its C core (eternaltwin.core) did not load in %s. A core.so built for "
      .. "another Lua fails this way (undefined symbol): from a checkout, build it for this interpreter with "
      .. "`make LUA=%s` (it lands in %seternaltwin/core.so: put %s?.so on LUA_CPATH, or use `make repl LUA=%s`); "
      .. "with luarocks, install the rock for this Lua (`luarocks --lua-version=%s install ...`).",
      tostring(mod), type(jit_) == "table" and jit_.version or _VERSION, name, dir, dir, name,
      name == "luajit" and "5.1" or name:sub(4)), 0)
  end
  core = mod
end
local errors = require("eternaltwin.errors")
local keys = require("eternaltwin.keys")
local check = require("eternaltwin.check")
local options = require("eternaltwin.options")
local token = require("eternaltwin.token")
local response = require("eternaltwin.response")
local stores = require("eternaltwin.stores")
local http = require("eternaltwin.http")
local state = require("eternaltwin.state")
local tickets = require("eternaltwin.tickets")
local runtime = require("eternaltwin.runtime")

local setmetatable, rawset, error, format = setmetatable, rawset, error, string.format

local M = {
  _VERSION = "eternaltwin 0.1.0",
  null = core.null,
  errors = errors,
  keys = keys,
}

local private = http.private

------------------------------------------------------------------------------------------------
--- Token: what client:token and client:refresh give.
-- Fields: `access_token`, `refresh_token` (or nil), `token_type` (`"Bearer"`), `expires_in` (seconds,
-- as the server sent it), `server_expiration` (epoch seconds: the server's own expiry) and
-- `expiration` (`server_expiration` less a 60 s margin, as in Python). `tostring(token)` shows both
-- clocks and never the token itself.
-- @section Token

--- Whether the token has expired, counting a 60 s safety margin as Python does: true from 60 s
-- before the server's expiry (`token.expiration`), so a call started now does not race it. The
-- server's own expiry is `token.server_expiration`; `token:seconds_left()` counts down to it.
-- @treturn boolean
-- @function Token:has_expired

--- Seconds until the server's own expiry (`server_expiration`; 0 once passed), margin not counted.
-- @treturn integer
-- @function Token:seconds_left

--- Builds a Token from its fields (for instance one kept in a session).
-- `eternaltwin.Token{ access_token = "...", expires_in = 3600, token_type = "Bearer" }`
-- @tparam table t `access_token` (string), `expires_in` (number of seconds from now), `token_type`
-- (string), and optionally `refresh_token` (string); a missing or ill-typed field raises
-- @treturn Token
-- @function Token
M.Token = token.new

--- Whether `v` is a Token.
-- @param v any value
-- @treturn boolean
-- @function is_token
M.is_token = token.is_token

------------------------------------------------------------------------------------------------
--- Response: what the HTTP calls and client.users give.
-- Fields: `status_code` (integer), `url` (the final URL), `headers` (a plain table, lower-case
-- names, repeated values joined with `", "`, `set-cookie` with a newline) and `content` (the body,
-- a string). `tostring(res)` is `<Response [200]>`.
-- @section Response

--- Decodes the body as JSON (null becomes `eternaltwin.null`).
-- @return the decoded value (a table for an object or array), or `nil, err` of kind DecodeError
-- @function Response:json

--- Whether the status is 2xx.
-- @treturn boolean
-- @function Response:ok

------------------------------------------------------------------------------------------------
--- Client: one Eternaltwin instance.
-- Fields: `client_id`, `redirect_uri`, `state_key`, `url` (the base URL, ending with `/`), the
-- options below (read-only: they are fixed at creation), and `users` (the user endpoints,
-- `eternaltwin.users`). The client secret is not a field, and `tostring(client)` is
-- `<eternaltwin.Client ID URL>`.
-- @section Client

local Client = {}
Client.__index = Client
Client.__name = "eternaltwin.Client"

-- options:begin (generated from eternaltwin.options by tools/gen-options.lua: do not edit)

--- Client options, given to `new` (as its last argument, or as its only table with the four
-- first arguments inside). An unknown option, a missing required one, an ill-typed value, or both
-- `url` and `host`, raises an error naming the option. They are fixed at creation: reading
-- `client.timeout` works, assigning it raises.
-- @table options
-- @tfield string client_id the OAuth client id, such as `"myapp@clients"` (default: required)
-- @tfield string client_secret the OAuth client secret (never shown, not a field of the client) (default:
-- required)
-- @tfield string redirect_uri the app's callback URL, as registered with Eternaltwin (default: required)
-- @tfield key state_key signs and checks states: a key of `eternaltwin.keys`, a KeyRing, or any table with
-- `algorithm`, `encode` and `decode` (default: required)
-- @tfield string url the base URL of the instance, `"https://eternaltwin.org/"` (or give `host`); userinfo
-- (`user:pw@`) is refused; the field ends with `/` (default: none)
-- @tfield string scheme with `host`: `"http"` or `"https"` (default: `"http"`)
-- @tfield string host with `scheme`, `port`, `prefix`: the base URL in parts (default: none)
-- @tfield integer port with `host`: the port (default: the scheme's)
-- @tfield string prefix with `host`: the path of the instance; endpoints resolve under it (default: `"/"`)
-- @tfield number timeout seconds per attempt, fractions allowed (default: 5)
-- @tfield number connect_timeout seconds to connect (default: libcurl's)
-- @tfield boolean verify_ssl verify the server's certificate and name (default: true)
-- @tfield string ca_file a PEM file of trusted certificates: the only ones trusted (the system store no
-- longer counts) (default: the system store)
-- @tfield string|boolean proxy nil: the environment's (`http_proxy`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`,
-- as curl reads them); `false`: no proxy whatever the environment says; a string: that proxy URL. A proxy
-- sees the Basic credentials, codes and tokens of `http://` requests (default: the environment's)
-- @tfield boolean allow_redirects follow redirects (at most `max_redirects`); never for the code exchange
-- and refresh (default: false)
-- @tfield integer max_redirects with `allow_redirects`: the most redirects followed (default: 10)
-- @tfield string user_agent the User-Agent header; `""` sends none (default: `"eternaltwin-lua/0.1.0"`)
-- @tfield integer retries extra attempts for GET, HEAD, PUT, DELETE, OPTIONS on `connect`, `timeout`, reset
-- or empty replies and on 429, 502, 503, 504; never for POST or the code exchange (default: 0)
-- @tfield number retry_max_wait longest single wait between attempts in seconds (Retry-After is honoured,
-- else a jittered exponential backoff) (default: 30)
-- @tfield integer max_body_size largest response body in bytes, inclusive; beyond it, a TransportError
-- `too_large` (default: 16 MiB)
-- @tfield integer max_connections bound on the open connections of a poller (default: 0 (no bound))
-- @tfield boolean|integer replay_protection true, or a store size: `validate_state` accepts each state once
-- (see `ReplayStore`) (default: false)
-- @tfield key ticket_key signs and checks game tickets in place of `state_key` (see `Client:issue_ticket`)
-- (default: `state_key`)

local OPTION_TYPES = {
  client_id = "string", client_secret = "string", redirect_uri = "string", state_key = "key",
  url = "string", scheme = "scheme", host = "string", port = "port", prefix = "string",
  timeout = "posnum", connect_timeout = "posnum", verify_ssl = "boolean", ca_file = "string",
  proxy = "proxy", allow_redirects = "boolean", max_redirects = "count", user_agent = "string",
  retries = "count", retry_max_wait = "nonneg", max_body_size = "posint", max_connections = "count",
  replay_protection = "replay", ticket_key = "key",
}
-- options:end

--- Creates a client.
-- `eternaltwin.new(client_id, client_secret, redirect_uri, state_key [, opts])` or
-- `eternaltwin.new(opts)` with the four inside `opts`.
-- In the first form the four are required; in the second `opts` holds them (`client_id`,
-- `client_secret`, `redirect_uri`, `state_key`) and no other argument is given.
-- @tparam string|table client_id the OAuth client id (required), or every option in one table
-- @tparam string client_secret the OAuth client secret (required; never shown)
-- @tparam string redirect_uri the app's callback URL, as registered with Eternaltwin (required)
-- @tparam key state_key signs and checks states (required; see `options`)
-- @tparam[opt] table opts further `options`
-- @treturn Client
-- @raise on a missing, unknown or ill-typed option
function M.new(client_id, client_secret, redirect_uri, state_key, opts)
  local settings, o = options.build(client_id, client_secret, redirect_uri, state_key, opts)
  -- The options are fields read through the metatable (client -> settings -> Client): assigning one
  -- raises, other fields are the client's own. `getmetatable(client)` is `Client`.
  setmetatable(settings, Client)
  local self = setmetatable({}, {
    __index = settings, __newindex = Client.__newindex, __tostring = Client.__tostring,
    __name = Client.__name, __close = Client.__close, __metatable = Client,
  })
  if o.replay_protection then
    self.replay_store = stores.ReplayStore(o.replay_protection == true and 100000 or o.replay_protection)
  end
  private[self] = { settings = settings,
                    basic = "Authorization: Basic " .. http.b64(o.client_id .. ":" .. o.client_secret) }
  self.users = require("eternaltwin.users").new(self)
  return self
end

function Client.__newindex(t, k, v)
  if OPTION_TYPES[k] then error(options.fixed_message(k), 2) end
  rawset(t, k, v)
end

function Client.__tostring(c)
  return format("<eternaltwin.Client %s %s>", c.client_id, c.url)
end

-- The blocking session and the settings it is made from (inside nginx: no session, the settings).
function Client:_session()
  local conn = private[self]
  if runtime.in_nginx() then return nil, conn.settings end
  return require("eternaltwin.transport_easy").session(conn), conn.settings
end

--- Frees the client's connections now (they are also freed when the client is collected).
-- The client stays usable: a later call opens a new connection.
function Client:close()
  check.client(self, "close")
  local s = private[self]
  if s and s.session then s.session:close(); s.session = nil end
end
Client.__close = Client.close

--- Resolves an endpoint under the base URL; an absolute http(s) URL is used as is. An endpoint
-- whose `..` segments climb above the base URL raises.
-- @tparam string endpoint such as `"api/v1/clock"` (a leading `/` is dropped)
-- @treturn string the URL
-- @function Client:resolve
Client.resolve = http.resolve

------------------------------------------------------------------------------------------------
--- OAuth and state.
-- A state is a JWT signed with the client's `state_key` (claims `a`, `as`, `iat`, `rfp`, `exp`,
-- `nonce`), kept in the player's session and checked on the callback before the code is exchanged.
-- @section oauth

--- The URL to send the player's browser to, with the same query as Python's client.
-- @tparam string state a state from `generate_state`
-- @tparam[opt="base"] string scope the OAuth scope asked for
-- @treturn string `<base>oauth/authorize?response_type=code&...`
-- @function Client:authorization_url
Client.authorization_url = state.authorization_url

--- A new signed state.
-- @tparam[opt=600] number expiration seconds the state stays valid
-- @tparam[opt] string nonce (default: 128 random hex characters)
-- @treturn string the JWT, or `nil, err` (KeyError) when the key cannot sign
-- @function Client:generate_state
Client.generate_state = state.generate_state

--- Checks a state received on the callback: signature, `alg`, claims, expiry, and the expected state.
-- @tparam string state the callback's `state` (nil gives an InvalidStateError, for a callback
-- without one)
-- @tparam[opt] string expected the state kept in the player's session (compared in constant time)
-- @tparam[opt] table opts `leeway` (seconds of clock skew tolerated, default 0), `once` (true: use
-- the client's replay store; false: none; or a `ReplayStore`)
-- @treturn table the claims (a plain table), or `nil, err` of kind InvalidStateError (`err.state`:
-- the claims when the signature held)
-- @function Client:validate_state
Client.validate_state = state.validate_state
Client._default_replay_store = state.default_store

--- An in-process store of the nonces of accepted states, bounded, to accept each state once.
-- When full of live entries, the entry closest to expiry is forgotten first. Give it as
-- `validate_state(state, expected, { once = store })`, or use the client option `replay_protection`.
-- Every check costs O(log n): a binary min-heap of expiries (`heap`: nonces, `exps`: their
-- expiries, `pos`: nonce -> heap index) beside the map `seen` (nonce -> expiry).
-- @tparam[opt=100000] integer max_entries the most nonces remembered at once
-- @treturn ReplayStore
-- @function ReplayStore
M.ReplayStore = stores.ReplayStore

--- Whether `v` can serve as a replay store (for `validate_state`'s `once` and `redeem_ticket`'s
-- `store`): an object whose `check_and_add(nonce, exp [, now])` remembers `nonce` until `exp` (epoch
-- seconds) and returns true the first time, false while it remembers it, or `nil, message` when it
-- cannot tell (the check then fails closed).
-- @param v any value
-- @treturn boolean whether it has a `check_and_add` method
-- @function is_replay_store
M.is_replay_store = stores.is_replay_store

--- A replay store in an nginx shared dict (`lua_shared_dict`), for use inside nginx: every worker
-- sees every nonce. Entries go in with `safe_add` and a TTL of the ticket's (or state's) remaining
-- life, so a full dict never evicts a live nonce: the check fails closed instead.
-- @tparam string|table dict an `ngx.shared` dict, or the name of one
-- @tparam[opt="eternaltwin:nonce:"] string prefix put before each nonce to make its key
-- @treturn SharedReplayStore a store for `redeem_ticket`'s `store` or `validate_state`'s `once`
-- @function SharedReplayStore
M.SharedReplayStore = stores.SharedReplayStore

--- The same constructor as `SharedReplayStore`, under the name DESIGN gives it.
-- @function SharedDictStore
M.SharedDictStore = stores.SharedDictStore

--- A store in Redis that many nodes share (`eternaltwin.redis_store`): `check_and_add`, `get`,
-- `set`, `delete`. `opts`: `url = "redis://[[user]:password@]host[:port][/db]"` (or `host`, `port`,
-- `password`, `username`, `db`), `prefix` (default `"eternaltwin:"`), `timeout` (seconds, default 1).
-- @tparam table opts the options: `url` or the fields it holds, `prefix`, `timeout`
-- @treturn RedisStore
-- @function RedisStore
M.RedisStore = require("eternaltwin.redis_store").new

--- Tickets without a client (also `require("eternaltwin.tickets").verifier`).
-- @table tickets
-- @field verifier `verifier{ key = K, audience = "game" [, store = S] [, revocations = S] [, leeway = n] }`
-- returns `v` with `v:redeem(ticket) -> claims | nil, err` (the checks and errors of
-- `Client:redeem_ticket`); `key` is the ticket key or its secret (32+ bytes), `revocations` the
-- gate's store (tickets issued before `GATE:revoke` are refused)
M.tickets = { verifier = tickets.verifier }

------------------------------------------------------------------------------------------------
--- Game tickets: a signed-in player handed from the web to a game server.
-- @section tickets

--- A short-lived, single-use ticket that hands a signed-in player to a game server.
-- Signed with the `ticket_key` option (or `state_key`); claims `a = "ticket"`, `sub`, `aud`, `iat`,
-- `exp`, `nonce` (32 random hex characters) and `data` when given. Makes no request to Eternaltwin.
-- Raises on argument mistakes (see the README, "Game servers").
-- @tparam string user_id the player's Eternaltwin user id (1 to 256 bytes)
-- @tparam table opts `audience` (required: the game server it is for, 1 to 256 bytes), `ttl`
-- (whole seconds, 1 to 600, default 60), `data` (a table, at most 4096 bytes as JSON, such as
-- `{ display_name = .. }`; signed, not encrypted)
-- @treturn string the ticket (a JWT), or `nil, err` (KeyError) when the key cannot sign
-- @function Client:issue_ticket
Client.issue_ticket = tickets.issue_ticket
Client._ticket_store = tickets.ticket_store

--- Redeems a ticket, once, on the game server.
-- Checks, in this order: size, signature and algorithm, that it is a ticket (not a state), the
-- claims' presence and types, the audience, `iat`, `exp` and the lifetime (at most 600 s), then
-- uses it up in the replay store. A ticket that fails a check is not used up.
-- @tparam string ticket what the game client sent (nil gives an InvalidTicketError)
-- @tparam table opts `audience` (required: this game server's), `store` (a replay store, see
-- `is_replay_store`; default the client's own), `leeway` (seconds of clock skew, default 0)
-- @treturn table the claims (`sub` the user id, `data`...), or `nil, err` of kind
-- InvalidTicketError (`err.ticket`: the claims when the signature held)
-- @function Client:redeem_ticket
Client.redeem_ticket = tickets.redeem_ticket

------------------------------------------------------------------------------------------------
--- HTTP.
-- Endpoints resolve under the base URL. A status of 300 or more gives `nil, err` (RequestError,
-- with `err.response`) unless `raise_on_error = false`; no answer gives a TransportError (`err.code`:
-- `timeout`, `connect`, `resolve`, `tls`, `too_large`, `reset`, `empty_reply`, `redirects`, `url`,
-- `interrupted`, `transport`). Inside a poller task the call yields; elsewhere it blocks, and
-- Ctrl-C ends it at once.
-- @section http

M._retry_after = http.retry_after

--- Sends a request.
-- @tparam string method `"GET"`, `"POST"`, `"PUT"`, `"DELETE"`, `"PATCH"`, `"HEAD"` or `"OPTIONS"`
-- (any case)
-- @tparam string endpoint under the base URL (`"api/v1/users"`), or an absolute http(s) URL
-- @tparam[opt] table opts `params` (query: a table, sorted by name, or an array of `{name, value}`;
-- values strings, numbers, booleans, or arrays of them), `headers` (name to value), `json` (a
-- value sent as JSON), `data` (a string body, or a table sent form-encoded), `token` (a Token or an
-- access-token string: `Authorization: Bearer`), `raise_on_error` (default true)
-- @treturn Response or `nil, err`
-- @function Client:request
Client.request = http.request

--- GET an endpoint (see `request`).
-- @tparam string endpoint under the base URL, or an absolute http(s) URL
-- @tparam[opt] table opts as for `request`
-- @treturn Response or `nil, err`
-- @function Client:get
Client.get = http.get

--- POST to an endpoint (see `request`).
-- @tparam string endpoint under the base URL, or an absolute http(s) URL
-- @tparam[opt] table opts as for `request`
-- @treturn Response or `nil, err`
-- @function Client:post
Client.post = http.post

Client._send = http._send
Client._grant = http._grant

--- Exchanges an authorization code for a Token (sent once, on a fresh connection, never retried).
-- @tparam string code the callback's `code`
-- @treturn Token or `nil, err` (RequestError, TransportError, DecodeError)
-- @function Client:token
Client.token = http.token

--- Exchanges a refresh token (or a Token holding one) for a new Token, where the server allows it.
-- @tparam Token|string token a Token with a `refresh_token`, or a refresh-token string (else raises)
-- @treturn Token or `nil, err`
-- @function Client:refresh
Client.refresh = http.refresh

--- A poller for async calls (see `eternaltwin.poller`).
-- @tparam[opt] table opts `max_connections` (default 0: no bound)
-- @treturn Poller
function M.poller(opts)
  return require("eternaltwin.poller").new(opts)
end

M.Client = Client
M.Response = response.Response

-- The high level, loaded on first use: `eternaltwin.connections` (named clients) and
-- `eternaltwin.User` (users as objects).
local LAZY = { connections = "eternaltwin.connections", User = "eternaltwin.user" }

return setmetatable(M, {
  __index = function(t, k)
    local name = LAZY[k]
    if name == nil then return nil end
    local v = require(name)
    rawset(t, k, v)
    return v
  end,
  __tostring = function(t) return "<" .. t._VERSION .. ">" end,
})
