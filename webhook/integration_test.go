package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	workflowservice "go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/tests/testenv"
	"github.com/drover-sre/drover/workflows"
)

// failoverStandIn is registered as "Failover": it holds the runbook ID
// until signalled "finish" and answers the query "input" with what it was
// started with. The subject here is what the webhook starts and how
// Temporal collapses starts, not what a runbook does (workflows' tests).
func failoverStandIn(ctx workflow.Context, in workflows.RunbookInput) (string, error) {
	if err := workflow.SetQueryHandler(ctx, "input", func() (workflows.RunbookInput, error) { return in, nil }); err != nil {
		return "", err
	}
	workflow.GetSignalChannel(ctx, "finish").Receive(ctx, nil)
	return workflows.OutcomeCompleted, nil
}

// supervisorStandIn is registered as "ReplicationSupervisor": it answers
// the status query with a running stream whose lag the signal "lag" sets
// (seconds), until signalled "finish".
func supervisorStandIn(ctx workflow.Context, lag float64) error {
	if err := workflow.SetQueryHandler(ctx, workflows.ReplicationStatusQuery, func() (workflows.ReplicationStatus, error) {
		st := workflows.ReplicationStatus{State: workflows.ReplRunning}
		st.Progress.LagSeconds, st.Progress.At = lag, workflow.Now(ctx)
		return st, nil
	}); err != nil {
		return err
	}
	lagCh, finish := workflow.GetSignalChannel(ctx, "lag"), workflow.GetSignalChannel(ctx, "finish")
	for done := false; !done; {
		workflow.NewSelector(ctx).
			AddReceive(lagCh, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &lag) }).
			AddReceive(finish, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); done = true }).
			Select(ctx)
	}
	return nil
}

// drillStandIn is registered as "Drill" and returns the fields of its input.
func drillStandIn(_ workflow.Context, in map[string]json.RawMessage) ([]string, error) {
	return slices.Sorted(maps.Keys(in)), nil
}

