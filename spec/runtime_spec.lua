-- eternaltwin.runtime: the one place that picks the transport.
local eternaltwin = require("eternaltwin")
local runtime = require("eternaltwin.runtime")
local fixtures = require("spec.support.fixtures")

describe("eternaltwin.runtime", function()
  it("picks the blocking libcurl transport outside nginx and outside a task", function()
    assert.is_nil(runtime.nginx_mode())
    assert.is_false(runtime.in_nginx())
    assert.are.equal(require("eternaltwin.transport_easy"), (runtime.transport()))
    assert.is_nil(runtime.current())
  end)

  it("picks the multi transport inside a poller task, with the task", function()
    local p = eternaltwin.poller()
    local got, task_seen
    local task = p:spawn(function()
      local t, task = runtime.transport()
      got, task_seen = t, task
      return true
    end)
    p:run(5)
    assert.are.equal(require("eternaltwin.transport_multi"), got)
    assert.are.equal(task, task_seen)
    p:close()
  end)

  it("makes the libcurl session on the first request only, and both transports share its shape", function()
    local c = fixtures.client()
    local conn = require("eternaltwin.http").private[c]
    assert.is_nil(conn.session)
    local res = assert(c:get("_mock/echo"))
    assert.are.equal(200, res.status_code)
    assert.is_not_nil(conn.session)
    -- The same result shape from both transports: status, packed headers, body, url.
    local st, h, body = require("eternaltwin.transport_easy").send(conn, "GET", c.url .. "_mock/echo")
    assert.are.equal(200, st)
    assert.is_string(h)
    assert.truthy(require("eternaltwin.core").headers_table(h)["content-type"]:find("application/json", 1, true))
    assert.is_string(body)
    local p = eternaltwin.poller()
    local t = p:spawn(function()
      return require("eternaltwin.transport_multi").send(conn, "GET", c.url .. "_mock/echo", nil, nil, nil,
        runtime.current())
    end)
    p:run(10)
    local st2, h2 = t:wait()
    assert.are.equal(200, st2)
    assert.is_string(h2)
    p:close()
  end)

  it("does not let the poller patch it from outside", function()
    require("eternaltwin.poller")
    assert.is_nil(runtime.poller_transfer)
  end)
end)
