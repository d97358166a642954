-- SPDX-License-Identifier: MIT
--- Internal: the gate's sign-in (eternaltwin.gate): binding slots, the redirect to Eternaltwin, and
-- the callback with its checks, its pages and its hooks. Not part of the public API.
-- @module eternaltwin.gate_signin

local core = require("eternaltwin.core")
local pages = require("eternaltwin.gate_pages")
local session = require("eternaltwin.gate_session")
local util = require("eternaltwin.gate_util")

local type, tostring, pcall, tonumber = type, tostring, pcall, tonumber
local json_encode, json_decode = core.json_encode, core.json_decode
local local_path, kept_return, valid_id, valid_name =
      util.local_path, util.kept_return, util.valid_id, util.valid_name
local verified, signed_value, set_cookie, request_cookies =
      util.verified, util.signed_value, util.set_cookie, util.request_cookies

-- luacheck: globals ngx
local M = {}

local SLOTS = 4                -- binding cookies per browser: the latest SLOTS sign-ins can complete
local NONCE_KEPT = 32          -- hex characters of a state's nonce a binding cookie holds (128 bits)
M.SLOTS = SLOTS

local function page(self, status, reason, o) return pages.page(self, status, reason, o) end
local store_down = pages.store_down
local function no_store() pages.no_store(ngx) end

-- The binding in slot `i` of this browser (`{ n = nonce prefix, r = return URL, e = expiry, s = sequence
-- number [, d = 1 once its sign-in completed] }`), or nil.
local function binding_in(self, jar, i, now)
  local values = jar[self._slot_names[i]]
  if not values then return nil end
  for k = 1, #values do
    local payload = verified(self, self._slot_tags[i], values[k])
    local b = payload and json_decode(payload)
    if type(b) == "table" and type(b.n) == "string" and type(b.r) == "string" and type(b.e) == "number"
       and type(b.s) == "number" and b.e >= now then
      return b
    end
  end
  return nil
end

local function set_binding(self, slot, b, max_age)
  set_cookie(self, self._slot_names[slot], signed_value(self, self._slot_tags[slot], json_encode(b)), max_age)
end

