# SPDX-License-Identifier: MIT
# Hardening checks (issue 7): sanitizers, valgrind, libFuzzer. Included by the Makefile.
#
#   make check        the C tests and the whole spec suite against an ASan+UBSan build (build-asan/),
#                     then valgrind memcheck over the core specs (01-03, 10, 11) and the C test binaries
#   make fuzz         each libFuzzer target for FUZZ_SECONDS (default 60) over fuzz/corpus/<target>/
#   make fuzz-ci      the same, 30 s per target (CI)
#   make fuzz-<name>  one target (fuzz-jwt, fuzz-json...)
#
# Tools: clang with libFuzzer and valgrind (tools/deps.sh check). Reports fail the target.

ASAN_BUILD   ?= build-asan
SAN_FLAGS     = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# The Lua interpreter is not instrumented: the sanitizer runtime is preloaded into it, by the
# dynamic loader's --preload rather than LD_PRELOAD, so that the processes the specs start (the
# mock's nginx, curl, which hangs with the runtime preloaded) run without it.
ASAN_RUNTIME  = $(shell $(CC) -print-file-name=libasan.so)
LDSO          = $(firstword $(wildcard /lib64/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1))
# Lua, OpenSSL and curl keep process-lifetime allocations: no leak check for the Lua process (the
# C test binaries keep theirs, and valgrind counts definite leaks of the Lua process below).
SAN_ENV       = ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
VALGRIND      = valgrind --quiet --error-exitcode=97 --leak-check=full --errors-for-leak-kinds=definite \
                --show-leak-kinds=definite --track-origins=no --num-callers=30
CORE_SPECS    = spec/core_util_spec.lua spec/core_json_spec.lua spec/core_keys_spec.lua \
                spec/core_http_spec.lua spec/core_resp_spec.lua spec/core_aead_spec.lua

.PHONY: deps-check check check-asan-compat check-asan-build check-asan check-valgrind fuzz fuzz-ci fuzz-build

deps-check:
	@sh tools/deps.sh check

# The module and the C tests, built with the sanitizers into their own tree.
check-asan-build: deps-check
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) CFLAGS="-O1 -g $(SAN_FLAGS)" \
	    LDFLAGS="$(SAN_FLAGS)" all $(C_TESTS:spec/c/%.c=$(ASAN_BUILD)/%)

# (nginx-module: the OpenResty specs run nginx's LuaJIT with build/luajit, not the ASan build.)
check-asan: check-asan-build nginx-module
	@echo "== check: C tests under ASan+UBSan (leak checking on)"
	@rc=0; for t in $(C_TESTS:spec/c/%.c=$(ASAN_BUILD)/%); do \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $$t >$(ASAN_BUILD)/$$(basename $$t).log 2>&1 || { rc=1; cat $(ASAN_BUILD)/$$(basename $$t).log; }; \
	    grep '^c-tests' $(ASAN_BUILD)/$$(basename $$t).log; done; exit $$rc
	@echo "== check: the spec suite under ASan+UBSan ($(ASAN_BUILD)/eternaltwin/core.so)"
	@lua="$(LDSO) --preload $(ASAN_RUNTIME) $$(command -v $(LUA))"; \
	  $(SAN_ENV) ETWIN_EXPECT_CORE=$(CURDIR)/$(ASAN_BUILD)/eternaltwin/core.so ETWIN_LUA="$$lua" ETWIN_TIME_SCALE=5 \
	    $$lua $$(command -v busted) \
	    --cpath='$(CURDIR)/$(ASAN_BUILD)/?.so' -o utfTerminal $(CHECK_SPECS)

check-valgrind: deps-check all $(C_TEST_BIN)
	@echo "== check: C tests under valgrind"
	@rc=0; for t in $(C_TEST_BIN); do \
	    $(VALGRIND) $$t >$(BUILD)/$$(basename $$t).vg.log 2>&1 || { rc=1; cat $(BUILD)/$$(basename $$t).vg.log; }; \
	    grep '^c-tests' $(BUILD)/$$(basename $$t).vg.log; done; exit $$rc
	@echo "== check: core specs under valgrind (busted runs in the valgrind'd interpreter: no --lua re-exec)"
	@ETWIN_EXPECT_CORE=$(CURDIR)/$(BUILD)/eternaltwin/core.so ETWIN_TIME_SCALE=30 \
	    $(VALGRIND) --suppressions=$(CURDIR)/tools/valgrind.supp \
	    $(LUA) $$(command -v busted) -o utfTerminal $(CORE_SPECS)

