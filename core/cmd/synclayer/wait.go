package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// waitRun polls a run until it ends, then prints its result. On a terminal
// it redraws one progress line; otherwise (a log, CI) it prints a progress
// line every c.every and at each change of state.
func (c *client) waitRun(layer, id string) error {
	f, isFile := c.stderr.(*os.File)
	tty := isFile && isTerminal(f)
	start := time.Now()
	var samples []sample
	lastState := ""
	var lastLine time.Time
	for {
		var r runView
		if err := c.do("GET", "/v1/layers/"+layer+"/runs/"+url.PathEscape(id), nil, &r); err != nil {
			return err
		}
		now := time.Now()
		if r.State == "completed" || r.State == "failed" {
			if tty {
				fmt.Fprint(c.stderr, "\r\033[K")
			}
			return printRunResult(c.stdout, &r)
		}
		done, total := runProgress(&r)
		samples = addSample(samples, sample{now, done})
		line := progressLine(id, &r, done, total, rate(samples), now.Sub(start))
		switch {
		case tty:
			fmt.Fprint(c.stderr, "\r\033[K"+line)
		case r.State != lastState || now.Sub(lastLine) >= c.every:
			fmt.Fprintln(c.stderr, line)
			lastLine = now
		}
		lastState = r.State
		time.Sleep(c.poll)
	}
}

// sample is the amount done at a time, for the rate.
type sample struct {
	at   time.Time
	done int64
}

// rateWindow is how far back the rate looks.
const rateWindow = 10 * time.Second

func addSample(s []sample, x sample) []sample {
	s = append(s, x)
	i := 0
	for i < len(s)-2 && x.at.Sub(s[i].at) > rateWindow {
		i++
	}
	return s[i:]
}

// rate is records per second over the samples, 0 when unknown.
func rate(s []sample) float64 {
	if len(s) < 2 {
		return 0
	}
	a, b := s[0], s[len(s)-1]
	d := b.at.Sub(a.at).Seconds()
	if d <= 0 || b.done < a.done {
		return 0
	}
	return float64(b.done-a.done) / d
}

// runProgress is how many records the run has done and of how many
// (total 0: unknown). Where the connectors report totals for every sync
// that reports at all, done and total are their sums (a sync's report on
// itself as a whole, model "", replaces those on its models); otherwise
// done is the changes received so far.
func runProgress(r *runView) (done, total int64) {
	type key struct{ source, sync string }
	whole := map[key]progressView{}
	parts := map[key][]progressView{}
	for _, p := range r.Progress {
		k := key{p.Source, p.Sync}
		if p.Model == "" {
			whole[k] = p
		} else {
			parts[k] = append(parts[k], p)
		}
	}
	known := len(whole)+len(parts) > 0
	add := func(p progressView) {
		done += p.Done
		total += p.Total
		if p.Total <= 0 {
			known = false
		}
	}
	for k, ps := range parts {
		if w, ok := whole[k]; ok {
			add(w)
			continue
		}
		for _, p := range ps {
			add(p)
		}
	}
	for k, w := range whole {
		if _, ok := parts[k]; !ok {
			add(w)
		}
	}
	if !known {
		return r.Received, 0
	}
	return done, total
}

// progressLine is "run_x running: 1,200 of 5,000 records (24%), 350/s,
// ETA 11s, 3.4s" (without "of …", percentage and ETA when no total is
// known; without the rate until there is one).
func progressLine(id string, r *runView, done, total int64, perSec float64, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s", id, r.State, humanInt(done))
	if total > 0 {
		fmt.Fprintf(&b, " of %s records (%d%%)", humanInt(total), min(100, done*100/total))
	} else {
		b.WriteString(" records received")
	}
	if perSec > 0 {
		fmt.Fprintf(&b, ", %s/s", humanInt(int64(perSec+0.5)))
		if total > done {
			eta := time.Duration(float64(total-done) / perSec * float64(time.Second))
			fmt.Fprintf(&b, ", ETA %s", eta.Round(time.Second))
		}
	}
	fmt.Fprintf(&b, ", %s", elapsed.Round(100*time.Millisecond))
	return b.String()
}

// printRunResult prints the outcome and, for a completed run, its counts by
// source and model; the run's sources that changed nothing are listed too.
func printRunResult(w io.Writer, r *runView) error {
	took := ""
	if r.StartedAt != nil && r.FinishedAt != nil {
		took = " in " + r.FinishedAt.Sub(*r.StartedAt).Round(time.Millisecond).String()
	}
	if r.State == "failed" {
		return exitError{code: 1, msg: fmt.Sprintf("%s failed%s: %s", r.Run, took, r.Error)}
	}
	fmt.Fprintf(w, "%s completed%s: revision %d\n", r.Run, took, r.Revision)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tMODEL\tADDED\tUPDATED\tDELETED\tUNCHANGED")
	sources := map[string]bool{}
	for src := range r.Counts {
		sources[src] = true
	}
	for _, y := range r.Syncs {
		sources[y.Source] = true
	}
	names := make([]string, 0, len(sources))
	for s := range sources {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, src := range names {
		models := make([]string, 0, len(r.Counts[src]))
		for m := range r.Counts[src] {
			models = append(models, m)
		}
		sort.Strings(models)
		if len(models) == 0 {
			fmt.Fprintf(tw, "%s\t(no changes)\t0\t0\t0\t0\n", src)
			continue
		}
		for _, model := range models {
			n := r.Counts[src][model]
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\n", src, model, n["added"], n["updated"], n["deleted"], n["unchanged"])
		}
	}
	return tw.Flush()
}
