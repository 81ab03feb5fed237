package drillreport

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/drover-sre/drover/activities/probe"
	"github.com/drover-sre/drover/workflows"
)

var t0 = time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

// passed is a drill that passed: every step ok, the smoke checks passed,
// RTO and RPO within the SLA, cleaned up.
func passed() workflows.DrillReport {
	return workflows.DrillReport{
		RunbookReport: workflows.RunbookReport{Runbook: workflows.RunbookDrill, App: "petclinic", From: "east", To: "west",
			Reason: "weekly drill", Outcome: workflows.OutcomeCompleted, StartedAt: t0, EndedAt: at(21.5),
			SLARTOSeconds: 120, SLARPOSeconds: 30, RTOSeconds: 18.2,
			RPO: workflows.RPOPoint{LostTransactions: 3, LostSeconds: 0.4},
			Steps: []workflows.Step{
				{Name: "measure rpo", Site: "west", Started: at(0), Ended: at(0.1), Outcome: workflows.StepOK, Detail: "west is running, 0.4 s behind"},
				{Name: "provision", Site: "drill-west", Started: at(0.1), Ended: at(4), Outcome: workflows.StepCompensated, Detail: "isolated site"},
				{Name: "copy", Site: "drill-west", Started: at(4), Ended: at(15), Outcome: workflows.StepOK, Detail: "9 tables"},
				{Name: "promote", Site: "drill-west", Started: at(15), Ended: at(15.2), Outcome: workflows.StepOK},
				{Name: "smoke checks", Site: "drill-west", Started: at(15.2), Ended: at(18.2), Outcome: workflows.StepOK},
				{Name: "undo provision", Site: "drill-west", Started: at(18.2), Ended: at(21.5), Outcome: workflows.StepOK},
			}},
		Passed: true, DrillSite: "drill-west", DetectionSeconds: 15, RecoverySeconds: 3.2, LagSeconds: 0.4,
		RTOMet: true, RPOMet: true, CleanedUp: true,
		Smoke: []probe.SmokeCheckResult{{Name: "POST /owners", Passed: true, StatusCode: 201, LatencyMS: 12},
			{Name: "GET /owners", Passed: true, StatusCode: 200, LatencyMS: 4}},
	}
}

// failed is a drill whose smoke check failed: no RTO measured, and the
// cleanup did not finish.
func failed() workflows.DrillReport {
	rep := passed()
	rep.Outcome, rep.Passed, rep.RTOSeconds, rep.RTOMet, rep.RPOMet, rep.CleanedUp = workflows.OutcomeFailed, false, 0, false, false, false
	rep.Error = "smoke checks: smoke check failed"
	rep.Failures = []string{"smoke checks: smoke check failed", "cleanup: something the drill created could not be removed (see the undo steps)"}
	rep.Steps[4].Outcome = workflows.StepFailed
	rep.Steps[5] = workflows.Step{Name: "undo provision", Site: "drill-west", Started: at(18.2), Ended: at(19), Outcome: workflows.StepFailed}
	rep.Steps = append(rep.Steps, workflows.Step{Name: "dns register", Started: at(19), Ended: at(19), Outcome: workflows.StepSkipped})
	rep.Smoke = []probe.SmokeCheckResult{{Name: "POST /owners", Passed: false, StatusCode: 500, LatencyMS: 9, Error: "want 201, got 500"}}
	return rep
}

func TestMarkdown(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  workflows.DrillReport
		want []string
		not  []string
	}{
		{"passed", passed(), []string{
			"# Drill of petclinic: east → west\n",
			"**Verdict: PASS**",
			"| kind | isolated: a copy of west in the drill site drill-west |\n",
			"| reason | weekly drill |\n",
			"| ended | 2026-11-28 03:00:21Z (took 21.5 s) |\n",
			"| measure | value | SLA | met |\n",
			"| would-be RTO | 18.2 s (detection 15.0 s + recovery 3.2 s) | 120.0 s | yes |\n",
			"| RPO (the standby's lag) | 0.4 s (3 transaction(s)) | 30.0 s | yes |\n",
			"| # | step | site | at (s) | took (s) | outcome | detail |\n",
			"| 3 | copy | drill-west | 4.0 | 11.0 | ok | 9 tables |\n",
			"| 4 | promote | drill-west | 15.0 | 0.2 | ok | - |\n",
			"| POST /owners | passed | 201 | 12 ms |\n",
			"Cleanup: everything the drill created was removed.\n",
		}, []string{"FAIL", "NOT complete"}},
		{"failed", failed(), []string{
			"**Verdict: FAIL**\n\n- smoke checks: smoke check failed\n- cleanup: something the drill created could not be removed",
			"| outcome | failed |\n",
			"Not measured: a step failed before the drill could time a recovery (SLA: RTO 120.0 s, RPO 30.0 s).\n",
			"| 5 | smoke checks | drill-west | 15.2 | 3.0 | failed | - |\n",
			"| 7 | dns register | - | 19.0 | 0.0 | skipped | - |\n",
			"| POST /owners | FAILED: want 201, got 500 | 500 | 9 ms |\n",
			"Cleanup: **NOT complete**",
		}, []string{"PASS", "would-be RTO"}},
		{"running", workflows.DrillReport{RunbookReport: workflows.RunbookReport{App: "petclinic", From: "east", To: "west", StartedAt: t0,
			SLARTOSeconds: 120, SLARPOSeconds: 30}}, []string{
			"**Verdict: RUNNING**", "| outcome | running |\n", "Measured when the drill ends", "No step ran.\n", "No smoke check ran.\n",
			"Cleanup: not yet",
		}, []string{"| ended |"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Markdown(tc.rep)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q", w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(got, w) {
					t.Errorf("has %q", w)
				}
			}
			if got != Markdown(tc.rep) {
				t.Error("two renderings differ")
			}
			if t.Failed() {
				t.Log(got)
			}
		})
	}
}

