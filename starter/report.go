package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drover-sre/drover/workflows"
)

// renderReport writes a runbook report for a terminal: a header (runbook,
// app, from → to, outcome, reason, approver, error), the plan of a dry run,
// the timeline of steps (offset from the start and duration in seconds,
// step, site, outcome, detail), then RTO, write unavailability, RPO and
// errant transactions against the recipe's SLA. Every line stays within 120
// columns except for long step details. A report without an outcome is a
// runbook still running. It is the one text form of a report: the runbook
// commands and `drover runbook status|report` all print through it.
func renderReport(w io.Writer, rep workflows.RunbookReport) {
	renderTimeline(w, rep)
	if rep.Runbook == workflows.RunbookClone {
		renderCloneEnd(w, rep)
		return
	}
	renderMeasures(w, rep)
}

// renderTimeline writes a report's header, the plan of a dry run and the
// timeline of steps, followed by an empty line.
func renderTimeline(w io.Writer, rep workflows.RunbookReport) {
	outcome := rep.Outcome
	if outcome == "" {
		outcome = "running"
	}
	fmt.Fprintf(w, "%s of %s: %s → %s\n", runbookTitle(rep.Runbook), rep.App, rep.From, rep.To)
	kv := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) {
		fmt.Fprintf(kv, "  %s\t"+format+"\n", append([]any{k}, args...)...)
	}
	row("outcome", "%s", outcome)
	if rep.Reason != "" {
		row("reason", "%s", rep.Reason)
	}
	if rep.ApprovedBy != "" {
		row("approved by", "%s", rep.ApprovedBy)
	}
	if rep.Error != "" {
		row("error", "%s", rep.Error)
	}
	if !rep.DetectedAt.IsZero() && !rep.DetectedAt.Equal(rep.StartedAt) {
		row("detected", "%s", clock(rep.DetectedAt, true))
	}
	row("started", "%s", clock(rep.StartedAt, true))
	if !rep.EndedAt.IsZero() {
		row("ended", "%s (took %s)", clock(rep.EndedAt, true), seconds(rep.EndedAt.Sub(rep.StartedAt).Seconds()))
	}
	kv.Flush()

	if rep.DryRun && len(rep.Plan) > 0 {
		fmt.Fprintln(w, "\nplan (dry run: nothing was changed):")
		for i, p := range rep.Plan {
			fmt.Fprintf(w, "  %d. %s\n", i+1, p)
		}
	}

	fmt.Fprintln(w, "\ntimeline (seconds from the start):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  AT\tTOOK\tSTEP\tSITE\tOUTCOME\tDETAIL")
	for _, s := range rep.Steps {
		took := "…"
		if !s.Ended.IsZero() {
			took = fmt.Sprintf("%.1f", s.Seconds())
		}
		fmt.Fprintf(tw, "  %.1f\t%s\t%s\t%s\t%s\t%s\n", s.Started.Sub(rep.StartedAt).Seconds(), took, s.Name, orDash(s.Site), s.Outcome, orDash(s.Detail))
	}
	if len(rep.Steps) == 0 {
		fmt.Fprintln(tw, "  -\t-\t(no step yet)\t-\t-\t-")
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// renderMeasures ends a runbook's report: RTO, write unavailability, RPO
// and errant transactions against the SLA, or why they were not measured.
func renderMeasures(w io.Writer, rep workflows.RunbookReport) {
	switch rep.Outcome {
	case workflows.OutcomeDryRun:
		fmt.Fprintln(w, "RTO, RPO: not measured (dry run: nothing was changed)")
		return
	case workflows.OutcomeAborted:
		fmt.Fprintln(w, "RTO, RPO: not measured (aborted before any change)")
		return
	case workflows.OutcomeRolledBack:
		fmt.Fprintf(w, "RTO, RPO: not measured (rolled back: %s is the primary again)\n", rep.From)
		return
	case "":
		fmt.Fprintf(w, "RTO, RPO: measured when the runbook ends (SLA: RTO %s, RPO %s)\n", seconds(rep.SLARTOSeconds), seconds(rep.SLARPOSeconds))
		return
	}
	mw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	m := func(k, format string, args ...any) { fmt.Fprintf(mw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	switch {
	case rep.RTOSeconds > 0:
		m("RTO", "%s %s  (detected %s → writable %s)", seconds(rep.RTOSeconds), vsSLA(rep.RTOSeconds, rep.SLARTOSeconds),
			clock(rep.DetectedAt, false), clock(rep.WritableAt, false))
	default:
		m("RTO", "not reached: the new primary was never confirmed writable through DNS (SLA %s)", seconds(rep.SLARTOSeconds))
	}
	if rep.WriteUnavailableSeconds > 0 {
		m("write unavailability", "%s  (old primary fenced → new primary promoted)", seconds(rep.WriteUnavailableSeconds))
	} else {
		m("write unavailability", "-")
	}
	rpo := rep.RPO
	exact := "exact"
	switch {
	case !rpo.Exact && rpo.FinalGTID == "":
		exact = "estimate: the old primary's last position is unknown"
	case !rpo.Exact:
		exact = "estimate"
	}
	if rpo.Exact {
		m("RPO", "%d transaction(s) lost (%s); %s of writes lost %s", rpo.LostTransactions, exact, seconds(rpo.LostSeconds),
			vsSLA(rpo.LostSeconds, rep.SLARPOSeconds))
	} else {
		// Unknown loss: the window between the last transaction the new
		// primary has and the outage bounds what may be lost.
		m("RPO", "%d transaction(s) known lost (%s); at most %s of writes lost %s", rpo.LostTransactions, exact,
			seconds(rpo.LostSeconds), vsSLA(rpo.LostSeconds, rep.SLARPOSeconds))
	}
	m("  applied GTID", "%s", orText(rpo.AppliedGTID, "-"))
	m("  final GTID", "%s", orText(rpo.FinalGTID, "unknown (the old primary did not answer)"))
	if !rpo.LastSourceCommit.IsZero() {
		m("  last source commit", "%s", clock(rpo.LastSourceCommit, true))
	}
	switch {
	case rep.ErrantCount > 0:
		m("errant transactions", "%d: %s", rep.ErrantCount, rep.Errant)
	case rep.Errant != "":
		m("errant transactions", "%s", rep.Errant)
	default:
		m("errant transactions", "none found")
	}
	mw.Flush()
}

// renderCloneEnd ends a clone's report: RTO and RPO do not apply (nothing
// moved); what counts is where the copy was taken and what it became.
func renderCloneEnd(w io.Writer, rep workflows.RunbookReport) {
	switch {
	case rep.Outcome == "":
		fmt.Fprintf(w, "%s is being built from %s\n", rep.To, rep.From)
	case rep.Outcome == workflows.OutcomeCompleted && rep.RPO.AppliedGTID == "" && len(rep.Plan) > 0:
		fmt.Fprintln(w, rep.Plan[0])
	case rep.Outcome == workflows.OutcomeCompleted:
		fmt.Fprintf(w, "%s is a warm standby of %s: copied at GTID %s, replicating from there (read-only, not serving the public name)\n",
			rep.To, rep.From, rep.RPO.AppliedGTID)
	case rep.Outcome == workflows.OutcomeRolledBack:
		fmt.Fprintf(w, "%s was not built; what this run created is removed: %s\n", rep.To, orDash(rep.Error))
	default:
		fmt.Fprintf(w, "%s was not built, and removing what this run created did not finish (see the steps): %s\n", rep.To, orDash(rep.Error))
	}
}

// progressLine is one step as a runbook command prints it when the step
// ends: time, step, site, outcome, detail.
func progressLine(s workflows.Step) string {
	return strings.TrimRight(fmt.Sprintf("%s  %-18s  %-5s  %-11s  %s", clock(s.Ended, false), s.Name, orDash(s.Site), s.Outcome, s.Detail), " ")
}

// runbookTitle is the workflow type of a runbook kind ("Switchover").
func runbookTitle(kind string) string {
	if t, ok := runbookTypes[kind]; ok {
		return t
	}
	if kind == workflows.RunbookDrill {
		return "Drill"
	}
	return orText(kind, "Runbook")
}

// vsSLA compares a figure in seconds with its SLA (none when sla is 0).
func vsSLA(v, sla float64) string {
	switch {
	case sla <= 0:
		return "(no SLA)"
	case v <= sla:
		return fmt.Sprintf("(SLA %s: met)", seconds(sla))
	default:
		return fmt.Sprintf("(SLA %s: MISSED by %s)", seconds(sla), seconds(v-sla))
	}
}

// seconds formats a number of seconds as "12.3 s".
func seconds(v float64) string { return fmt.Sprintf("%.1f s", v) }

// clock formats t in UTC: with the date when full, else the time of day.
func clock(t time.Time, full bool) string {
	if t.IsZero() {
		return "-"
	}
	if full {
		return t.UTC().Format("2006-01-02 15:04:05Z")
	}
	return t.UTC().Format("15:04:05Z")
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
