package api_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synclayer/synclayer/core/api"
)

// liveServer serves an API without an engine (enough for health, metrics,
// and everything refused before the engine is asked) on a real loopback
// socket, through the server's own listener and http.Server.
type liveServer struct {
	t    *testing.T
	addr string
	reg  *prometheus.Registry
}

func newLiveServer(t *testing.T, lim api.Limits) *liveServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := api.New(api.Options{Registry: reg, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := s.HTTPServer()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(s.Listener(ln)) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return &liveServer{t: t, addr: ln.Addr().String(), reg: reg}
}

// gauge reads a sample of the registry: family name and one label value.
func (ls *liveServer) gauge(name, label, value string) float64 {
	ls.t.Helper()
	mfs, err := ls.reg.Gather()
	if err != nil {
		ls.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					if g := m.GetGauge(); g != nil {
						return g.GetValue()
					}
					return m.GetCounter().GetValue()
				}
			}
			if label == "" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// raw sends bytes on a new connection and returns the answer (status and
// decoded error envelope), reading until the server closes.
func (ls *liveServer) raw(req string) (int, http.Header, []byte) {
	ls.t.Helper()
	c, err := net.Dial("tcp", ls.addr)
	if err != nil {
		ls.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		ls.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		ls.t.Fatalf("reading the answer to %q: %v", truncate(req), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Close {
		// ReadResponse takes "Connection: close" out of the headers.
		resp.Header.Set("Connection", "close")
	}
	return resp.StatusCode, resp.Header, b
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// envelope checks that an answer is the JSON error envelope with code.
func envelope(t *testing.T, what string, h http.Header, b []byte, code string) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json: %s", what, ct, b)
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("%s: answer %s, want the error envelope with code %q", what, b, code)
	}
	return e.Error.Message
}

// TestMalformedRequestsGetJSON: the answers net/http writes itself, for
// requests it cannot parse, are the JSON error envelope too.
func TestMalformedRequestsGetJSON(t *testing.T) {
	ls := newLiveServer(t, api.Limits{})
	cases := []struct {
		name, req string
		status    int
		code      string
	}{
		{"headers too large", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2*api.DefaultMaxHeaderBytes) + "\r\n\r\n", 431, "headers_too_large"},
		{"control byte in a header name", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-\x01Bad: y\r\n\r\n", 400, "bad_request"},
		{"control byte in a header value", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n", 400, "bad_request"},
		{"no Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request"},
		{"bad Content-Length", "POST /v1/layers/cat/syncs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, "bad_request"},
		{"unknown Transfer-Encoding", "POST /v1/layers/cat/syncs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "unsupported_transfer_encoding"},
	}
	for _, c := range cases {
		status, h, b := ls.raw(c.req)
		if status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, status, c.status, b)
			continue
		}
		envelope(t, c.name, h, b, c.code)
	}
	// A good request on the same server is answered normally.
	if status, _, b := ls.raw("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); status != 200 || !strings.Contains(string(b), `"ok"`) {
		t.Errorf("GET /healthz: %d %s", status, b)
	}
}

// TestWrongMethodIs405: a known path with another method gets 405, the
// methods it takes in Allow, and the JSON envelope; an unknown path 404.
func TestWrongMethodIs405(t *testing.T) {
	ls := newLiveServer(t, api.Limits{})
	cases := []struct{ method, path, allow string }{
		{"POST", "/v1/layers", "GET, HEAD"},
		{"DELETE", "/healthz", "GET, HEAD"},
		{"GET", "/v1/layers/cat/syncs", "POST"},
		{"PATCH", "/v1/layers/cat/pin", "PUT, DELETE"},
		{"GET", "/hooks/layers/cat", "POST"},
		{"PUT", "/v1/layers/cat/deliveries/e.x/retry", "POST"},
	}
	for _, c := range cases {
		status, h, b := ls.raw(c.method + " " + c.path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		what := c.method + " " + c.path
		if status != 405 {
			t.Errorf("%s: status %d, want 405: %s", what, status, b)
			continue
		}
		if got := h.Get("Allow"); got != c.allow {
			t.Errorf("%s: Allow %q, want %q", what, got, c.allow)
		}
		envelope(t, what, h, b, "method_not_allowed")
	}
	status, h, b := ls.raw("DELETE /v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if status != 404 || h.Get("Allow") != "" {
		t.Errorf("DELETE /v1/nothing: %d Allow %q", status, h.Get("Allow"))
	}
	envelope(t, "DELETE /v1/nothing", h, b, "not_found")
	// Both count as unmatched routes in the metrics.
	var found bool
	mfs, _ := ls.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "synclayer_http_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["route"] == "/" {
				t.Errorf("the catch-all route is labelled %q", "/")
			}
			if labels["route"] == "unmatched" && labels["code"] == "405" && m.GetHistogram().GetSampleCount() == uint64(len(cases)) {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no %d samples of route=unmatched code=405", len(cases))
	}
}

// TestStrictJSONBodies: one JSON object and nothing else; the messages
// speak JSON, not Go.
func TestStrictJSONBodies(t *testing.T) {
	ls := newLiveServer(t, api.Limits{})
	cases := []struct{ method, path, body, mentions string }{
		{"POST", "/v1/layers/cat/syncs", `{}{}`, "more after"},
		{"PUT", "/v1/layers/cat/pin", `{"revision":1}xyz`, "more after"},
		{"PUT", "/v1/layers/cat/pin", `{"revision":1} {"revision":2}`, "more after"},
		{"POST", "/v1/layers/cat/syncs", `null`, "null"},
		{"PUT", "/v1/layers/cat/pin", ` null `, "null"},
		{"POST", "/v1/layers/cat/webhooks", `[]`, "array"},
		{"POST", "/v1/layers/cat/webhooks", `"name"`, "string"},
		{"PUT", "/v1/layers/cat/pin", `{"revision":"1"}`, `"revision" must be an integer, not a string`},
		{"PUT", "/v1/layers/cat/pin", `{"revision":1.5}`, `"revision" must be an integer, not a number`},
		{"POST", "/v1/layers/cat/syncs", `{"reset":"yes"}`, `"reset" must be true or false`},
		{"POST", "/v1/layers/cat/syncs", `{"sorce":"blog"}`, `unknown field "sorce"; the fields are reset, source, sync`},
		{"POST", "/v1/layers/cat/syncs", `{"source":`, "ends before"},
		{"POST", "/v1/layers/cat/syncs", `{"source" "blog"}`, "not valid JSON at byte"},
	}
	for _, c := range cases {
		req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", c.method, c.path, len(c.body), c.body)
		status, h, b := ls.raw(req)
		what := c.method + " " + c.path + " " + c.body
		if status != 400 {
			t.Errorf("%s: status %d, want 400: %s", what, status, b)
			continue
		}
		msg := envelope(t, what, h, b, "bad_json")
		if !strings.Contains(msg, c.mentions) {
			t.Errorf("%s: message %q does not say %q", what, msg, c.mentions)
		}
		for _, internal := range []string{"Go ", "struct", "int64", "json:", "main.", "api."} {
			if strings.Contains(msg, internal) {
				t.Errorf("%s: message %q names an internal (%q)", what, msg, internal)
			}
		}
	}
}

// stalled opens a connection that announces a body and sends one byte of
// it, then nothing.
func stalled(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitGauge polls a registry sample until it reaches want.
func (ls *liveServer) waitGauge(name, label, value string, want float64) {
	ls.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for ls.gauge(name, label, value) != want {
		if time.Now().After(deadline) {
			ls.t.Fatalf("%s{%s=%q} is %v, want %v", name, label, value, ls.gauge(name, label, value), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHealthzAnswersThroughAFloodOfSlowClients fills the main pool with
// clients that announce a body and never send it (bodies paced so they
// stay for the whole test), floods past the pool, and checks that
// /healthz, /readyz's neighbour /metrics and the refusals keep coming,
// and that no more connections are held than the limits allow.
func TestHealthzAnswersThroughAFloodOfSlowClients(t *testing.T) {
	const maxConns, reserve = 8, 4
	ls := newLiveServer(t, api.Limits{MaxConnections: maxConns, ReserveConnections: reserve, BodyGrace: time.Hour, BodyIdleTimeout: time.Hour})
	for range maxConns {
		stalled(t, ls.addr, "/v1/layers/cat/syncs")
	}
	ls.waitGauge("synclayer_http_connections", "pool", "main", maxConns)

	// The flood past the pool: each gets 503 (from the reserve, which
	// reads the request first, or at once when the reserve is full) and
	// is closed; none is held.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", ls.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			_, _ = io.WriteString(c, "POST /hooks/layers/cat HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				// Refused past the reserve: the client may see the reset
				// of its unread request before the 503.
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
					errs <- fmt.Errorf("flood connection: %w", err)
				}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 503 || !strings.Contains(string(b), `"overloaded"`) {
				errs <- fmt.Errorf("flood connection answered %d %s, want 503 overloaded", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// The reserve let go of every flood connection once answered.
	ls.waitGauge("synclayer_http_connections", "pool", "reserve", 0)
	if ls.gauge("synclayer_http_connections_refused_total", "", "") == 0 && testing.Verbose() {
		t.Log("the flood never overflowed the reserve")
	}

	// The main pool is still full of stalled clients; health and metrics
	// answer through the reserve.
	for _, path := range []string{"/healthz", "/metrics"} {
		status, h, b := ls.raw("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		if status != 200 {
			t.Fatalf("GET %s with the main pool full: %d %s", path, status, b)
		}
		if h.Get("Connection") != "close" {
			t.Errorf("GET %s from the reserve: Connection %q, want close", path, h.Get("Connection"))
		}
	}
	if got := ls.gauge("synclayer_http_connections", "pool", "main"); got != maxConns {
		t.Errorf("main pool holds %v connections, want %d", got, maxConns)
	}
	ls.waitGauge("synclayer_http_connections", "pool", "reserve", 0)
}

// TestSlowBodiesAreCut: a client that stalls in its body is answered 408
// and disconnected; one that is slow but keeps the minimum pace gets its
// upload through.
func TestSlowBodiesAreCut(t *testing.T) {
	lim := api.Limits{BodyGrace: time.Second, BodyIdleTimeout: time.Second, BodyMinRate: 1000}
	ls := newLiveServer(t, lim)
	var conns []net.Conn
	for _, path := range []string{"/v1/layers/cat/syncs", "/hooks/sources/cat/blog", "/hooks/layers/cat", "/v1/layers/cat/webhooks"} {
		conns = append(conns, stalled(t, ls.addr, path))
	}
	for i, c := range conns {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		// Every stalled client is disconnected; those whose handler reads
		// the body get 408 first.
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("stalled client %d: the server did not close the connection: %v", i, err)
		}
		if i != 2 && !strings.HasPrefix(string(b), "HTTP/1.1 408") {
			t.Errorf("stalled client %d got %q, want 408", i, b)
		}
		if i != 2 && !strings.Contains(string(b), `"body_timeout"`) {
			t.Errorf("stalled client %d: answer %q is not the body_timeout envelope", i, b)
		}
	}
	ls.waitGauge("synclayer_http_connections", "pool", "main", 0)

	// A body sent in small pieces well above the minimum pace arrives
	// whole: the trailing-garbage check answers after reading all of it.
	c, err := net.Dial("tcp", ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"source":"` + strings.Repeat("a", 3000) + `"}x`
	fmt.Fprintf(c, "POST /v1/layers/cat/syncs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n", len(body))
	for i := 0; i < len(body); i += 500 {
		if _, err := io.WriteString(c, body[i:min(i+500, len(body))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "more after its JSON object") {
		t.Fatalf("paced upload: %d %s, want the whole body read and refused for its trailing byte", resp.StatusCode, b)
	}
}
