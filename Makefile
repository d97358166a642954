# SPDX-License-Identifier: MIT
# Thin build wrapper: `make` builds build/eternaltwin/core.so; see README for the rest.

# LUA: the interpreter to build and test for: lua5.1 lua5.2 lua5.3 lua5.4 (default) luajit.
# A build for anything but the default lands in build/$(LUA)/ (build/luajit/eternaltwin/core.so).
LUA      ?= lua5.4
LUAS      = lua5.1 lua5.2 lua5.3 lua5.4 luajit
ifeq ($(filter $(LUA),$(LUAS)),)
$(error LUA=$(LUA): expected one of $(LUAS))
endif
LUA_PC   ?= $(LUA)
BUSTED   ?= busted
PKGS      = libcurl openssl libcjson hiredis
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
ALL_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(WARN) $(CFLAGS) \
             $(shell pkg-config --cflags $(LUA_PC) $(PKGS) 2>/dev/null)
LIBS      = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDFLAGS  ?=

ifeq ($(LUA),lua5.4)
BUILD    ?= build
else
BUILD    ?= build/$(LUA)
endif
MODULE    = $(BUILD)/eternaltwin/core.so
CORE_SRC  = $(wildcard csrc/et_*.c)
BIND_SRC  = $(wildcard csrc/l_*.c)
CORE_OBJ  = $(CORE_SRC:csrc/%.c=$(BUILD)/obj/%.o)
BIND_OBJ  = $(BIND_SRC:csrc/%.c=$(BUILD)/obj/%.o)
HEADERS   = $(wildcard csrc/*.h)

export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/?.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;

.PHONY: all deps deps-build test test-c demo clean

all: $(MODULE)

$(BUILD)/obj/%.o: csrc/%.c $(HEADERS) | deps-build
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(MODULE): $(CORE_OBJ) $(BIND_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LIBS)

# Installs what is missing (as root) or prints the apt-get line and fails.
deps:
	@sh tools/deps.sh all
deps-build:
	@sh tools/deps.sh build

# C unit tests of the pure core (no Lua): every spec/c/test_*.c is its own binary, linked with the
# core objects; each prints `ok N - name` lines and `c-tests NAME: N passed, N failed`, and exits
# non-zero on failure. test-c runs them all (and fails if any failed).
C_TESTS    = $(wildcard spec/c/test_*.c)
C_TEST_BIN = $(C_TESTS:spec/c/%.c=$(BUILD)/%)

$(BUILD)/test_%: spec/c/test_%.c spec/c/tap.h $(CORE_OBJ)
	$(CC) $(ALL_CFLAGS) -Icsrc -o $@ $(filter-out %.h,$^) $(LIBS)

# The cosocket framer and the header parser build without libcurl: test_resp compiles their sources
# alone, with a curl/curl.h of ours first on the include path that stops the build if anything
# includes it (spec/c/nocurl), and links without -lcurl.
NOCURL_SRC = csrc/et_buf.c csrc/et_hdr.c csrc/et_proto.c csrc/et_resp.c

$(BUILD)/test_resp: spec/c/test_resp.c spec/c/tap.h $(NOCURL_SRC) $(HEADERS) spec/c/nocurl/curl/curl.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) -Ispec/c/nocurl -Icsrc $(LDFLAGS) \
	    -o $@ spec/c/test_resp.c $(NOCURL_SRC)

test-c: $(C_TEST_BIN)
	@rc=0; for t in $(C_TEST_BIN); do $$t || rc=1; done; exit $$rc

# One C test binary: `make test-c-http`, `make test-c-jwt`...
test-c-%: $(BUILD)/test_%
	$(BUILD)/test_$*

# Everything: C core tests, the rockspec install, the busted specs (which start the mock).
# Ends with `tests: N passed, N failed`. Extra busted arguments: make test SPECS="spec/http*"
test: deps all $(C_TEST_BIN) nginx-module
	@LUA=$(LUA) tools/run-tests.sh $(SPECS)

# The OpenResty specs (spec/transport_cosocket_spec.lua) run inside nginx, whose Lua is LuaJIT whatever
# LUA is: they need the LuaJIT build (build/luajit) as well.
.PHONY: nginx-module
nginx-module:
ifneq ($(LUA),luajit)
	@$(MAKE) --no-print-directory LUA=luajit all
endif

demo: deps all
	$(LUA) examples/login.lua

# A REPL of $(LUA) with this checkout's modules and build on its paths, the module loaded:
# `make repl LUA=luajit` (the same LUA_PATH/LUA_CPATH as the specs).
.PHONY: repl
repl: all
	@echo "eternaltwin REPL on $(LUA) (LUA_PATH and LUA_CPATH point into $(CURDIR)): eternaltwin, keys are loaded"
	@$(LUA) -e 'eternaltwin = require("eternaltwin"); keys = require("eternaltwin.keys")' -i

clean:
	rm -rf $(BUILD)

# Further targets (bench, check, fuzz, docs, lint) live in mk/*.mk, one file per concern. A fragment
# adds the targets CI must also pass to CI_TARGETS (`CI_TARGETS += check`); .ci/run makes ci-extra.
CI_TARGETS =
-include $(wildcard mk/*.mk)

.PHONY: ci-extra
ci-extra: $(CI_TARGETS)
