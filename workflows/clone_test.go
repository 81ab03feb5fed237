package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/drover-sre/drover/activities/dbadmin"
	"github.com/drover-sre/drover/activities/dns"
	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/activities/provider/local"
	"github.com/drover-sre/drover/activities/replicate"
	"github.com/drover-sre/drover/activities/snapshot"
)

// cloneWorld fakes what CloneSite changes: whether the local site exists
// (and which run created it), the DNS records, the streams and their start
// positions; failAt names an activity that fails (non-retryable).
type cloneWorld struct {
	sites     map[string]string // site → run that created it
	records   map[string][]string
	streams   map[string]bool
	startPos  map[string]string
	failAt    string
	destroyed []string
	equal     bool
	// also registers more activities (registrations must precede mocks).
	also func(env *testsuite.TestWorkflowEnvironment)
}

func newCloneWorld() *cloneWorld {
	return &cloneWorld{sites: map[string]string{"east": "before"}, records: map[string][]string{}, streams: map[string]bool{},
		startPos: map[string]string{}, equal: true}
}

func (w *cloneWorld) fail(name string) error {
	if w.failAt == name {
		return temporal.NewNonRetryableApplicationError(name+" failed (test)", "Test", nil)
	}
	return nil
}

func (w *cloneWorld) register(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(10 * time.Second)
	env.RegisterActivity(&dbadmin.Activities{})
	env.RegisterActivity(&dns.Activities{})
	env.RegisterActivity(&probe.Activities{})
	env.RegisterActivity(&replicate.Control{})
	env.RegisterActivity(&snapshot.Activities{})
	env.RegisterActivityWithOptions(&local.Provider{}, activityOptionsSkipInvalid)
	if w.also != nil {
		w.also(env)
	}
	env.OnActivity("StreamState", anyCtx, anyArg).Return(func(_ context.Context, in replicate.StreamRef) (replicate.StreamState, error) {
		st := replicate.StreamState{WorkflowID: in.WorkflowID, Running: w.streams[in.WorkflowID]}
		if st.Running {
			st.State = ReplRunning
		}
		return st, nil
	})
	env.OnActivity("StreamStop", anyCtx, anyArg).Return(func(_ context.Context, in replicate.StreamRef) (replicate.StreamState, error) {
		delete(w.streams, in.WorkflowID)
		return replicate.StreamState{WorkflowID: in.WorkflowID, State: ReplStopped}, nil
	})
	env.OnActivity("StartSite", anyCtx, anyArg).Return(func(_ context.Context, in local.SiteInput) (local.SiteState, error) {
		if err := w.fail("StartSite"); err != nil {
			return local.SiteState{}, err
		}
		if _, ok := w.sites[in.Site.Name]; !ok {
			w.sites[in.Site.Name] = in.Run
		}
		return local.SiteState{Site: in.Site.Name, Dir: "/state/sites/" + in.Site.Name}, nil
	})
	env.OnActivity("DestroySite", anyCtx, anyArg).Return(func(_ context.Context, in local.SiteInput) (local.SiteState, error) {
		if w.sites[in.Site.Name] == in.Run {
			delete(w.sites, in.Site.Name)
			w.destroyed = append(w.destroyed, in.Site.Name)
		}
		return local.SiteState{Site: in.Site.Name}, nil
	})
	env.OnActivity("DBState", anyCtx, anyArg).Return(func(_ context.Context, in dbadmin.StateInput) (dbadmin.StateResult, error) {
		if _, ok := w.sites[in.Site.Name]; !ok {
			return dbadmin.StateResult{}, errors.New("connection refused")
		}
		return dbadmin.StateResult{Site: in.Site.Name, ReadOnly: in.Site.Name != "east", Version: "10.11"}, nil
	})
	env.OnActivity("SnapshotCopy", anyCtx, anyArg).Return(func(_ context.Context, in snapshot.CopyInput) (snapshot.CopyResult, error) {
		if err := w.fail("SnapshotCopy"); err != nil {
			return snapshot.CopyResult{}, err
		}
		return snapshot.CopyResult{CloneID: in.CloneID, GTID: "1-1-500", Rows: 1000, Tables: []snapshot.TableResult{{Table: "petclinic.owners"}}}, nil
	})
	env.OnActivity("SnapshotCompare", anyCtx, anyArg).Return(func(_ context.Context, in snapshot.CompareInput) (snapshot.CompareResult, error) {
		res := snapshot.CompareResult{Equal: w.equal, GTID: "1-1-510"}
		if !w.equal {
			res.Differences = []string{"petclinic.owners: checksum differs"}
		}
		return res, nil
	})
	env.OnActivity("ProbeSites", anyCtx, anyArg).Return(func(_ context.Context, in probe.SitesInput) (probe.SitesResult, error) {
		return probe.SitesResult{Vantage: "west", Sites: []probe.SiteVerdict{{Site: in.Sites[0], Up: true}}}, nil
	})
	env.OnActivity("DNSPoint", anyCtx, anyArg).Return(func(_ context.Context, in dns.PointInput) (dns.PointResult, error) {
		prev := w.records[in.DNS.Record]
		w.records[in.DNS.Record] = in.Addrs
		return dns.PointResult{Record: in.DNS.Record, Addrs: in.Addrs, Previous: prev, Changed: true}, nil
	})
	env.OnActivity("DNSRemove", anyCtx, anyArg).Return(func(_ context.Context, in dns.RemoveInput) (dns.RemoveResult, error) {
		delete(w.records, in.DNS.Record)
		return dns.RemoveResult{Changed: true}, nil
	})
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, args converter.EncodedValues) {
		var in ReplicationInput
		_ = args.Get(&in)
		w.streams[info.WorkflowExecution.ID] = true
		w.startPos[info.WorkflowExecution.ID] = in.StartPosition
	})
	env.OnWorkflow(ReplicationSupervisor, anyCtx, anyArg).Return(ReplicationStatus{State: ReplRunning}, nil)
	return env
}

