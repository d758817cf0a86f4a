package notify

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

func TestBackoffFollowsTheScheduleWithJitter(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		n := New(Options{Rand: func() float64 { return r }})
		for i, step := range DefaultSchedule {
			got := n.backoff(i, 0)
			lo, hi := time.Duration(float64(step)*(1-Jitter)), time.Duration(float64(step)*(1+Jitter))
			if got < lo || got > hi {
				t.Fatalf("retry %d with rand %v: %s, want within [%s, %s]", i, r, got, lo, hi)
			}
		}
	}
	n := New(Options{Rand: func() float64 { return 0.5 }})
	if got := n.backoff(0, 0); got != 5*time.Second {
		t.Fatalf("first retry %s, want 5s", got)
	}
	if got := n.backoff(8, 0); got != 24*time.Hour {
		t.Fatalf("last retry %s, want 24h", got)
	}
	// Retry-After replaces the step, within the schedule's bounds.
	if got := n.backoff(3, 90*time.Second); got != 90*time.Second {
		t.Fatalf("Retry-After 90s on retry 3: %s", got)
	}
	if got := n.backoff(0, time.Second); got != 5*time.Second {
		t.Fatalf("Retry-After 1s: %s, want the first step", got)
	}
	if got := n.backoff(0, 100*time.Hour); got != 24*time.Hour {
		t.Fatalf("Retry-After 100h: %s, want the last step", got)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"120":                           2 * time.Minute,
		" 3 ":                           3 * time.Second,
		"0":                             0,
		"-5":                            0,
		"soon":                          0,
		"Mon, 23 Nov 2026 07:01:30 GMT": 90 * time.Second,
		"Mon, 23 Nov 2026 06:00:00 GMT": 0, // in the past
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
}

func TestStatusErrorKeepsTheStartOfTheBody(t *testing.T) {
	resp := &http.Response{StatusCode: 500, Status: "500 Internal Server Error"}
	got := statusError(resp, []byte("line one\n\tline two\x00"+strings.Repeat("x", 500)))
	if !strings.HasPrefix(got, "the endpoint answered 500 Internal Server Error: line one line twoxxx") || len(got) > 300 || !strings.HasSuffix(got, "…") {
		t.Fatalf("%q", got)
	}
}

func TestSlackMessageOfACompletedRun(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		want []string
	}{
		"one source": {
			`{"type":"sync.completed","id":"evt_1","layer":"catalog","source":"shop","sync":"products","run":"run_1","trigger":"webhook","syncType":"INCREMENTAL","revision":42,
			  "results":{"Product":{"added":3,"updated":10,"deleted":1},"Collection":{"added":0,"updated":0,"deleted":0}}}`,
			[]string{"Sync completed in layer catalog, source shop, sync products: revision 42, 3 added, 10 updated, 1 deleted",
				"• Product: 3 added, 10 updated, 1 deleted", "`shop/products`", "webhook (incremental)"},
		},
		"whole layer": {
			`{"type":"sync.completed","id":"evt_2","layer":"catalog","source":null,"run":"run_2","trigger":"manual","syncType":"FULL","revision":7,
			  "results":{"shop":{"Product":{"added":1,"updated":0,"deleted":0}},"blog":{"Post":{"added":0,"updated":2,"deleted":0}}}}`,
			[]string{"Sync completed in layer catalog: revision 7, 1 added, 2 updated, 0 deleted", "• blog/Post: 0 added, 2 updated", "• shop/Product: 1 added"},
		},
		"nothing changed": {
			`{"type":"sync.completed","id":"evt_3","layer":"catalog","revision":8,"results":{"shop":{}}}`,
			[]string{"revision 8, no changes"},
		},
		"pinned": {
			`{"type":"revision.pinned","id":"evt_4","layer":"catalog","revision":5}`,
			[]string{"Revision 5 pinned in layer catalog", ":pushpin:"},
		},
		"connection run": {
			`{"type":"sync.completed","id":"evt_5","layer":"crm","source":"hubspot","connection":"acme","sync":"contacts","revision":9,"results":{"Contact":{"added":1,"updated":0,"deleted":0}}}`,
			[]string{"Sync completed in layer crm, source hubspot, connection acme, sync contacts: revision 9", "`hubspot (acme)/contacts`"},
		},
		"needs attention": {
			`{"type":"connection.needs_attention","id":"evt_6","layer":"crm","source":"hubspot","connection":"acme","run":"run_9","error":"401 Unauthorized"}`,
			[]string{"Connection needs attention in layer crm, source hubspot, connection acme: 401 Unauthorized", ":warning:", "```401 Unauthorized```"},
		},
		"deleted": {
			`{"type":"connection.deleted","id":"evt_7","layer":"crm","source":"hubspot","connection":"acme","revision":11}`,
			[]string{"Connection deleted in layer crm, source hubspot, connection acme: its records deleted in revision 11"},
		},
	} {
		b := slackMessage(&store.Delivery{Body: []byte(tc.body)})
		var msg map[string]any
		if err := json.Unmarshal(b, &msg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, ok := msg["blocks"].([]any); !ok {
			t.Fatalf("%s: no blocks: %s", name, b)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s: %s\nlacks %q", name, b, w)
			}
		}
	}
}
