package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/workflows"
)

func cmdReplication(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "drover replication: want start, status, pause, resume or stop")
		return 2
	}
	action := args[0]
	fs := flag.NewFlagSet("replication "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "recipe file (YAML)")
	from := fs.String("from", "", "source site (default: every stream of the recipe)")
	to := fs.String("to", "", "target site")
	start := fs.String("start-position", "", "start: GTID position to start from when the target has none")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	switch action {
	case "start", "status", "pause", "resume", "stop":
	default:
		fmt.Fprintf(stderr, "drover replication: unknown action %q (want start, status, pause, resume or stop)\n", action)
		return 2
	}
	if *file == "" {
		fmt.Fprintf(stderr, "drover replication %s: -f RECIPE is required\n", action)
		return 2
	}
	r, code := loadRecipe(*file, stderr)
	if r == nil {
		return code
	}
	streams, err := selectStreams(r, *from, *to)
	if err != nil {
		fmt.Fprintf(stderr, "drover replication %s: %v\n", action, err)
		return 2
	}
	c, err := dialTemporal(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "drover replication %s: %v\n", action, err)
		return 1
	}
	defer c.Close()
	rc := 0
	var rows []workflows.ReplicationStatus
	for _, s := range streams {
		id := workflows.ReplicationWorkflowID(r.App, s.From, s.To)
		switch action {
		case "start":
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID: id, TaskQueue: workflows.SharedTaskQueue,
				WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
				StaticSummary:            fmt.Sprintf("replication %s → %s of %s", s.From, s.To, r.App),
			}, workflows.ReplicationSupervisor, workflows.ReplicationInput{Recipe: *r, From: s.From, To: s.To, StartPosition: *start})
			if err != nil {
				fmt.Fprintf(stderr, "%s: start: %v\n", id, err)
				rc = 1
				continue
			}
			fmt.Fprintf(stdout, "%s: running (run %s)\n", id, run.GetRunID())
		case "status":
			st, err := queryReplication(ctx, c, id)
			if err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", id, err)
				rc = 1
				continue
			}
			rows = append(rows, st)
		default:
			h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
				WorkflowID: id, UpdateName: action, WaitForStage: client.WorkflowUpdateStageCompleted,
			})
			if err == nil {
				var st workflows.ReplicationStatus
				// Validator and handler errors arrive here, not from UpdateWorkflow.
				if err = h.Get(ctx, &st); err == nil {
					fmt.Fprintf(stdout, "%s: %s accepted\n", id, action)
					continue
				}
			}
			fmt.Fprintf(stderr, "%s: %s refused: %v\n", id, action, describeTemporalErr(err))
			rc = 1
		}
	}
	if action == "status" && len(rows) > 0 {
		printReplication(stdout, rows)
		for _, st := range rows {
			if st.State != workflows.ReplRunning {
				rc = max(rc, 3)
			}
		}
	}
	return rc
}

func selectStreams(r *recipe.Recipe, from, to string) ([]recipe.Stream, error) {
	if from == "" && to == "" {
		if len(r.Replication) == 0 {
			return nil, errors.New("the recipe has no replication streams")
		}
		return r.Replication, nil
	}
	for _, s := range r.Replication {
		if s.From == from && (to == "" || s.To == to) {
			return []recipe.Stream{s}, nil
		}
	}
	return nil, fmt.Errorf("no stream %s → %s in the recipe", from, to)
}

func queryReplication(ctx context.Context, c client.Client, id string) (workflows.ReplicationStatus, error) {
	var st workflows.ReplicationStatus
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(qctx, id, "", workflows.ReplicationStatusQuery)
	if err != nil {
		return st, describeTemporalErr(err)
	}
	return st, v.Get(&st)
}

func describeTemporalErr(err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return errors.New("no such stream is running (start it with `drover replication start`)")
	}
	return err
}

func printReplication(w io.Writer, rows []workflows.ReplicationStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tSTATE\tPOSITION\tLAG_S\tLAG_TXNS\tTXN/S\tROWS/S\tAPPLIED\tRESTARTS\tERRANT\tLAST_ERROR")
	for _, s := range rows {
		p := s.Progress
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%d\t%.1f\t%.1f\t%d\t%d\t%s\t%s\n", s.Stream, s.State, orDash(p.Position),
			p.LagSeconds, p.LagTransactions, p.TxnsPerSec, p.RowsPerSec, p.Transactions, s.Restarts, orDash(p.ErrantGTIDs), orDash(s.LastError))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
