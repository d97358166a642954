-- SPDX-License-Identifier: MIT
-- The transport contract: one table of cases (spec/support/transport_cases.lua), each run through the
-- public client API under every transport: blocking calls, calls inside a poller task, and calls
-- inside nginx (cosockets, the content phase of POST /run). A case a transport does not meet today
-- names the transports it holds for (`only`); transport_cases.DIFFERENCES says why.
local core = require("eternaltwin.core")
local eternaltwin = require("eternaltwin")
local mock = require("spec.support.mock")
local openresty = require("spec.support.openresty")
local cases = require("spec.support.transport_cases")

local m, srv
local serial = 0

-- A fresh environment per run: the mock's URLs and a key of its own for the flaky counters.
local function env_for(transport, case_index)
  serial = serial + 1
  return { MOCK = m.url, TLS = m.tls_url, TLSPORT = tostring(m.tls_port),
           KEY = ("%s-%d-%d-%s"):format(transport, case_index, serial, core.random_hex(4)) }
end

local DRIVERS = {}

function DRIVERS.blocking(case, env)
  env.base = { ca_file = m.cert }
  return cases.execute(case, env)
end

function DRIVERS.poller(case, env)
  env.base = { ca_file = m.cert }
  local p = eternaltwin.poller()
  local in_task
  local t = p:spawn(function()
    in_task = coroutine.running()
    return cases.execute(case, env)
  end)
  assert.are.equal(0, p:run(120))
  assert.is_truthy(in_task)
  local out, err = t:wait()
  assert(out, tostring(err))
  return out
end

function DRIVERS.nginx(case, env)
  -- The server trusts the mock's certificate (lua_ssl_trusted_certificate): no ca_file there.
  local code = ([[
    local cases = require("spec.support.transport_cases")
    return cases.execute(cases.find(%q), { MOCK = %q, TLS = %q, TLSPORT = %q, KEY = %q })
  ]]):format(case.name, env.MOCK, env.TLS, env.TLSPORT, env.KEY)
  local out, status = srv:run(code)
  assert(status == 200, "nginx /run failed: " .. tostring(out.error) .. "\n" .. srv:log())
  return out
end

-- expected is a subset of got; false means absent.
local function subset(expected, got, where)
  for k, want in pairs(expected) do
    local have = type(got) == "table" and got[k] or nil
    local at = where .. "." .. tostring(k)
    if want == false then
      assert.is_nil(have, at .. " should be absent")
    elseif type(want) == "table" then
      assert.is_table(have, at)
      subset(want, have, at)
    else
      assert.are.equal(want, have, at)
    end
  end
end

local function check(case, out, env)
  local e = cases.subst(case.expect, env)
  local msg = "got " .. core.json_encode(out):sub(1, 600)
  if e.error then
    assert.is_table(out.error, msg)
    local ee, ge = e.error, out.error
    assert.are.equal(ee.kind, ge.kind, msg)
    if ee.code then assert.are.equal(ee.code, ge.code, msg) end
    if ee.code_in then
      local hit = false
      for _, c in ipairs(ee.code_in) do hit = hit or c == ge.code end
      assert.is_true(hit, msg)
    end
    if ee.status_code then assert.are.equal(ee.status_code, ge.status_code, msg) end
    if ee.url then assert.are.equal(ee.url, ge.url, msg) end
    if ee.message then assert.matches(ee.message, ge.message, nil, false, msg) end
  else
    assert.is_nil(out.error, msg)
  end
  if e.status then assert.are.equal(e.status, out.status, msg) end
  if e.url then assert.are.equal(e.url, out.url, msg) end
  if e.body then assert.are.equal(e.body, out.body, msg) end
  if e.body_len then assert.are.equal(e.body_len, out.body_len, msg) end
  if e.headers then subset(e.headers, out.headers or {}, "headers") end
  if e.json then
    local v = core.json_decode(out.body or "")
    assert.is_table(v, msg)
    subset(e.json, v, "json")
  end
  if e.json_error then assert.are.equal(e.json_error, out.json_error, msg) end
  if e.seconds then
    local lo, hi = e.seconds[1], e.seconds[2]
    assert.is_true(out.seconds >= lo and out.seconds < hi,
      ("took %.3f s, expected [%g, %g)"):format(out.seconds, lo, hi))
  end
end

describe("transport contract", function()
  setup(function()
    m = mock.get()
    srv = openresty.start{ http = "lua_ssl_trusted_certificate " .. m.cert .. ";\n    lua_ssl_verify_depth 2;" }
  end)
  teardown(function() if srv then srv:stop() end end)

  for _, transport in ipairs(cases.TRANSPORTS) do
    describe(transport, function()
      for i, case in ipairs(cases.CASES) do
        if not case.only or case.only[transport] then
          it(case.name, function()
            local env = env_for(transport, i)
            local out = DRIVERS[transport](case, env)
            check(case, out, env)
          end)
        end
      end
    end)
  end
end)
