# SPDX-License-Identifier: MIT
# A rock to install without network (issue 22). Included by the Makefile.
#
#   make rock   build/eternaltwin-VERSION-1.src.rock: a source rock, the zip luarocks itself makes
#               with `luarocks pack` (the versioned rockspec beside the `make dist` tarball it names),
#               made here without fetching the rockspec's source URL. It builds on install, for the
#               Lua luarocks is told:
#                 luarocks --lua-version=5.4 install --tree DIR build/eternaltwin-0.1.0-1.src.rock
#               (5.1 also serves LuaJIT); no network is used. The rock carries the API reference
#               (`luarocks doc eternaltwin`) and the mock server (`etwin mock`).
#   make repl   (in the Makefile) a REPL of $(LUA) with the checkout's paths and the module loaded.

ROCKFILE = build/$(DISTNAME)-1.src.rock

.PHONY: rock
rock: dist
	@rm -rf $(PKG_DIR)/rock && mkdir -p $(PKG_DIR)/rock
	@cp $(DISTFILE) rockspec/$(DISTNAME)-1.rockspec $(PKG_DIR)/rock/
	@touch -d @$$(git log -1 --format=%ct) $(PKG_DIR)/rock/*
	@rm -f $(ROCKFILE) && cd $(PKG_DIR)/rock && TZ=UTC zip -X -q ../../$(DISTNAME)-1.src.rock \
	  $(DISTNAME)-1.rockspec $(DISTNAME).tar.gz
	@echo "rock: $(ROCKFILE)"
