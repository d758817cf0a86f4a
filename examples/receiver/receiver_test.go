package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// sign signs a body the Standard Webhooks way, by hand.
func sign(id string, ts time.Time, body []byte) http.Header {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.%s", id, ts.Unix(), body)
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return h
}

// fakeHost serves GET /v1/layers/cat/records from a list of records whose
// cursors are c01, c02, …
type fakeHost struct {
	mu      sync.Mutex
	n       int
	queries []string
}

func (h *fakeHost) add(n int) {
	h.mu.Lock()
	h.n += n
	h.mu.Unlock()
}

func (h *fakeHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/layers/cat/records" || r.Header.Get("Authorization") != "Bearer read-token" {
		http.Error(w, "no", http.StatusNotFound)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.queries = append(h.queries, r.URL.RawQuery)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	after := r.URL.Query().Get("cursor")
	var recs []json.RawMessage
	more := false
	for i := 1; i <= h.n; i++ {
		c := fmt.Sprintf("c%02d", i)
		if c <= after {
			continue
		}
		if len(recs) == limit {
			more = true
			break
		}
		recs = append(recs, json.RawMessage(fmt.Sprintf(`{"id":"p%d","_metadata":{"cursor":%q}}`, i, c)))
	}
	out := map[string]any{"records": recs, "next_cursor": nil, "revision": 3}
	if more {
		var last struct {
			M struct{ Cursor string } `json:"_metadata"`
		}
		json.Unmarshal(recs[len(recs)-1], &last)
		out["next_cursor"] = last.M.Cursor
	}
	json.NewEncoder(w).Encode(out)
}

type applied struct {
	mu   sync.Mutex
	ids  []string
	fail string // fail on this id
}

func (a *applied) apply(_ string, rec json.RawMessage) error {
	var r struct{ ID string }
	json.Unmarshal(rec, &r)
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.ID == a.fail {
		return errors.New("app is down")
	}
	a.ids = append(a.ids, r.ID)
	return nil
}

func (a *applied) list() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.ids, ",")
}

func newTestReceiver(t *testing.T, state string, host *fakeHost, a *applied) *Receiver {
	t.Helper()
	api := httptest.NewServer(host)
	t.Cleanup(api.Close)
	r, err := New(Config{Secret: secret, StateDir: state, API: api.URL, Token: "read-token", Apply: a.apply, PageSize: 2, RetryEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func post(r http.Handler, h http.Header, body string) int {
	req := httptest.NewRequest("POST", "/hooks/synclayer", strings.NewReader(body))
	req.Header = h
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w.Code
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestReceiverVerifiesAndPullsByCursor(t *testing.T) {
	state := t.TempDir()
	host := &fakeHost{}
	host.add(5)
	a := &applied{}
	r := newTestReceiver(t, state, host, a)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx, nil)

	ev := `{"type":"sync.completed","id":"evt_1","layer":"cat","modifiedAfter":"2026-11-23T07:05:00.000456Z"}`
	now := time.Now()
	for name, h := range map[string]http.Header{
		"no headers":    {},
		"wrong body":    sign("evt_1", now, []byte(ev+" ")),
		"old timestamp": sign("evt_1", now.Add(-time.Hour), []byte(ev)),
		"another secret": func() http.Header {
			h := sign("evt_1", now, []byte(ev))
			h.Set("webhook-signature", "v1,AAAA")
			return h
		}(),
	} {
		if code := post(r, h, ev); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	if a.list() != "" {
		t.Fatalf("pulled on an unverified request: %s", a.list())
	}

	if code := post(r, sign("evt_1", now, []byte(ev)), ev); code != http.StatusNoContent {
		t.Fatalf("signed event: %d", code)
	}
	waitFor(t, "five records", func() bool { return a.list() == "p1,p2,p3,p4,p5" })
	// The cursor is saved after each page is handled: wait for the last.
	waitFor(t, "the cursor of the last record", func() bool { c, _ := r.Cursor("cat"); return c == "c05" })
	// Pages after the first stay on its revision.
	host.mu.Lock()
	q := append([]string(nil), host.queries...)
	host.mu.Unlock()
	if len(q) != 3 || q[0] != "limit=2" || q[1] != "cursor=c02&limit=2&revision=3" || q[2] != "cursor=c04&limit=2&revision=3" {
		t.Fatalf("queries %q", q)
	}

	// More changes, another event: only those; a duplicate event costs a
	// pull that finds nothing.
	host.add(2)
	ev2 := strings.Replace(ev, "evt_1", "evt_2", 1)
	post(r, sign("evt_2", now, []byte(ev2)), ev2)
	post(r, sign("evt_2", now, []byte(ev2)), ev2)
	waitFor(t, "seven records", func() bool { return a.list() == "p1,p2,p3,p4,p5,p6,p7" })

	// Other events are taken and ignored.
	other := `{"type":"sync.started","id":"evt_3","layer":"cat"}`
	if code := post(r, sign("evt_3", now, []byte(other)), other); code != http.StatusNoContent {
		t.Fatalf("sync.started: %d", code)
	}
}

func TestReceiverResumesFromTheCursorOnDisk(t *testing.T) {
	state := t.TempDir()
	host := &fakeHost{}
	host.add(5)
	a := &applied{fail: "p4"}
	r := newTestReceiver(t, state, host, a)
	n, err := r.Pull(context.Background(), "cat")
	if err == nil || n != 3 {
		t.Fatalf("pull with a failing apply: %d, %v", n, err)
	}
	// p3 was applied but its page (p3, p4) did not finish: the cursor is
	// the end of the last whole page.
	if c, _ := r.Cursor("cat"); c != "c02" {
		t.Fatalf("cursor %q, want c02", c)
	}
	entries, _ := os.ReadDir(state)
	if len(entries) != 1 || entries[0].Name() != "cat.cursor" {
		t.Fatalf("state folder holds %v", entries)
	}

	// A new process over the same folder goes on from there, replaying
	// only the interrupted page.
	a2 := &applied{}
	r2 := newTestReceiver(t, state, host, a2)
	if n, err := r2.Pull(context.Background(), "cat"); err != nil || n != 3 || a2.list() != "p3,p4,p5" {
		t.Fatalf("resumed pull: %d, %v, %s", n, err, a2.list())
	}
	if b, _ := os.ReadFile(filepath.Join(state, "cat.cursor")); string(b) != "c05\n" {
		t.Fatalf("cursor file %q", b)
	}
	if _, err := r2.Pull(context.Background(), "../etc"); err == nil {
		t.Fatal("a layer name that is a path was accepted")
	}
}

func TestReceiverNeedsASecret(t *testing.T) {
	for _, s := range []string{"", "secret", "whsec_%%%"} {
		if _, err := New(Config{Secret: s, StateDir: t.TempDir(), Apply: (&applied{}).apply}); err == nil {
			t.Errorf("secret %q accepted", s)
		}
	}
}
