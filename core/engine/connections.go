package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/internal/redact"
	"github.com/synclayer/synclayer/core/internal/seal"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

// Errors of the connection calls the API maps to statuses.
var (
	// ErrInvalid is bad input (400): a bad connection id, a config that
	// does not fit the connector's schema, a bad schedule.
	ErrInvalid = errors.New("invalid")
	// ErrExists: the connection exists already (409).
	ErrExists = errors.New("already exists")
)

// CheckError is a connection the connector's Check refused (422).
type CheckError struct{ Message string }

func (e *CheckError) Error() string { return "the connector's check failed: " + e.Message }

// Connection states.
const (
	ConnectionActive         = "active"
	ConnectionNeedsAttention = "needs_attention"
)

// Events of connections (SPEC §12), outbound and in the event log.
const (
	EventConnectionCreated        = "connection.created"
	EventConnectionDeleted        = "connection.deleted"
	EventConnectionNeedsAttention = "connection.needs_attention"
	EventConnectionRecovered      = "connection.recovered"
)

var connectionIDRe = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)

// conn is what the engine keeps in memory of a connection: enough to
// schedule it and to answer status calls without reading the store.
type conn struct {
	id     string
	every  map[string]time.Duration // schedule overrides by sync
	paused map[string]bool
	state  string
}

// ConnectionInput creates a connection.
type ConnectionInput struct {
	ID       string
	Config   json.RawMessage
	Metadata json.RawMessage
	Tags     map[string]string
	Every    map[string]string
	// NoCheck skips the connector's Check.
	NoCheck bool
}

// ConnectionPatch changes a connection: config fields are merged over the
// connection's (null unsets one), metadata keys over its metadata (null
// removes one), tags likewise; an Every of "" drops a sync's override.
type ConnectionPatch struct {
	Config   json.RawMessage
	Metadata json.RawMessage
	Tags     map[string]*string
	Every    map[string]string
}

