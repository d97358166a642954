-- eternaltwin.url: the one URL parser of the Lua layer.
local url = require("eternaltwin.url")
local errors = require("eternaltwin.errors")

describe("eternaltwin.url", function()
  it("parses http(s) URLs for a request", function()
    assert.are.same({ "http", "h", 80, "/", "h" }, { url.parse("http://h") })
    assert.are.same({ "https", "h.example", 443, "/a/b?x=1", "h.example" }, { url.parse("HTTPS://h.example/a/b?x=1#f") })
    assert.are.same({ "http", "h", 8080, "/?q", "h:8080" }, { url.parse("http://h:8080?q") })
    assert.are.same({ "http", "[::1]", 81, "/", "[::1]:81" }, { url.parse("http://[::1]:81/") })
    for _, bad in ipairs({ "ftp://h/", "http://", "http://u:p@h/", "http://h:0/", "http://h:65536/",
                           "http://h:x/", "http://h/a b", "http://h/\0", "file:///etc/passwd", "h/x" }) do
      assert.is_nil(url.parse(bad), bad)
    end
  end)

  it("resolves a Location against the URL it answered", function()
    local base = "http://h:81/a/b?x"
    assert.are.equal("https://o/x", url.resolve(base, "https://o/x"))
    assert.are.equal("http://o/p", url.resolve(base, "//o/p"))
    assert.are.equal("http://h:81/p?q", url.resolve(base, "/p?q"))
    assert.are.equal("http://h:81/a/c", url.resolve(base, "c"))
    assert.are.equal("http://h:81/c", url.resolve("http://h:81", "c"))
    assert.is_nil(url.resolve(base, "ftp://o/x"))
    assert.is_nil(url.resolve(base, "javascript:alert(1)"))
  end)

  it("compares origins", function()
    assert.is_true(url.same_origin("http://h/a", "http://H:80/b"))
    assert.is_false(url.same_origin("http://h/a", "https://h/a"))
    assert.is_false(url.same_origin("http://h/a", "http://h:81/a"))
    assert.is_false(url.same_origin("http://h/a", "http://g/a"))
  end)

  it("tells a path that climbs above its base", function()
    assert.is_true(url.climbs(".."))
    assert.is_true(url.climbs("a/../../b"))
    assert.is_false(url.climbs("a/../b"))
    assert.is_false(url.climbs("./a/./b/.."))
    assert.is_false(url.climbs("a?x=../../.."))
  end)

  it("gives the safe form for messages (errors.safe_url is it)", function()
    assert.are.equal("https://h/p", url.safe("https://u:pw@h/p?code=1#f"))
    assert.are.equal("http://h/", url.safe("http://h/#x"))
    assert.are.equal("", url.safe(nil))
    assert.are.equal(url.safe, errors.safe_url)
  end)

  it("splits and recognises absolute http(s) URLs", function()
    assert.are.same({ "Http", "h:1", "/x?y" }, { url.split("Http://h:1/x?y") })
    assert.is_nil(url.split("mailto:x@y"))
    assert.is_true(url.is_http("https://x"))
    assert.is_false(url.is_http("api/v1"))
  end)
end)

describe("endpoints with dot segments", function()
  local mock = require("spec.support.mock")
  local client = require("spec.support.fixtures").client

  it("an endpoint climbing above the base URL is refused", function()
    local c = client({ url = mock.get().url .. "api/v1/" })
    assert.has_error(function() c:get("../../../x") end)
    assert.has_error(function() c:get("users/../../x") end)
    assert.has_error(function() c:get("./../x") end)
    -- Dots that stay under the base are fine.
    local res = assert(c:get("users/../users", { raise_on_error = false }))
    assert.is_number(res.status_code)
  end)
end)
