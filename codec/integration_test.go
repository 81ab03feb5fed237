package codec

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/tests/testenv"
)

type canaryInput struct {
	Secret string `json:"secret"`
}

type canaryResult struct {
	Echo          string `json:"echo"`
	FailureReason string `json:"failure_reason"`
}

// canaryWorkflow carries its input through an activity's argument and
// result, a failing activity's error message and its own result.
func canaryWorkflow(ctx workflow.Context, in canaryInput) (canaryResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var res canaryResult
	if err := workflow.ExecuteActivity(ctx, echoActivity, in.Secret).Get(ctx, &res.Echo); err != nil {
		return res, err
	}
	err := workflow.ExecuteActivity(ctx, failActivity, in.Secret).Get(ctx, nil)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		return res, errors.New("failActivity did not fail with an application error")
	}
	res.FailureReason = ae.Error()
	return res, nil
}

func echoActivity(_ context.Context, s string) (string, error) { return "echo " + s, nil }

func failActivity(_ context.Context, s string) error {
	return temporal.NewNonRetryableApplicationError("refused "+s, "Canary", nil)
}

// rawHistory is the run's history as the server stores it.
func rawHistory(t *testing.T, c client.Client, id, runID string) []byte {
	t.Helper()
	h, err := testenv.StoredHistory(context.Background(), c, id, runID)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Payload encryption through a real Temporal dev server: a workflow run by a
// worker whose client has the codec leaves no trace of its secret input in
// the history as the server stores it (inputs, activity arguments and
// results, the workflow result, the memo and a failure message), fetched
// with a client without the codec — which cannot read the result either —
// while a client with the codec reads everything back. A run of the same
// workflow without the codec shows the secret in its history, which proves
// the search looks in the right place.
func TestEncryptedHistoryThroughTemporal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := testenv.StartTemporal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop() }()

	cd := mustNew(t, newKey(t))
	quiet := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	opts := client.Options{HostPort: srv.FrontendHostPort(), Logger: quiet}
	cd.Apply(&opts)
	enc, err := client.Dial(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	raw, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()

	run := func(c client.Client, queue, secret string) (client.WorkflowRun, canaryResult) {
		t.Helper()
		w := worker.New(c, queue, worker.Options{})
		w.RegisterWorkflow(canaryWorkflow)
		w.RegisterActivity(echoActivity)
		w.RegisterActivity(failActivity)
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "canary-" + queue, TaskQueue: queue,
			Memo: map[string]any{"note": secret}}, canaryWorkflow, canaryInput{Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		var res canaryResult
		if err := r.Get(ctx, &res); err != nil {
			t.Fatal(err)
		}
		return r, res
	}

	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	secret := "drover-canary-" + hex.EncodeToString(nonce)

	r, res := run(enc, "codec-on", secret)
	if res.Echo != "echo "+secret || !strings.Contains(res.FailureReason, "refused "+secret) {
		t.Fatalf("codec client read back %+v", res)
	}
	if h := rawHistory(t, raw, r.GetID(), r.GetRunID()); bytes.Contains(h, []byte(secret)) {
		t.Fatalf("the stored history contains the plaintext %q", secret)
	} else if !bytes.Contains(h, []byte(MetadataEncoding)) || !bytes.Contains(h, []byte(cd.KeyID())) {
		t.Fatalf("the stored history has no payload marked %s with key id %s", MetadataEncoding, cd.KeyID())
	}
	var got canaryResult
	if err := raw.GetWorkflow(ctx, r.GetID(), r.GetRunID()).Get(ctx, &got); err == nil {
		t.Errorf("a client without the codec decoded the result: %+v", got)
	}
	// The codec client decodes the stored input too.
	it := enc.GetWorkflowHistory(ctx, r.GetID(), r.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	first, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	var in canaryInput
	attrs := first.GetAttributes().(*historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes)
	if err := cd.DataConverter().FromPayloads(attrs.WorkflowExecutionStartedEventAttributes.GetInput(), &in); err != nil || in.Secret != secret {
		t.Errorf("codec data converter read the stored input as %+v, %v", in, err)
	}

	plainSecret := secret + "-plain"
	r2, _ := run(raw, "codec-off", plainSecret)
	if !bytes.Contains(rawHistory(t, raw, r2.GetID(), r2.GetRunID()), []byte(plainSecret)) {
		t.Fatal("control: the history of a run without the codec does not contain its input; the search is broken")
	}
}
