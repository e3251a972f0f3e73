# govscsi: Xen PV SCSI for a stock Xen host.
#
# make build       every binary into build/ (xl-vscsi, vscsi-backend, ...)
# make lib         build/libgovscsi.so (+ header copy) -- the one c-shared library
# make test        unit + integration tests (real libxenstore against our test server)
# make test-all    check + test + race + fuzz-smoke + C API tests: what CI runs
# make check       gofmt, go vet, staticcheck, shellcheck, refs
# make refs        every pitfall, section and doc reference resolves (scripts/refcheck)
# make fuzz-smoke  every fuzz target for a few seconds
# make e2e         the real Xen test ground in QEMU (see docs/testing.md)
# make demo        the narrated demo on the test ground
# make perf        userspace vs kernel backend fio numbers -> docs/performance.md
# make install     install like a Xen component (PREFIX=/usr/local, DESTDIR; see scripts/packaging/install.sh)
# make uninstall   remove exactly what install put
# make man         check and compress the man pages (docs/man) into build/man
# make deb         the Debian package (dpkg-deb only) into build/

export PATH := /usr/local/go/bin:$(PATH)
GO       ?= go
BUILD    ?= build
# An iteration count, not a duration: a time-based -fuzztime can end with
# "context deadline exceeded" when an input is still running at the deadline
# on a loaded machine (a go test tooling race, not a finding).
FUZZTIME ?= 20000x
# The version's one source is internal/version/VERSION; `make deb VERSION=x`
# overrides it, and GOLDFLAGS stamps it into every binary and the library.
VERSION  ?= $(shell cat internal/version/VERSION)
GOLDFLAGS = -X github.com/govscsi/govscsi/internal/version.stamped=$(VERSION)
# Binaries: each main package under */cmd/<name> becomes build/<name>.
CMDS     := $(patsubst %/,%,$(dir $(wildcard */cmd/*/main.go */*/cmd/*/main.go)))
SHELL_SCRIPTS := $(shell git ls-files '*.sh' 2>/dev/null) .ci/run $(wildcard hotplug/scripts/*)

.PHONY: e2e-all all build lib test test-all check fmt vet staticcheck shellcheck refs fuzz-smoke race clean e2e e2e-shell rig-clean demo perf test-cshared install uninstall man deb

all: build lib

build:
	@mkdir -p $(BUILD)
	@for d in $(CMDS); do \
		echo "go build -ldflags '$(GOLDFLAGS)' -o $(BUILD)/$$(basename $$d) ./$$d"; \
		$(GO) build -ldflags "$(GOLDFLAGS)" -o $(BUILD)/$$(basename $$d) ./$$d || exit 1; \
	done

lib:
	@mkdir -p $(BUILD)
	@if [ -d plugin/capi ]; then \
		echo "go build -buildmode=c-shared -o $(BUILD)/libgovscsi.so ./plugin/capi"; \
		$(GO) build -buildmode=c-shared -ldflags="-extldflags=-Wl,-soname,libgovscsi.so.0 $(GOLDFLAGS)" \
			-o $(BUILD)/libgovscsi.so ./plugin/capi && rm -f $(BUILD)/libgovscsi.h; \
		ln -sf libgovscsi.so $(BUILD)/libgovscsi.so.0; \
		sed -e "s|@PREFIX@|$(CURDIR)|" -e "s|@LIBDIR@|$(CURDIR)/$(BUILD)|" \
			-e "s|@INCLUDEDIR@|$(CURDIR)/c/include|" -e "s|@VERSION@|$(VERSION)|" \
			c/govscsi.pc.in > $(BUILD)/govscsi.pc; \
	else echo "lib: plugin/capi not present yet"; fi

test:
	$(GO) test -count=1 -timeout 300s ./...

race:
	$(GO) test -count=1 -race -timeout 600s ./...

test-cshared: lib
	@if [ -x tests/cshared/run.sh ]; then VERSION=$(VERSION) tests/cshared/run.sh; else echo "test-cshared: nothing yet"; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

check: vet staticcheck shellcheck refs
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# staticcheck is a tool dependency of the module (the `tool` line in go.mod
# pins its version; `go mod download` in scripts/deps.sh fetches it through
# the Go module proxy). The second run covers the C API's fake-Xen build.
staticcheck:
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags govscsi_fakexen ./plugin/capi

# Pitfall numbers, section references (protocol.md §2.1), cited docs and
# section names must resolve inside the repository (docs/protocol.md).
refs:
	$(GO) run ./scripts/refcheck

shellcheck:
	@if [ -n "$(SHELL_SCRIPTS)" ]; then shellcheck -x $(SHELL_SCRIPTS); fi

# Every `func Fuzz*` in the tree, run for FUZZTIME each (go test allows one
# fuzz target per invocation).
fuzz-smoke:
	@set -e; for f in $$(git ls-files '*_test.go'); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz $$t in ./$$(dirname $$f) for $(FUZZTIME)"; \
			$(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) ./$$(dirname $$f) >/tmp/govscsi-fuzz.log 2>&1 || { cat /tmp/govscsi-fuzz.log; exit 1; }; \
		done; \
	done

test-all: check test race test-cshared fuzz-smoke

# The Xen test ground (tests/e2e, docs/testing.md). deps first: `build` needs Go.
# `make e2e` (CI) runs the scenarios listed in tests/e2e/expected, each of
# which must PASS; `make e2e-all` runs every scenario file in the tree,
# including those still being brought up (not yet in expected).
E2E_EXPECTED = $(shell sed -n 's/^\([a-z0-9-][a-z0-9-]*\)$$/\1/p' tests/e2e/expected)

e2e:
	scripts/deps.sh --rig
	$(MAKE) build lib deb
	RIG_SKIP_DEPS=1 RIG_ONLY="$${RIG_ONLY:-$(E2E_EXPECTED)}" tests/e2e/rig.sh test

e2e-all:
	scripts/deps.sh --rig
	$(MAKE) build lib deb
	RIG_SKIP_DEPS=1 tests/e2e/rig.sh test

e2e-shell:
	scripts/deps.sh --rig
	$(MAKE) build lib
	RIG_SKIP_DEPS=1 tests/e2e/rig.sh shell

rig-clean:
	tests/e2e/rig.sh clean

# The narrated demo (tests/e2e/scenarios/95-demo.sh): its DEMO: lines are
# echoed as they arrive; logs in build/e2e-logs-demo. Its first act installs
# the Debian package (make deb) in dom0.
demo:
	scripts/deps.sh --rig
	$(MAKE) build lib deb
	RIG_SKIP_DEPS=1 RIG_ONLY="dom0-ready demo" RIG_LOGS=$${RIG_LOGS:-build/e2e-logs-demo} tests/e2e/rig.sh test

# fio side by side, userspace vs kernel backend, on the test ground
# (tests/e2e/scenarios/70-perf-compare.sh); writes docs/performance.md.
perf:
	scripts/deps.sh --rig
	$(MAKE) build lib
	RIG_SKIP_DEPS=1 RIG_ONLY="dom0-ready guest-boots perf-compare" RIG_LOGS=$${RIG_LOGS:-build/e2e-logs-perf} tests/e2e/rig.sh test
	tests/e2e/perf/report.sh $${RIG_LOGS:-build/e2e-logs-perf}/results-perf-compare.json >docs/performance.md.new
	mv docs/performance.md.new docs/performance.md

# Paths (PREFIX, SBINDIR, LIBDIR, SYSCONFDIR, XEN_SCRIPT_DIR, ...) are
# read by the script from the command line: make install PREFIX=/usr.
install: build lib man
	BUILD=$(BUILD) VERSION=$(VERSION) scripts/packaging/install.sh install

uninstall:
	BUILD=$(BUILD) VERSION=$(VERSION) scripts/packaging/install.sh uninstall

man:
	BUILD=$(BUILD) scripts/packaging/man.sh

deb: build lib man
	BUILD=$(BUILD) VERSION=$(VERSION) scripts/packaging/mkdeb.sh

clean:
	rm -rf $(BUILD)