-- Starts a sign-in: a state bound to this browser by a cookie, then 302 to Eternaltwin. The binding
-- goes into one of SLOTS cookies (a free one, else the oldest: each binding is numbered one past the
-- newest the browser sent), so a browser holds at most SLOTS bindings however many sign-ins it starts,
-- and the latest ones complete. A slot holding a completed sign-in's marker counts as free.
function M.start(self, jar)
  local method = ngx.req.get_method()
  if method ~= "GET" and method ~= "HEAD" then
    return page(self, 401, "Sign in first.", { code = "unauthorized" })
  end
  local nonce = core.random_hex(64)
  local ok, state, err = false, nil, "no nonce from the CSPRNG"
  if nonce then ok, state, err = pcall(self.client.generate_state, self.client, self.state_ttl, nonce) end
  if not ok or not state then
    ngx.log(ngx.ERR, "eternaltwin.gate: cannot make a state: ", tostring(ok and err or state))
    return page(self, 503, "Cannot start the sign-in now; try again later.",
      { code = "unavailable", retry = kept_return(ngx.var.request_uri) })
  end
  local now = ngx.time()
  local free, oldest, oldest_seq, newest_seq = {}, 1, nil, 0
  for i = 1, SLOTS do
    local b = binding_in(self, jar, i, now)
    if not b or b.d then
      free[#free + 1] = i
    end
    if b then
      if not b.d and (oldest_seq == nil or b.s < oldest_seq) then oldest, oldest_seq = i, b.s end
      if b.s > newest_seq then newest_seq = b.s end
    end
  end
  local slot = oldest
  if #free > 0 then
    -- At random among the free ones: two sign-ins started at the same instant (two tabs) seldom
    -- pick the same slot.
    slot = free[(tonumber(core.random_hex(1) or "0", 16) or 0) % #free + 1]
  end
  set_binding(self, slot, { n = nonce:sub(1, NONCE_KEPT), r = kept_return(ngx.var.request_uri),
                            e = now + self.state_ttl, s = newest_seq + 1 }, self.state_ttl)
  no_store()
  return ngx.redirect(self.client:authorization_url(state), 302)
end


-- First string value of a query argument (a repeated one counts as bad).
local function arg(args, name)
  local v = args[name]
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

-- Counts a completed sign-in against the account's budget: true, false (over budget) or nil, err.
-- Kept in the shared dict (per node); without one (a store alone), no budget.
local function within_budget(self, user_id)
  local dict, key = self._dict, self._budget_prefix .. user_id
  if not dict then return true end
  local n = dict:incr(key, 1)
  if not n then
    local ok, err = dict:safe_add(key, 1, self.state_ttl)
    if ok then
      n = 1
    elseif err == "exists" then
      n = dict:incr(key, 1) or 1
    else
      return nil, err
    end
  end
  return n <= self._signin_budget
end

-- Whether a sign-in's single-use mark is there: true, false, or nil and a message.
local function marked(self, nonce)
  local key = self._mark_prefix .. nonce
  if not self._kv then return self._dict:get(key) ~= nil end
  local v, err = session.call(self._kv, "get", key)
  if v == nil and err ~= nil then return nil, err end
  return v ~= nil and v ~= false
end

-- The OAuth error a RequestError carries in its JSON body ("invalid_client"...), or nil.
local function oauth_error(err)
  local res = type(err) == "table" and err.response
  local body = type(res) == "table" and type(res.content) == "string" and #res.content <= 4096
    and json_decode(res.content)
  local e = type(body) == "table" and body.error
  if type(e) == "string" and e:match("^[%w_.-]+$") and #e <= 64 then return e end
  return nil
end

-- The binding of a state (for the return URL of a page's "Try again"), or nil.
local function binding_of_state(self, state, jar, now)
  if type(state) ~= "string" then return nil end
  local ok, claims, err = pcall(self.client.validate_state, self.client, state, nil, { once = false })
  if ok and not claims and type(err) == "table" then claims = err.state end
  local nonce = ok and type(claims) == "table" and claims.nonce
  if type(nonce) ~= "string" or #nonce < NONCE_KEPT then return nil end
  local want = nonce:sub(1, NONCE_KEPT)
  for i = 1, SLOTS do
    local b = binding_in(self, jar, i, now)
    if b and core.consttime_equal(b.n, want) then return b, i end
  end
  return nil
end

-- Exchanges the code and reads the user: user, token; or nil, log message, kind ("config":
-- Eternaltwin refused this site's credentials or a fresh code; "data": it answered what cannot enter
-- a session; "upstream": it failed, trying again may help).
local function exchange(self, code)
  local client = self.client
  local user, token
  local okx, msg, kind = pcall(function()
    local terr
    token, terr = client:token(code)
    if not token then
      local oe = oauth_error(terr)
      if oe == "invalid_client" or oe == "invalid_grant" then return tostring(terr), "config" end
      return tostring(terr), "upstream"
    end
    local res, rerr = client.users:me(token)
    if not res then return tostring(rerr), "upstream" end
    local me, derr = res:json()
    if type(me) ~= "table" then return tostring(derr or "no JSON object"), "upstream" end
    local u = me.user
    local dn = type(u) == "table" and type(u.display_name) == "table" and type(u.display_name.current) == "table"
      and u.display_name.current.value
    if type(u) ~= "table" then return "/api/v1/auth/self has no user", "data" end
    -- What enters a session is checked here, so that nothing later (a page, a ticket) meets it.
    if not valid_id(u.id) then return "/api/v1/auth/self: the user id is not a UUID", "data" end
    if not valid_name(dn) then return "/api/v1/auth/self: the display name is not 1 to 64 printable characters", "data" end
    user = { id = u.id, display_name = dn }
  end)
  if not okx then return nil, tostring(msg), "upstream" end
  if not user then return nil, msg, kind end
  return user, token
end

-- The reason a site's on_signin gives, fit for a page.
local function signin_reason(r)
  if type(r) ~= "string" or r == "" then return "This site refused the sign-in." end
  return r:sub(1, 300)
end

--- The redirect_uri's handler: checks the callback, signs the user in, back to the URL first asked.
--
-- Single use: a state is marked used (in the shared dict, or the store) only once Eternaltwin has
-- accepted its code and the user is read, so only completed sign-ins take room there (a junk code
-- or an abandoned sign-in takes none), and at most `SIGNIN_BUDGET` per account and `state_ttl`. The
-- mark is looked up before the code is sent (a replay of a completed sign-in gets 403) and added
-- atomically after: of two callbacks of one state racing on two workers (or nodes), only the first
-- to add it gets a session. A callback replayed by the browser that completed it (Back, reload)
-- finds its binding slot holding a "completed" marker and goes on to its page.
function M.callback(self)
  no_store()
  local args = ngx.req.get_uri_args(32)
  local jar, now = request_cookies(), ngx.time()
  local e = args.error
  if e ~= nil then
    local code = type(e) == "string" and e:match("^[%w_.-]+$") and #e <= 64 and e or "error"
    local b = binding_of_state(self, arg(args, "state"), jar, now)
    local retry = b and not b.d and local_path(b.r) and b.r or nil
    if code == "access_denied" then
      return page(self, 403, "You declined to sign in with Eternaltwin, so you are not signed in to this site.",
        { code = "declined", retry = retry })
    end
    ngx.log(ngx.WARN, "eternaltwin.gate: Eternaltwin answered the sign-in with error=", code)
    return page(self, 502, "Eternaltwin could not complete the sign-in (" .. code .. ").",
      { code = "upstream", retry = retry })
  end
  local code, state = arg(args, "code"), arg(args, "state")
  if not code or not state then
    return page(self, 400, "The sign-in callback lacks its code or state.", { code = "bad_callback" })
  end
  local ok, claims, err = pcall(self.client.validate_state, self.client, state, nil, { once = false })
  if not ok or not claims then
    local why = ok and tostring(err) or "unreadable"
    ngx.log(ngx.INFO, "eternaltwin.gate: a callback's state was refused: ", why)
    if why:find("expired", 1, true) then
      return page(self, 400, "This sign-in link has expired; sign in again.", { code = "expired", retry = self.home })
    end
    return page(self, 400, "This sign-in link is not valid.", { code = "bad_state" })
  end
  local nonce = claims.nonce
  local want = nonce:sub(1, NONCE_KEPT)
  local slot, bind
  for i = 1, SLOTS do
    local b = binding_in(self, jar, i, now)
    if b and #want == NONCE_KEPT and core.consttime_equal(b.n, want) then slot, bind = i, b break end
  end
  if not bind then
    return page(self, 403, "This sign-in was not started in this browser.", { code = "foreign" })
  end
  local back = local_path(bind.r) and bind.r or "/"
  if bind.d then
    -- Back or reload onto the callback, in the browser that completed this very sign-in.
    local user, uerr = self:user()
    if user then return ngx.redirect(back, 302) end
    if uerr then return store_down(self, "session", uerr, back) end
    return page(self, 403, "This sign-in link was already used.", { code = "used" })
  end
  local used_before, merr = marked(self, nonce)
  if used_before == nil then return store_down(self, "single-use mark", merr, back) end
  if used_before then return page(self, 403, "This sign-in link was already used.", { code = "used" }) end

  -- Only now does Eternaltwin see the code.
  local user, token, kind = exchange(self, code)
  if not user then
    if kind == "config" then
      ngx.log(ngx.ERR, "eternaltwin.gate: configuration problem: Eternaltwin refused this site's sign-in on a"
        .. " fresh code (check the client id, client secret and redirect_uri): ", token)
      return page(self, 502, "This site's sign-in is misconfigured; its operators need to fix it.",
        { code = "misconfigured" })
    end
    ngx.log(ngx.WARN, "eternaltwin.gate: sign-in failed at Eternaltwin: ", token)
    return page(self, 502, "Eternaltwin did not complete the sign-in.",
      { code = "upstream", retry = kind == "upstream" and back or nil })
  end
  local fine, berr = within_budget(self, user.id)
  if fine == false then
    return page(self, 429, "Too many sign-ins with this account; try again in a few minutes.",
      { code = "budget", retry = back })
  end
  local t = ngx.now()
  local sid, rkey, rvalue, rec
  if self._kv then
    if not fine then return store_down(self, "sign-in budget", berr, back) end
    -- One round trip (RedisStore:batch): the ban mark read, the single-use mark added and, in
    -- server mode without an on_signin hook, the session record written (deleted again below if
    -- the sign-in is refused: nobody has its id).
    local ops = { { "get", session.ban_key(user.id) }, { "check_and_add", self._mark_prefix .. nonce, claims.exp, now } }
    if self.sessions == "server" and not self.on_signin then
      sid, rkey, rvalue, rec = session.prepare(self, user, token, t)
      if not sid then return store_down(self, "session record", rkey, back) end
      ops[3] = { "set", rkey, rvalue, rec.e }
    end
    local r, serr = session.batch(self._kv, ops)
    if not r then return store_down(self, rkey and "sign-in marks and session record" or "sign-in marks", serr, back) end
    if r[1] or not r[2] then
      if rkey then session.call(self._kv, "delete", rkey) end
      if r[1] then return page(self, 403, "This account may not sign in to this site.", { code = "banned" }) end
      return page(self, 403, "This sign-in link was already used.", { code = "used" })
    end
    if rkey then session.written(self, rkey, rvalue) end
  else
    local used, why
    if fine then used, why = self.store:check_and_add(nonce, claims.exp, now)
    else why = berr end
    if used == false then return page(self, 403, "This sign-in link was already used.", { code = "used" }) end
    if not used then
      ngx.log(ngx.ERR, "eternaltwin.gate: lua_shared_dict '", self.shared_dict, "' refused a sign-in mark: ",
        tostring(why))
      return page(self, 503, "Cannot complete the sign-in now; try again later.", { code = "unavailable", retry = back })
    end
  end
  if self.on_signin then
    local hok, accept, reason = pcall(self.on_signin, { id = user.id, display_name = user.display_name }, token)
    if not hok then
      ngx.log(ngx.ERR, "eternaltwin.gate: on_signin raised: ", tostring(accept))
      return page(self, 503, "This site could not complete the sign-in; try again later.",
        { code = "unavailable", retry = back })
    end
    if accept ~= true then
      return page(self, 403, signin_reason(reason), { code = "refused" })
    end
  end
  local exp = now + self.session_ttl
  if self.sessions == "server" then
    if not sid then
      local serr
      sid, serr = session.create(self, user, token, t)
      if not sid then return store_down(self, "session record", serr, back) end
    end
    set_cookie(self, self.cookie_name, signed_value(self, self._session_tag, sid), self.session_ttl)
  else
    set_cookie(self, self.cookie_name, signed_value(self, self._session_tag,
      json_encode({ id = user.id, name = user.display_name, exp = exp, iat = math.floor(t * 1000) })),
      self.session_ttl)
  end
  -- The slot now holds a "completed" marker, so that Back or reload onto this callback goes on.
  bind.d = 1
  set_binding(self, slot, bind, bind.e - now > 0 and bind.e - now or 1)
  user.expires = exp
  ngx.ctx.eternaltwin_user = user
  return ngx.redirect(back, 302)
end

return M
