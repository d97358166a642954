-- SPDX-License-Identifier: MIT
--- Internal: the client options, declared once. Each entry of `LIST` gives an option's name, its
-- type (a checker of `TYPES`), its default, whether it is a field of the client (`field`), whether
-- the libcurl session takes it (`session`), and one line of documentation (`doc`, `default_doc` for
-- the default as shown). `build` checks what `eternaltwin.new` was given and makes the client's
-- frozen settings from it; `markdown` and `ldoc` write the options table of the README and of the
-- reference (tools/gen-options.lua puts them in place; spec/options_spec.lua fails when they drift).
-- Not part of the public API.
-- @module eternaltwin.options
local keys = require("eternaltwin.keys")
local check = require("eternaltwin.check")
local url = require("eternaltwin.url")
local math_type = require("eternaltwin.compat").math_type

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local format, concat = string.format, table.concat
local argfail, typename = check.fail, check.typename

local M = {}

--- The options, in the order the documentation lists them.
M.LIST = {
  { name = "client_id", type = "string", required = true, field = true,
    doc = "the OAuth client id, such as `\"myapp@clients\"`" },
  { name = "client_secret", type = "string", required = true,
    doc = "the OAuth client secret (never shown, not a field of the client)" },
  { name = "redirect_uri", type = "string", required = true, field = true,
    doc = "the app's callback URL, as registered with Eternaltwin" },
  { name = "state_key", type = "key", required = true, field = true,
    doc = "signs and checks states: a key of `eternaltwin.keys`, a KeyRing, or any table with "
      .. "`algorithm`, `encode` and `decode`" },
  { name = "url", type = "string", field = true,
    doc = "the base URL of the instance, `\"https://eternaltwin.org/\"` (or give `host`); userinfo "
      .. "(`user:pw@`) is refused; the field ends with `/`" },
  { name = "scheme", type = "scheme", default = "http", doc = "with `host`: `\"http\"` or `\"https\"`" },
  { name = "host", type = "string", doc = "with `scheme`, `port`, `prefix`: the base URL in parts" },
  { name = "port", type = "port", default_doc = "the scheme's", doc = "with `host`: the port" },
  { name = "prefix", type = "string", default = "/",
    doc = "with `host`: the path of the instance; endpoints resolve under it" },
  { name = "timeout", type = "posnum", default = 5, field = true, session = true,
    doc = "seconds per attempt, fractions allowed" },
  { name = "connect_timeout", type = "posnum", field = true, session = true, default_doc = "libcurl's",
    doc = "seconds to connect" },
  { name = "verify_ssl", type = "boolean", default = true, field = true, session = true,
    doc = "verify the server's certificate and name" },
  { name = "ca_file", type = "string", field = true, session = true, default_doc = "the system store",
    doc = "a PEM file of trusted certificates: the only ones trusted (the system store no longer counts)" },
  { name = "proxy", type = "proxy", field = true, session = true, default_doc = "the environment's",
    doc = "nil: the environment's (`http_proxy`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, as curl reads "
      .. "them); `false`: no proxy whatever the environment says; a string: that proxy URL. A proxy sees "
      .. "the Basic credentials, codes and tokens of `http://` requests" },
  { name = "allow_redirects", type = "boolean", default = false, field = true,
    doc = "follow redirects (at most `max_redirects`); never for the code exchange and refresh" },
  { name = "max_redirects", type = "count", default = 10, field = true,
    doc = "with `allow_redirects`: the most redirects followed" },
  { name = "user_agent", type = "string", default = "eternaltwin-lua/0.1.0", field = true, session = true,
    doc = "the User-Agent header; `\"\"` sends none" },
  { name = "retries", type = "count", default = 0, field = true,
    doc = "extra attempts for GET, HEAD, PUT, DELETE, OPTIONS on `connect`, `timeout`, reset or empty "
      .. "replies and on 429, 502, 503, 504; never for POST or the code exchange" },
  { name = "retry_max_wait", type = "nonneg", default = 30, field = true,
    doc = "longest single wait between attempts in seconds (Retry-After is honoured, else a jittered "
      .. "exponential backoff)" },
  { name = "max_body_size", type = "posint", default = 16 * 1024 * 1024, default_doc = "16 MiB", field = true,
    session = true,
    doc = "largest response body in bytes, inclusive; beyond it, a TransportError `too_large`" },
  { name = "max_connections", type = "count", default = 0, default_doc = "0 (no bound)", field = true,
    doc = "bound on the open connections of a poller" },
  { name = "replay_protection", type = "replay", default_doc = "false",
    doc = "true, or a store size: `validate_state` accepts each state once (see `ReplayStore`)" },
  { name = "ticket_key", type = "key", field = true, default_doc = "`state_key`",
    doc = "signs and checks game tickets in place of `state_key` (see `Client:issue_ticket`)" },
}

