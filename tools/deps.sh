#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian packages this project needs (as root), or prints the exact command and fails.
# Usage: tools/deps.sh [build|test|check|bench|all]   (default: all; check: sanitizers, fuzzing,
# valgrind; bench: wrk, lua-curl, valgrind)
set -eu

# Every supported Lua: 5.1-5.4 and LuaJIT 2.1 from Debian's luajit2 (OpenResty's branch, the one
# libnginx-mod-http-lua links; Debian's package named `luajit` conflicts with that module).
luas="lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev"
build="gcc make pkg-config $luas libcurl4-openssl-dev libssl-dev libcjson-dev libhiredis-dev"
test="lua-busted luarocks strace redis-server nginx-light libnginx-mod-http-lua lua-cjson openssl openssh-client curl python3 python3-jwt python3-cryptography python3-selenium chromium chromium-driver lua-luv lua-socket lua-copas lua-ldoc lua-discount lua-check"
# make check / make fuzz (mk/check.mk): clang with libFuzzer and the sanitizer runtimes, valgrind.
check="clang libclang-rt-14-dev valgrind"
# make bench (mk/bench.mk): wrk for the HTTP ceilings, lua-curl (Lua 5.1) to compare with, callgrind.
bench="wrk lua-curl valgrind strace"
case "${1:-all}" in
  build) want="$build" ;;
  test|all) want="$build $test" ;;
  check) want="$build $test $check" ;;
  bench) want="$build $test $bench" ;;
  *) echo "usage: $0 [build|test|check|bench|all]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  # Any nginx flavour that can load the Lua module will do.
  if [ "$p" = nginx-light ] && command -v nginx >/dev/null 2>&1; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages; run as root:" >&2
  echo "  apt-get install -y$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# nginx's package would start a system-wide server on port 80: the mock runs its own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
echo "installing:$missing" >&2
apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || {
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends $missing
}
