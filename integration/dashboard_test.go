package integration

import (
	"bufio"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDashboardAndEventStream: the real binary serves the dashboard at
// /ui/ (open on loopback without an admin token) and the event log as
// Server-Sent Events; SIGTERM ends an open stream cleanly instead of
// holding the shutdown.
func TestDashboardAndEventStream(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "layer.hcl"), filesLayer)
	writeFile(t, filepath.Join(dir, "data", "Post.json"), `[{"id": "p-1", "title": "One"}]`)
	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")
	h.waitRevision("blog", 1, 30*time.Second)

	resp, err := http.Get(h.url("/ui/layers/blog"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Sync now") || !strings.Contains(resp.Header.Get("Set-Cookie"), "HttpOnly") {
		t.Fatalf("GET /ui/layers/blog: %d %q\n%s", resp.StatusCode, resp.Header.Get("Set-Cookie"), page)
	}
	for _, asset := range []string{"/ui/static/app.css", "/ui/static/app.js"} {
		resp, err := http.Get(h.url(asset))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", asset, resp.StatusCode)
		}
	}

	resp, err = http.Get(h.url("/v1/layers/blog/events?follow=1&after=0"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("event stream: %d %q", resp.StatusCode, ct)
	}
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended before its first event: %v", err)
		}
		if strings.HasPrefix(line, "id: 1") {
			break
		}
	}
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The stream ends with the server's clean close, not a reset after the
	// drain's deadline.
	if _, err := io.ReadAll(r); err != nil {
		t.Fatalf("the stream did not end cleanly at SIGTERM: %v\n%s", err, h.logs())
	}
	<-h.exited
}