// hostile is a report whose texts try to break out of Markdown tables,
// inject HTML and break the SVG's XML.
func hostile() workflows.DrillReport {
	rep := passed()
	rep.App = "<b>app</b>"
	rep.Steps[0].Name = `<script>alert("x")</script>`
	rep.Steps[0].Site = "a & b"
	rep.Steps[1].Detail = "pipe | in ]]> a detail\nand a newline"
	rep.Smoke[0].Name = "<img src=x onerror=alert(1)>"
	return rep
}

func TestMarkdownEscapesReportText(t *testing.T) {
	got := Markdown(hostile())
	for _, bad := range []string{"<script>", "<b>", "<img", "pipe | in", "detail\nand"} {
		if strings.Contains(got, bad) {
			t.Errorf("unescaped %q", bad)
		}
	}
	for _, w := range []string{"&lt;script&gt;alert(\"x\")&lt;/script&gt;", "a &amp; b", `pipe \| in \]\]&gt; a detail and a newline`,
		"# Drill of &lt;b&gt;app&lt;/b&gt;:"} {
		if !strings.Contains(got, w) {
			t.Errorf("lacks %q", w)
		}
	}
	// Every table row still has its 7 columns: nothing split a cell.
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "| 2 |") {
			if n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|"); n != 8 {
				t.Errorf("row %q has %d separators, want 8", line, n)
			}
		}
	}
}

// svgDoc is what the tests read back from an SVG.
type svgDoc struct {
	width, height string
	bars          []map[string]string // the attributes of each rect.bar, in order
	titles        []string            // the bars' tooltips
	texts         []string            // every text element's content
}

// parseSVG decodes every token of s as XML, failing the test on any error.
func parseSVG(t *testing.T, s string) svgDoc {
	t.Helper()
	var doc svgDoc
	dec := xml.NewDecoder(strings.NewReader(s))
	var stack []string
	var inBar bool
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v\n%s", err, s)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				attrs[a.Name.Local] = a.Value
			}
			switch {
			case tok.Name.Local == "svg" && len(stack) == 0:
				doc.width, doc.height = attrs["width"], attrs["height"]
			case tok.Name.Local == "rect" && attrs["class"] == "bar":
				doc.bars = append(doc.bars, attrs)
				inBar = true
			case tok.Name.Local == "text" || tok.Name.Local == "title":
				doc.texts = append(doc.texts, "")
			}
			stack = append(stack, tok.Name.Local)
		case xml.EndElement:
			if tok.Name.Local == "rect" {
				inBar = false
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 && (stack[len(stack)-1] == "text" || stack[len(stack)-1] == "title") {
				doc.texts[len(doc.texts)-1] += string(tok)
				if inBar && stack[len(stack)-1] == "title" {
					doc.titles = append(doc.titles, string(tok))
				}
			}
		}
	}
	if len(stack) != 0 {
		t.Fatalf("unclosed elements %v", stack)
	}
	return doc
}