// The Alertmanager payload sent 20 times at once to the webhook, served
// over HTTP with the production TemporalStarter against a real Temporal
// dev server, starts exactly one Failover (east → west, under
// runbook-petclinic) and acknowledges the 19 others; unauthenticated and
// malformed requests before it started nothing in Temporal; once the
// failover has ended, a repeat of the alert is recognised from the run's
// memo and starts nothing; a drill is started with the input the Drill
// workflow takes.
func TestAlertStormStartsOneFailoverOnTemporal(t *testing.T) {
	ctx := context.Background()
	srv, err := testenv.StartTemporal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(), Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := worker.New(c, workflows.SharedTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(failoverStandIn, workflow.RegisterOptions{Name: TypeFailover})
	w.RegisterWorkflowWithOptions(drillStandIn, workflow.RegisterOptions{Name: TypeDrill})
	w.RegisterWorkflowWithOptions(supervisorStandIn, workflow.RegisterOptions{Name: "ReplicationSupervisor"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	h, _ := newTestHandler(t, testRecipe(t), TemporalStarter{Client: c}, nil)
	ts := httptest.NewServer(h)
	defer ts.Close()
	body := readPayload(t, "sitedown-firing.json", nil)
	send := func(body []byte, token string) (int, Response) {
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/alerts", bytes.NewReader(body))
		if err != nil {
			t.Error(err)
			return 0, Response{}
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Error(err)
			return 0, Response{}
		}
		defer resp.Body.Close()
		var r Response
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Errorf("status %d: %v", resp.StatusCode, err)
		}
		return resp.StatusCode, r
	}
	runbookID, drillID := workflows.RunbookWorkflowID("petclinic"), DrillWorkflowID("petclinic")

	// Unauthenticated and malformed requests: Temporal has no run under
	// either ID the webhook could start, and no workflow at all.
	for _, tc := range []struct {
		body  []byte
		token string
		want  int
	}{
		{body, "", http.StatusUnauthorized},
		{body, "not-the-token-0123456789", http.StatusUnauthorized},
		{body[:len(body)/2], testToken, http.StatusBadRequest},
		{readPayload(t, "sitedown-firing.json", func(m *Message) { m.Version = "3" }), testToken, http.StatusBadRequest},
		{readPayload(t, "sitedown-firing.json", func(m *Message) { m.Alerts[0].Labels["app"] = "shop" }), testToken, http.StatusBadRequest},
		{append(body, make([]byte, DefaultMaxBody)...), testToken, http.StatusBadRequest},
	} {
		if code, resp := send(tc.body, tc.token); code != tc.want {
			t.Errorf("status %d, want %d: %+v", code, tc.want, resp)
		}
	}
	for _, id := range []string{runbookID, drillID} {
		_, err := c.DescribeWorkflow(ctx, id, "")
		var nf *serviceerror.NotFound
		if !errors.As(err, &nf) {
			t.Errorf("%s: want no run, describe says %v", id, err)
		}
	}
	if n, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{}); err != nil || n.GetCount() != 0 {
		t.Errorf("workflows in Temporal after refused requests: %d (%v)", n.GetCount(), err)
	}
	if t.Failed() {
		t.FailNow()
	}

	// A failover is only started for a standby whose lag, as its
	// supervisor last measured it, is within policy.max_rpo (30s): not
	// without a supervisor, not at 45s.
	if code, resp := send(body, testToken); code != http.StatusOK || resp.Alerts[0].Outcome != OutcomeRefused ||
		!strings.Contains(resp.Alerts[0].Message, "the lag of standby west is unknown (no replication east → west)") {
		t.Fatalf("no supervisor: %d %+v", code, resp)
	}
	streamID := workflows.ReplicationWorkflowID("petclinic", "east", "west")
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: streamID, TaskQueue: workflows.SharedTaskQueue}, "ReplicationSupervisor", 45.0); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.SignalWorkflow(context.Background(), streamID, "", "finish", nil) }()
	if code, resp := send(body, testToken); code != http.StatusOK || resp.Alerts[0].Outcome != OutcomeRefused ||
		!strings.Contains(resp.Alerts[0].Message, "standby west lagged 45.0s behind east, more than policy.max_rpo 30s") {
		t.Fatalf("lag 45s: %d %+v", code, resp)
	}
	if err := c.SignalWorkflow(ctx, streamID, "", "lag", 0.2); err != nil {
		t.Fatal(err)
	}
	if !testenv.WaitFor(10*time.Second, func() bool {
		lag, why, err := TemporalStarter{Client: c}.StandbyLag(ctx, "petclinic", "east", "west")
		return err == nil && why == "" && lag == 200*time.Millisecond
	}) {
		t.Fatal("the supervisor stand-in never reported 0.2s of lag")
	}
	if _, err := c.DescribeWorkflow(ctx, runbookID, ""); !errors.As(err, new(*serviceerror.NotFound)) {
		t.Fatalf("a refused alert started %s: %v", runbookID, err)
	}

	// The storm: 20 identical notifications at once.
	const storm = 20
	codes, resps := make([]int, storm), make([]Response, storm)
	var wg sync.WaitGroup
	for i := range storm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], resps[i] = send(body, testToken)
		}()
	}
	wg.Wait()
	outcomes := map[string]int{}
	var runID string
	for i, resp := range resps {
		if codes[i] != http.StatusOK || len(resp.Alerts) != 1 {
			t.Fatalf("request %d: status %d %+v", i, codes[i], resp)
		}
		res := resp.Alerts[0]
		outcomes[res.Outcome]++
		if res.Outcome == OutcomeStarted {
			runID = res.RunID
		}
	}
	if want := map[string]int{OutcomeStarted: 1, OutcomeAlreadyRunning: storm - 1}; !maps.Equal(outcomes, want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
	d, err := c.DescribeWorkflow(ctx, runbookID, "")
	if err != nil || d.WorkflowType.Name != TypeFailover || d.WorkflowExecution.RunID != runID || d.TaskQueueName != workflows.SharedTaskQueue {
		t.Fatalf("describe %s: %v %+v", runbookID, err, d)
	}
	var in workflows.RunbookInput
	if !testenv.WaitFor(20*time.Second, func() bool {
		v, err := c.QueryWorkflow(ctx, runbookID, runID, "input")
		return err == nil && v.Get(&in) == nil
	}) {
		t.Fatal("the failover never answered its input query")
	}
	if in.From != "east" || in.To != "west" || in.Recipe.App != "petclinic" || !in.DetectedAt.Equal(startsAt) {
		t.Errorf("failover input: from %q to %q app %q detected %v", in.From, in.To, in.Recipe.App, in.DetectedAt)
	}
	// Visibility is eventually consistent: wait for the run to show, then
	// there must be exactly one.
	query := fmt.Sprintf("WorkflowId = '%s'", runbookID)
	var runs []string
	if !testenv.WaitFor(20*time.Second, func() bool {
		runs = listRuns(t, c, query)
		return len(runs) > 0
	}) {
		t.Fatal("the failover never showed in visibility")
	}
	if len(runs) != 1 || runs[0] != runID {
		t.Fatalf("runs of %s: %v, want only %s", runbookID, runs, runID)
	}

	// The failover ends; Alertmanager repeats the notification.
	if err := c.SignalWorkflow(ctx, runbookID, runID, "finish", nil); err != nil {
		t.Fatal(err)
	}
	var outcome string
	if err := c.GetWorkflow(ctx, runbookID, runID).Get(ctx, &outcome); err != nil || outcome != workflows.OutcomeCompleted {
		t.Fatalf("failover: %q %v", outcome, err)
	}
	code, resp := send(body, testToken)
	if code != http.StatusOK || resp.Alerts[0].Outcome != OutcomeAlreadyHandled || resp.Alerts[0].RunID != runID {
		t.Fatalf("repeat after the end: %d %+v", code, resp)
	}
	if d, err := c.DescribeWorkflow(ctx, runbookID, ""); err != nil || d.WorkflowExecution.RunID != runID {
		t.Fatalf("a repeat started another run: %v %+v", err, d)
	}

	// A drill, with the Drill workflow's input.
	code, resp = send(readPayload(t, "sitedown-firing.json", func(m *Message) {
		m.Alerts[0].Labels = map[string]string{"alertname": "DRDrillDue", "app": "petclinic"}
	}), testToken)
	if code != http.StatusOK || resp.Alerts[0].Outcome != OutcomeStarted || resp.Alerts[0].WorkflowID != drillID {
		t.Fatalf("drill: %d %+v", code, resp)
	}
	var fields []string
	if err := c.GetWorkflow(ctx, drillID, resp.Alerts[0].RunID).Get(ctx, &fields); err != nil || !slices.Equal(fields, []string{"reason", "recipe"}) {
		t.Fatalf("drill input fields %v (%v), want reason and recipe", fields, err)
	}

	// A deployment that encrypts payloads: the memo goes through the codec
	// and is read back.
	checkMemoThroughCodec(t, srv.FrontendHostPort())
}

