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

.PHONY: bench-clone

## bench-clone: consistent copy of a generated ~1 GB database: Drover's SnapshotCopy vs mariadb-dump --single-transaction --gtid | mariadb
## into empty targets on this machine, rows/s and the ratio (BENCH_FLAGS=-size-mb=256 for a shorter run)
bench-clone:
	$(GO) run ./tests/bench/clonebench $(BENCH_FLAGS)
