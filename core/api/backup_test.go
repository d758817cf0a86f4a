package api_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	badgerstore "github.com/synclayer/synclayer/core/store/badger"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synclayer/synclayer/core/api"
	"github.com/synclayer/synclayer/core/store"
)

// GET /v1/backup streams a backup of every layer to the admin token only;
// it restores into an empty store with the same records.
func TestBackupRoute(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	st, err := badgerstore.Open(badgerstore.Options{Dir: t.TempDir(), EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := st.Layer("cat")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook", Sources: []string{"blog"}}, []store.Batch{{Source: "blog", Changes: []store.Change{
		{Model: "Post", ID: "p1", Data: []byte(`{"id":"p1","title":"One"}`)},
		{Model: "Post", ID: "p2", Data: []byte(`{"id":"p2","title":"Two"}`)},
	}}}); err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Options{Registry: prometheus.NewRegistry(), AdminToken: "admin-token", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(token string) *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/backup", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, tok := range []string{"", "wrong"} {
		resp := get(tok)
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("backup with token %q: %d", tok, resp.StatusCode)
		}
	}
	resp := get("admin-token")
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("backup: %d, %v", resp.StatusCode, err)
	}
	if resp.Header.Get("X-Synclayer-Layers") != "cat" || resp.Header.Get("X-Synclayer-Backup-Encrypted") != "true" {
		t.Fatalf("headers %v", resp.Header)
	}
	if bytes.Contains(body, []byte("One")) {
		t.Fatal("the backup holds a record in clear")
	}
	st2, err := badgerstore.Open(badgerstore.Options{Dir: t.TempDir(), EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if names, err := st2.Restore(bytes.NewReader(body)); err != nil || strings.Join(names, ",") != "cat" {
		t.Fatalf("restore = %v, %v", names, err)
	}
	l2, _ := st2.Layer("cat")
	var got []string
	if _, err := l2.Records(store.Query{}, func(b []byte) error { got = append(got, string(b)); return nil }); err != nil || len(got) != 2 || !strings.Contains(got[1], `"Two"`) {
		t.Fatalf("restored records %v, %v", got, err)
	}

	// A backup that cannot start answers the error object.
	st.Close()
	resp = get("admin-token")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(b), "backup_failed") {
		t.Fatalf("backup of a closed store: %d %s", resp.StatusCode, b)
	}
}

// A store driver without backups of its own (PostgreSQL) answers 501 and
// names the database's tools.
func TestBackupRouteWithoutBackuper(t *testing.T) {
	st, err := badgerstore.Open(badgerstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Only store.Store's methods: not a store.Backuper.
	plain := struct{ store.Store }{st}
	h, err := api.New(api.Options{Registry: prometheus.NewRegistry(), AdminToken: "admin-token", Store: plain})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/backup", nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 501 || !strings.Contains(string(body), "backup_unsupported") || !strings.Contains(string(body), "pg_dump") {
		t.Fatalf("backup without a Backuper: %d %s", resp.StatusCode, body)
	}
}
