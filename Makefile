# Root Makefile for the agentfleet monorepo. Every module listed in go.work is
# built, vetted and tested from here; see README.md for the two commands a
# newcomer needs.
SHELL    := /bin/bash
GO       ?= go
MODULES  := $(shell sed -n 's/^[[:space:]]*\.\/\([a-z-]*\)$$/\1/p' go.work)
PKGS     := $(addprefix ./,$(addsuffix /...,$(MODULES)))
# Evaluated once per make run (not per use), so every file of one build agrees;
# each can be given on the command line. DATE follows SOURCE_DATE_EPOCH when it
# is set, for reproducible builds.
ifndef VERSION
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
endif
ifndef COMMIT
COMMIT  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
endif
ifndef DATE
DATE    := $(shell date -u $${SOURCE_DATE_EPOCH:+-d @$$SOURCE_DATE_EPOCH} +%Y-%m-%dT%H:%M:%SZ)
endif
# The one place build information is injected.
BUILDINFO := github.com/agentfleet/libagent/buildinfo
LDFLAGS  := -s -w -X $(BUILDINFO).Version=$(VERSION) -X $(BUILDINFO).Commit=$(COMMIT) -X $(BUILDINFO).Date=$(DATE)
FUZZTIME ?= 3s
TOOLS    := $(CURDIR)/.tools
STATICCHECK_VERSION := v0.8.2
PLATFORMS := linux/amd64 linux/arm64 windows/amd64 darwin/arm64

.PHONY: all build test unit fuzz packaging docs lint fmt tidy crossbuild demo demo-check bench logbench soak stress reliability release release-key clean mysql nats console console-check console-test wintest host-tools

all: lint test build

## build: every binary into bin/<name>
build:
	@mkdir -p bin
	@set -e; for m in $(MODULES); do \
	  for d in $$(cd $$m && $(GO) list -f '{{if eq .Name "main"}}{{.Dir}}{{end}}' ./...); do \
	    name=$$(basename $$d); [ "$$d" = "$(CURDIR)/$$m" ] && name=$$m; \
	    echo "build bin/$$name"; \
	    (cd $$d && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(CURDIR)/bin/$$name .); \
	  done; \
	done

## test: unit and end-to-end tests of all modules with -race, every fuzz target briefly, the
## package test (one .deb built and inspected), the agent-writing walkthrough, the demo headless,
## the console's build check and browser tests
test: unit fuzz packaging docs demo-check console-check console-test

## console: install the console's npm packages (console/package-lock.json) and rebuild the
## console into agent-server/internal/console/dist; commit the result (docs/console.md)
console:
	@bash .ci/console-deps
	@cd console && node build.mjs --sizes

## console-check: the committed console build is what its sources and lockfile build, within budget
console-check:
	@bash .ci/console-deps
	@cd console && node build.mjs --check

