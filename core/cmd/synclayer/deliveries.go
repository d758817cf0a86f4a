package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/notify"
	"github.com/synclayer/synclayer/core/store"
)

// deliveryOut is a delivery as GET …/deliveries answers it.
type deliveryOut struct {
	ID       string     `json:"id"`
	Event    string     `json:"event"`
	Endpoint string     `json:"endpoint"`
	Type     string     `json:"type"`
	State    string     `json:"state"`
	Created  time.Time  `json:"created_at"`
	NextAt   *time.Time `json:"next_attempt_at"`
	Attempts []struct {
		At        time.Time `json:"at"`
		Status    int       `json:"status"`
		LatencyMS int64     `json:"latency_ms"`
		Error     string    `json:"error"`
	} `json:"attempts"`
}

func (c *client) deliveriesCmd() *cobra.Command {
	var state, after string
	var limit int64
	var asJSON, attempts bool
	cmd := &cobra.Command{
		Use:   "deliveries LAYER",
		Short: "List a layer's outbound event deliveries and their attempts, oldest first",
		Long: "List a layer's outbound event deliveries (one per event and notify endpoint) with their state\n" +
			"(pending, delivered, failed, stopped) and attempts. `synclayer deliveries retry LAYER ID` sends one again.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 {
				return fmt.Errorf("--limit must be at least 1, got %d", limit)
			}
			q := url.Values{}
			if state != "" {
				q.Set("state", state)
			}
			var all []json.RawMessage
			next := after
			for {
				page := min(limit-int64(len(all)), 1000)
				q.Set("limit", strconv.FormatInt(page, 10))
				if next != "" {
					q.Set("after", next)
				}
				var out struct {
					Deliveries []json.RawMessage `json:"deliveries"`
					Next       *string           `json:"next"`
				}
				if err := c.do("GET", "/v1/layers/"+url.PathEscape(args[0])+"/deliveries?"+q.Encode(), nil, &out); err != nil {
					return err
				}
				all = append(all, out.Deliveries...)
				if out.Next == nil || int64(len(all)) >= limit {
					break
				}
				next = *out.Next
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetEscapeHTML(false)
				for _, d := range all {
					if err := enc.Encode(d); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tENDPOINT\tSTATE\tATTEMPTS\tLAST\tNEXT")
			for _, raw := range all {
				var d deliveryOut
				if err := json.Unmarshal(raw, &d); err != nil {
					return err
				}
				last, nextAt := "-", "-"
				if n := len(d.Attempts); n > 0 {
					last = describeAttempt(d.Attempts[n-1].Status, d.Attempts[n-1].LatencyMS, d.Attempts[n-1].Error, d.Attempts[n-1].At)
				}
				if d.NextAt != nil {
					nextAt = d.NextAt.Local().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Type, d.Endpoint, d.State, len(d.Attempts), last, nextAt)
				if attempts {
					for i, a := range d.Attempts {
						fmt.Fprintf(tw, "  #%d\t\t\t\t\t%s\t\n", i+1, describeAttempt(a.Status, a.LatencyMS, a.Error, a.At))
					}
				}
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "only deliveries in these states (comma list of pending, delivered, failed, stopped)")
	f.StringVar(&after, "after", "", "start after this delivery id")
	f.Int64Var(&limit, "limit", 100, "at most this many deliveries")
	f.BoolVar(&asJSON, "json", false, "print each delivery as a JSON line, with every attempt and the event")
	f.BoolVar(&attempts, "attempts", false, "list every attempt under its delivery")
	cmd.AddCommand(c.deliveriesRetryCmd())
	return cmd
}

// describeAttempt is one attempt in a line: when, answer, latency, error.
func describeAttempt(status int, latencyMS int64, errText string, at time.Time) string {
	s := at.Local().Format(time.RFC3339) + " "
	if status > 0 {
		s += strconv.Itoa(status)
	} else {
		s += "no answer"
	}
	s += fmt.Sprintf(" %dms", latencyMS)
	if errText != "" {
		s += " " + strings.Join(strings.Fields(errText), " ")
	}
	return s
}

func (c *client) deliveriesRetryCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "retry LAYER ID",
		Short: "Send a delivery again now (same event id), whatever its state",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Delivery deliveryOut `json:"delivery"`
			}
			path := "/v1/layers/" + url.PathEscape(args[0]) + "/deliveries/" + url.PathEscape(args[1]) + "/retry"
			if err := c.do("POST", path, nil, &out); err != nil {
				return err
			}
			fmt.Printf("%s: queued for delivery to %s\n", out.Delivery.ID, out.Delivery.Endpoint)
			return nil
		},
	}
}

// notifyScheduleEnv is a testing knob: a comma list of Go durations that
// replaces the retry schedule of outbound events (SPEC §8's 5 s … 24 h), so
// that end-to-end tests see retries in milliseconds. Not for production.
const notifyScheduleEnv = "SYNCLAYER_NOTIFY_SCHEDULE"

// startNotifier starts delivering the outbound events of every layer.
func startNotifier(cfg *config.Config, st store.Store, log hclog.Logger, metrics *notify.Metrics) (*notify.Notifier, error) {
	opts := notify.Options{Store: st, Config: cfg, Logger: log.Named("notify"), Metrics: metrics}
	if v := os.Getenv(notifyScheduleEnv); v != "" {
		for _, p := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(p))
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("%s must be a comma list of positive durations like 50ms,1s; got %q", notifyScheduleEnv, v)
			}
			opts.Schedule = append(opts.Schedule, d)
		}
		log.Warn("outbound events retry on a test schedule", "schedule", v)
	}
	n := notify.New(opts)
	if err := n.Start(); err != nil {
		n.Stop(context.Background())
		return nil, err
	}
	return n, nil
}