// reverseCodec is a toy payload codec (bytes reversed), standing in for
// the encryption codec a deployment may set on its clients.
type reverseCodec struct{}

const reversedEncoding = "binary/reversed"

func reversed(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[len(b)-1-i] = c
	}
	return out
}

func (reverseCodec) Encode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		out[i] = &commonpb.Payload{Data: reversed(p.GetData()), Metadata: map[string][]byte{
			converter.MetadataEncoding: []byte(reversedEncoding), "inner": p.GetMetadata()[converter.MetadataEncoding]}}
	}
	return out, nil
}

func (reverseCodec) Decode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		out[i] = p
		if md := p.GetMetadata(); string(md[converter.MetadataEncoding]) == reversedEncoding {
			out[i] = &commonpb.Payload{Data: reversed(p.GetData()), Metadata: map[string][]byte{converter.MetadataEncoding: md["inner"]}}
		}
	}
	return out, nil
}

// checkMemoThroughCodec starts a run with a client whose data converter has
// a payload codec, and reads its alert key back with Last.
func checkMemoThroughCodec(t *testing.T, hostPort string) {
	t.Helper()
	ctx := context.Background()
	cc, err := client.Dial(client.Options{HostPort: hostPort, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
		DataConverter: converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), reverseCodec{})})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	st := TemporalStarter{Client: cc}
	const id, key = "webhook-codec-check", "0123456789abcdef@2026-11-26T15:14:36Z"
	runID, err := st.Start(ctx, StartRequest{ID: id, Type: "NoWorkerPollsThis", Input: "x", AlertKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.TerminateWorkflow(ctx, id, runID, "test done") }()
	run, ok, err := st.Last(ctx, id)
	if err != nil || !ok || run.AlertKey != key || !run.Running || run.RunID != runID {
		t.Fatalf("Last through a codec: %+v %t %v", run, ok, err)
	}
	d, err := cc.DescribeWorkflow(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	if enc := string(d.Memo.GetFields()[MemoAlertKey].GetMetadata()[converter.MetadataEncoding]); enc != reversedEncoding {
		t.Errorf("the memo was not encoded with the client's codec: encoding %q", enc)
	}
	if _, err := st.Start(ctx, StartRequest{ID: id, Type: "NoWorkerPollsThis", Input: "x"}); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second start: %v, want ErrAlreadyRunning", err)
	}
}

// listRuns returns the run IDs visibility lists for query.
func listRuns(t *testing.T, c client.Client, query string) []string {
	t.Helper()
	resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range resp.GetExecutions() {
		ids = append(ids, e.GetExecution().GetRunId())
	}
	return ids
}