## console-test: the console in Debian's chromium against the real server and agents (screenshots
## in artifacts/screenshots/)
console-test: build
	@bash .ci/console-deps --browser
	@cd console && node --test --test-concurrency=1 test/*.test.mjs

## docs: run the commands of docs/writing-an-agent.md in a throwaway copy
docs:
	@bash .ci/test-writing-an-agent

## packaging: the release pipeline's own tests (.ci/test-packaging builds and inspects a .deb)
packaging:
	@bash .ci/test-changelog-section
	@bash .ci/test-packaging

unit: mysql nats host-tools
	$(GO) test -race -count=1 -timeout 9m $(PKGS)

## wintest: the Windows code's tests, cross-compiled and run under wine64 (docs/windows.md);
## installs wine64 with apt-get when missing, fails when it cannot
wintest:
	@bash .ci/wintest

## host-tools: dpkg, rpm, sudo, su and useradd for exec-agent's install tests (apt-get when missing)
host-tools:
	@bash .ci/host-tools

## mysql: make sure the local MariaDB/MySQL is up (CI=true: fail loudly when it cannot be)
mysql:
	@bash .ci/mysql-up

## nats: make sure NATS with JetStream answers on 127.0.0.1:4222 (CI=true: fail loudly when it cannot)
nats:
	@bash .ci/nats-up

## fuzz: run every FuzzXxx target for FUZZTIME (3s in make test; make fuzz FUZZTIME=2m for longer)
fuzz:
	@bash .ci/fuzz $(FUZZTIME) $(MODULES)

## lint: gofmt, go vet, staticcheck, go mod tidy diff, no version skew from go.work, cross builds
lint: crossbuild
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@test -x $(TOOLS)/staticcheck-$(STATICCHECK_VERSION) || { GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) && mv $(TOOLS)/staticcheck $(TOOLS)/staticcheck-$(STATICCHECK_VERSION); }
	$(TOOLS)/staticcheck-$(STATICCHECK_VERSION) $(PKGS)
	@set -e; for m in $(MODULES); do (cd $$m && GOWORK=off GOFLAGS=-mod=mod $(GO) mod tidy -diff) || { echo "go mod tidy needed in $$m"; exit 1; }; done
	@bash .ci/check-versions

crossbuild:
	@set -e; for p in $(PLATFORMS); do echo "build $$p"; \
	  GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build $(PKGS); \
	  GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) vet $(PKGS) >/dev/null; done

fmt:
	gofmt -w $(MODULES)

tidy:
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy); done

## demo: build, start agent-server (SQLite, 127.0.0.1:13081) with an exec-, a metrics- and the
## example-agent, print the token and agentctl and curl commands; Ctrl-C stops everything
demo: build
	@./bin/demo

## demo-check: the demo headless on its own port and data dir: agents listed, a command runs
## (through the API, and through agentctl)
demo-check: build
	@d=$$(mktemp -d); ./bin/demo -check -data $$d -port 13981; rc=$$?; rm -rf $$d; exit $$rc

## bench: benchmarks (not part of make test); figures go to BENCHMARKS.md
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count $${COUNT:-6} $(PKGS) | tee bench.out

## logbench: the log collection benchmark (BENCHMARKS.md, "Log collection"; not part of make test):
## the log-agent and agent-server binaries on one file of 200-byte lines into the embedded store,
## alternating with rsyslog (imfile → omfwd TCP); LOGBENCH_MB (1024), LOGBENCH_RUNS (3),
## LOGBENCH_PROFILE=<dir> for CPU profiles (agent-server/e2e/logbench/logbench_test.go)
logbench:
	cd agent-server && $(GO) test -tags logbench -run TestLogBench -v -count=1 -timeout 180m ./e2e/logbench/

## soak: long-running tests, not part of make test
soak:
	SOAK=1 $(GO) test -race -count=1 -timeout 60m -run Soak $(PKGS)

## stress: the packages whose tests wait on time (hub, tasks, exec service, e2e suites, agents) with
## -race -count=3 while one busy-loop process per core runs beside them; .ci/run runs it once
stress:
	@bash .ci/stress

## reliability: 200 runs of `seq 1 200000` through the real binaries (pipe and pty, sync and
## async, fleet) under make stress's load, every byte checked; not part of make test
## (docs/reliability.md)
reliability:
	@bash .ci/reliability

## release-key: a new release signing key pair (KEY=.keys/release.key; the .pub goes into the
## agents' basic.upgrade.public_key, the private key into RELEASE_SIGNING_KEY)
KEY ?= .keys/release.key
release-key:
	@mkdir -p $(dir $(KEY))
	@cd libagent && $(GO) run ./cmd/release-sign keygen $(abspath $(KEY))

## release: cross-compiled archives, .deb/.rpm, bare binaries, signatures (RELEASE_SIGNING_KEY)
## and checksums.txt into release/ (packaging/README.md, docs/upgrade.md)
release: build
	@VERSION='$(VERSION)' LDFLAGS='$(LDFLAGS)' bash .ci/release

clean:
	rm -rf bin release bench.out
