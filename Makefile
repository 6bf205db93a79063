# beamdeploy — see README.md. Everything runs as root on Debian 12.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# beamdeploy speaks HTTP/1.1 on unix sockets only and renders its own man
# page: leave out net/http's HTTP/2 and urfave/cli's man/markdown generator
# (0.9 MB less executable, which every parent keeps resident; see README,
# "Performance"). packaging/deb/build uses the same tags.
TAGS     := nethttpomithttp2,urfave_cli_no_docs
SANDBOX  := scripts/sandbox

.PHONY: ansible ansible-sanity test-fleet fleet-demo bench bench-quick soak deb test-deb all build deps example-release demo test unit test-systemd test-systemd-257 fmt-check vet lint clean sandbox-check fuzz

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o bin/beamdeploy ./cmd/beamdeploy

# Debian packages the sandbox and tests need (idempotent).
deps:
	scripts/deps

# make example-release VERSION=1.2.3 → dist/hello-1.2.3.tar.gz with bin/hello;
# EXAMPLE=beam → dist/beam-1.2.3.tar.gz (Erlang: bin/beam, ebin/); BROKEN=1
# (beam) → a release whose code fails to load.
EXAMPLE ?= hello
example-release:
	EXAMPLE=$(EXAMPLE) BROKEN=$(BROKEN) scripts/example-release $(VERSION)

# A real swap of the example app under load, in a throwaway systemd. The
# binary is installed in the sandbox's /usr/local/bin (its overlay: the
# host's is untouched), as a user would: instances of a dynamic user get a
# private /tmp and could not run it from a checkout under /tmp.
demo: deps build
	scripts/example-release 1.0.0
	scripts/example-release 1.1.0
	scripts/example-release 1.2.0
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/beamdeploy-demo ./tools/demo
	$(SANDBOX) -- sh -c 'install -m 0755 bin/beamdeploy /usr/local/bin/beamdeploy && exec bin/beamdeploy-demo -beamdeploy /usr/local/bin/beamdeploy -dist dist'

test: deps fmt-check vet lint unit fuzz sandbox-check test-systemd test-systemd-257 test-deb bench-quick ansible-sanity test-fleet

unit:
	$(GO) test -race -count=1 ./...

# The real-systemd suite: systemd 252 as PID 1 of fresh namespaces. The
# e2e package drives binaries built without -race and mostly waits on
# systemd, so it runs without -race and three tests at a time.
test-systemd: deps
	$(SANDBOX) -- sh -c "$(GO) test -race -count=1 -timeout 10m -run '^TestSystemd' \$$($(GO) list ./... | grep -v /e2e\$$) && \
		$(GO) test -count=1 -parallel 3 -timeout 25m -run '^TestSystemd' ./e2e"

# The same real-systemd suite again on systemd 257 (a Debian 13 root built
# once by scripts/debian13-root, cached in /var/cache/beamdeploy), where
# instances get their listeners from systemd (ExtraFileDescriptors) instead
# of the parent's fd broker. That root has no Go and no C toolchain: the
# host's GOROOT is bind-mounted and tests run with CGO_ENABLED=0, so
# without -race.
test-systemd-257: deps
	root=$$(scripts/debian13-root) && $(SANDBOX) --lower "$$root" --bind "$$($(GO) env GOROOT)" -- env CGO_ENABLED=0 sh -c \
		"go test -count=1 -timeout 5m -run '^TestSystemd' ./internal/units && go test -count=1 -parallel 3 -timeout 20m -run '^TestSystemd' ./e2e"

fmt-check:
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags faults ./examples/hello
	GOOS=darwin $(GO) vet ./...

lint:
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags faults ./examples/hello

clean:
	rm -rf bin dist

sandbox-check:
	scripts/sandbox-check

# Fuzz targets: the tarball extractor and the control stream decoder, with
# execution-count budgets (about 20 s each here; FUZZ_STAGE=2000000x for a
# longer run). A wall-clock -fuzztime races Go's fuzz coordinator at the
# deadline (golang/go#75804, fixed in Go 1.27): "context deadline exceeded"
# with no failing input.
FUZZ_STAGE  ?= 30000x
FUZZ_STREAM ?= 200000x
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzStage -fuzztime=$(FUZZ_STAGE) -fuzzminimizetime=10x ./internal/release
	$(GO) test -run='^$$' -fuzz=FuzzReadStream -fuzztime=$(FUZZ_STREAM) -fuzzminimizetime=10x ./internal/control

