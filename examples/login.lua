-- SPDX-License-Identifier: MIT
-- The whole "Sign in with Eternaltwin" flow against the bundled mock server:
-- authorization URL, the player's consent (scripted), callback with state check, code exchange,
-- and the signed-in player's profile. Run with `make demo`.
--
-- Run (after `make`): `lua5.4 examples/login.lua` from the repository root, or `lua5.4 login.lua`
-- from examples/; it starts the bundled mock on a free port and stops it at the end.
-- Against your own server: ETERNALTWIN_URL=http://localhost:50320/ lua5.4 examples/login.lua
-- The checkout's lua/, build/ and examples/ go first on the module paths (found from this file's
-- own path), so this runs from the repository root or from examples/ without LUA_PATH.
do
  local root = ((arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or ".") .. "/.."
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/?.lua;" .. package.path
  -- The build for the running Lua: build/ for 5.4, build/lua5.1/ ... build/luajit/ for the others.
  local lua = type(jit) == "table" and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
  package.cpath = root .. (lua == "lua5.4" and "/build/" or "/build/" .. lua .. "/") .. "?.so;" .. package.cpath
end
local eternaltwin = require("eternaltwin")
local keys = require("eternaltwin.keys")
local browser = require("examples.browser")
local mockserver = require("examples.mockserver")

local function main(url)
  -- The app's side: one client, configured once.
  local client = eternaltwin.new("demo@clients", "dev_secret", "http://localhost:8000/oauth/callback",
    keys.HS256Key("a long random secret, kept out of the repository"), { url = url, timeout = 5 })
  print("client:            " .. tostring(client))

  -- 1. The app makes a state (kept in the player's session) and sends the player to Eternaltwin.
  local state = assert(client:generate_state())
  local auth_url = client:authorization_url(state)
  print("authorization URL: " .. auth_url)

  -- 2. The player signs in and consents (scripted here); Eternaltwin redirects to the callback.
  local player = browser.new(client)
  assert(player:login(url, "alice", "alice-password"))
  local callback, err = player:authorize(auth_url)
  if not callback then return nil, err end
  print("callback:          code received, state " .. (callback.state == state and "echoed" or "CHANGED"))
  if callback.error then return nil, "authorization refused: " .. callback.error end

  -- 3. The app checks the state before anything else, then exchanges the code.
  local claims, serr = client:validate_state(callback.state, state)
  if not claims then return nil, serr end
  print("state:             valid, nonce " .. claims.nonce:sub(1, 12) .. "...")
  local token, terr = client:token(callback.code)
  if not token then return nil, terr end
  print("token:             " .. tostring(token))

  -- 4. Who signed in?
  local res, merr = client.users:me(token)
  if not res then return nil, merr end
  local me = assert(res:json())
  print(string.format("signed in:         %s (id %s)", me.user.display_name.current.value, me.user.id))
  return true
end

mockserver.run(main)