--- name -> declaration.
M.BY_NAME = {}
for _, o in ipairs(M.LIST) do M.BY_NAME[o.name] = o end

-- The type checkers: what each accepts, and how the message names it.
local TYPES = {
  key = { keys.is_key, "a key (table with algorithm, encode, decode)" },
  scheme = { function(v) return v == "http" or v == "https" end, '"http" or "https"' },
  port = { function(v)
    local n = tonumber(v)
    return (type(v) == "number" or (type(v) == "string" and v:match("^%d+$"))) and n and n >= 1 and n <= 65535
      and n % 1 == 0
  end, "port number 1-65535" },
  proxy = { function(v) return v == false or type(v) == "string" end, "string or false" },
  replay = { function(v) return type(v) == "boolean" or (math_type(v) == "integer" and v > 0) end,
    "boolean or positive integer (store size)" },
  posnum = { function(v) return type(v) == "number" and v > 0 and v < math.huge end, "positive number" },
  nonneg = { function(v) return type(v) == "number" and v >= 0 and v < math.huge end, "non-negative number" },
  count = { function(v) return math_type(v) == "integer" and v >= 0 end, "non-negative integer" },
  posint = { function(v) return math_type(v) == "integer" and v > 0 end, "positive integer" },
  string = { function(v) return type(v) == "string" end, "string" },
  boolean = { function(v) return type(v) == "boolean" end, "boolean" },
}

local function check_option(name, v)
  local decl = M.BY_NAME[name]
  if decl == nil then argfail("eternaltwin.new", format("unknown option '%s'", tostring(name)), 4) end
  local t = TYPES[decl.type]
  if not t[1](v) then
    argfail("eternaltwin.new", format("option '%s': %s expected, got %s", name, t[2], typename(v)), 4)
  end
end

local function normalise_url(o)
  if o.url ~= nil and o.host ~= nil then
    argfail("eternaltwin.new", "give either option 'url' or option 'host', not both", 4)
  end
  if o.url ~= nil then
    local scheme, authority = url.split(o.url)
    if not scheme or authority == "" then
      argfail("eternaltwin.new", "option 'url': http:// or https:// URL expected", 4)
    end
    if o.url:find("[%s?#]") then argfail("eternaltwin.new", "option 'url': no spaces, query or fragment", 4) end
    -- Credentials in the URL would reach tostring, the state's `as` claim, the authorization URL
    -- (the browser) and error URLs: refused (the message does not repeat them).
    if authority:find("@", 1, true) then
      argfail("eternaltwin.new", "option 'url': userinfo (user:password@) is not allowed", 4)
    end
    return o.url:sub(-1) == "/" and o.url or o.url .. "/"
  end
  if o.host == nil then argfail("eternaltwin.new", "option 'url' or 'host' is required", 4) end
  if o.host == "" or o.host:find("[%s/?#@]") then argfail("eternaltwin.new", "option 'host': bad host name", 4) end
  local prefix = o.prefix
  if prefix:sub(1, 1) ~= "/" then prefix = "/" .. prefix end
  if prefix:sub(-1) ~= "/" then prefix = prefix .. "/" end
  return format("%s://%s%s%s", o.scheme, o.host, o.port and ":" .. tostring(o.port) or "", prefix)
end

