package replicate

import (
	"testing"

	"github.com/drover-sre/drover/metrics/metricstest"
	"github.com/drover-sre/drover/replication"
)

// The meter turns a run's running totals into increments, counts in-run
// reconnects and a retryable end of run as restarts, and says streaming
// only while the run goes on and the library streams.
func TestMeterReportsIncrements(t *testing.T) {
	var rec metricstest.Recorder
	m := &meter{rec: &rec, app: "petclinic", stream: "petclinic-east-west", sla: 30}
	m.report(replication.Stats{State: "connecting"}, true, false)
	m.report(replication.Stats{State: "streaming", Transactions: 10, Rows: 30, LagSeconds: 1.5, LagTransactions: 4}, true, false)
	m.report(replication.Stats{State: "streaming", Transactions: 12, Rows: 31, Reconnects: 2}, true, false)
	m.report(replication.Stats{State: "stopped", Transactions: 12, Rows: 31, Reconnects: 2}, false, true)
	type row struct {
		streaming        bool
		txns, rows, rest uint64
	}
	want := []row{{false, 0, 0, 0}, {true, 10, 30, 0}, {true, 2, 1, 2}, {false, 0, 0, 1}}
	got := rec.Streams()
	if len(got) != len(want) {
		t.Fatalf("%d reports, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if (row{g.Streaming, g.AppliedTransactions, g.AppliedRows, g.Restarts}) != w || g.RPOSLASeconds != 30 ||
			g.App != "petclinic" || g.Stream != "petclinic-east-west" {
			t.Errorf("report %d: %+v, want %+v", i, g, w)
		}
	}
	if got[1].LagSeconds != 1.5 || got[1].BehindTransactions != 4 {
		t.Errorf("lag not passed on: %+v", got[1])
	}
	(&meter{}).report(replication.Stats{Transactions: 1}, true, false) // no recorder: nothing, no panic
}
