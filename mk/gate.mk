# SPDX-License-Identifier: MIT
# The OpenResty gate (issue 11): its demo and its bench. Included by the Makefile.
#   make openresty-demo   examples/openresty: nginx (LuaJIT build) + the gate + the mock, in the
#                         foreground until Ctrl-C; prints the URL to open. OPENRESTY_PORT=8080 to pick it.
#   make bench-gate       bench/gate.lua: protected vs open requests per second, gate callbacks per
#                         second, the shared replay store's cost per check (BENCH_ARGS as for make bench).

OPENRESTY_PORT ?= 0

.PHONY: openresty-demo bench-gate

openresty-demo: deps all
	@examples/openresty/run --port $(OPENRESTY_PORT)

bench-gate: bench-deps all
	@BENCH_DIR=$(BUILD)/bench lua5.4 bench/gate.lua $(BENCH_ARGS)
