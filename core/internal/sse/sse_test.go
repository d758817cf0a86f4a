package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	badgerstore "github.com/synclayer/synclayer/core/store/badger"

	"github.com/synclayer/synclayer/core/internal/sse"
	"github.com/synclayer/synclayer/core/store"
)

func openLayer(t *testing.T) store.Layer {
	t.Helper()
	st, err := badgerstore.Open(badgerstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db, err := st.Layer("l")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func appendEvents(t *testing.T, db store.Layer, types ...string) {
	t.Helper()
	es := make([]store.Event, len(types))
	for i, typ := range types {
		es[i] = store.Event{Type: typ, Message: "dial unix /tmp/plugin123/sock: refused"}
	}
	if err := db.AppendEvents(es); err != nil {
		t.Fatal(err)
	}
}

// frame is one message of a stream: its id and data, or a comment.
type frame struct {
	id      string
	data    store.Event
	comment string
}

// read yields the frames of a stream until it ends.
func read(t *testing.T, body *bufio.Reader, out chan<- frame) {
	defer close(out)
	var f frame
	has := false
	for {
		line, err := body.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if has {
				out <- f
			}
			f, has = frame{}, false
		case strings.HasPrefix(line, ":"):
			f.comment, has = strings.TrimSpace(line[1:]), true
		case strings.HasPrefix(line, "id: "):
			f.id, has = line[4:], true
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &f.data); err != nil {
				t.Errorf("data is not an event: %s", line)
			}
			has = true
		case strings.HasPrefix(line, "retry: "):
		default:
			t.Errorf("unexpected line %q", line)
		}
	}
}

func stream(t *testing.T, srv *httptest.Server, query string, header http.Header) (<-chan frame, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+query, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	ch := make(chan frame, 100)
	go read(t, bufio.NewReader(resp.Body), ch)
	return ch, resp
}

func next(t *testing.T, ch <-chan frame, skipComments bool) frame {
	t.Helper()
	for {
		select {
		case f, ok := <-ch:
			if !ok {
				t.Fatal("the stream ended")
			}
			if skipComments && f.id == "" {
				continue
			}
			return f
		case <-time.After(20 * time.Second):
			t.Fatal("no frame")
		}
	}
}

func ended(t *testing.T, ch <-chan frame) {
	t.Helper()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the stream did not end")
		}
	}
}

// TestStream: events go out in order with their seq as id, from where the
// client resumes, live as they are appended, with internals scrubbed;
// heartbeats fill silences; the stream ends at its lifetime and at stop.
func TestStream(t *testing.T) {
	db := openLayer(t)
	appendEvents(t, db, "a", "b", "c")
	stop := make(chan struct{})
	opts := sse.Options{Heartbeat: 50 * time.Millisecond, Lifetime: time.Hour}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		after, err := sse.Resume(r, db)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		o := opts
		if r.URL.Query().Get("short") != "" {
			o.Lifetime = 100 * time.Millisecond
		}
		sse.Serve(w, r.WithContext(sse.WithStop(r.Context(), stop)), db, after, o)
	}))
	defer srv.Close()

	// after=1: b and c, then d live.
	ch, _ := stream(t, srv, "/?after=1", nil)
	for _, want := range []string{"2 b", "3 c"} {
		f := next(t, ch, true)
		if got := f.id + " " + f.data.Type; got != want {
			t.Fatalf("frame %q, want %q", got, want)
		}
		if strings.Contains(f.data.Message, "/tmp/plugin123") {
			t.Errorf("an internal path reached the stream: %q", f.data.Message)
		}
	}
	appendEvents(t, db, "d")
	if f := next(t, ch, true); f.id != "4" || f.data.Type != "d" || f.data.Seq != 4 {
		t.Fatalf("live frame %+v", f)
	}
	// A silence brings heartbeats.
	if f := next(t, ch, false); f.comment != "heartbeat" {
		t.Fatalf("after a silence: %+v", f)
	}

	// Last-Event-ID wins over after.
	ch2, _ := stream(t, srv, "/?after=0", http.Header{"Last-Event-ID": {"3"}})
	if f := next(t, ch2, true); f.id != "4" {
		t.Fatalf("resumed at %s, want 4", f.id)
	}
	// No position: from now on.
	ch3, _ := stream(t, srv, "/", nil)
	if f := next(t, ch3, false); f.comment != "synclayer event log, after 4" {
		t.Fatalf("opening comment %q", f.comment)
	}
	appendEvents(t, db, "e")
	if f := next(t, ch3, true); f.id != "5" {
		t.Fatalf("from now on: first id %s, want 5", f.id)
	}

	// The lifetime ends a stream.
	short, _ := stream(t, srv, "/?after=5&short=1", nil)
	ended(t, short)

	// Stop ends every stream.
	close(stop)
	ended(t, ch)
	ended(t, ch2)
	ended(t, ch3)

	// A position that is no number.
	resp, err := srv.Client().Get(srv.URL + "/?after=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("after=x: %d", resp.StatusCode)
	}
}

// TestStreamBacklog: a backlog larger than one read goes out whole and in
// order.
func TestStreamBacklog(t *testing.T) {
	db := openLayer(t)
	types := make([]string, 450)
	for i := range types {
		types[i] = "t" + strconv.Itoa(i)
	}
	appendEvents(t, db, types...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sse.Serve(w, r.WithContext(ctx), db, 0, sse.Options{})
	}))
	defer srv.Close()
	ch, _ := stream(t, srv, "/", nil)
	for i := range types {
		f := next(t, ch, true)
		if f.id != strconv.Itoa(i+1) || f.data.Type != types[i] {
			t.Fatalf("frame %d: %+v", i, f)
		}
	}
	cancel()
}

// TestStreamLeavesConnectionUsable: once a stream ends, its connection
// serves the next request, however long after the last write it comes.
func TestStreamLeavesConnectionUsable(t *testing.T) {
	db := openLayer(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/plain" {
			w.Write([]byte("ok"))
			return
		}
		sse.Serve(w, r, db, 0, sse.Options{Lifetime: 50 * time.Millisecond, WriteTimeout: 20 * time.Millisecond})
	}))
	var newConns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			newConns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	resp, err := client.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	time.Sleep(100 * time.Millisecond) // past the last write's deadline
	resp, err = client.Get(srv.URL + "/plain")
	if err != nil {
		t.Fatalf("the next request on the connection: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := newConns.Load(); string(b) != "ok" || n != 1 {
		t.Fatalf("next answer %q over %d connection(s), want ok over 1", b, n)
	}
}
