# SPDX-License-Identifier: MIT
# `make bench-openresty`: inside nginx, GETs per second through the client (cosocket transport)
# against the same keep-alive loop on a bare ngx.socket.tcp, in one session (bench/openresty.lua);
# prints the table (also left in build/bench/openresty.md). Not part of CI: timings are not tests.
# BENCH_OPENRESTY_ARGS="--rounds 9 --requests 5000" for longer runs.

.PHONY: bench-openresty

# One CPU (the last) for the mock, nginx and the driver, as `make bench` does: a wake-up across
# cores on this kind of virtual machine would measure the hypervisor.
BENCH_PIN = $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -ge 2 ] && command -v taskset >/dev/null && echo taskset -c $$((n - 1)))

bench-openresty: deps all nginx-module
	@BENCH_DIR=$(BUILD)/bench $(BENCH_PIN) $(LUA) bench/openresty.lua $(BENCH_OPENRESTY_ARGS)
