#!/usr/bin/env bash
# The `make demo` scenario on the embedded local stack: west does not exist
# at first; it is cloned from east (a consistent copy at one GTID, then
# replication east → west from that GTID) while the demo app writes at
# east; then writes through the demo app, an outage of east (its processes
# killed), automatic failover by the health monitor, writes through the
# public DNS name at west, east restarted and kept fenced, and failback to
# east with RPO 0 — printing each runbook's report — and a DR drill.
#
# Usage: deploy/local/demo.sh BIN_DIR STATE_DIR [KEEP]
# KEEP=1 leaves the stack running; otherwise it is stopped and its state
# directory deleted on exit, whatever happened.
set -euo pipefail
BIN=$1 S=$2 KEEP=${3:-}
D=$BIN/drover R=$S/recipe.yaml
DNS=127.0.0.1 DNSPORT=5354 NAME=app.drover.test

if [ "$KEEP" != 1 ]; then trap '"$D" dev down --purge --state-dir "$S"' EXIT; fi

say() { printf '\n== %s ==\n' "$*"; }
# wait_for TRIES DELAY CMD…: run CMD until it succeeds, at most TRIES times.
wait_for() {
	local n=$1 d=$2; shift 2
	for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep "$d"; done
	echo "gave up waiting for: $*" >&2
	return 1
}
public() { dig +short +norecurse @"$DNS" -p "$DNSPORT" "$NAME" A; }
write() { # write LAST_NAME: create an owner through the public name
	local addr
	addr=$(public)
	echo "$NAME → $addr"
	curl -sS -X POST -H 'Content-Type: application/json' \
		-d "{\"first_name\":\"Demo\",\"last_name\":\"$1\",\"city\":\"Here\",\"telephone\":\"555-0100\"}" \
		"http://$addr:8080/api/owners"
	echo
}
has_owner() { curl -sS "http://$1:8080/api/owners?last_name=$2" | grep -q "\"$2\""; }
stream_running() { "$D" replication status -f "$R" --from "$1" --to "$2" | grep -q ' running '; }
monitor_sees_both_up() { [ "$("$D" monitor status --app petclinic | grep -cE '^(east|west) +up ')" = 2 ]; }
runbook_started() { "$D" runbook status --app petclinic >/dev/null; }
monitor_primary_is() { "$D" monitor status --app petclinic --json | grep -q "\"primary\": *\"$1\""; }

"$D" dev up --state-dir "$S" --auto-failover --unprovisioned west

say "east serves; west is only a worker: no database, no app, no DNS name"
write Babbage
echo "west.drover.test → '$(dig +short +norecurse @"$DNS" -p "$DNSPORT" west.drover.test A)'"

say "clone east → west (CloneSite): provision, consistent copy at one GTID, replication from it, DNS, verify"
"$D" clone -f "$R" --app petclinic --from east --to west
wait_for 100 0.2 stream_running east west
"$D" replication status -f "$R"

say "SiteStatus: every site probed from its own worker"
"$D" status -f "$R"

say "writes through the public name land at the primary, east; the standby has them"
write Lovelace
wait_for 100 0.2 has_owner 127.0.0.3 Lovelace
has_owner 127.0.0.3 Babbage && echo "the owner written before the clone (Babbage) came with the copy"
curl -sS 'http://127.0.0.3:8080/api/owners?last_name=Lovelace'; echo
echo "a write at the read-only standby is refused:"
curl -sS -X POST -d '{"first_name":"X","last_name":"Y","city":"Z","telephone":"1"}' http://127.0.0.3:8080/api/owners; echo

say "health monitor: every site probed from every site, every second; down after 3 failed rounds"
"$D" monitor start -f "$R" --interval 1s --threshold 3
wait_for 150 0.2 monitor_sees_both_up
"$D" monitor status --app petclinic

say "outage: east's database and app killed (SIGKILL)"
"$D" dev kill east --state-dir "$S"
wait_for 300 0.2 runbook_started
say "the automatic failover's report"
"$D" runbook report --app petclinic --wait
"$D" monitor status --app petclinic

say "writes through the public name now land at west"
write Hopper

say "east restarted: it stays fenced (read-only, not in DNS)"
"$D" dev start east --state-dir "$S"
wait_for 100 0.2 monitor_primary_is west
curl -sS http://127.0.0.2:8080/healthz; echo
echo "$NAME → $(public)"

say "failback to east: replicate west → east, catch up, switch over (RPO 0)"
"$D" failback -f "$R" --from west --to east --reason "demo: east is back"

say "writes through the public name land at east again; west follows it"
write Turing
wait_for 100 0.2 has_owner 127.0.0.3 Turing
"$D" replication status -f "$R" --from east --to west

say "DR drill: west's data copied into an isolated site (recipe drill.address 127.0.0.4), promoted, an owner written and read back through its app, RTO/RPO against the SLA, then everything removed"
"$D" drill -f "$R" --reason "demo drill" --report-dir "$S/drill-report"
ls "$S/drill-report"
echo "drill-west.drover.test → '$(dig +short +norecurse @"$DNS" -p "$DNSPORT" drill-west.drover.test A)' (removed)"
"$D" monitor stop --app petclinic

echo
echo "Temporal UI: $(sed -n 's/.*"ui_url": "\(.*\)".*/\1/p' "$S/stack.json")  (workflows clone-petclinic-west, runbook-petclinic, health-petclinic, replication-petclinic-*)"
if [ "$KEEP" = 1 ]; then echo "KEEP=1: stack left running; stop it with: $D dev down --state-dir $S"; fi
