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
end)