# The compatibility paths of csrc/et_compat.h that only 5.1 and 5.2 take (boxed user values, the
# sized result buffer, strict integer checks): the core, client and poller specs under ASan+UBSan on
# a 5.1 and a 5.2 build too.
COMPAT_SPECS = $(CORE_SPECS) spec/client_spec.lua spec/state_spec.lua spec/http_spec.lua spec/oauth_spec.lua \
               spec/keys_spec.lua spec/poller_spec.lua
check-asan-compat:
	@for v in lua5.1 lua5.2; do \
	  $(MAKE) --no-print-directory LUA=$$v check-asan ASAN_BUILD=$(ASAN_BUILD)/$$v CHECK_SPECS="$(COMPAT_SPECS)" || exit 1; \
	done

check: check-asan check-asan-compat check-valgrind
	@echo "check: ASan+UBSan suite (5.4, and 5.1/5.2 over the compat paths) and valgrind passed"

# ---- libFuzzer ---------------------------------------------------------------------------------

FUZZ_SECONDS  ?= 60
FUZZ_BUILD    ?= build-fuzz
FUZZ_CC       ?= clang
FUZZ_TARGETS   = $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
# Small limits so the fuzzer reaches them (the header block bound, the JSON value count, the JWT
# size bound).
FUZZ_CFLAGS    = -g -O1 -Wno-constant-conversion -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                 -DET_HTTP_MAX_HEADER_BYTES=2048 -DET_JSON_MAX_ELEMENTS=64 -std=c11 -D_POSIX_C_SOURCE=200809L -Icsrc \
                 $(shell pkg-config --cflags $(LUA_PC) $(PKGS) 2>/dev/null)
FUZZ_LIBS      = $(shell pkg-config --libs $(LUA_PC) $(PKGS) 2>/dev/null)
FUZZ_OBJ       = $(CORE_SRC:csrc/%.c=$(FUZZ_BUILD)/obj/%.o) $(BIND_SRC:csrc/%.c=$(FUZZ_BUILD)/obj/%.o)

$(FUZZ_BUILD)/obj/%.o: csrc/%.c $(HEADERS) | deps-check
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_lua.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_OBJ) $(FUZZ_LIBS)

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

# One target: run for FUZZ_SECONDS on a scratch copy of its seed corpus (new inputs stay out of the
# repo; a crasher is left in $(FUZZ_BUILD)/<target>/ and fails the run).
fuzz-%: $(FUZZ_BUILD)/fuzz_%
	@mkdir -p $(FUZZ_BUILD)/$*/corpus $(FUZZ_BUILD)/$*/artifacts
	@cp -n fuzz/corpus/$*/* $(FUZZ_BUILD)/$*/corpus/ 2>/dev/null || true
	@ASAN_OPTIONS=detect_leaks=1 $(FUZZ_BUILD)/fuzz_$* -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    -rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/$*/artifacts/ \
	    $(FUZZ_OPTS_$*) $(FUZZ_BUILD)/$*/corpus fuzz/corpus/$* >$(FUZZ_BUILD)/$*/log 2>&1; \
	  rc=$$?; runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_BUILD)/$*/log); \
	  echo "fuzz $*: $${runs:-?} executions in $(FUZZ_SECONDS) s, exit $$rc"; \
	  if [ $$rc -ne 0 ]; then tail -n 60 $(FUZZ_BUILD)/$*/log; exit 1; fi

# The targets that go through a Lua state turn libFuzzer's per-input leak check off: Lua's
# allocator keeps memory across inputs, so every input would trigger a full (slow) leak scan. The
# bindings' leaks are valgrind's job (check-valgrind); the pure-C targets keep the leak check.
FUZZ_OPTS_jwt     = -max_len=9000 -detect_leaks=0
FUZZ_OPTS_json    = -detect_leaks=0
FUZZ_OPTS_url     = -detect_leaks=0
FUZZ_OPTS_headers = -max_len=4096
FUZZ_OPTS_keyload = -max_len=4096

# Two targets at a time (a 2-core machine): make -j2 does the pairing.
fuzz:
	@$(MAKE) --no-print-directory -j2 fuzz-build
	@$(MAKE) --no-print-directory -j2 $(FUZZ_TARGETS:%=fuzz-%) FUZZ_SECONDS=$(FUZZ_SECONDS)

fuzz-ci:
	@$(MAKE) --no-print-directory -j2 fuzz-build
	@$(MAKE) --no-print-directory -j2 $(FUZZ_TARGETS:%=fuzz-%) FUZZ_SECONDS=30

CI_TARGETS += check fuzz-ci