func cloneReport(t *testing.T, env *testsuite.TestWorkflowEnvironment) RunbookReport {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var rep RunbookReport
	require.NoError(t, env.GetWorkflowResult(&rep))
	return rep
}

func TestCloneSiteBuildsAReplicatingStandby(t *testing.T) {
	w := newCloneWorld()
	env := w.register(t)
	env.ExecuteWorkflow(CloneSite, CloneInput{Recipe: testRecipe(), To: "west"})
	rep := cloneReport(t, env)
	require.Equal(t, OutcomeCompleted, rep.Outcome, rep.Error+" "+stepNames(rep))
	require.Equal(t, "existing site=ok provision=ok wait ready=ok copy=ok start replication=ok dns register=ok verify probes=ok verify data=ok", stepNames(rep))
	require.Contains(t, w.sites, "west")
	require.True(t, w.streams["replication-petclinic-east-west"])
	require.Equal(t, "1-1-500", w.startPos["replication-petclinic-east-west"], "the stream starts exactly where the copy ends")
	require.Equal(t, []string{"127.0.0.3"}, w.records["west.drover.test."])
	require.NotContains(t, w.records, "app.drover.test.", "the public record is not touched")
}

// A failure removes exactly what this run created: the site it made, the
// stream it started, the DNS name it added.
func TestCloneSiteRemovesWhatItCreatedOnFailure(t *testing.T) {
	w := newCloneWorld()
	w.equal = false
	env := w.register(t)
	env.ExecuteWorkflow(CloneSite, CloneInput{Recipe: testRecipe(), To: "west"})
	rep := cloneReport(t, env)
	require.Equal(t, OutcomeRolledBack, rep.Outcome, stepNames(rep))
	require.Contains(t, rep.Error, "checksum differs")
	require.Equal(t, []string{"west"}, w.destroyed)
	require.NotContains(t, w.sites, "west")
	require.Contains(t, w.sites, "east", "the source is never touched")
	require.False(t, w.streams["replication-petclinic-east-west"])
	require.NotContains(t, w.records, "west.drover.test.")
}

// A site that already existed is not destroyed by a failed clone.
func TestCloneSiteNeverDestroysASiteItDidNotCreate(t *testing.T) {
	w := newCloneWorld()
	w.sites["west"] = "an earlier run"
	w.failAt = "SnapshotCopy"
	env := w.register(t)
	env.ExecuteWorkflow(CloneSite, CloneInput{Recipe: testRecipe(), To: "west"})
	rep := cloneReport(t, env)
	require.Equal(t, OutcomeRolledBack, rep.Outcome)
	require.Empty(t, w.destroyed)
	require.Contains(t, w.sites, "west")
}

func TestCloneSiteIsANoOpForAReplicatingStandby(t *testing.T) {
	w := newCloneWorld()
	w.sites["west"] = "an earlier run"
	w.streams["replication-petclinic-east-west"] = true
	env := w.register(t)
	env.ExecuteWorkflow(CloneSite, CloneInput{Recipe: testRecipe(), To: "west"})
	rep := cloneReport(t, env)
	require.Equal(t, OutcomeCompleted, rep.Outcome)
	require.Equal(t, "existing site=skipped", stepNames(rep))
	require.Contains(t, rep.Plan[0], "already a replicating standby")
}

func TestCloneSiteRejectsBadInput(t *testing.T) {
	for _, c := range []struct {
		in   CloneInput
		want string
	}{
		{CloneInput{Recipe: testRecipe(), To: "mars"}, `to: "mars" is not a site`},
		{CloneInput{Recipe: testRecipe(), To: "east"}, `to: "east" is the site copied`},
		{CloneInput{Recipe: testRecipe()}, "to: required"},
		{CloneInput{Recipe: testRecipe(), From: "moon", To: "west"}, `from: "moon" is not a site`},
		{CloneInput{Recipe: testRecipe(), To: "west", CopyWorkers: 65}, "copy_workers: 65 is not between"},
		{CloneInput{Recipe: testRecipe(), To: "west", ChunkRows: -1}, "chunk_rows: -1 is negative"},
	} {
		w := newCloneWorld()
		env := w.register(t)
		env.ExecuteWorkflow(CloneSite, c.in)
		var ae *temporal.ApplicationError
		require.True(t, errors.As(env.GetWorkflowError(), &ae))
		require.Equal(t, "InvalidInput", ae.Type())
		require.Contains(t, ae.Error(), c.want)
	}
}
