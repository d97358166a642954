-- SPDX-License-Identifier: MIT
-- Entry point of the Eternaltwin mock inside nginx: seeding (init) and request routing (handle).
local store = require("etwin_mock.store")
local http = require("etwin_mock.http")
local etwin = require("etwin_mock.etwin")
local faults = require("etwin_mock.faults")

local M = {}

-- Routes: anchored Lua pattern (captures become handler arguments) and a handler per method.
-- `ANY` matches every method. HEAD is routed as GET (nginx drops the body).
local ROUTES = {
  { "^/$", { GET = function() http.json(200, { name = "etwin-mock" }) end } },
  { "^/login$", { GET = etwin.login_form, POST = etwin.login_submit } },
  { "^/oauth/authorize$", { GET = etwin.authorize } },
  { "^/oauth/token$", { POST = etwin.token } },
  { "^/api/v1/auth/self$", { GET = etwin.get_self, PUT = etwin.login, DELETE = etwin.logout } },
  { "^/api/v1/users$", { GET = etwin.search } },
  { "^/api/v1/users/([^/]+)$", { GET = etwin.get_user } },
  { "^/api/v1/clock$", { GET = etwin.clock } },
  { "^/_mock/ping$", { GET = faults.ping } },
  { "^/_mock/reset$", { POST = faults.reset } },
  { "^/_mock/config$", { GET = faults.get_config, PUT = faults.put_config } },
  { "^/_mock/clock$", { GET = faults.get_clock, PUT = faults.put_clock } },
  { "^/_mock/stats$", { GET = faults.stats } },
  { "^/_mock/echo$", { ANY = faults.echo } },
  { "^/_mock/echo/", { ANY = faults.echo } },
  { "^/_mock/delay$", { GET = faults.delay } },
  { "^/_mock/status/(%d+)$", { ANY = faults.status } },
  { "^/_mock/reset%-connection$", { GET = faults.reset_connection } },
  { "^/_mock/badjson$", { GET = faults.badjson } },
  { "^/_mock/bytes/(%d+)$", { GET = faults.bytes } },
  { "^/_mock/redirect$", { ANY = faults.redirect } },
  { "^/_mock/redirect%-loop$", { GET = faults.redirect_loop } },
  { "^/_mock/redirect%-chain/(%d+)$", { GET = faults.redirect_chain } },
  { "^/_mock/headers$", { GET = faults.headers } },
  { "^/_mock/repeat%-header$", { GET = faults.repeat_header } },
  { "^/_mock/trickle$", { GET = faults.trickle } },
  { "^/_mock/flaky/([%w_.%-/]+)$", { ANY = faults.flaky } },
}

-- Runs in nginx's init phase: loads the seed (a bad config stops nginx with the message).
function M.init(opts)
  store.instance = opts.instance
  store.load(opts.config)
end

local function allow_header(methods)
  local list = {}
  for m in pairs(methods) do list[#list + 1] = m end
  table.sort(list)
  return table.concat(list, ", ")
end

local function dispatch()
  local path = ngx.var.uri
  local method = ngx.req.get_method()
  store.count_request(path)
  for _, route in ipairs(ROUTES) do
    -- Without captures, match gives the whole path, which capture-less handlers ignore.
    local caps = { path:match(route[1]) }
    if caps[1] ~= nil then
      local methods = route[2]
      local handler = methods[method] or methods.ANY or (method == "HEAD" and methods.GET)
      if not handler then
        return http.error(405, "MethodNotAllowed", { Allow = allow_header(methods) })
      end
      if path:find("^/api/v1/") then
        -- Bearer (and Basic) auth on every API route: a wrong token or secret is refused here.
        local ctx = etwin.auth_context()
        if not ctx then
          return http.error(401, "Unauthorized")
        end
        ngx.ctx.auth = ctx
      end
      return handler((table.unpack or unpack)(caps))
    end
  end
  http.error(404, "NotFound")
end

-- content_by_lua entry: any Lua error becomes a plain 500 (etwin-api.md section 0).
function M.handle()
  local ok, err = pcall(dispatch)
  if not ok then
    ngx.log(ngx.ERR, "etwin-mock: ", tostring(err))
    if not ngx.headers_sent then
      ngx.status = 500
      ngx.header["Content-Type"] = "text/plain; charset=utf-8"
      ngx.print("Internal Server Error")
    end
  end
end

return M
