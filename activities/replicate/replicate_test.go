package replicate

import (
	"errors"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
)

func TestReplicaServerIDIsStableAndOutOfTheSitesRange(t *testing.T) {
	a, b := ReplicaServerID("petclinic-east-west"), ReplicaServerID("petclinic-west-east")
	if a != ReplicaServerID("petclinic-east-west") {
		t.Fatal("not stable")
	}
	if a == b {
		t.Fatal("reverse stream got the same id")
	}
	for _, id := range []uint32{a, b} {
		if id < 0x40000000 || id > 0x7FFFFFFF {
			t.Fatalf("id %d outside the reserved range", id)
		}
	}
	if StreamName("petclinic", "east", "west") != "petclinic-east-west" {
		t.Fatal("StreamName")
	}
}

func TestErrorKindsMapToRetryability(t *testing.T) {
	for kind, retryable := range map[replication.Kind]bool{
		replication.KindBinlogPurged: false, replication.KindSchemaMismatch: false,
		replication.KindAuth: false, replication.KindConfig: false, replication.KindTransient: true,
	} {
		err := toTemporal(&replication.Error{Kind: kind, Op: "op", Err: errors.New("boom")})
		var appErr *temporal.ApplicationError
		isApp := errors.As(err, &appErr)
		if retryable && isApp && appErr.NonRetryable() {
			t.Errorf("%s must stay retryable", kind)
		}
		if !retryable && (!isApp || !appErr.NonRetryable() || appErr.Type() != string(kind)) {
			t.Errorf("%s must be non-retryable with type %s, got %v", kind, kind, err)
		}
	}
	if !strings.Contains(toTemporal(&replication.Error{Kind: replication.KindBinlogPurged, Op: "resume", Err: errors.New("gone")}).Error(), "re-clone required") {
		t.Error("purged error must say re-clone required")
	}
}

func TestEndpointResolvesSecretsAndNeverLeaksThem(t *testing.T) {
	t.Setenv("DROVER_TEST_STREAM_PW", "s3cr3t")
	s := recipe.Site{Name: "east", Address: "127.0.0.2", DB: recipe.Database{Port: 3307}}
	e, err := endpoint(s, recipe.Account{User: "drover_stream", Password: "env:DROVER_TEST_STREAM_PW"})
	if err != nil || e.Addr != "127.0.0.2:3307" || e.User != "drover_stream" || e.Password != "s3cr3t" {
		t.Fatalf("%+v %v", e, err)
	}
	_, err = endpoint(s, recipe.Account{User: "drover_stream", Password: "env:DROVER_TEST_UNSET_PW"})
	if err == nil || !strings.Contains(err.Error(), "site east") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("unresolvable secret: %v", err)
	}
}
