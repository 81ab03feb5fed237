package snapshot_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover-sre/drover/activities/snapshot"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/testenv"
)

// The source every test copies from: schema shop, ≥ 200,000 rows in
// several tables covering every column type, a view, a trigger and a
// procedure. Tests run a write load on it while they copy.
var (
	source  *testenv.Server
	secrets string
)

const (
	sourceID     = 70
	schema       = "shop"
	childEnv     = "DROVER_SNAPSHOT_CHILD" // set: this process is a copy to be killed
	weakUser     = "weak"
	weakPassword = "weak-pw"
)

func TestMain(m *testing.M) {
	if in := os.Getenv(childEnv); in != "" {
		os.Exit(child(in))
	}
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctx := context.Background()
	var err error
	if secrets, err = testenv.TempDir("drvsnap"); err != nil {
		return 0, err
	}
	defer os.RemoveAll(secrets)
	if source, err = testenv.StartServer(ctx, "127.0.0.70", sourceID); err != nil {
		return 0, err
	}
	defer source.Close()
	if err := source.MakeSource(ctx); err != nil {
		return 0, err
	}
	if err := testenv.PopulateShop(ctx, source.Exec); err != nil {
		return 0, err
	}
	// An account that sees one table of shop and nothing else.
	if err := source.Exec(ctx, "CREATE USER "+weakUser+"@'%' IDENTIFIED BY '"+weakPassword+"'",
		"GRANT SELECT ON shop.orders TO "+weakUser+"@'%'"); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(secrets, "weak.pw"), []byte(weakPassword+"\n"), 0o600); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// child runs one copy from a JSON CopyInput and exits; the parent kills it.
func child(in string) int {
	var ci snapshot.CopyInput
	if err := json.Unmarshal([]byte(in), &ci); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	_, err := snapshot.Copy(context.Background(), ci, snapshot.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// site describes a test server as a recipe site (admin account drover).
func site(name string, s *testenv.Server) recipe.Site {
	return recipe.Site{Name: name, Provider: recipe.ProviderLocal, Address: s.Config.Address,
		DB: recipe.Database{Host: s.Config.Address, Port: s.Config.Port, User: s.AdminUser,
			Password: recipe.SecretRef("file:" + s.PasswordFile), ServerID: s.Config.ServerID, GTIDDomainID: s.Config.DomainID}}
}

// newTarget starts an empty target server (read_only, applier account,
// checkpoint table), stopped when the test ends.
func newTarget(t *testing.T, id uint32) *testenv.Server {
	t.Helper()
	s, err := testenv.StartServer(context.Background(), fmt.Sprintf("127.0.0.%d", id), id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.MakeTarget(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

var a *snapshot.Activities // typed nil: method values name the activities

// activityEnv runs the snapshot activities in the SDK's test environment
// (heartbeats, cancellation, error conversion as in a worker).
// beatingEnv is an activity environment that collects the heartbeat
// details Temporal receives.
func beatingEnv() (*testsuite.TestActivityEnvironment, *progressLog) {
	var beats progressLog
	env := activityEnv()
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var p snapshot.Progress
		if details.Get(&p) == nil {
			beats.add(p)
		}
	})
	return env, &beats
}

func activityEnv() *testsuite.TestActivityEnvironment {
	env := (&testsuite.WorkflowTestSuite{}).NewTestActivityEnvironment()
	env.RegisterActivity(&snapshot.Activities{})
	env.SetTestTimeout(5 * time.Minute)
	return env
}

func copyActivity(t *testing.T, in snapshot.CopyInput) (snapshot.CopyResult, error) {
	t.Helper()
	res, _, err := copyActivityBeats(t, in)
	return res, err
}

// copyActivityBeats also returns the heartbeat details Temporal received
// (the test environment has no heartbeat timeout, so the SDK's 30 s
// heartbeat throttle passes the first one at once and batches the rest).
func copyActivityBeats(t *testing.T, in snapshot.CopyInput) (snapshot.CopyResult, []snapshot.Progress, error) {
	t.Helper()
	var out snapshot.CopyResult
	env, beats := beatingEnv()
	v, err := env.ExecuteActivity(a.SnapshotCopy, in)
	if err != nil {
		return out, nil, err
	}
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	beats.mu.Lock()
	defer beats.mu.Unlock()
	return out, beats.ps, nil
}

// compareActivity runs SnapshotCompare and checks that it heartbeated.
func compareActivity(t *testing.T, in snapshot.CompareInput) snapshot.CompareResult {
	t.Helper()
	var out snapshot.CompareResult
	env, beats := beatingEnv()
	v, err := env.ExecuteActivity(a.SnapshotCompare, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	beats.mu.Lock()
	defer beats.mu.Unlock()
	if len(beats.ps) == 0 || !strings.HasPrefix(beats.ps[0].Phase, "compare") {
		t.Errorf("SnapshotCompare did not heartbeat: %+v", beats.ps)
	}
	return out
}

// stream runs Drover's streamer from source into dst from start (or the
// target's checkpoint), stopped when the test ends.
func stream(t *testing.T, name string, dst *testenv.Server, start string, replicaID uint32) *testenv.Running {
	t.Helper()
	cfg := testenv.StreamConfig(name, source, dst, replicaID)
	cfg.StartPosition = start
	cfg.HeartbeatPeriod = 500 * time.Millisecond
	return testenv.StartStream(t, cfg)
}

// caughtUp waits until the stream has applied the source's position.
func caughtUp(t *testing.T, r *testenv.Running) {
	t.Helper()
	want, err := source.Position(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.WaitApplied(context.Background(), want, 50*time.Millisecond, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// seqOf is the sequence number of the source's domain in a position.
func seqOf(t *testing.T, pos string) uint64 {
	t.Helper()
	p, err := replication.ParsePosition(pos)
	if err != nil {
		t.Fatal(err)
	}
	return p[sourceID].Seq
}

func scalar[T any](t *testing.T, db *sql.DB, q string, args ...any) T {
	t.Helper()
	var v T
	if err := db.QueryRow(q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// progressLog collects heartbeats.
type progressLog struct {
	mu sync.Mutex
	ps []snapshot.Progress
}

func (p *progressLog) add(x snapshot.Progress) {
	p.mu.Lock()
	p.ps = append(p.ps, x)
	p.mu.Unlock()
}
