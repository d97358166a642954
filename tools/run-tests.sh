#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every test tier (C core binaries, the rockspec install, the busted specs) and ends with
# one line `tests: N passed, N failed` summing them. Exit status: 0 only if nothing failed.
# Usage: tools/run-tests.sh [busted args...]   (run from the project root, after `make all test-c-build`)
set -uo pipefail
cd "$(dirname "$0")/.."
LUA=${LUA:-lua5.4}
case "$LUA" in
  lua5.1|lua5.2|lua5.3|lua5.4) LV=${LUA#lua} ;;
  luajit) LV=5.1 ;;
  *) echo "LUA=$LUA: expected lua5.1 lua5.2 lua5.3 lua5.4 or luajit" >&2; exit 2 ;;
esac
if [ "$LUA" = lua5.4 ]; then BUILD=build; else BUILD=build/$LUA; fi
# Specs that start a child interpreter (the CLI, the examples, the soak) use the Lua under test.
export ETWIN_LUA=$LUA
passed=0; failed=0
log=$(mktemp); trap 'rm -f "$log"' EXIT

# 1. C unit tests of the pure core: each prints `c-tests NAME: N passed, N failed`.
for t in $BUILD/test_*; do
  [ -x "$t" ] || continue
  "$t" >"$log" 2>&1; rc=$?
  grep -E '^(not ok|c-tests)' "$log"
  line=$(grep -E '^c-tests [^:]*: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  if [ -n "$line" ]; then
    p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")
    f=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
    passed=$((passed + p)); failed=$((failed + f))
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
  else
    echo "$t: no summary line (exit $rc)"; cat "$log"; failed=$((failed + 1))
  fi
done

# 2. The rockspec builds and installs (from a copy, so the tree stays clean), and the module loads
#    in a fresh interpreter whose paths point only into the installed tree.
tree=$(mktemp -d); src=$(mktemp -d)
cp -r csrc lua rockspec bin doc mock "$src"/   # doc/ and mock/: the rockspec's copy_directories
if (cd "$src" && luarocks --lua-version="$LV" make --tree "$tree" rockspec/eternaltwin-scm-1.rockspec) >"$log" 2>&1 &&
   TREE="$tree" LUA_PATH="$tree/share/lua/$LV/?.lua;$tree/share/lua/$LV/?/init.lua" \
   LUA_CPATH="$tree/lib/lua/$LV/?.so" "$LUA" -e '
     local e = require("eternaltwin")
     local so   -- package.searchpath, which PUC 5.1 lacks
     for t in package.cpath:gmatch("[^;]+") do
       local f = t:gsub("?", "eternaltwin/core")
       if io.open(f) then so = f break end
     end
     assert(so:sub(1, #os.getenv("TREE")) == os.getenv("TREE"), so)
     assert(e.keys.HS256Key("k") and e.poller())
     print("rockspec: " .. e._VERSION .. " installed for " .. _VERSION .. ", core from " .. so)' 2>>"$log" &&
   env -u LUA_PATH -u LUA_CPATH "$tree/bin/etwin" --version 2>>"$log" | grep -q '^eternaltwin '; then
  passed=$((passed + 1))
else
  echo "rockspec: FAILED"; tail -n 30 "$log"; failed=$((failed + 1))
fi
rm -rf "$tree" "$src"

# 3. The release: `make dist` makes the tarball; unpacked elsewhere, `luarocks make` of the versioned
#    rockspec installs it into a temporary tree, and a fresh shell (empty environment but PATH) loads
#    the module and runs `etwin` from that tree alone.
tree=$(mktemp -d); src=$(mktemp -d)
version=$(sed -n 's/^  _VERSION = "eternaltwin \([^"]*\)",$/\1/p' lua/eternaltwin/init.lua)
if make -s dist >"$log" 2>&1 && tar -xzf "build/eternaltwin-$version.tar.gz" -C "$src" 2>>"$log" &&
   (cd "$src/eternaltwin-$version" &&
    luarocks --lua-version="$LV" make --tree "$tree" "rockspec/eternaltwin-$version-1.rockspec") >>"$log" 2>&1 &&
   env -i PATH=/usr/bin:/bin TREE="$tree" LUA="$LUA" LV="$LV" VERSION="$version" sh -c '
     cd / && LUA_PATH="$TREE/share/lua/$LV/?.lua;$TREE/share/lua/$LV/?/init.lua" \
     LUA_CPATH="$TREE/lib/lua/$LV/?.so" "$LUA" -e "
       local e = require(\"eternaltwin\")
       local tree = os.getenv(\"TREE\")
       local function search(m, path)   -- package.searchpath, which PUC 5.1 lacks
         for t in path:gmatch(\"[^;]+\") do
           local f = t:gsub(\"?\", (m:gsub(\"%.\", \"/\")))
           if io.open(f) then return f end
         end
       end
       for _, m in ipairs({ \"eternaltwin\", \"eternaltwin.core\" }) do
         local f = search(m, package.path) or search(m, package.cpath)
         assert(f and f:sub(1, #tree) == tree, m .. \" from \" .. tostring(f))
       end
       assert(e._VERSION == \"eternaltwin \" .. os.getenv(\"VERSION\"), e._VERSION)
       assert(e.keys.HS256Key(\"k\") and e.poller())
       print(\"release: \" .. e._VERSION .. \" installed from the tarball\")" &&
     "$TREE/bin/etwin" --version' 2>>"$log" | tee -a "$log" | grep -q "^eternaltwin $version\$"; then
  grep '^release: ' "$log"
  passed=$((passed + 1))
else
  echo "release tarball: FAILED"; tail -n 30 "$log"; failed=$((failed + 1))
fi
rm -rf "$tree" "$src"

# 4. The busted specs (they start the mock server themselves).
busted --lua="$LUA" "$@" 2>&1 | tee "$log"
summary=$(grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$log" | tail -n 1)
if [ -n "$summary" ]; then
  read -r s _ _ f _ _ e _ _ <<<"$summary"
  passed=$((passed + s)); failed=$((failed + f + e))
else
  echo "busted: no summary line"; failed=$((failed + 1))
fi

echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
