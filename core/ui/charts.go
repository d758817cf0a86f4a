package ui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// chart is a small bar chart drawn as inline SVG by the templates: every
// coordinate is computed here, in a viewBox of W×H.
type chart struct {
	W, H int
	Bars []bar
	// Empty says why there is nothing to draw.
	Empty string
	// Caption describes the chart for screen readers and under it.
	Caption string
}

type bar struct {
	X, Y, W, H int
	// Label and Value are drawn beside the bar (horizontal charts); Title
	// is its tooltip.
	Label, Value, Title string
	LY, VX              int
	Class               string
}

// Layout of the records chart: one row per model.
const (
	rowH      = 22
	labelW    = 140
	barMaxW   = 130
	chartW    = labelW + barMaxW + 50
	maxModels = 12
)

// recordsChart: live records per model of the revision readers see.
func recordsChart(counts []store.ModelCount) *chart {
	c := &chart{W: chartW, Caption: "Records per model (not deleted)"}
	if len(counts) == 0 {
		c.Empty = "No records yet."
		return c
	}
	counts = bySource(counts)
	slices.SortStableFunc(counts, func(a, b store.ModelCount) int { return int(min(max(b.Live-a.Live, -1), 1)) })
	if len(counts) > maxModels {
		counts = counts[:maxModels]
	}
	var top int64 = 1
	for _, m := range counts {
		top = max(top, m.Live)
	}
	for i, m := range counts {
		w := int(float64(m.Live) / float64(top) * barMaxW)
		if m.Live > 0 {
			w = max(w, 2)
		}
		y := i * rowH
		label := m.Model
		if len(label) > 18 {
			label = label[:17] + "…"
		}
		c.Bars = append(c.Bars, bar{X: labelW, Y: y + 4, W: w, H: rowH - 8, Label: label, Title: fmt.Sprintf("%s (source %s): %d records", m.Model, m.Source, m.Live),
			Value: strconv.FormatInt(m.Live, 10), LY: y + rowH/2 + 4, VX: labelW + w + 6, Class: "bar"})
	}
	c.H = len(counts) * rowH
	return c
}

// bySource sums the counts of a source's connections (kept under source
// keys, store.SourceKey) into one per source and model: a source with
// thousands of connections is one bar per model, not one per connection.
func bySource(counts []store.ModelCount) []store.ModelCount {
	out := make([]store.ModelCount, 0, len(counts))
	at := map[[2]string]int{}
	for _, m := range counts {
		src, _ := store.SplitSourceKey(m.Source)
		k := [2]string{src, m.Model}
		if i, ok := at[k]; ok {
			out[i].Live += m.Live
			out[i].Deleted += m.Deleted
			continue
		}
		at[k] = len(out)
		m.Source = src
		out = append(out, m)
	}
	return out
}

// Layout of the durations chart: a column per run, oldest on the left.
const (
	durRuns   = 30
	durH      = 90
	durColW   = 10
	durChartW = durRuns * durColW
)

// durationsChart: how long the recent finished runs took, and whether
// they failed.
func durationsChart(runs []runRow) *chart {
	c := &chart{W: durChartW, H: durH + 14, Caption: "Run durations, oldest to newest"}
	var done []runRow
	for _, r := range runs {
		if r.Started != nil && r.Finished != nil {
			done = append(done, r)
			if len(done) == durRuns {
				break
			}
		}
	}
	if len(done) == 0 {
		c.Empty = "No finished runs yet."
		return c
	}
	slices.Reverse(done)
	top := time.Millisecond
	for _, r := range done {
		top = max(top, r.Duration)
	}
	for i, r := range done {
		h := max(int(float64(r.Duration)/float64(top)*durH), 2)
		class := "bar"
		if r.State == store.RunFailed {
			class = "bar bad"
		}
		c.Bars = append(c.Bars, bar{X: i*durColW + 1, Y: durH - h, W: durColW - 2, H: h, Class: class,
			Title: fmt.Sprintf("%s: %s, %s", r.ID, r.State, fmtDuration(r.Duration))})
	}
	c.Caption = fmt.Sprintf("Durations of the last %d runs, oldest to newest; the longest took %s", len(done), fmtDuration(top))
	return c
}

// fmtTime writes a time in UTC, to the second.
func fmtTime(t any) string {
	switch v := t.(type) {
	case time.Time:
		if v.IsZero() {
			return "—"
		}
		return v.UTC().Format("2006-01-02 15:04:05") + " UTC"
	case *time.Time:
		if v == nil {
			return "—"
		}
		return fmtTime(*v)
	case string:
		if p, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return fmtTime(p)
		}
		return v
	}
	return ""
}

// ago writes how long before now t was (or how long after now, for a
// time to come).
func ago(now time.Time, t any) string {
	var tt time.Time
	switch v := t.(type) {
	case time.Time:
		tt = v
	case *time.Time:
		if v == nil {
			return "—"
		}
		tt = *v
	default:
		return ""
	}
	if tt.IsZero() {
		return "—"
	}
	d := now.Sub(tt)
	if d > -time.Second && d < time.Second {
		return "just now"
	}
	if d < 0 {
		return "in " + roughly(-d)
	}
	return roughly(d) + " ago"
}

func roughly(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// fmtDuration writes a run's duration to a readable precision.
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// fmtSchedule writes a sync's schedule: "every 1h" for an interval (Go
// writes 1h0m0s), "cron …" for a cron expression.
func fmtSchedule(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return "cron " + s
	}
	out := d.String()
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return "every " + out
}