func TestTimelineSVG(t *testing.T) {
	rep := failed()
	s := TimelineSVG(rep)
	doc := parseSVG(t, s)
	if doc.width != "900" {
		t.Errorf("width %q", doc.width)
	}
	if len(doc.bars) != len(rep.Steps) {
		t.Fatalf("%d bars for %d steps", len(doc.bars), len(rep.Steps))
	}
	want := map[string]string{workflows.StepOK: "#2e7d32", workflows.StepFailed: "#c62828",
		workflows.StepSkipped: "#9e9e9e", workflows.StepCompensated: "#ef6c00"}
	for i, b := range doc.bars {
		if b["data-outcome"] != rep.Steps[i].Outcome || b["fill"] != want[rep.Steps[i].Outcome] {
			t.Errorf("bar %d: %v, step outcome %s", i, b, rep.Steps[i].Outcome)
		}
	}
	// x is seconds from the start: 0 s at 250 px, 25 s (the axis' end: the
	// report spans 21.5 s, ticks every 5 s) at 880 px, 25.2 px a second.
	if doc.bars[0]["x"] != "250.0" || doc.bars[2]["x"] != "350.8" || doc.bars[2]["width"] != "277.2" {
		t.Errorf("bar geometry: %v %v", doc.bars[0], doc.bars[2])
	}
	if doc.bars[6]["width"] != "3.0" {
		t.Errorf("a zero-length step is still drawn: %v", doc.bars[6])
	}
	joined := strings.Join(doc.texts, "\n")
	for _, w := range []string{"Drill of petclinic: east → west — FAIL", "copy @ drill-west", "seconds from the start",
		"0\n5\n10\n15\n20\n25\n", "compensated"} {
		if !strings.Contains(joined, w) {
			t.Errorf("texts lack %q:\n%s", w, joined)
		}
	}
	if !strings.Contains(doc.titles[2], "copy @ drill-west: ok, 4.0 s → 15.0 s — 9 tables") {
		t.Errorf("tooltip %q", doc.titles[2])
	}
	if s != TimelineSVG(rep) {
		t.Error("two renderings differ")
	}
	// The height grows with the steps.
	more := rep
	more.Steps = append(append([]workflows.Step(nil), rep.Steps...), rep.Steps...)
	if d := parseSVG(t, TimelineSVG(more)); d.height != "478" || doc.height != "296" || len(d.bars) != 2*len(rep.Steps) {
		t.Errorf("height %s for %d steps, %s for %d", d.height, len(more.Steps), doc.height, len(rep.Steps))
	}
}

func TestTimelineSVGEscapesStepNames(t *testing.T) {
	s := TimelineSVG(hostile())
	doc := parseSVG(t, s)
	if strings.Contains(s, "<script") || strings.Contains(s, "<b>") || strings.Contains(s, "]]>") {
		t.Fatalf("unescaped markup:\n%s", s)
	}
	if len(doc.bars) != len(hostile().Steps) {
		t.Fatalf("%d bars", len(doc.bars))
	}
	joined := strings.Join(doc.texts, "\n")
	for _, w := range []string{`<script>alert("x")</script> @ a & b`, "Drill of <b>app</b>: east", "pipe | in ]]> a detail\nand a newline"} {
		if !strings.Contains(joined, w) {
			t.Errorf("decoded texts lack %q:\n%s", w, joined)
		}
	}
}

func TestTimelineSVGWithoutSteps(t *testing.T) {
	for _, rep := range []workflows.DrillReport{{}, {RunbookReport: workflows.RunbookReport{App: "petclinic", StartedAt: t0}}} {
		doc := parseSVG(t, TimelineSVG(rep))
		if len(doc.bars) != 0 || !strings.Contains(strings.Join(doc.texts, "\n"), "no step recorded") {
			t.Errorf("%+v: %d bars, texts %q", rep, len(doc.bars), doc.texts)
		}
	}
}

// A running step (no end yet) reaches the last time the report knows.
func TestTimelineSVGRunningStep(t *testing.T) {
	rep := workflows.DrillReport{RunbookReport: workflows.RunbookReport{App: "petclinic", StartedAt: t0, Steps: []workflows.Step{
		{Name: "measure rpo", Started: at(0), Ended: at(2), Outcome: workflows.StepOK},
		{Name: "copy", Started: at(2), Outcome: workflows.StepRunning},
		{Name: "later", Started: at(9), Outcome: workflows.StepRunning},
	}}}
	doc := parseSVG(t, TimelineSVG(rep))
	// A 9 s span, ticks every second: 70 px a second.
	if len(doc.bars) != 3 || doc.bars[1]["x"] != "390.0" || doc.bars[1]["width"] != "490.0" || doc.bars[1]["fill"] != "#1565c0" {
		t.Fatalf("%v", doc.bars)
	}
}

func TestAxis(t *testing.T) {
	for _, tc := range []struct{ span, scale, tick float64 }{
		{0.5, 1, 1}, {1, 1, 1}, {9, 9, 1}, {10, 10, 1}, {10.5, 12, 2}, {21.5, 25, 5}, {95, 100, 10}, {101, 120, 20}, {3600, 4000, 500},
	} {
		if scale, tick := axis(tc.span); scale != tc.scale || tick != tc.tick {
			t.Errorf("axis(%g) = %g, %g; want %g, %g", tc.span, scale, tick, tc.scale, tc.tick)
		}
	}
}
