-- core.response_parser: the binding of the C response framing the nginx transport feeds
-- (csrc/l_resp.c over csrc/et_resp.c; the framing cases themselves are in spec/c/test_resp.c).
local core = require("eternaltwin.core")

local function feed_all(p, s, step)
  local done, left, msg
  for i = 1, #s, step do
    done, left, msg = p:feed(s:sub(i, i + step - 1))
    if done ~= false then return done, left, msg end
  end
  return done, left, msg
end

describe("core.response_parser", function()
  local RESPONSE = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\n"
    .. "Set-Cookie: b=2\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n"

  it("frames a response fed in pieces, as the libcurl path shapes it", function()
    for _, step in ipairs({ 1, 7, #RESPONSE }) do
      local p = core.response_parser(false, 1024)
      assert.are.same({ true, 0 }, { feed_all(p, RESPONSE, step) })
      local status, headers, body, keep = p:result()
      assert.are.equal(200, status)
      assert.are.same({ ["content-type"] = "application/json", ["set-cookie"] = "a=1\nb=2",
                        ["transfer-encoding"] = "chunked" }, headers)
      assert.are.equal('{"a":1}', body)
      assert.is_true(keep)
      p:close()
    end
  end)

  it("reset: the next response on the same parser keeps nothing of the last one", function()
    local p = core.response_parser(false, 1024)
    assert.are.same({ true, 0 }, { feed_all(p, RESPONSE, 5) })
    local big = string.rep("x", 70000)
    for _, case in ipairs({
      { head = false, max = 1024, text = "HTTP/1.1 404 Not Found\r\nX-Other: 1\r\nContent-Length: 2\r\n\r\nno",
        want = { 404, { ["x-other"] = "1", ["content-length"] = "2" }, "no", true } },
      { head = true, max = 1024, text = "HTTP/1.1 200 OK\r\nContent-Length: 50\r\nConnection: close\r\n\r\n",
        want = { 200, { ["content-length"] = "50", connection = "close" }, "", false } },
      { head = false, max = 100000, text = "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" .. big,
        want = { 200, { ["content-length"] = "70000" }, big, true } },
      { head = false, max = 1024, text = RESPONSE,
        want = { 200, { ["content-type"] = "application/json", ["set-cookie"] = "a=1\nb=2",
                        ["transfer-encoding"] = "chunked" }, '{"a":1}', true } },
    }) do
      p:reset(case.head, case.max)
      assert.has_error(function() p:result() end, "the response is not complete")
      assert.are.same({ true, 0 }, { feed_all(p, case.text, 7) })
      assert.are.same(case.want, { p:result() })
    end
    -- The bound is the new one: 1024 refuses what 100000 took.
    p:reset(false, 1024)
    local done, code = feed_all(p, "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" .. big, 4096)
    assert.is_nil(done)
    assert.are.equal("too_large", code)
    p:reset(false, 1024)
    assert.are.same({ true, 0 }, { feed_all(p, "HTTP/1.1 204 No Content\r\n\r\n", 3) })
    assert.are.equal(204, (p:result()))
    p:close()
    assert.has_error(function() p:reset(false, 1024) end)
  end)

  it("says how many bytes follow a complete response, and waits for more otherwise", function()
    local p = core.response_parser(false, 1024)
    assert.is_false(p:feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab"))
    assert.has_error(function() p:result() end, "the response is not complete")
    assert.are.same({ true, 5 }, { p:feed("cHTTP/") })
    assert.are.equal("abc", select(3, p:result()))
  end)

  it("ends a close-delimited body at eof, and tells empty replies from cut ones", function()
    local p = core.response_parser(false, 1024)
    assert.is_false(p:feed("HTTP/1.1 200 OK\r\n\r\nrest"))
    assert.is_true(p:eof())
    assert.are.same({ 200, "rest", false }, { p:result() and 200, select(3, p:result()), select(4, p:result()) })
    assert.are.same({ nil, "empty_reply", "empty reply from server" }, { core.response_parser(false, 10):eof() })
    local cut = core.response_parser(false, 10)
    cut:feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    assert.are.same({ nil, "reset", "connection closed before the end of the response" }, { cut:eof() })
  end)

  it("returns too_large and malformed responses as values, with HEAD bodiless", function()
    assert.are.same({ nil, "too_large", "response body exceeds max_body_size (4 bytes)" },
      { core.response_parser(false, 4):feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n") })
    assert.are.same({ nil, "transport", "malformed response: bad status line" },
      { core.response_parser(false, 4):feed("SSH-2.0-OpenSSH\r\n") })
    local head = core.response_parser(true, 4)
    assert.are.same({ true, 0 }, { head:feed("HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n") })
    assert.are.equal("", select(3, head:result()))
  end)

  it("checks its arguments, closes twice, refuses use after close, prints its state", function()
    assert.has_error(function() core.response_parser(false, 0) end)
    assert.has_error(function() core.response_parser(false, 1.5) end)
    assert.has_error(function() core.response_parser(false, "x") end)
    local p = core.response_parser(false, 10)
    assert.has_error(function() p:feed({}) end)
    assert.matches("ResponseParser %(reading%)", tostring(p))
    p:close()
    p:close()
    assert.matches("ResponseParser %(closed%)", tostring(p))
    local ok, err = pcall(p.feed, p, "x")
    assert.is_false(ok)
    assert.matches("attempt to use a closed response parser", err, 1, true)
    -- Dropped while holding buffers: the collector frees them.
    for _ = 1, 100 do core.response_parser(false, 1024):feed("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabcd") end
    collectgarbage()
    collectgarbage()
  end)
end)
