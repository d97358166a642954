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
cp -r csrc lua rockspec bin "$src"/
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

# 3. The busted specs (they start the mock server themselves).
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
