package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Config configures a Receiver.
type Config struct {
	// Secret is the notify block's secret: whsec_ and base64.
	Secret string
	// StateDir holds one cursor file per layer.
	StateDir string
	// API is synclayer's address; Token a read token (or the admin token)
	// for the records API, if the host needs one.
	API, Token string
	// Apply hands one record (with its _metadata) to the app. An error
	// stops the pull before the cursor moves past the record's page.
	Apply func(layer string, record json.RawMessage) error
	// Logf logs; nil: silent.
	Logf func(format string, args ...any)
	// Client reads the records API; nil: a client with a 1-minute timeout.
	Client *http.Client
	// PageSize is how many records one request reads; 0: 1000.
	PageSize int
	// RetryEvery is how soon a failed pull runs again; 0: 5 s.
	RetryEvery time.Duration
}

// Receiver verifies synclayer's webhooks and pulls the changes they
// announce. It is an http.Handler for the webhook path.
type Receiver struct {
	cfg Config
	wh  *standardwebhooks.Webhook

	mu    sync.Mutex
	wake  map[string]bool // layers that need a pull
	sig   chan struct{}
	pulls map[string]*sync.Mutex
}

// maxBody bounds a webhook's body.
const maxBody = 1 << 20

var layerName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// New checks the configuration and builds a Receiver.
func New(cfg Config) (*Receiver, error) {
	if !strings.HasPrefix(cfg.Secret, "whsec_") {
		return nil, errors.New("the webhook secret must be the notify block's secret, whsec_ followed by base64 (set SYNCLAYER_WEBHOOK_SECRET)")
	}
	wh, err := standardwebhooks.NewWebhook(cfg.Secret)
	if err != nil {
		return nil, errors.New("the webhook secret is not whsec_ followed by standard base64")
	}
	if cfg.Apply == nil {
		return nil, errors.New("no Apply function")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: time.Minute}
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 1000
	}
	if cfg.RetryEvery <= 0 {
		cfg.RetryEvery = 5 * time.Second
	}
	return &Receiver{cfg: cfg, wh: wh, wake: map[string]bool{}, sig: make(chan struct{}, 1), pulls: map[string]*sync.Mutex{}}, nil
}

// ServeHTTP takes one webhook: 401 unless its signature (and timestamp,
// within 5 minutes) verifies; 204 once verified, after waking the puller
// on sync.completed.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
	if err != nil {
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	if len(body) > maxBody {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.cfg.Logf("rejected a webhook: %v", err)
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	var ev struct {
		Type  string `json:"type"`
		ID    string `json:"id"`
		Layer string `json:"layer"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "not a synclayer event", http.StatusBadRequest)
		return
	}
	r.cfg.Logf("event %s %s (layer %s)", ev.Type, ev.ID, ev.Layer)
	if ev.Type == "sync.completed" && layerName.MatchString(ev.Layer) {
		r.Wake(ev.Layer)
	}
	w.WriteHeader(http.StatusNoContent)
}

// Wake asks for a pull of a layer. Wakes that come while one waits merge.
func (r *Receiver) Wake(layer string) {
	r.mu.Lock()
	r.wake[layer] = true
	r.mu.Unlock()
	select {
	case r.sig <- struct{}{}:
	default:
	}
}

// Run pulls the layers given, then every layer woken, until ctx ends. A
// pull that fails is tried again after RetryEvery.
func (r *Receiver) Run(ctx context.Context, layers []string) {
	for _, l := range layers {
		r.Wake(l)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.sig:
		}
		r.mu.Lock()
		todo := r.wake
		r.wake = map[string]bool{}
		r.mu.Unlock()
		for layer := range todo {
			n, err := r.Pull(ctx, layer)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r.cfg.Logf("pull of layer %s failed after %d records, trying again in %s: %v", layer, n, r.cfg.RetryEvery, err)
				time.AfterFunc(r.cfg.RetryEvery, func() { r.Wake(layer) })
				continue
			}
			r.cfg.Logf("pulled %d changed records of layer %s", n, layer)
		}
	}
}

type recordsPage struct {
	Records []json.RawMessage `json:"records"`
	Next    *string           `json:"next_cursor"`
	Rev     int64             `json:"revision"`
}

// Pull applies every record changed since the layer's cursor, in cursor
// order, and moves the cursor on disk after each page. It returns how many
// records it applied.
func (r *Receiver) Pull(ctx context.Context, layer string) (int, error) {
	if !layerName.MatchString(layer) {
		return 0, fmt.Errorf("invalid layer name %q", layer)
	}
	r.mu.Lock()
	lock := r.pulls[layer]
	if lock == nil {
		lock = &sync.Mutex{}
		r.pulls[layer] = lock
	}
	r.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()

	cursor, err := r.Cursor(layer)
	if err != nil {
		return 0, err
	}
	applied := 0
	rev := int64(0)
	for {
		q := url.Values{"limit": {strconv.Itoa(r.cfg.PageSize)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if rev > 0 {
			// Stay on the revision the walk started on (SPEC §5).
			q.Set("revision", strconv.FormatInt(rev, 10))
		}
		page, status, err := r.get(ctx, "/v1/layers/"+url.PathEscape(layer)+"/records?"+q.Encode())
		if status == http.StatusGone && rev > 0 {
			rev = 0 // the revision is no longer kept: go on from the newest
			continue
		}
		if err != nil {
			return applied, err
		}
		last := ""
		for _, rec := range page.Records {
			var meta struct {
				Metadata struct {
					Cursor string `json:"cursor"`
				} `json:"_metadata"`
			}
			if err := json.Unmarshal(rec, &meta); err != nil || meta.Metadata.Cursor == "" {
				return applied, fmt.Errorf("a record without _metadata.cursor: %.200s", rec)
			}
			if err := r.cfg.Apply(layer, rec); err != nil {
				return applied, fmt.Errorf("apply: %w", err)
			}
			applied++
			last = meta.Metadata.Cursor
		}
		if last != "" {
			if err := r.saveCursor(layer, last); err != nil {
				return applied, err
			}
			cursor = last
		}
		if page.Next == nil {
			return applied, nil
		}
		rev = page.Rev
	}
}

func (r *Receiver) get(ctx context.Context, path string) (*recordsPage, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(r.cfg.API, "/")+path, nil)
	if err != nil {
		return nil, 0, err
	}
	if r.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.cfg.Token)
	}
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return nil, resp.StatusCode, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	var p recordsPage
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: %w", path, err)
	}
	return &p, resp.StatusCode, nil
}

func (r *Receiver) cursorPath(layer string) string {
	return filepath.Join(r.cfg.StateDir, layer+".cursor")
}

// Cursor is the cursor of the last record applied from a layer ("" before
// the first).
func (r *Receiver) Cursor(layer string) (string, error) {
	b, err := os.ReadFile(r.cursorPath(layer))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}

// saveCursor replaces the cursor file atomically: a crash leaves either the
// old cursor or the new one, never a torn file.
func (r *Receiver) saveCursor(layer, cursor string) error {
	path := r.cursorPath(layer)
	f, err := os.CreateTemp(r.cfg.StateDir, "."+layer+".cursor-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.WriteString(cursor + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save the cursor of layer %s: %w", layer, err)
	}
	// Make the rename itself durable.
	if d, err := os.Open(r.cfg.StateDir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
