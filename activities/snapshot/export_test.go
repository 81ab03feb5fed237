package snapshot

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/drover-sre/drover/recipe"
)

// ReadViewForTest opens n snapshot sessions on site's database the way the
// copy does, with tries lock-free attempts (0: straight to BACKUP STAGE),
// runs q in every session, and returns the method, the hold, each
// session's binlog offset and each session's answer.
func ReadViewForTest(ctx context.Context, site recipe.Site, n, tries int, q string) (method string, hold time.Duration, points []string, answers []string, note string, err error) {
	db, err := openSite(site, 0, n+1)
	if err != nil {
		return "", 0, nil, nil, "", err
	}
	defer db.Close()
	v, err := openReadView(ctx, db, func() (*sql.DB, error) { return openSite(site, 0, 1) }, n, tries, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", 0, nil, nil, "", err
	}
	defer v.close()
	for _, c := range v.conns {
		sp, err := snapshotCoords(ctx, c)
		if err != nil {
			return "", 0, nil, nil, "", err
		}
		p := fmt.Sprintf("%s:%d", sp.File, sp.Pos)
		var a string
		if err := c.QueryRowContext(ctx, q).Scan(&a); err != nil {
			return "", 0, nil, nil, "", err
		}
		points, answers = append(points, p), append(answers, a)
	}
	return v.method, v.hold, points, answers, v.note, nil
}
