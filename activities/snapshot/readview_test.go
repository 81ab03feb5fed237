package snapshot_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-sre/drover/activities/snapshot"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/tests/testenv"
)

// Several snapshot sessions opened while writes go on share one read view:
// under BACKUP STAGE BLOCK_COMMIT (commits blocked for milliseconds), or
// without any lock when their binlog offsets agree; an account without
// RELOAD falls back to one session.
func TestReadViewSharedUnderWrites(t *testing.T) {
	ctx := context.Background()
	l := testenv.StartShopLoad(t, source.Root, 1000, 3, false)
	if !testenv.WaitFor(30*time.Second, func() bool { return l.Commits.Load() >= 50 }) {
		l.Check(t)
		t.Fatal("the write load does not commit")
	}
	const q = "SELECT CONCAT(COUNT(*), '/', MAX(id), '/', SUM(amount)) FROM shop.orders"
	for _, tc := range []struct {
		name  string
		tries int
		want  []string
	}{
		{"straight to BACKUP STAGE", 0, []string{"backup-stage"}},
		{"lock-free first", 3, []string{"agreed", "backup-stage"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c0 := l.Commits.Load()
			method, hold, points, answers, _, err := snapshot.ReadViewForTest(ctx, site("east", source), 4, tc.tries, q)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s, commits blocked %s, offsets %v, %d source commits meanwhile", method, hold, points, l.Commits.Load()-c0)
			if !strings.Contains(strings.Join(tc.want, ","), method) || len(points) != 4 {
				t.Fatalf("method %s with %d sessions, want one of %v with 4", method, len(points), tc.want)
			}
			for i := range points {
				if points[i] != points[0] || answers[i] != answers[0] {
					t.Fatalf("sessions do not share one read view: offsets %v, orders %v", points, answers)
				}
			}
			if method == "backup-stage" && hold > 2*time.Second {
				t.Errorf("commits blocked for %s", hold)
			}
		})
	}
	weak := site("east", source)
	weak.DB.User, weak.DB.Password = weakUser, recipe.SecretRef("file:"+filepath.Join(secrets, "weak.pw"))
	method, _, points, _, note, err := snapshot.ReadViewForTest(ctx, weak, 4, 0, q)
	if err != nil {
		t.Fatal(err)
	}
	if method != "single" || len(points) != 1 || !strings.Contains(note, "RELOAD") {
		t.Fatalf("without RELOAD: method %s, %d sessions, note %q", method, len(points), note)
	}
	l.Stop()
	l.Check(t)
}
