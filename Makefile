# Drover's entry points. `make demo` and `make test` work on a fresh Debian
# machine: they install what is missing (Debian packages, the temporal CLI)
# before building.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
CACHE_DIR ?= $(HOME)/.cache/drover
TEMPORAL_VERSION := v1.5.1
TEMPORAL_BIN ?= $(CACHE_DIR)/temporal-$(TEMPORAL_VERSION)/temporal
DEMO_STATE ?= /tmp/drover-dev
# command:package pairs checked by `make apt`
APT_NEEDS := mariadbd:mariadb-server mariadb-install-db:mariadb-server named:bind9 \
	tsig-keygen:bind9-utils dig:bind9-dnsutils nsupdate:bind9-dnsutils sysbench:sysbench curl:curl
TEST_TIMEOUT ?= 25m
FUZZTIME ?= 30s

export DROVER_TEMPORAL_BIN := $(TEMPORAL_BIN)
export PATH := $(PATH):/usr/sbin:/sbin

.PHONY: all build deps apt temporal test lint demo fuzz clean

all: build

## build: the three binaries into bin/
build:
	$(GO) build -o $(BIN)/drover ./starter
	$(GO) build -o $(BIN)/drover-worker ./worker
	$(GO) build -o $(BIN)/petclinic ./deploy/local/petclinic

## deps: Debian packages and the temporal CLI, each only if missing
deps: apt temporal

apt:
	@missing=""; for pair in $(APT_NEEDS); do \
		cmd=$${pair%%:*}; pkg=$${pair##*:}; \
		command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$${missing// /}" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

temporal: $(TEMPORAL_BIN)

# Built from source with the Go module proxy (about 5 minutes on 2 cores),
# once per machine; nothing is downloaded at run time.
$(TEMPORAL_BIN):
	@echo "building the temporal CLI $(TEMPORAL_VERSION) into $(dir $@) (once; ~5 min)"
	mkdir -p $(dir $@)
	cd /tmp && GOBIN=$(dir $@) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_VERSION)

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## test: unit and integration tests against real MariaDB, BIND9 and Temporal
test: deps build lint
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

## fuzz: run the recipe parser fuzzer for FUZZTIME
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./recipe/

## demo: the local stack; west cloned from east (copy at one GTID, replication from it) while the app writes;
## east killed, automatic failover,
## writes through the public name at west, east restarted and kept fenced, failback with RPO 0, a DR drill; then tear down
## and delete its state (KEEP=1 leaves it running). The scenario is deploy/local/demo.sh.
demo: deps build
	deploy/local/demo.sh $(BIN) $(DEMO_STATE) $(KEEP)

clean:
	rm -rf $(BIN)

# Benchmarks (not part of `make test`): targets defined under tests/bench.
-include tests/bench/bench.mk
