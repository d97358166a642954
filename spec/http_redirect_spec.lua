-- eternaltwin.http: the redirect policy, followed in Lua above the transport seam (no libcurl session
-- follows on its own), against the mock.
local eternaltwin = require("eternaltwin")
local mock = require("spec.support.mock")
local fixtures = require("spec.support.fixtures")

local function client(opts)
  return fixtures.client(opts)
end

describe("eternaltwin.http redirects", function()
  it("are followed by the Lua loop, with the final URL in res.url", function()
    local c = client({ allow_redirects = true })
    local res = assert(c:get("_mock/redirect-chain/3"))
    assert.are.equal(200, res.status_code)
    assert.are.equal(c.url .. "_mock/redirect-chain/0", res.url)
    assert.are.same({ redirects = 0 }, res:json())
    -- The libcurl session itself never follows: it hands the 302 back.
    local conn = require("eternaltwin.http").private[c]
    assert.are.equal(302, (require("eternaltwin.transport_easy").send(conn, "GET", c.url .. "_mock/redirect-chain/1")))
  end)

  it("keep each status's method and stop at max_redirects with libcurl's message", function()
    local c = client({ allow_redirects = true, max_redirects = 2 })
    for _, status in ipairs({ 301, 302, 303, 307, 308 }) do
      local res = assert(c:get("_mock/redirect", { params = { to = "/_mock/echo", status = status } }))
      assert.are.equal("GET", res:json().method)
      assert.are.equal(c.url .. "_mock/echo", res.url)
    end
    assert.are.equal(200, assert(c:get("_mock/redirect-chain/2")).status_code)
    local _, err = c:get("_mock/redirect-chain/3")
    assert.are.equal("TransportError", err.kind)
    assert.are.equal("redirects", err.code)
    assert.truthy(err.message:find("Maximum (2) redirects followed", 1, true), err.message)
    assert.truthy(err.message:find("^GET " .. c.url .. "_mock/redirect%-chain/3"), err.message)
  end)

  it("refuse another scheme (code url), and are not followed unless allowed", function()
    local _, err = client({ allow_redirects = true }):get("_mock/redirect", { params = { to = "ftp://x/y" } })
    assert.are.equal("url", err.code)
    local _, err2 = client({ allow_redirects = true }):get("_mock/redirect", { params = { to = "file:///etc/passwd" } })
    assert.are.equal("url", err2.code)
    local res = assert(client():get("_mock/redirect", { params = { to = "/_mock/echo" }, raise_on_error = false }))
    assert.are.equal(302, res.status_code)
    assert.are.equal("/_mock/echo", res.headers.location)
  end)

  it("keep Authorization on the same origin and drop it on another", function()
    local m = mock.get()
    local c = client({ allow_redirects = true, ca_file = m.cert })
    local same = assert(c:get("_mock/redirect", { params = { to = "/_mock/echo" }, token = "tok" }))
    assert.are.equal("Bearer tok", same:json().headers.authorization)
    local away = assert(c:get("_mock/redirect", { params = { to = m.tls_url .. "_mock/echo" }, token = "tok",
                                                   headers = { Cookie = "a=1", ["X-Keep"] = "k" } }))
    assert.are.equal(m.tls_url .. "_mock/echo", away.url)
    local h = away:json().headers
    assert.is_nil(h.authorization)
    assert.is_nil(h.cookie)
    assert.are.equal("k", h["x-keep"])
  end)

  it("are never followed by the code exchange", function()
    local c = client({ url = mock.get().url .. "_mock/redirect-chain/1/", allow_redirects = true })
    local tok, err = c:token("code")
    assert.is_nil(tok)
    assert.is_not_nil(err)
    assert.are_not.equal("redirects", err.code)
  end)

  it("follow inside a poller task too", function()
    local c = client({ allow_redirects = true })
    local p = eternaltwin.poller()
    local t = p:spawn(function() return c:get("_mock/redirect-chain/2") end)
    p:run(10)
    local res = assert(t:wait())
    assert.are.equal(c.url .. "_mock/redirect-chain/0", res.url)
    p:close()
  end)
end)
