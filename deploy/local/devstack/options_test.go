package devstack

import (
	"strings"
	"testing"
)

// Bad options are refused before anything starts, naming what is wrong.
func TestOptionsCheck(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"defaults", func(*Options) {}, ""},
		{"unprovisioned standby", func(o *Options) { o.Unprovisioned = []string{"west"} }, ""},
		{"unprovisioned primary", func(o *Options) { o.Unprovisioned = []string{"east"} }, `unprovisioned "east": the primary must exist`},
		{"unprovisioned unknown", func(o *Options) { o.Unprovisioned = []string{"mars"} }, `unprovisioned "mars": not one of the sites`},
		{"unknown primary", func(o *Options) { o.Primary = "mars" }, `primary "mars": not one of the sites`},
		{"public address", func(o *Options) { o.Sites[1].Address = "10.0.0.1" }, "must be an IPv4 loopback address"},
		{"drill address of a site", func(o *Options) { o.DrillAddress = "127.0.0.3" }, "drill address 127.0.0.3: it is site west's address"},
		{"no drill address", func(o *Options) { o.DrillAddress = "" }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := DefaultOptions()
			c.edit(&o)
			err := o.check()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}
