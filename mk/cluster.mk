# SPDX-License-Identifier: MIT
# Many nodes (issue 21): the two-node demo and its bench.
#
# make cluster-demo: Redis (a child, random password), the mock, and two nodes of examples/openresty's
#   site sharing them (examples/openresty/cluster); prints the URLs; Ctrl-C stops everything.
# make bench-cluster: gate callbacks with Redis against the shared dict, protect() in server mode
#   against cookie mode (bench/cluster.lua; build/bench/cluster.md). BENCH_CLUSTER_ARGS="--rounds 7".
.PHONY: cluster-demo bench-cluster

cluster-demo: all nginx-module
	@exec examples/openresty/cluster $(CLUSTER_ARGS)

bench-cluster: all nginx-module
	@BENCH_DIR=$(BUILD)/bench $(LUA) bench/cluster.lua $(BENCH_CLUSTER_ARGS)
