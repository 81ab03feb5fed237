// Package drillreport renders a Drill's report as documents a person reads
// after the fact: Markdown (verdict, RTO and RPO against the SLA, steps,
// smoke checks, cleanup) and an SVG timeline of the steps. It is pure: no
// I/O, no clock, and the same report always renders to the same bytes.
package drillreport

import (
	"fmt"
	"strings"
	"time"

	"github.com/drover-sre/drover/workflows"
)

// Markdown renders the report as a Markdown document: a title, the verdict
// (PASS or FAIL, with every failure), a summary, the would-be RTO
// (detection + recovery) and the RPO (the standby's lag) against the SLA,
// the steps with their timings and outcomes, the smoke checks and whether
// everything the drill created was removed. Every text that comes from the
// report is escaped, so step names or details cannot inject Markdown or
// HTML. A report without an outcome is a drill still running.
func Markdown(rep workflows.DrillReport) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("# Drill of %s: %s → %s\n\n", md(orText(rep.App, "?")), md(orText(rep.From, "?")), md(orText(rep.To, "?")))
	switch {
	case rep.Outcome == "":
		p("**Verdict: RUNNING** (the drill has not ended)\n\n")
	case rep.Passed:
		p("**Verdict: PASS** — every step worked, the smoke checks passed, RTO and RPO are within the SLA, " +
			"and everything the drill created is gone.\n\n")
	default:
		p("**Verdict: FAIL**\n\n")
		if len(rep.Failures) == 0 {
			p("- %s\n", md(orText(rep.Error, "no failure recorded")))
		}
		for _, f := range rep.Failures {
			p("- %s\n", md(f))
		}
		p("\n")
	}

	kind := fmt.Sprintf("isolated: a copy of %s in the drill site %s", md(rep.To), md(orText(rep.DrillSite, "-")))
	if rep.Disruptive {
		kind = fmt.Sprintf("disruptive: a real switchover %s → %s and back", md(rep.From), md(rep.To))
	}
	summary := [][]string{{"app", md(rep.App)}, {"kind", kind}}
	if rep.Reason != "" {
		summary = append(summary, []string{"reason", md(rep.Reason)})
	}
	summary = append(summary, []string{"outcome", md(orText(rep.Outcome, "running"))})
	if rep.Error != "" {
		summary = append(summary, []string{"error", md(rep.Error)})
	}
	summary = append(summary, []string{"started", stamp(rep.StartedAt)})
	if !rep.EndedAt.IsZero() {
		summary = append(summary, []string{"ended", fmt.Sprintf("%s (took %s)", stamp(rep.EndedAt), secs(rep.EndedAt.Sub(rep.StartedAt).Seconds()))})
	}
	table(&b, []string{"", ""}, summary)

	p("\n## RTO and RPO\n\n")
	switch {
	case rep.Outcome == "":
		p("Measured when the drill ends (SLA: RTO %s, RPO %s).\n", secs(rep.SLARTOSeconds), secs(rep.SLARPOSeconds))
	case !Measured(rep):
		p("Not measured: a step failed before the drill could time a recovery (SLA: RTO %s, RPO %s).\n",
			secs(rep.SLARTOSeconds), secs(rep.SLARPOSeconds))
	default:
		rows := [][]string{
			{"would-be RTO", fmt.Sprintf("%s (detection %s + recovery %s)", secs(rep.RTOSeconds), secs(rep.DetectionSeconds), secs(rep.RecoverySeconds)),
				secs(rep.SLARTOSeconds), yesNo(rep.RTOMet)},
			{"RPO (the standby's lag)", fmt.Sprintf("%s (%d transaction(s))", secs(rep.LagSeconds), rep.RPO.LostTransactions),
				secs(rep.SLARPOSeconds), yesNo(rep.RPOMet)},
		}
		if rep.Disruptive && rep.WriteUnavailableSeconds > 0 {
			rows = append(rows, []string{"write unavailability", secs(rep.WriteUnavailableSeconds), "-", "-"})
		}
		table(&b, []string{"measure", "value", "SLA", "met"}, rows)
	}

	p("\n## Steps\n\n")
	var steps [][]string
	for i, s := range rep.Steps {
		took := "…"
		if !s.Ended.IsZero() {
			took = fmt.Sprintf("%.1f", s.Seconds())
		}
		steps = append(steps, []string{fmt.Sprint(i + 1), md(s.Name), md(orText(s.Site, "-")),
			fmt.Sprintf("%.1f", offset(rep.StartedAt, s.Started)), took, md(s.Outcome), md(orText(s.Detail, "-"))})
	}
	if len(steps) == 0 {
		p("No step ran.\n")
	}
	table(&b, []string{"#", "step", "site", "at (s)", "took (s)", "outcome", "detail"}, steps)

	p("\n## Smoke checks\n\n")
	var checks [][]string
	for _, c := range rep.Smoke {
		result, status := "passed", "-"
		if !c.Passed {
			result = "FAILED: " + md(orText(c.Error, "-"))
		}
		if c.StatusCode != 0 {
			status = fmt.Sprint(c.StatusCode)
		}
		checks = append(checks, []string{md(c.Name), result, status, fmt.Sprintf("%d ms", c.LatencyMS)})
	}
	if len(checks) == 0 {
		p("No smoke check ran.\n")
	}
	table(&b, []string{"check", "result", "status", "latency"}, checks)

	p("\n## Cleanup\n\n")
	switch {
	case rep.Outcome == "":
		p("Cleanup: not yet (the drill removes what it created when it ends).\n")
	case rep.CleanedUp && rep.Disruptive:
		p("Cleanup: nothing to remove (a disruptive drill creates no site); the primary is %s again.\n", md(rep.From))
	case rep.CleanedUp:
		p("Cleanup: everything the drill created was removed.\n")
	default:
		p("Cleanup: **NOT complete** — something the drill created is still there (see the undo steps).\n")
	}
	return b.String()
}

// table writes a Markdown table of already escaped cells; nothing when
// there are no rows.
func table(b *strings.Builder, header []string, rows [][]string) {
	if len(rows) == 0 {
		return
	}
	line := func(cells []string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	line(header)
	b.WriteString(strings.Repeat("|---", len(header)) + "|\n")
	for _, r := range rows {
		line(r)
	}
}

// mdEscaper makes report text inert in Markdown: HTML tags and entities,
// table pipes, emphasis, code spans and links.
var mdEscaper = strings.NewReplacer(
	"&", "&amp;", "<", "&lt;", ">", "&gt;",
	`\`, `\\`, "|", `\|`, "`", "\\`", "*", `\*`, "[", `\[`, "]", `\]`,
	"\r\n", " ", "\n", " ", "\r", " ",
)

// Measured reports whether the drill judged RTO and RPO: it does once
// every step has worked, and then the would-be RTO includes the detection.
func Measured(rep workflows.DrillReport) bool {
	return rep.RTOSeconds > 0 || rep.RTOMet || rep.RPOMet
}

func md(s string) string { return mdEscaper.Replace(s) }

func secs(v float64) string { return fmt.Sprintf("%.1f s", v) }

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// offset is t in seconds from start (0 for an unset time).
func offset(start, t time.Time) float64 {
	if t.IsZero() || start.IsZero() {
		return 0
	}
	return t.Sub(start).Seconds()
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