# dist/beamdeploy_VERSION_ARCH.deb, built offline with dpkg-deb; lintian-clean.
deb:
	packaging/deb/build
	lintian --pedantic --fail-on error,warning dist/beamdeploy_*.deb

# Install cycle in the sandbox: apt install → quickstart → swap → remove → purge.
# The newer package (version +upgradetest) tests an upgrade under load.
test-deb: deps deb
	scripts/example-release 1.0.0
	scripts/example-release 1.1.0
	rm -rf dist/upgrade && mkdir -p dist/upgrade
	mv "$$(BEAMDEPLOY_DEB_VERSION_SUFFIX=+upgradetest packaging/deb/build)" dist/upgrade/
	$(SANDBOX) -- packaging/deb/cycle-test $$(ls dist/beamdeploy_*.deb | head -1) $$(ls dist/upgrade/beamdeploy_*.deb)

# Zero-downtime benchmark against the alternatives, in the sandbox:
# bench/results.{json,md}, bench/latency.svg. QUICK=1: 10 swaps per scenario.
bench: deps build
	scripts/example-release 1.0.0
	scripts/example-release 1.1.0
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-X main.version=1.0.0' -o bin/hello ./examples/hello
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/beamdeploy-bench ./tools/bench
	$(SANDBOX) -- sh -c 'install -m 0755 bin/beamdeploy /usr/local/bin/beamdeploy && exec env QUICK=$(QUICK) GATE=$(GATE) bin/beamdeploy-bench -beamdeploy /usr/local/bin/beamdeploy -hello bin/hello -dist dist -out bench'

# Not part of make test (~15 min): SOAK swaps back to back under load in the
# sandbox; fails if a request or a swap fails; prints the slope of the
# parent's RSS and fds (flat: no leak); bench/soak.json.
SOAK ?= 1000
soak: deps build
	scripts/example-release 1.0.0
	scripts/example-release 1.1.0
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/beamdeploy-bench ./tools/bench
	$(SANDBOX) -- sh -c 'install -m 0755 bin/beamdeploy /usr/local/bin/beamdeploy && exec bin/beamdeploy-bench -beamdeploy /usr/local/bin/beamdeploy -dist dist -out bench -soak $(SOAK)'

# What make test runs: fails if beamdeploy loses a request. Only
# beamdeploy's own scenarios (GATE=1): the alternatives it is compared with
# are for the README's table (make bench, make bench QUICK=1).
bench-quick:
	$(MAKE) bench QUICK=1 GATE=1

# The Ansible collection beamdeploy.beamdeploy (ansible/) →
# dist/beamdeploy-beamdeploy-VERSION.tar.gz (VERSION from ansible/galaxy.yml).
COLLECTION = dist/beamdeploy-beamdeploy-$(shell sed -n 's/^version: *//p' ansible/galaxy.yml).tar.gz
ansible:
	mkdir -p dist
	ansible-galaxy collection build ansible --output-path dist --force

# ansible-test sanity on the collection, offline: Debian's linters in the
# environments ansible-test would fill from PyPI (see the script); every
# test but changelog (antsibull-changelog is not packaged in Debian 12).
ansible-sanity: deps
	ansible/tests/sanity-offline

# The fleet lab (scripts/fleet-lab): three sandboxed hosts behind HAProxy,
# set up and upgraded with ansible-playbook over SSH under load; every
# scenario of "Many hosts" in the README, 0 failed requests in each.
FLEET_BUILD = scripts/fleet-releases >/dev/null && \
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/beamdeploy-fleet ./tools/fleet && \
	deb=$$(packaging/deb/build) && coll=$(COLLECTION)
test-fleet: deps ansible
	$(FLEET_BUILD) && scripts/fleet-lab -- bin/beamdeploy-fleet -mode test -deb "$$deb" -collection "$$coll"

# The lab and one rolling upgrade under load: per host old → new release
# and swap time, then requests: N, failed: M.
fleet-demo: deps ansible
	$(FLEET_BUILD) && scripts/fleet-lab -- bin/beamdeploy-fleet -mode demo -deb "$$deb" -collection "$$coll"
