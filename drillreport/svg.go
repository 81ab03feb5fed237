package drillreport

import (
	"encoding/xml"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/drover-sre/drover/workflows"
)

// Layout of the timeline, in pixels.
const (
	svgWidth   = 900
	labelRight = 240 // labels end here (right-aligned)
	chartLeft  = 250 // x of second 0
	chartRight = 880 // x of the axis' last tick
	rowsTop    = 44
	rowHeight  = 26
	barHeight  = 16
	labelRunes = 34 // longer labels are cut (the bar's tooltip has the full name)
)

// Colours of the bars by step outcome.
var outcomeColours = []struct{ outcome, colour string }{
	{workflows.StepOK, "#2e7d32"},
	{workflows.StepFailed, "#c62828"},
	{workflows.StepSkipped, "#9e9e9e"},
	{workflows.StepCompensated, "#ef6c00"},
	{workflows.StepRunning, "#1565c0"},
}

const otherColour = "#607d8b"

func colour(outcome string) string {
	for _, c := range outcomeColours {
		if c.outcome == outcome {
			return c.colour
		}
	}
	return otherColour
}

// TimelineSVG renders the drill's steps as a Gantt chart, 900 pixels wide
// and as high as its steps need: one bar (a rect of class "bar") per step,
// in order, from its start to its end in seconds from the drill's start,
// coloured by outcome (ok green, failed red, skipped grey, compensated
// orange, running blue), each with the step's name and site as a label and
// its detail as a tooltip; under them a time axis with second ticks and a
// legend. A step still running ends at the report's end (or its start). All
// report text is escaped with encoding/xml, and the document is well-formed
// XML for any report, including one without steps.
func TimelineSVG(rep workflows.DrillReport) string {
	n := max(len(rep.Steps), 1)
	axisY := rowsTop + n*rowHeight + 6
	height := axisY + 64
	scale, tick := axis(timelineSeconds(rep))
	x := func(sec float64) float64 { return chartLeft + sec/scale*(chartRight-chartLeft) }

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	p(`<rect class="background" x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)
	verdict := "FAIL"
	switch {
	case rep.Outcome == "":
		verdict = "RUNNING"
	case rep.Passed:
		verdict = "PASS"
	}
	p(`<text class="title" x="10" y="24" font-size="16" font-weight="bold">%s</text>`+"\n",
		esc(fmt.Sprintf("Drill of %s: %s → %s — %s", orText(rep.App, "?"), orText(rep.From, "?"), orText(rep.To, "?"), verdict)))

	// Grid lines and tick labels first, so the bars are drawn over them.
	for sec := 0.0; sec <= scale+tick/2; sec += tick {
		p(`<line class="tick" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e0e0e0"/>`+"\n", x(sec), rowsTop-4, x(sec), axisY)
		p(`<text class="tick-label" x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(sec), axisY+16, tickLabel(sec))
	}
	p(`<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d" stroke="#424242"/>`+"\n", chartLeft, axisY, chartRight, axisY)
	p(`<text class="axis-label" x="%d" y="%d" text-anchor="middle">seconds from the start</text>`+"\n",
		(chartLeft+chartRight)/2, axisY+32)

	if len(rep.Steps) == 0 {
		p(`<text class="empty" x="%d" y="%d">no step recorded</text>`+"\n", chartLeft, rowsTop+rowHeight/2+4)
	}
	end := reportEnd(rep)
	for i, s := range rep.Steps {
		y := rowsTop + i*rowHeight
		from := offset(rep.StartedAt, s.Started)
		to := from
		switch {
		case !s.Ended.IsZero():
			to = offset(rep.StartedAt, s.Ended)
		case !end.IsZero():
			to = max(from, offset(rep.StartedAt, end))
		}
		label := s.Name
		if s.Site != "" {
			label += " @ " + s.Site
		}
		tip := fmt.Sprintf("%s: %s, %.1f s → %.1f s", label, s.Outcome, from, to)
		if s.Detail != "" {
			tip += " — " + s.Detail
		}
		p(`<text class="label" x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelRight, y+barHeight/2+6, esc(cut(label, labelRunes)))
		p(`<rect class="bar" data-outcome="%s" x="%.1f" y="%d" width="%.1f" height="%d" rx="2" fill="%s"><title>%s</title></rect>`+"\n",
			esc(s.Outcome), x(from), y+2, max(x(to)-x(from), 3), barHeight, colour(s.Outcome), esc(tip))
	}

	lx := chartLeft
	for _, c := range outcomeColours {
		p(`<rect class="legend" x="%d" y="%d" width="12" height="12" fill="%s"/>`, lx, axisY+44, c.colour)
		p(`<text class="legend-label" x="%d" y="%d">%s</text>`+"\n", lx+16, axisY+54, c.outcome)
		lx += 110
	}
	p("</svg>\n")
	return b.String()
}

// timelineSeconds is how long the timeline spans: to the last step's end
// or the report's end, whichever is later (at least one second).
func timelineSeconds(rep workflows.DrillReport) float64 {
	span := offset(rep.StartedAt, rep.EndedAt)
	for _, s := range rep.Steps {
		span = max(span, offset(rep.StartedAt, s.Started), offset(rep.StartedAt, s.Ended))
	}
	return max(span, 1)
}

// axis picks the tick interval (1, 2 or 5 times a power of ten seconds)
// that gives at most ten ticks, and the axis' length: span rounded up to a
// whole tick.
func axis(span float64) (scale, tick float64) {
	tick = 1
	for span/tick > 10 {
		switch m := tick / math.Pow(10, math.Floor(math.Log10(tick))); {
		case m < 2:
			tick *= 2
		case m < 5:
			tick = tick / 2 * 5
		default:
			tick *= 2
		}
	}
	return math.Ceil(span/tick) * tick, tick
}

func tickLabel(sec float64) string { return fmt.Sprintf("%g", math.Round(sec)) }

// reportEnd is the report's end, or for a running drill its last known time.
func reportEnd(rep workflows.DrillReport) time.Time {
	end := rep.EndedAt
	if end.IsZero() {
		for _, s := range rep.Steps {
			for _, t := range []time.Time{s.Started, s.Ended} {
				if t.After(end) {
					end = t
				}
			}
		}
	}
	return end
}

// esc escapes text for XML character data and attribute values.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder never fails
	return b.String()
}

// cut shortens s to n runes, marking the cut with an ellipsis.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