--- Checks the arguments of `eternaltwin.new` (raising as it documents, blaming its caller) and
-- returns the settings (the client's fields, options fixed) and every option given (secret included).
function M.build(client_id, client_secret, redirect_uri, state_key, opts)
  local o = {}
  if type(client_id) == "table" and client_secret == nil then
    opts = client_id
  else
    if opts ~= nil and type(opts) ~= "table" then argfail("eternaltwin.new", "options table expected as #5", 3) end
    o.client_id, o.client_secret, o.redirect_uri, o.state_key = client_id, client_secret, redirect_uri, state_key
  end
  for k, v in pairs(opts or {}) do
    if o[k] ~= nil then argfail("eternaltwin.new", format("option '%s' given twice", tostring(k)), 3) end
    o[k] = v
  end
  for _, decl in ipairs(M.LIST) do
    if decl.required and o[decl.name] == nil then
      argfail("eternaltwin.new", format("option '%s' is required", decl.name), 3)
    end
  end
  for k, v in pairs(o) do check_option(k, v) end
  local settings = {}
  for _, decl in ipairs(M.LIST) do
    local v = o[decl.name]
    if v == nil then v = decl.default; o[decl.name] = v end
    if decl.field then settings[decl.name] = v end
  end
  settings.url = normalise_url(o)
  return settings, o
end

--- The options of a libcurl session (core.session) made from a client's settings: the session
-- never follows redirects (the redirect policy is the Lua layer's), packs headers, elides the URL.
function M.session_options(settings)
  local s = { packed_headers = true, elide_url = true, allow_redirects = false }
  for _, decl in ipairs(M.LIST) do
    if decl.session then s[decl.name] = settings[decl.name] end
  end
  return s
end

--- The message of an assignment to an option after creation.
function M.fixed_message(name)
  return format("eternaltwin: client options are fixed at creation (%s); make a new client", name)
end

-- The type of each checker, as the documentation names it.
local LDOC_TYPES = { key = "key", scheme = "string", port = "integer", proxy = "string|boolean",
  replay = "boolean|integer", posnum = "number", nonneg = "number", count = "integer", posint = "integer",
  string = "string", boolean = "boolean" }

local function shown_default(decl)
  if decl.default_doc then return decl.default_doc end
  if decl.default == nil then return decl.required and "required" or "none" end
  if type(decl.default) == "string" then return format("`%q`", decl.default) end
  return tostring(decl.default)
end

--- The README's options table (Markdown), from `LIST`.
function M.markdown()
  local out = { "| option | type | default | meaning |", "| --- | --- | --- | --- |" }
  for _, decl in ipairs(M.LIST) do
    out[#out + 1] = format("| `%s` | %s | %s | %s |", decl.name, (LDOC_TYPES[decl.type]:gsub("|", " or ")),
      shown_default(decl), decl.doc)
  end
  return concat(out, "\n") .. "\n"
end

--- The reference's options table (an LDoc comment), from `LIST`.
function M.ldoc()
  local out = {
    "",
    "--- Client options, given to `new` (as its last argument, or as its only table with the four",
    "-- first arguments inside). An unknown option, a missing required one, an ill-typed value, or both",
    "-- `url` and `host`, raises an error naming the option. They are fixed at creation: reading",
    "-- `client.timeout` works, assigning it raises.",
    "-- @table options",
  }
  for _, decl in ipairs(M.LIST) do
    local line = format("-- @tfield %s %s %s (default: %s)", LDOC_TYPES[decl.type], decl.name, decl.doc,
      shown_default(decl))
    while #line > 110 do                      -- wrapped at a space, within luacheck's line length
      local cut = line:sub(1, 110):match("^.*() ")
      out[#out + 1] = line:sub(1, cut - 1)
      line = "-- " .. line:sub(cut + 1)
    end
    out[#out + 1] = line
  end
  -- The names and types as code too (what the client's __newindex refuses to change, and what
  -- spec/release_spec.lua reads to find every option in the reference).
  out[#out + 1] = ""
  out[#out + 1] = "local OPTION_TYPES = {"
  local row = " "
  for _, decl in ipairs(M.LIST) do
    local item = format(" %s = %q,", decl.name, decl.type)
    if #row + #item > 100 then out[#out + 1] = row; row = " " end
    row = row .. item
  end
  out[#out + 1] = row
  out[#out + 1] = "}"
  return concat(out, "\n") .. "\n"
end

return M
