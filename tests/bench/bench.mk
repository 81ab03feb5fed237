# Benchmarks, included by the Makefile (targets run from the repository
# root). They are not part of `make test`; run `make deps` first.

.PHONY: bench-replication

## bench-replication: Drover's applier vs MariaDB native replication (catch-up), lag at ~1,000 txn/s, peak RSS
## (BENCH_FLAGS=-cpuprofile=/tmp/drover.prof profiles Drover's catch-up)
bench-replication:
	$(GO) run ./tests/bench/replbench $(BENCH_FLAGS)

.PHONY: bench-failover

## bench-failover: automatic failover timeline (kill → detect → fence → promote → DNS → first write), failback, switchover write unavailability
bench-failover:
	$(GO) run ./tests/bench/failbench $(BENCH_FLAGS)
