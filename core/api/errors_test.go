package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestScrubInternalsTakesOutSocketPaths(t *testing.T) {
	in := `plugin "rest": sync: connection lost: connection error: desc = "transport: Error while dialing: dial unix /tmp/plugin2837462: connect: connection refused"`
	out := scrubInternals(in)
	if strings.Contains(out, "/tmp/plugin") || !strings.Contains(out, "dial unix [plugin socket]: connect: connection refused") {
		t.Fatalf("scrubbed to %q", out)
	}
	for _, keep := range []string{"", "the connector said: unix time is wrong", `fetch https://api.example.com/x: 500`} {
		if got := scrubInternals(keep); got != keep {
			t.Errorf("%q changed to %q", keep, got)
		}
	}
	if got := scrubInternals("addr unixgram:/run/x/sock failed"); strings.Contains(got, "/run/x") {
		t.Errorf("unixgram path kept: %q", got)
	}
}

// TestRewriteServerErrorOnlyTakesNetHTTPsOwnAnswers: the answers handlers
// write (with Date, sorted headers) pass through untouched.
func TestRewriteServerErrorOnlyTakesNetHTTPsOwnAnswers(t *testing.T) {
	for _, b := range []string{
		"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nDate: Mon, 01 Jan 2026 00:00:00 GMT\r\n\r\n{}",
		"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Mon, 01 Jan 2026 00:00:00 GMT\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	} {
		if _, ok := rewriteServerError([]byte(b), 1024); ok {
			t.Errorf("rewrote a handler's answer %q", b)
		}
	}
	out, ok := rewriteServerError([]byte("HTTP/1.1 400 Bad Request: missing required Host header\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: missing required Host header"), 1024)
	if !ok || !strings.HasPrefix(string(out), "HTTP/1.1 400 "+http.StatusText(400)+"\r\n") || !strings.Contains(string(out), `"message":"the request is not valid HTTP/1.1: missing required Host header"`) {
		t.Fatalf("rewrote to %q", out)
	}
}
