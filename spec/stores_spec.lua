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
    function dict:safe_add(k, v, ttl)
      if self.data[k] then return false, "exists" end
      self.data[k], self.ttl[k] = v, ttl
      return true
    end
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
    function dict.get() return nil, "broken" end
    local v, gerr = s:get("k")
    assert.is_nil(v)
    assert.are.equal("store", gerr.code)
  end)
end)

describe("the replay store under load", function()
  local eternaltwin = require("eternaltwin")
  local core = require("eternaltwin.core")

  it("costs O(log n) per check when full of live nonces", function()
    local function cost(size)
      local store = eternaltwin.ReplayStore(size)
      local now = 1000
      for i = 1, size do store:check_and_add("n" .. i, now + 100000 + i, now) end
      local t0 = core.monotime()
      for i = 1, 100 do assert.is_true(store:check_and_add("x" .. i, now + 200000 + i, now)) end
      return core.monotime() - t0
    end
    local small, big = math.min(cost(1000), cost(1000)), math.min(cost(100000), cost(100000))
    -- Two full passes per check made this ratio about 100 (7 s for the 100 checks at 100,000);
    -- O(log n) about 2. The absolute slack absorbs a loaded machine.
    assert.is_true(big < small * 20 + 0.05, ("1000: %.4f s, 100000: %.4f s"):format(small, big))
  end)

  it("still forgets the entry closest to expiry, and expired ones first", function()
    local store = eternaltwin.ReplayStore(3)
    assert.is_true(store:check_and_add("a", 50, 10))
    assert.is_true(store:check_and_add("b", 20, 10))
    assert.is_true(store:check_and_add("c", 30, 10))
    assert.is_false(store:check_and_add("b", 20, 10))
    assert.is_true(store:check_and_add("d", 40, 10))     -- full: b (soonest) goes
    assert.is_true(store:check_and_add("b", 20, 10))     -- so b passes again; c (now soonest) goes
    assert.is_true(store:check_and_add("c", 30, 10))     -- so c passes again; b goes
    assert.is_false(store:check_and_add("a", 50, 10))
    assert.are.equal(3, store.count)
    assert.is_true(store:check_and_add("e", 100, 45))    -- at 45, c and d have expired: dropped
    assert.are.equal(2, store.count)
    assert.is_true(store:check_and_add("d", 40, 45))     -- d was forgotten, so it passes
    assert.are.equal(3, store.count)
    assert.is_false(store:check_and_add("a", 50, 45))
    -- A known but expired nonce is renewed in place (its heap entry moves).
    assert.is_true(store:check_and_add("d", 200, 41))
    assert.is_true(store:check_and_add("f", 60, 45))     -- full: a (50) is the soonest, it goes
    assert.is_true(store:check_and_add("a", 50, 45))     -- forgotten, so it passes; f goes
    assert.is_false(store:check_and_add("d", 200, 45))
  end)

  it("agrees with the plain two-pass store on random operations", function()
    -- The reference: the store as it was (a map, two full passes when full).
    local function ref_new(max) return { seen = {}, count = 0, max = max } end
    local function ref_check(r, nonce, exp, now)
      local known = r.seen[nonce]
      if known and known >= now then return false end
      if not known then
        if r.count >= r.max then
          for k, e in pairs(r.seen) do if e < now then r.seen[k] = nil; r.count = r.count - 1 end end
          if r.count >= r.max then
            local victim, soonest
            for k, e in pairs(r.seen) do if not soonest or e < soonest then victim, soonest = k, e end end
            r.seen[victim] = nil
            r.count = r.count - 1
          end
        end
        r.count = r.count + 1
      end
      r.seen[nonce] = exp
      return true
    end
    math.randomseed(12)
    for _, max in ipairs({ 1, 2, 7, 50 }) do
      local store, ref = eternaltwin.ReplayStore(max), ref_new(max)
      local now, serial = 1000, 0
      for _ = 1, 3000 do
        now = now + math.random(0, 3)
        serial = serial + 1
        local nonce = "n" .. math.random(1, max * 3)
        local exp = now + math.random(0, 40) + serial / 1e6   -- distinct expiries: no ties
        assert.are.equal(ref_check(ref, nonce, exp, now), store:check_and_add(nonce, exp, now))
        assert.are.equal(ref.count, store.count)
      end
    end
  end)
end)
