package main

import (
	"strings"
	"testing"
)

func TestConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		site, want string
	}{
		{"", "--site: required"},
		{"East", "--site: \"East\" must match"},
		{"east_1", "must match"},
	} {
		c := Config{Site: tc.site}
		err := c.check()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("site %q: %v, want %q", tc.site, err, tc.want)
		}
	}
	bad := Config{Site: "east", ChaosDir: "chaos"}
	if err := bad.check(); err == nil || !strings.Contains(err.Error(), "DROVER_CHAOS_DIR") {
		t.Errorf("a relative chaos directory: %v", err)
	}
	c := Config{Site: "east", ChaosDir: t.TempDir()}
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(c.AppBinary, "/petclinic") {
		t.Errorf("default app binary %q should be petclinic next to the worker", c.AppBinary)
	}
}
