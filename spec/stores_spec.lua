-- eternaltwin.stores: the replay stores, loadable without the client.
describe("eternaltwin.stores", function()
  it("loads without loading the client", function()
    local saved = {}
    for name in pairs(package.loaded) do
      if name == "eternaltwin" or name:match("^eternaltwin%.") and name ~= "eternaltwin.core" then
        saved[name] = package.loaded[name]
        package.loaded[name] = nil
      end
    end
    local stores = require("eternaltwin.stores")
    assert.is_nil(package.loaded["eternaltwin"])
    assert.is_nil(package.loaded["eternaltwin.http"])
    assert.is_function(stores.ReplayStore)
    for name in pairs(package.loaded) do
      if name:match("^eternaltwin") and not saved[name] and name ~= "eternaltwin.core" then
        package.loaded[name] = nil
      end
    end
    for name, m in pairs(saved) do package.loaded[name] = m end
  end)

  it("are the module's fields, with SharedDictStore the same constructor as SharedReplayStore", function()
    local eternaltwin = require("eternaltwin")
    local stores = require("eternaltwin.stores")
    assert.are.equal(stores.ReplayStore, eternaltwin.ReplayStore)
    assert.are.equal(stores.SharedReplayStore, eternaltwin.SharedReplayStore)
    assert.are.equal(eternaltwin.SharedReplayStore, eternaltwin.SharedDictStore)
    assert.are.equal(stores.is_replay_store, eternaltwin.is_replay_store)
    local dict = { data = {} }
    function dict:safe_add(k, v) if self.data[k] then return false, "exists" end self.data[k] = v return true end
    local s = eternaltwin.SharedDictStore(dict)
    assert.is_true(s:check_and_add("n", os.time() + 60))
    assert.is_false(s:check_and_add("n", os.time() + 60))
    assert.has_error(function() eternaltwin.SharedDictStore(42) end,
      "bad argument to 'SharedReplayStore' (ngx.shared dict or its name expected, got number)")
  end)

  it("use a nonce once, and fail closed on a store that cannot tell", function()
    local stores = require("eternaltwin.stores")
    local r = stores.ReplayStore(2)
    assert.is_true(stores.use_nonce(r, "a", os.time() + 60))
    assert.are.same({ nil, "already used" }, { stores.use_nonce(r, "a", os.time() + 60) })
    local broken = { check_and_add = function() error("down") end }
    local ok, why = stores.use_nonce(broken, "a", os.time() + 60)
    assert.is_nil(ok)
    assert.truthy(why:find("^replay store failed: .*down"))
  end)

  it("ReplayStore: get / set / delete, with the stores' convention", function()
    local stores = require("eternaltwin.stores")
    local r = stores.ReplayStore(3)
    local now = os.time()
    assert.is_true(r:set("s:1", "one", now + 60))
    assert.are.equal("one", r:get("s:1"))
    assert.are.equal(1, select("#", r:get("absent")))
    assert.is_nil(r:get("absent"))
    assert.is_true(r:set("s:1", "uno", now + 60))        -- replaced
    assert.are.equal("uno", r:get("s:1"))
    assert.are.equal(1, r.count)
    assert.is_true(r:delete("s:1"))
    assert.is_true(r:delete("s:1"))
    assert.is_nil(r:get("s:1"))
    assert.are.equal(0, r.count)
    assert.is_true(r:set("s:2", "v", now - 1))           -- exp past: not kept
    assert.is_nil(r:get("s:2"))
    assert.is_true(r:check_and_add("n", now + 60))
    assert.are.equal("1", r:get("n"))
    -- Bounded: the entry closest to expiry goes first.
    assert.is_true(r:set("a", "A", now + 10))
    assert.is_true(r:set("b", "B", now + 20))
    assert.is_true(r:set("c", "C", now + 30))
    assert.is_nil(r:get("a"))
    assert.are.equal("B", r:get("b"))
    assert.has_error(function() r:set("k", 1, now) end, "bad argument to 'set' (value: string expected, got number)")
    assert.has_error(function() r:get(nil) end, "bad argument to 'get' (key: non-empty string expected, got nil)")
  end)

  it("SharedDictStore: get / set (safe_set, ttl from exp) / delete; a full dict fails closed", function()
    local stores = require("eternaltwin.stores")
    local dict = { data = {}, ttl = {}, full = false }
    function dict:safe_add(k, v, ttl) if self.data[k] then return false, "exists" end self.data[k] = v self.ttl[k] = ttl return true end
    function dict:safe_set(k, v, ttl)
      if self.full then return nil, "no memory" end
      self.data[k], self.ttl[k] = v, ttl
      return true
    end
    function dict:get(k) return self.data[k] end
    function dict:delete(k) self.data[k] = nil end
    local s = stores.SharedDictStore(dict, "p:")
    local now = os.time()
    assert.is_true(s:set("k", "v", now + 30))
    assert.are.equal("v", dict.data["p:k"])
    assert.is_true(dict.ttl["p:k"] > 28 and dict.ttl["p:k"] <= 30)
    assert.are.equal("v", s:get("k"))
    assert.are.equal(1, select("#", s:get("absent")))
    assert.is_true(s:delete("k"))
    assert.is_nil(s:get("k"))
    assert.is_true(s:set("k", "v", now - 5))
    assert.is_nil(dict.data["p:k"])
    dict.full = true
    local ok, err = s:set("k2", "v", now + 30)
    assert.is_nil(ok)
    assert.are.equal("store", err.code)
    assert.truthy(err.message:find("no memory", 1, true))
    function dict:get() return nil, "broken" end
    local v, gerr = s:get("k")
    assert.is_nil(v)
    assert.are.equal("store", gerr.code)
  end)
end)
