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

## demo: start the local stack, replicate east → west, probe, tear down and delete its state (KEEP=1 leaves it running)
demo: deps build
	@set -e; R=$(DEMO_STATE)/recipe.yaml; D=$(BIN)/drover; \
	if [ "$(KEEP)" != 1 ]; then trap '$(BIN)/drover dev down --purge --state-dir $(DEMO_STATE)' EXIT; fi; \
	$$D dev up --state-dir $(DEMO_STATE); \
	echo; echo "== SiteStatus: every site probed from its own worker =="; \
	$$D status -f $$R; \
	echo; echo "== start replication east → west (ReplicationSupervisor) =="; \
	$$D replication start -f $$R; \
	echo; echo "== write through the demo app at the primary (east) =="; \
	curl -sS -X POST -H 'Content-Type: application/json' \
		-d '{"first_name":"Ada","last_name":"Lovelace","city":"London","telephone":"555-0100"}' \
		http://127.0.0.2:8080/api/owners; echo; \
	echo; echo "== read it through the demo app at the standby (west, read-only) =="; \
	for i in $$(seq 1 50); do curl -sS 'http://127.0.0.3:8080/api/owners?last_name=Lovelace' | grep -q Ada && break; sleep 0.2; done; \
	curl -sS 'http://127.0.0.3:8080/api/owners?last_name=Lovelace'; echo; \
	echo; echo "== a write at the standby is refused (read_only=ON) =="; \
	curl -sS -X POST -d '{"first_name":"X","last_name":"Y","city":"Z","telephone":"1"}' http://127.0.0.3:8080/api/owners; echo; \
	for i in $$(seq 1 50); do $$D replication status -f $$R 2>/dev/null | grep -q ' running  1-' && break; sleep 0.2; done; \
	echo; $$D replication status -f $$R; \
	echo; echo "== crash west's database (SIGKILL) and ask again =="; \
	$$D dev kill west db --state-dir $(DEMO_STATE); \
	$$D status -f $$R || [ $$? = 3 ]; \
	echo; echo "== restart west: replication resumes from its checkpoint =="; \
	$$D dev start west --state-dir $(DEMO_STATE); \
	curl -sS -o /dev/null -X POST -d '{"first_name":"Alan","last_name":"Turing","city":"Wilmslow","telephone":"555-0101"}' http://127.0.0.2:8080/api/owners; \
	for i in $$(seq 1 100); do curl -sS 'http://127.0.0.3:8080/api/owners?last_name=Turing' | grep -q Alan && break; sleep 0.3; done; \
	curl -sS 'http://127.0.0.3:8080/api/owners?last_name=Turing'; echo; \
	for i in $$(seq 1 50); do $$D replication status -f $$R 2>/dev/null | grep -q ' running  1-' && break; sleep 0.2; done; \
	$$D replication status -f $$R; \
	$$D status -f $$R; \
	echo; echo "Temporal UI: $$(sed -n 's/.*"ui_url": "\(.*\)".*/\1/p' $(DEMO_STATE)/stack.json)  (workflows site-status-petclinic, replication-petclinic-east-west)"; \
	if [ "$(KEEP)" = 1 ]; then echo "KEEP=1: stack left running; stop it with: $(BIN)/drover dev down --state-dir $(DEMO_STATE)"; fi

clean:
	rm -rf $(BIN)

# Benchmarks (not part of `make test`): targets defined under tests/bench.
-include tests/bench/bench.mk
