# SPDX-License-Identifier: MIT
# Release tarball (issue 13) and its API reference (issue 22). Included by the Makefile.
#
#   make dist   build/eternaltwin-VERSION.tar.gz: every file git tracks (as in the work tree), plus the
#               API reference LDoc makes from them in doc/ (so a rock or rockspec installed from it
#               carries the pages: `luarocks doc eternaltwin`), under eternaltwin-VERSION/, with sorted
#               names, owner 0 and the last commit's time (also in the pages' "Last updated"), so
#               the same tree gives the same bytes. rockspec/eternaltwin-VERSION-1.rockspec has it as
#               its source.
#
# VERSION comes from _VERSION in lua/eternaltwin/init.lua; dist refuses to run when the versioned
# rockspec or the CHANGELOG entry for it is missing (spec/release_spec.lua checks they agree).
# The pages are built as `make docs` builds them, but an LDoc warning is shown, not fatal here
# (`make docs`, in CI, fails on it); no pages at all fails.

VERSION  := $(shell sed -n 's/^  _VERSION = "eternaltwin \([^"]*\)",$$/\1/p' lua/eternaltwin/init.lua)
DISTNAME  = eternaltwin-$(VERSION)
DISTFILE  = build/$(DISTNAME).tar.gz
PKG_DIR   = build/pkg

.PHONY: dist
dist:
	@git rev-parse --git-dir >/dev/null 2>&1 || { echo "dist: needs a git checkout (it packs the files git tracks)" >&2; exit 1; }
	@test -n "$(VERSION)" || { echo "dist: no _VERSION in lua/eternaltwin/init.lua" >&2; exit 1; }
	@test -f rockspec/$(DISTNAME)-1.rockspec || { echo "dist: rockspec/$(DISTNAME)-1.rockspec missing" >&2; exit 1; }
	@grep -q '^## \[$(VERSION)\] - ' CHANGELOG.md || { echo "dist: CHANGELOG.md has no [$(VERSION)] entry" >&2; exit 1; }
	@command -v $(LDOC) >/dev/null 2>&1 || { echo "dist: needs LDoc for the API reference (lua-ldoc, lua-discount: make deps)" >&2; exit 1; }
	@rm -rf $(PKG_DIR)/$(DISTNAME) $(PKG_DIR)/docs && mkdir -p $(PKG_DIR)/$(DISTNAME) $(PKG_DIR)/docs
	@git ls-files -z | tar --null -T - -cf - | tar -xf - -C $(PKG_DIR)/$(DISTNAME)
	@log=$$(mktemp); $(LDOC) -c config.ld -d $(PKG_DIR)/docs . >/dev/null 2>$$log; \
	  if [ -s $$log ]; then echo "dist: LDoc warnings (make docs fails on them):" >&2; cat $$log >&2; fi; rm -f $$log; \
	  test -s $(PKG_DIR)/docs/index.html || { echo "dist: LDoc made no pages" >&2; exit 1; }
	@cat doc/ldoc-extra.css >> $(PKG_DIR)/docs/ldoc.css
	@when=$$(TZ=UTC git log -1 --format=%cd --date=format-local:'%Y-%m-%d %H:%M:%S'); \
	  find $(PKG_DIR)/docs -name '*.html' -exec sed -i "s/Last updated [0-9-]* [0-9:]*/Last updated $$when/" {} +
	@cp -R $(PKG_DIR)/docs/. $(PKG_DIR)/$(DISTNAME)/doc/
	@t=$$(git log -1 --format=%ct); cd $(PKG_DIR) && rm -f $(DISTNAME).tar && \
	  find $(DISTNAME) -print0 | LC_ALL=C sort -z > files.lst && \
	  tar --no-recursion --null --owner=0 --group=0 --numeric-owner --mode=u+w,go-w --mtime=@$$t \
	      -cf $(DISTNAME).tar -T files.lst && gzip -n -9 -c $(DISTNAME).tar > ../$(DISTNAME).tar.gz.tmp && \
	  rm -f $(DISTNAME).tar files.lst
	@mv $(DISTFILE).tmp $(DISTFILE)
	@echo "dist: $(DISTFILE)"
