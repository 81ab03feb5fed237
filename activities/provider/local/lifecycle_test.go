package local_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/drover-sre/drover/activities/provider"
	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/tests/testenv"
)

// DestroySite with a run removes only a site that run created; it kills the
// site's processes and deletes exactly its directory; a second destroy is a
// no-op. A site that existed before the run is left alone.
func TestDestroySite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, s := newSite(t, "clone", "127.0.0.5", 11)
	neighbour := filepath.Join(p.StateDir, "sites", "clone-2")
	if err := os.MkdirAll(neighbour, 0o700); err != nil {
		t.Fatal(err)
	}

	st, err := p.StartSite(ctx, local.SiteInput{Site: s, Run: "clone-run-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running() || st.Run != "clone-run-1" {
		t.Fatalf("after start: %+v", st)
	}
	// Restarting with another run does not take the site over.
	if st, err = p.StartSite(ctx, local.SiteInput{Site: s, Run: "clone-run-2"}); err != nil || st.Run != "clone-run-1" {
		t.Fatalf("second start: %+v, %v", st, err)
	}

	st, err = p.DestroySite(ctx, local.SiteInput{Site: s, Run: "clone-run-2"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Destroyed || !st.Running() {
		t.Fatalf("another run's destroy must leave the site alone: %+v", st)
	}

	st, err = p.DestroySite(ctx, local.SiteInput{Site: s, Run: "clone-run-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Destroyed || st.Running() || component(st, local.ComponentDB).Running {
		t.Fatalf("destroy: %+v", st)
	}
	if _, err := os.Stat(p.SiteDir(s.Name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("site directory still there: %v", err)
	}
	if _, err := os.Stat(neighbour); err != nil {
		t.Fatalf("a neighbouring site directory was touched: %v", err)
	}
	if left := testenv.ProcessesMentioning(p.SiteDir(s.Name)); len(left) > 0 {
		t.Fatalf("processes left after destroy: %v", left)
	}
	if st, err = p.DestroySite(ctx, local.SiteInput{Site: s}); err != nil || st.Destroyed {
		t.Fatalf("destroying a destroyed site: %+v, %v", st, err)
	}

	// A site with no recorded run is never removed by a run's compensation.
	if err := os.MkdirAll(p.SiteDir(s.Name), 0o700); err != nil {
		t.Fatal(err)
	}
	if st, err = p.DestroySite(ctx, local.SiteInput{Site: s, Run: "clone-run-1"}); err != nil || st.Destroyed {
		t.Fatalf("pre-existing site: %+v, %v", st, err)
	}
}

// DestroySite refuses anything that is not exactly StateDir/sites/<name>.
func TestDestroySiteRefusesOutsideStateDir(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, s := newSite(t, "victim", "127.0.0.6", 12)
	outside := t.TempDir()
	keep := filepath.Join(outside, "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := s
	bad.Name = "../../" + filepath.Base(outside)
	if _, err := p.DestroySite(ctx, local.SiteInput{Site: bad}); err == nil {
		t.Fatal("a site name with a path was accepted")
	}
	// The site directory is a symbolic link to somewhere else.
	if err := os.MkdirAll(filepath.Join(p.StateDir, "sites"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, p.SiteDir(s.Name)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DestroySite(ctx, local.SiteInput{Site: s}); err == nil {
		t.Fatal("a symlinked site directory was accepted")
	}
	rel := &local.Provider{StateDir: "relative/state", Bins: p.Bins}
	if _, err := rel.DestroySite(ctx, local.SiteInput{Site: s}); err == nil {
		t.Fatal("a relative state directory was accepted")
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("a file outside the site directory was removed: %v", err)
	}
}

// ScaleSite runs one app process per listed endpoint: scaling to 2 starts a
// second process that answers on the second endpoint, scaling back stops
// it, StopSite stops every app process, and asking for more processes than
// endpoints is a non-retryable config error.
func TestScaleSite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, s := newSite(t, "scaled", "127.0.0.7", 13)
	port, err := testenv.FreePort(s.Address)
	if err != nil {
		t.Fatal(err)
	}
	s.App.Endpoints = append(s.App.Endpoints, "http://"+net.JoinHostPort(s.Address, strconv.Itoa(port)))
	t.Cleanup(func() { _, _ = p.KillSite(context.Background(), local.SiteInput{Site: s}) })

	if _, err := p.ScaleSite(ctx, local.ScaleInput{Site: s, Instances: 2}); err == nil {
		t.Fatal("scaling a site that was never started must fail")
	}
	if _, err := p.StartSite(ctx, local.SiteInput{Site: s}); err != nil {
		t.Fatal(err)
	}
	st, err := p.ScaleSite(ctx, local.ScaleInput{Site: s, Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	second := component(st, "app-2")
	if !st.Running() || !second.Running || !second.Started || component(st, local.ComponentApp).Started {
		t.Fatalf("scale to 2: %+v", st)
	}
	if h := getHealth(t, s.App.Endpoints[1]); !h.DB.Reachable {
		t.Fatalf("second app process: %+v", h)
	}

	st, err = p.ScaleSite(ctx, local.ScaleInput{Site: s, Instances: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c := component(st, "app-2"); c.Name != "" || !component(st, local.ComponentApp).Running {
		t.Fatalf("scale to 1: %+v", st)
	}

	_, err = p.ScaleSite(ctx, local.ScaleInput{Site: s, Instances: 3})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || !ae.NonRetryable() || ae.Type() != provider.ErrTypeConfig ||
		!containsAll(ae.Error(), "instances: 3 is not 0-2", "one app process per app endpoint") {
		t.Fatalf("too many instances: %v", err)
	}

	if _, err := p.ScaleSite(ctx, local.ScaleInput{Site: s, Instances: 2}); err != nil {
		t.Fatal(err)
	}
	st, err = p.StopSite(ctx, local.SiteInput{Site: s, Components: []string{local.ComponentApp}})
	if err != nil {
		t.Fatal(err)
	}
	if component(st, local.ComponentApp).Running || component(st, "app-2").Running || !component(st, local.ComponentDB).Running {
		t.Fatalf("stop app: %+v", st)
	}
}

// SetAsideSite stops a site and moves its directory aside, whole: a new
// site can then be started in its place while the old data stays on disk.
// Repeating it changes nothing.
func TestSetAsideSite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, s := newSite(t, "aside", "127.0.0.21", 14)
	if _, err := p.StartSite(ctx, local.SiteInput{Site: s}); err != nil {
		t.Fatal(err)
	}
	res, err := p.SetAsideSite(ctx, local.SetAsideInput{Site: s, Tag: "0193-run-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := p.SiteDir(s.Name) + ".aside-0193-run-1"
	if !res.Moved || res.Dir != want {
		t.Fatalf("set aside: %+v, want moved to %s", res, want)
	}
	if _, err := os.Stat(filepath.Join(want, "db", "data", "mysql")); err != nil {
		t.Fatalf("the old data did not move whole: %v", err)
	}
	if left := testenv.ProcessesMentioning(p.SiteDir(s.Name)); len(left) > 0 {
		t.Fatalf("processes of the set-aside site still run: %v", left)
	}
	if res, err = p.SetAsideSite(ctx, local.SetAsideInput{Site: s, Tag: "0193-run-1"}); err != nil || res.Moved || res.Dir != want {
		t.Fatalf("again: %+v, %v", res, err)
	}
	if _, err := p.SetAsideSite(ctx, local.SetAsideInput{Site: s, Tag: "../x"}); err == nil {
		t.Fatal("a tag with a path in it was accepted")
	}
	st, err := p.StartSite(ctx, local.SiteInput{Site: s, Run: "rebuild"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.DestroySite(context.Background(), local.SiteInput{Site: s}) })
	if !st.Running() || st.Run != "rebuild" {
		t.Fatalf("a fresh site in its place: %+v", st)
	}
}
