# SPDX-License-Identifier: MIT
# Release tarball (issue 13). Included by the Makefile.
#
#   make dist   build/eternaltwin-VERSION.tar.gz: every file git tracks (as in the work tree), under
#               eternaltwin-VERSION/, with sorted names, owner 0 and the last commit's time, so the same
#               tree gives the same bytes. rockspec/eternaltwin-VERSION-1.rockspec has it as its source.
#
# VERSION comes from _VERSION in lua/eternaltwin/init.lua; dist refuses to run when the versioned
# rockspec or the CHANGELOG entry for it is missing (spec/60-release_spec.lua checks they agree).

VERSION  := $(shell sed -n 's/^  _VERSION = "eternaltwin \([^"]*\)",$$/\1/p' lua/eternaltwin/init.lua)
DISTNAME  = eternaltwin-$(VERSION)
DISTFILE  = build/$(DISTNAME).tar.gz

.PHONY: dist
dist:
	@git rev-parse --git-dir >/dev/null 2>&1 || { echo "dist: needs a git checkout (it packs the files git tracks)" >&2; exit 1; }
	@test -n "$(VERSION)" || { echo "dist: no _VERSION in lua/eternaltwin/init.lua" >&2; exit 1; }
	@test -f rockspec/$(DISTNAME)-1.rockspec || { echo "dist: rockspec/$(DISTNAME)-1.rockspec missing" >&2; exit 1; }
	@grep -q '^## \[$(VERSION)\] - ' CHANGELOG.md || { echo "dist: CHANGELOG.md has no [$(VERSION)] entry" >&2; exit 1; }
	@mkdir -p build
	@git ls-files -z | LC_ALL=C tar --null -T - --sort=name --owner=0 --group=0 --numeric-owner \
	  --mtime=@$$(git log -1 --format=%ct) --transform='s,^,$(DISTNAME)/,' -cf - | gzip -n -9 > $(DISTFILE).tmp
	@mv $(DISTFILE).tmp $(DISTFILE)
	@echo "dist: $(DISTFILE)"
