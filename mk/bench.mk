# SPDX-License-Identifier: MIT
# `make bench`: each workload next to its ceiling on this machine, in one session (bench/run.lua);
# prints the table (also left in build/bench/last.md). Not part of CI: timings are not tests.
# Each HTTP line is a same-run wall-clock ratio in both pinning modes (mock on the clients' core,
# and on a core of its own; BENCH_PIN=shared|split for one), callgrind instruction ratios beside,
# then the syscalls per request (strace -c -f) of ours and of libcurl's own loops.
# BENCH_ARGS="--rounds 7 --seconds 2" for longer runs. Needs valgrind (callgrind), strace and lua5.1
# + lua-curl for some lines (skipped, and said so, without them).

BENCH_DIR   = $(BUILD)/bench
BENCH_LIMIT = $(BENCH_DIR)/limit
BENCH_CURL  = $(BENCH_DIR)/curlloop
BENCH_REDIS = $(BENCH_DIR)/redisloop

.PHONY: bench bench-deps bench-store

$(BENCH_LIMIT): bench/limit.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -O2 -g $(WARN) -o $@ $< $(shell pkg-config --cflags --libs openssl libcjson)

$(BENCH_CURL): bench/curlloop.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -O2 -g $(WARN) -o $@ $< $(shell pkg-config --cflags --libs libcurl)

$(BENCH_REDIS): bench/redisloop.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -O2 -g $(WARN) -o $@ $< $(shell pkg-config --cflags --libs hiredis)

# RedisStore:check_and_add against a C hiredis loop, and inside nginx against a bare cosocket
# SET NX loop over the same pool, ngx.shared beside it (bench/store.lua; build/bench/store.md).
# Everything pinned to one CPU, as bench-openresty. BENCH_STORE_ARGS="--rounds 9 --seconds 2".
BENCH_STORE_PIN = $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -ge 2 ] && command -v taskset >/dev/null && echo taskset -c $$((n - 1)))
bench-store: all nginx-module $(BENCH_REDIS)
	@BENCH_DIR=$(BENCH_DIR) $(BENCH_STORE_PIN) $(LUA) bench/store.lua $(BENCH_STORE_ARGS)

# The project's packages, then wrk (Debian) for the HTTP ceilings: installed as root, else the
# apt-get line is printed and the target fails.
bench-deps:
	@sh tools/deps.sh bench
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing: wrk" >&2; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk; }; \
	  else echo "make bench needs wrk; run as root: apt-get install -y wrk" >&2; exit 1; fi; }

# The Lua 5.1 build too: bench/luacurl.lua (lua-curl runs on Lua 5.1) reads the module's clock.
bench: bench-deps all $(BENCH_LIMIT) $(BENCH_CURL)
	@if command -v lua5.1 >/dev/null 2>&1; then $(MAKE) --no-print-directory LUA=lua5.1 all >/dev/null; fi
	@BENCH_DIR=$(BENCH_DIR) $(LUA) bench/run.lua $(BENCH_ARGS)
	@$(MAKE) --no-print-directory bench-store
	@$(MAKE) --no-print-directory bench-cluster
