package zaplog

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestLoggerFieldsAndWith(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	l := New(zap.New(core)).With("site", "east")
	l.Info("promoted", "gtid", "1-1-42", 7, "seven", "dangling")
	l.Warn("lagging")
	entries := logs.AllUntimed()
	if len(entries) != 2 {
		t.Fatalf("got %d entries, want 2", len(entries))
	}
	got := entries[0].ContextMap()
	want := map[string]interface{}{"site": "east", "gtid": "1-1-42", "7": "seven", "extra": "dangling"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("field %s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if entries[1].Level != zap.WarnLevel || entries[1].ContextMap()["site"] != "east" {
		t.Errorf("second entry %+v", entries[1])
	}
}

func TestNewProductionRejectsBadLevel(t *testing.T) {
	if _, err := NewProduction("loud"); err == nil {
		t.Fatal("want error for level loud")
	}
	if _, err := NewProduction("debug"); err != nil {
		t.Fatal(err)
	}
}