// Connection is a connection as the API shows it: never a sensitive config
// field.
type Connection struct {
	ID        string            `json:"id"`
	Layer     string            `json:"layer"`
	Source    string            `json:"source"`
	Config    map[string]any    `json:"config"`
	Metadata  json.RawMessage   `json:"metadata"`
	Tags      map[string]string `json:"tags"`
	Every     map[string]string `json:"every,omitempty"`
	State     string            `json:"state"`
	Error     string            `json:"error,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	// Syncs is set by GetConnection: each sync's state, schedule, last
	// run and record counts.
	Syncs []ConnectionSync `json:"syncs,omitempty"`
}

// ConnectionSync is one sync of a connection.
type ConnectionSync struct {
	Name      string           `json:"name"`
	Models    []string         `json:"models"`
	State     string           `json:"state"`
	Every     string           `json:"every,omitempty"`
	NextRunAt *time.Time       `json:"next_run_at"`
	LastRun   *store.Run       `json:"last_run"`
	Records   map[string]int64 `json:"records"`
}

// ListOptions page and filter a list of connections.
type ListOptions struct {
	Tags  map[string]string
	After string
	Limit int
}

// connSource returns a source with connections.
func (e *Engine) connSource(layerName, sourceName string) (*layer, *source, error) {
	l, err := e.layer(layerName)
	if err != nil {
		return nil, nil, err
	}
	s := l.source(sourceName)
	if s == nil {
		return nil, nil, fmt.Errorf("%w %q in layer %q", ErrUnknownSource, sourceName, layerName)
	}
	if !s.cfg.Connections {
		return nil, nil, fmt.Errorf("%w: source %q has no connections (set connections = true in its block)", ErrUnknownSource, sourceName)
	}
	return l, s, nil
}

// sealAD binds a sealed config to its connection.
func sealAD(layer, source, id string) []byte { return []byte(layer + "\x00" + source + "\x00" + id) }

// sealerFor returns the host's sealer, making it on first use: from the
// service's encryption_key, else from a key file in the data directory.
func (e *Engine) sealerFor() (*seal.Sealer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sealer != nil {
		return e.sealer, nil
	}
	secret := []byte(e.cfg.Service.EncryptionKey)
	if len(secret) == 0 {
		// Beside the data it protects (the store's folder is data_dir,
		// or what --data-dir says).
		dir := e.store.Dir()
		if dir == "" {
			// Hosts sharing one database (replicas) must seal with one
			// key: a file beside one host's data would differ per host.
			return nil, errors.New("connection configs are sealed with the service's encryption_key, which this store driver requires: set encryption_key in the service block (the same on every host)")
		}
		var created bool
		var err error
		secret, created, err = seal.LoadOrCreateKey(dir)
		if err != nil {
			return nil, fmt.Errorf("connection key: %w", err)
		}
		if created {
			e.log.Warn("created a key file to encrypt connection configs at rest; back it up with the data, or set encryption_key in the service block",
				"path", filepath.Join(dir, seal.KeyFile))
		}
	}
	s, err := seal.New(secret)
	if err != nil {
		return nil, err
	}
	e.sealer = s
	return s, nil
}

// loadConnections reads a source's connections into memory.
func (s *source) loadConnections() error {
	conns := map[string]*conn{}
	err := s.l.db.Connections(s.cfg.Name, "", func(c *store.Connection) bool {
		conns[c.ID] = memConn(c)
		return true
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.conns = conns
	s.mu.Unlock()
	return nil
}

func memConn(c *store.Connection) *conn {
	m := &conn{id: c.ID, state: c.State, every: map[string]time.Duration{}, paused: map[string]bool{}}
	for k, v := range c.Every {
		if d, err := time.ParseDuration(v); err == nil {
			m.every[k] = d
		}
	}
	for _, y := range c.Paused {
		m.paused[y] = true
	}
	return m
}

func (s *source) hasConnection(id string) bool {
	s.mu.Lock()
	_, ok := s.conns[id]
	s.mu.Unlock()
	if ok || s.l.e.cluster.Load() == nil {
		return ok
	}
	// Another host may have created it: the store has every host's.
	c, err := s.l.db.GetConnection(s.cfg.Name, id)
	if err != nil {
		return false
	}
	s.mu.Lock()
	if _, ok := s.conns[id]; !ok {
		s.conns[id] = memConn(c)
	}
	s.mu.Unlock()
	return true
}

// connectionIDs lists the source's connections, sorted. With a cluster,
// the other hosts' creations and deletions are read from the store first.
func (s *source) connectionIDs() []string {
	if s.l.e.cluster.Load() != nil {
		if err := s.loadConnections(); err != nil {
			s.log.Warn("could not reread the connections from the store; using what this host knows", "error", err)
		}
	}
	s.mu.Lock()
	ids := make([]string, 0, len(s.conns))
	for id := range s.conns {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	sort.Strings(ids)
	return ids
}

// openConfig returns a connection's own config (its overrides), decrypted.
func (s *source) openConfig(c *store.Connection) ([]byte, error) {
	sl, err := s.l.e.sealerFor()
	if err != nil {
		return nil, err
	}
	return sl.Open(c.Config, sealAD(s.l.cfg.Name, s.cfg.Name, c.ID))
}

// connectionConfig returns the config a run of a connection uses: the
// source's block with the connection's fields merged over it, and a
// redactor for the connection's secrets.
func (s *source) connectionConfig(id string) ([]byte, *redact.Redactor, error) {
	c, err := s.l.db.GetConnection(s.cfg.Name, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w %q of source %q (deleted)", ErrUnknownConnection, id, s.cfg.Name)
	}
	if err != nil {
		return nil, nil, err
	}
	own, err := s.openConfig(c)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	raw, desc := s.configRaw, s.desc
	s.mu.Unlock()
	merged, err := config.MergeConnectionConfig(desc.Config, raw, own)
	if err != nil {
		return nil, nil, fmt.Errorf("connection %q: %w", id, err)
	}
	rd := redact.New()
	rd.Add(config.SensitiveJSONValues(desc.Config, own)...)
	return merged, rd, nil
}

// CreateConnection creates a connection of a source (SPEC §12): its config
// is checked against the connector's schema and by the connector's Check
// (unless in.NoCheck), sealed and stored; a first full run is queued.
func (e *Engine) CreateConnection(ctx context.Context, layerName, sourceName string, in ConnectionInput) (*Connection, error) {
	l, s, err := e.connSource(layerName, sourceName)
	if err != nil {
		return nil, err
	}
	if !connectionIDRe.MatchString(in.ID) {
		return nil, fmt.Errorf("%w: a connection id is 1 to 128 characters of A-Z, a-z, 0-9 and . _ : @ -", ErrInvalid)
	}
	if _, err := parseEvery(s, in.Every); err != nil {
		return nil, err
	}
	meta, err := objectOrEmpty("metadata", in.Metadata)
	if err != nil {
		return nil, err
	}
	own, err := objectOrEmpty("config", in.Config)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	raw, desc := s.configRaw, s.desc
	_, exists := s.conns[in.ID]
	s.mu.Unlock()
	if desc == nil {
		return nil, fmt.Errorf("%w: source %q has not been described yet", ErrNotReady, sourceName)
	}
	if exists {
		return nil, fmt.Errorf("%w: connection %q of source %q", ErrExists, in.ID, sourceName)
	}
	merged, err := config.MergeConnectionConfig(desc.Config, raw, own)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, err)
	}
	rd := redact.New()
	rd.Add(config.SensitiveJSONValues(desc.Config, own)...)
	if !in.NoCheck {
		inst, release, err := s.acquire(ctx)
		if err != nil {
			return nil, err
		}
		err = inst.Check(ctx, layerName, sourceName, merged)
		release()
		if err != nil {
			var ce *plugin.ConnectorError
			if errors.As(err, &ce) {
				return nil, &CheckError{Message: rd.Replace(e.redact.Replace(ce.Message))}
			}
			return nil, fmt.Errorf("check connection %q: %s", in.ID, rd.Replace(e.redact.Replace(err.Error())))
		}
	}
	sl, err := e.sealerFor()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	sc := &store.Connection{Source: sourceName, ID: in.ID, Config: sl.Seal(own, sealAD(layerName, sourceName, in.ID)),
		Metadata: meta, Tags: in.Tags, Every: in.Every, State: ConnectionActive, CreatedAt: now, UpdatedAt: now}
	ev := l.connectionEvent(EventConnectionCreated, sc)
	if err := l.db.PutConnection(sc, true, l.deliveries(ev, false)...); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("%w: connection %q of source %q", ErrExists, in.ID, sourceName)
		}
		return nil, err
	}
	mc := memConn(sc) // its schedule overrides from sc.Every, checked above
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[string]*conn{}
	}
	s.conns[in.ID] = mc
	s.mu.Unlock()
	l.scheduleConnection(s, mc, true)
	l.audit("connection.created", map[string]string{"source": sourceName, "connection": in.ID})
	l.event(store.Event{Type: EventConnectionCreated, Source: sourceName, Connection: in.ID})
	if _, err := e.Trigger(layerName, TriggerRequest{Source: sourceName, Connection: in.ID, Trigger: TriggerConfig}); err != nil {
		l.log.Error("could not queue the first run of a connection", "source", sourceName, "connection", in.ID, "error", err)
	}
	return s.view(sc, own), nil
}

// objectOrEmpty checks that raw is a JSON object (or absent) and returns it.
func objectOrEmpty(what string, raw json.RawMessage) ([]byte, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return []byte("{}"), nil
	}
	var m map[string]json.RawMessage
	if t[0] != '{' || json.Unmarshal(t, &m) != nil {
		return nil, fmt.Errorf("%w: %s must be a JSON object", ErrInvalid, what)
	}
	return t, nil
}

// mergeObject merges the keys of patch over base (null removes a key).
func mergeObject(what string, base, patch []byte) ([]byte, error) {
	var b, p map[string]json.RawMessage
	if len(bytes.TrimSpace(base)) > 0 {
		if err := json.Unmarshal(base, &b); err != nil {
			return nil, err
		}
	}
	if b == nil {
		b = map[string]json.RawMessage{}
	}
	if err := json.Unmarshal(patch, &p); err != nil || p == nil {
		return nil, fmt.Errorf("%w: %s must be a JSON object", ErrInvalid, what)
	}
	for k, v := range p {
		if string(bytes.TrimSpace(v)) == "null" {
			delete(b, k)
		} else {
			b[k] = v
		}
	}
	return json.Marshal(b)
}

// parseEvery checks per-sync schedule overrides.
func parseEvery(s *source, every map[string]string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	s.mu.Lock()
	desc := s.desc
	s.mu.Unlock()
	for name, v := range every {
		if desc != nil && desc.Sync(name) == nil {
			return nil, fmt.Errorf("%w: every: source %q has no sync %q", ErrInvalid, s.cfg.Name, name)
		}
		if v == "" {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return nil, fmt.Errorf("%w: every.%s must be a duration of at least 1s, like \"1h\"", ErrInvalid, name)
		}
		out[name] = d
	}
	return out, nil
}

// view shapes a stored connection for answers: sensitive fields left out.
func (s *source) view(c *store.Connection, own []byte) *Connection {
	v := &Connection{ID: c.ID, Layer: s.l.cfg.Name, Source: c.Source, Config: map[string]any{}, Metadata: c.Metadata,
		Tags: c.Tags, Every: c.Every, State: c.State, Error: c.Error, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if v.Metadata == nil {
		v.Metadata = json.RawMessage("{}")
	}
	if v.Tags == nil {
		v.Tags = map[string]string{}
	}
	s.mu.Lock()
	desc := s.desc
	s.mu.Unlock()
	var sensitive map[string]bool
	if desc != nil {
		sensitive = config.SensitiveFields(desc.Config)
	}
	var obj map[string]any
	if json.Unmarshal(own, &obj) == nil {
		for k, x := range obj {
			if !sensitive[k] {
				v.Config[k] = x
			}
		}
	}
	return v
}

// viewStored decrypts and shapes a stored connection.
func (s *source) viewStored(c *store.Connection) (*Connection, error) {
	own, err := s.openConfig(c)
	if err != nil {
		return nil, err
	}
	return s.view(c, own), nil
}

// ListConnections lists a source's connections in id order, filtered by
// tags; next is the id to pass as After for the next page ("" at the end).
func (e *Engine) ListConnections(layerName, sourceName string, opts ListOptions) (out []*Connection, next string, err error) {
	_, s, err := e.connSource(layerName, sourceName)
	if err != nil {
		return nil, "", err
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = 100
	}
	out = []*Connection{}
	var ferr error
	err = s.l.db.Connections(sourceName, opts.After, func(c *store.Connection) bool {
		for k, v := range opts.Tags {
			if c.Tags[k] != v {
				return true
			}
		}
		if len(out) == limit {
			next = out[len(out)-1].ID
			return false
		}
		v, err := s.viewStored(c)
		if err != nil {
			ferr = err
			return false
		}
		out = append(out, v)
		return true
	})
	if err == nil {
		err = ferr
	}
	return out, next, err
}

// GetConnection returns one connection with the state of each of its syncs.
func (e *Engine) GetConnection(layerName, sourceName, id string) (*Connection, error) {
	l, s, err := e.connSource(layerName, sourceName)
	if err != nil {
		return nil, err
	}
	c, err := l.db.GetConnection(sourceName, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w %q of source %q", ErrUnknownConnection, id, sourceName)
	}
	if err != nil {
		return nil, err
	}
	v, err := s.viewStored(c)
	if err != nil {
		return nil, err
	}
	v.Syncs = l.connectionSyncs(s, c)
	return v, nil
}

// connectionSyncs reports each sync of a connection.
func (l *layer) connectionSyncs(s *source, c *store.Connection) []ConnectionSync {
	s.mu.Lock()
	desc := s.desc
	mc := s.conns[c.ID]
	s.mu.Unlock()
	if desc == nil {
		return nil
	}
	counts := map[string]int64{}
	if snap, ok, err := l.db.OpenSnapshot(0); err == nil && ok {
		if mcs, err := snap.CountSource(store.SourceKey(s.cfg.Name, c.ID)); err == nil {
			for _, m := range mcs {
				counts[m.Model] = m.Live
			}
		}
		snap.Close()
	}
	var out []ConnectionSync
	for _, y := range desc.Syncs {
		ref := store.SyncRef{Source: s.cfg.Name, Sync: y.Name, Connection: c.ID}
		models := y.Models
		if b := s.cfg.Sync(y.Name); b != nil && len(b.Models) > 0 {
			models = b.Models
		}
		cs := ConnectionSync{Name: y.Name, Models: models, State: l.runState(ref), Records: map[string]int64{}}
		for _, m := range models {
			cs.Records[m] = counts[m]
		}
		if cs.State == SyncIdle && slices.Contains(c.Paused, y.Name) {
			cs.State = SyncPaused
		}
		if sc, ok := l.connSchedule(s, mc, y.Name); ok {
			if sc.every > 0 {
				cs.Every = sc.every.String()
			} else {
				cs.Every = sc.expr
			}
		}
		if t, ok := l.nextRun(ref); ok {
			t := t.UTC()
			cs.NextRunAt = &t
		}
		if id := c.LastRuns[y.Name]; id != "" {
			if r, err := l.db.GetRun(id); err == nil {
				cs.LastRun = r
			}
		}
		out = append(out, cs)
	}
	return out
}

// UpdateConnection changes a connection (ConnectionPatch). A changed config
// queues a full run; changed schedules take effect at once.
func (e *Engine) UpdateConnection(layerName, sourceName, id string, in ConnectionPatch) (*Connection, error) {
	l, s, err := e.connSource(layerName, sourceName)
	if err != nil {
		return nil, err
	}
	s.connMu.Lock()
	defer s.connMu.Unlock()
	c, err := l.db.GetConnection(sourceName, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w %q of source %q", ErrUnknownConnection, id, sourceName)
	}
	if err != nil {
		return nil, err
	}
	own, err := s.openConfig(c)
	if err != nil {
		return nil, err
	}
	configChanged := false
	if t := bytes.TrimSpace(in.Config); len(t) > 0 && string(t) != "null" {
		next, err := mergeObject("config", own, t)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		raw, desc := s.configRaw, s.desc
		s.mu.Unlock()
		if _, err := config.MergeConnectionConfig(desc.Config, raw, next); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrInvalid, err)
		}
		if !jsonEqual(next, own) {
			configChanged = true
			own = next
			sl, err := e.sealerFor()
			if err != nil {
				return nil, err
			}
			c.Config = sl.Seal(own, sealAD(layerName, sourceName, id))
		}
	}
	if t := bytes.TrimSpace(in.Metadata); len(t) > 0 && string(t) != "null" {
		if c.Metadata, err = mergeObject("metadata", c.Metadata, t); err != nil {
			return nil, err
		}
	}
	if len(in.Tags) > 0 {
		if c.Tags == nil {
			c.Tags = map[string]string{}
		}
		for k, v := range in.Tags {
			if v == nil {
				delete(c.Tags, k)
			} else {
				c.Tags[k] = *v
			}
		}
	}
	var every map[string]time.Duration
	if len(in.Every) > 0 {
		if _, err := parseEvery(s, in.Every); err != nil {
			return nil, err
		}
		if c.Every == nil {
			c.Every = map[string]string{}
		}
		for k, v := range in.Every {
			if v == "" {
				delete(c.Every, k)
			} else {
				c.Every[k] = v
			}
		}
		every, _ = parseEvery(s, c.Every)
	}
	c.UpdatedAt = time.Now().UTC()
	if err := l.db.PutConnection(c, false); err != nil {
		return nil, err
	}
	s.mu.Lock()
	mc := s.conns[id]
	if mc != nil && every != nil {
		mc.every = every
	}
	s.mu.Unlock()
	if mc != nil && every != nil {
		l.scheduleConnection(s, mc, false)
	}
	l.audit("connection.updated", map[string]string{"source": sourceName, "connection": id, "config_changed": fmt.Sprint(configChanged)})
	if configChanged {
		if _, err := e.Trigger(layerName, TriggerRequest{Source: sourceName, Connection: id, Trigger: TriggerConfig}); err != nil {
			l.log.Error("could not queue the full run of a changed connection", "source", sourceName, "connection", id, "error", err)
		}
	}
	return s.view(c, own), nil
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ab, _ := json.Marshal(x)
	bb, _ := json.Marshal(y)
	return bytes.Equal(ab, bb)
}

// errConnectionDeleted cancels the runs of a connection being deleted.
var errConnectionDeleted = errors.New("the connection was deleted during the run")

// DeleteConnection deletes a connection: its schedule stops, its waiting
// runs are dropped and its running ones cancelled, then its records are
// deleted (soft) in one revision together with its checkpoints.
func (e *Engine) DeleteConnection(ctx context.Context, layerName, sourceName, id string) (store.Revision, error) {
	l, s, err := e.connSource(layerName, sourceName)
	if err != nil {
		return store.Revision{}, err
	}
	s.connMu.Lock()
	c, err := l.db.GetConnection(sourceName, id)
	if err == nil {
		s.mu.Lock()
		delete(s.conns, id)
		s.mu.Unlock()
	}
	// Not held while its runs end: they record their outcome on it.
	s.connMu.Unlock()
	if errors.Is(err, store.ErrNotFound) {
		return store.Revision{}, fmt.Errorf("%w %q of source %q", ErrUnknownConnection, id, sourceName)
	}
	if err != nil {
		return store.Revision{}, err
	}
	l.unscheduleConnection(s.cfg.Name, id)
	var dropped []*pending
	if c := e.cluster.Load(); c != nil {
		// Its runs waiting in River, or running on any host (their
		// context's cause is cluster.ErrCancelled there).
		if _, err := c.CancelConnection(ctx, layerName, sourceName, id); err != nil {
			l.log.Error("could not cancel the runs of a deleted connection on the other hosts", "connection", id, "error", err)
		}
		dropped = l.queuedRunsOf(sourceName, id)
	}
	// Its waiting runs go; its running ones are cancelled and waited for,
	// so that none publishes after the delete.
	var wait []*pending
	now := time.Now().UTC()
	l.mu.Lock()
	kept := l.queue[:0:0]
	for _, p := range l.queue {
		if connectionOf(p.run.Syncs) == id && p.run.Syncs[0].Source == sourceName {
			dropped = append(dropped, p)
			l.unindexWaiting(p)
			continue
		}
		kept = append(kept, p)
	}
	l.queue = kept
	for _, p := range l.running {
		if connectionOf(p.run.Syncs) == id && p.run.Syncs[0].Source == sourceName {
			wait = append(wait, p)
			if p.cancel != nil {
				p.cancel(errConnectionDeleted)
			}
		}
	}
	l.mu.Unlock()
	for _, p := range dropped {
		p.run.State, p.run.Error, p.run.FinishedAt = store.RunFailed, errConnectionDeleted.Error(), &now
		if err := l.db.PutRun(p.run); err != nil {
			l.log.Error("could not record a dropped run", "run", p.run.ID, "error", err)
		}
	}
	for _, p := range wait {
		select {
		case <-p.done:
		case <-ctx.Done():
			return store.Revision{}, ctx.Err()
		}
	}
	info := store.PublishInfo{Trigger: TriggerManual, Sources: []string{sourceName},
		Announce: func(rev store.Revision) []store.Delivery {
			ev := l.connectionEvent(EventConnectionDeleted, c)
			ev.Revision = rev.Number
			return l.deliveries(ev, false)
		}}
	s.connMu.Lock()
	rev, err := l.db.DeleteConnection(info, sourceName, id)
	s.connMu.Unlock()
	if err != nil {
		return store.Revision{}, err
	}
	// A connection created again with this id starts afresh (INITIAL).
	var marks []string
	s.mu.Lock()
	if s.desc != nil {
		for _, y := range s.desc.Syncs {
			marks = append(marks, syncedKey(store.SyncRef{Source: sourceName, Sync: y.Name, Connection: id}))
		}
	}
	s.mu.Unlock()
	if err := l.db.DeleteMeta(marks...); err != nil {
		l.log.Error("could not drop the synced markers of a deleted connection", "connection", id, "error", err)
	}
	l.audit("connection.deleted", map[string]string{"source": sourceName, "connection": id, "revision": fmt.Sprint(rev.Number)})
	l.event(store.Event{Type: EventConnectionDeleted, Source: sourceName, Connection: id, Message: fmt.Sprintf("revision %d", rev.Number)})
	l.countRecords(rev.Counts)
	return rev, nil
}

// PauseConnection stops (paused) or restarts the schedule of one sync of a
// connection, or of all its syncs when sync is "".
func (e *Engine) PauseConnection(layerName, sourceName, id, syncName string, paused bool) error {
	l, s, err := e.connSource(layerName, sourceName)
	if err != nil {
		return err
	}
	s.connMu.Lock()
	defer s.connMu.Unlock()
	c, err := l.db.GetConnection(sourceName, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w %q of source %q", ErrUnknownConnection, id, sourceName)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	desc := s.desc
	s.mu.Unlock()
	var syncs []string
	for _, y := range desc.Syncs {
		if syncName == "" || y.Name == syncName {
			syncs = append(syncs, y.Name)
		}
	}
	if len(syncs) == 0 {
		return fmt.Errorf("%w %q in source %q", ErrUnknownSync, syncName, sourceName)
	}
	set := map[string]bool{}
	for _, y := range c.Paused {
		set[y] = true
	}
	for _, y := range syncs {
		set[y] = paused
	}
	c.Paused = nil
	for y, p := range set {
		if p {
			c.Paused = append(c.Paused, y)
		}
	}
	sort.Strings(c.Paused)
	c.UpdatedAt = time.Now().UTC()
	if err := l.db.PutConnection(c, false); err != nil {
		return err
	}
	s.mu.Lock()
	mc := s.conns[id]
	if mc != nil {
		for _, y := range syncs {
			mc.paused[y] = paused
		}
	}
	s.mu.Unlock()
	if l.e.clusterOpts != nil {
		for _, y := range syncs {
			sc, ok := l.connSchedule(s, mc, y)
			if err := l.putSchedule(store.SyncRef{Source: sourceName, Sync: y, Connection: id}, sc, ok && !paused, time.Time{}); err != nil {
				return err
			}
		}
	}
	action := "sync.resumed"
	if paused {
		action = "sync.paused"
	}
	l.audit(action, map[string]string{"source": sourceName, "connection": id, "sync": strings.Join(syncs, ",")})
	l.event(store.Event{Type: action, Source: sourceName, Connection: id, Sync: strings.Join(syncs, ",")})
	return nil
}

// connectionEvent is the outbound event of a connection.
func (l *layer) connectionEvent(typ string, c *store.Connection) *outEvent {
	src, id := c.Source, c.ID
	ev := &outEvent{Type: typ, ID: newID("evt"), Layer: l.cfg.Name, Source: &src, Connection: &id}
	if c.Error != "" && typ == EventConnectionNeedsAttention {
		ev.Error = c.Error
	}
	return ev
}

// afterConnectionRun records a connection run's outcome on the connection:
// its last run per sync, and its state: an authentication failure makes it
// need attention, a success after that makes it recover.
func (l *layer) afterConnectionRun(p *pending, runErr error) {
	id := connectionOf(p.run.Syncs)
	if id == "" {
		return
	}
	s := l.source(p.run.Syncs[0].Source)
	if s == nil {
		return
	}
	s.connMu.Lock()
	defer s.connMu.Unlock()
	c, err := l.db.GetConnection(s.cfg.Name, id)
	if err != nil {
		return // deleted meanwhile
	}
	if c.LastRuns == nil {
		c.LastRuns = map[string]string{}
	}
	for _, r := range p.run.Syncs {
		c.LastRuns[r.Sync] = p.run.ID
	}
	var ev *outEvent
	switch {
	case runErr != nil && plugin.IsUnauthorized(runErr) && c.State != ConnectionNeedsAttention:
		c.State, c.Error = ConnectionNeedsAttention, l.e.redact.Replace(runErr.Error())
		ev = l.connectionEvent(EventConnectionNeedsAttention, c)
	case runErr == nil && c.State == ConnectionNeedsAttention:
		c.State, c.Error = ConnectionActive, ""
		ev = l.connectionEvent(EventConnectionRecovered, c)
	}
	var ds []store.Delivery
	if ev != nil {
		ev.Run = p.run.ID
		ds = l.deliveries(ev, false)
		c.UpdatedAt = time.Now().UTC()
	}
	if err := l.db.PutConnection(c, false, ds...); err != nil {
		l.log.Error("could not record a connection's run", "connection", id, "error", err)
		return
	}
	if ev != nil {
		s.mu.Lock()
		if mc := s.conns[id]; mc != nil {
			mc.state = c.State
		}
		s.mu.Unlock()
		l.event(store.Event{Type: ev.Type, Source: s.cfg.Name, Connection: id, Run: p.run.ID, Message: c.Error})
	}
}
