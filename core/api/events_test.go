package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synclayer/synclayer/core/api"
)

// TestEventsFollow: GET …/events?follow=1 is the event log as Server-Sent
// Events, behind the admin token, resumed after Last-Event-ID, with new
// events as they happen.
func TestEventsFollow(t *testing.T) {
	f := newFixture(t, fixtureOpts{token: "admin-token-events"})

	// The bearer token is needed, as for the JSON list.
	resp, err := http.Get(f.srv.URL + "/v1/layers/cat/events?follow=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", resp.StatusCode)
	}
	f.fail("GET", "/v1/layers/cat/events?follow=1&after=x", "", 400, "bad_after")
	f.fail("GET", "/v1/layers/nope/events?follow=1", "", 404, "not_found")

	var list struct {
		Events []struct {
			Seq  uint64 `json:"seq"`
			Type string `json:"type"`
		} `json:"events"`
	}
	f.do("GET", "/v1/layers/cat/events", "", 200, &list)
	if len(list.Events) < 2 {
		t.Fatalf("events: %+v", list.Events)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/v1/layers/cat/events?follow=1&after=0", nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Last-Event-ID", "1") // wins over after=0
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
	}
	r := bufio.NewReader(resp.Body)
	// readEvent returns the next event's id line and data.
	readEvent := func() (string, map[string]any) {
		t.Helper()
		var id string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended: %v", err)
			}
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				var ev map[string]any
				if err := json.Unmarshal([]byte(v), &ev); err != nil {
					t.Fatalf("data %q: %v", v, err)
				}
				return id, ev
			}
		}
	}
	for _, want := range list.Events[1:] {
		id, ev := readEvent()
		if id != strconvU(want.Seq) || ev["type"] != want.Type {
			t.Fatalf("event id %s %v, want %d %s", id, ev, want.Seq, want.Type)
		}
	}
	// A new run's events arrive as they happen.
	var out struct{ Run string }
	f.do("POST", "/v1/layers/cat/syncs", `{"source":"blog"}`, 202, &out)
	for {
		_, ev := readEvent()
		if ev["run"] == out.Run && (ev["type"] == "sync.completed" || ev["type"] == "sync.failed") {
			if ev["type"] != "sync.completed" {
				t.Fatalf("run failed: %v", ev)
			}
			break
		}
	}
}

func strconvU(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestEventsFollowShutdown: a graceful shutdown ends the event streams at
// once instead of waiting for them until its deadline.
func TestEventsFollowShutdown(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	h, err := api.New(api.Options{Engine: f.eng, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := h.HTTPServer()
	go srv.Serve(h.Listener(ln))
	resp, err := http.Get("http://" + ln.Addr().String() + "/v1/layers/cat/events?follow=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatalf("the stream did not start: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown waited for the stream: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("the stream did not end cleanly: %v", err)
	}
}
