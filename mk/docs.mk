# SPDX-License-Identifier: MIT
# API reference and lint (issue 5). Included by the Makefile.
#
#   make docs   the API reference of the Lua layer, from its doc comments, with LDoc (config.ld)
#               into build/docs/ (not committed), with doc/ldoc-extra.css appended to LDoc's
#               stylesheet (layout fixes); any LDoc warning fails the target
#   make lint   luacheck (.luacheckrc, Lua 5.4) over lua/, spec/, bin/ and examples/; any warning fails
#
# Tools: Debian's lua-ldoc, lua-discount (its Markdown) and lua-check (tools/deps.sh).

LDOC     ?= ldoc
LUACHECK ?= luacheck
DOCS_DIR ?= build/docs

.PHONY: docs lint

docs: deps
	@rm -rf $(DOCS_DIR) && mkdir -p $(DOCS_DIR)
	@log=$$(mktemp); $(LDOC) -c config.ld -d $(DOCS_DIR) . >/dev/null 2>$$log; rc=$$?; \
	  if [ $$rc -ne 0 ] || [ -s $$log ]; then cat $$log >&2; rm -f $$log; echo "docs: FAILED" >&2; exit 1; fi; \
	  rm -f $$log; cat doc/ldoc-extra.css >> $(DOCS_DIR)/ldoc.css; echo "docs: $(DOCS_DIR)/index.html"

lint: deps
	$(LUACHECK) --no-color --quiet lua spec examples bin/etwin

CI_TARGETS += docs lint

# The client options table of the README and of the reference, generated from their one
# declaration (lua/eternaltwin/options.lua): `make options` rewrites both, `make check-options`
# fails when either drifted (spec/options_spec.lua checks it too).
.PHONY: options check-options
options:
	@LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD)/?.so;;" $(LUA) tools/gen-options.lua
check-options: all
	@LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD)/?.so;;" $(LUA) tools/gen-options.lua --check

CI_TARGETS += check-options
