package engine

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/synclayer/synclayer/core/cluster"
	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/store"
)

// Sync states, as the API shows them.
const (
	SyncIdle    = "idle"
	SyncQueued  = "queued"
	SyncRunning = "running"
	SyncPaused  = "paused"
)

// LayerStatus is what GET /v1/layers/{layer} shows.
type LayerStatus struct {
	Name     string         `json:"name"`
	Sources  []SourceStatus `json:"sources"`
	Revision int64          `json:"revision"`
	Pinned   *int64         `json:"pinned"`
	// Connections counts the connections of the layer's sources with
	// connections, by state (absent when it has none).
	Connections map[string]int `json:"connections,omitempty"`
}

// SourceStatus is one source of a layer.
type SourceStatus struct {
	Name   string       `json:"name"`
	Plugin string       `json:"plugin"`
	Syncs  []SyncStatus `json:"syncs"`
	// Connections counts the connections of a source with connections,
	// by state.
	Connections map[string]int `json:"connections,omitempty"`
}

// SyncStatus is one sync of a source.
type SyncStatus struct {
	Name   string   `json:"name"`
	Models []string `json:"models"`
	State  string   `json:"state"`
}

// Layer returns the status of a layer.
func (e *Engine) Layer(name string) (*LayerStatus, error) {
	l, err := e.layer(name)
	if err != nil {
		return nil, err
	}
	st := &LayerStatus{Name: name, Sources: []SourceStatus{}}
	if rev, ok := l.db.Current(); ok {
		st.Revision = rev.Number
	}
	if p := l.db.Pinned(); p != 0 {
		st.Pinned = &p
	}
	for _, s := range l.sources {
		ss := SourceStatus{Name: s.cfg.Name, Plugin: s.cfg.Plugin, Syncs: []SyncStatus{}}
		if s.cfg.Connections {
			ss.Connections = map[string]int{ConnectionActive: 0, ConnectionNeedsAttention: 0}
			if st.Connections == nil {
				st.Connections = map[string]int{ConnectionActive: 0, ConnectionNeedsAttention: 0}
			}
			s.mu.Lock()
			for _, c := range s.conns {
				ss.Connections[c.state]++
				st.Connections[c.state]++
			}
			s.mu.Unlock()
		}
		s.mu.Lock()
		desc := s.desc
		s.mu.Unlock()
		if desc != nil {
			for _, y := range desc.Syncs {
				ref := store.SyncRef{Source: s.cfg.Name, Sync: y.Name}
				state := l.runState(ref)
				if state == SyncIdle && l.paused(ref) {
					state = SyncPaused
				}
				models := y.Models
				if b := s.cfg.Sync(y.Name); b != nil && len(b.Models) > 0 {
					models = b.Models
				}
				ss.Syncs = append(ss.Syncs, SyncStatus{Name: y.Name, Models: models, State: state})
			}
		}
		st.Sources = append(st.Sources, ss)
	}
	return st, nil
}

// active tells whether a run of l.running is still in progress: a run
// that has just ended stays there until its goroutine moves on, and counts
// as over. Call with the layer's lock held.
func active(p *pending) bool {
	return p.run.State != store.RunCompleted && p.run.State != store.RunFailed
}

// runState is SyncRunning or SyncQueued while a run of ref runs or waits,
// else SyncIdle. It looks at the running runs (a few) and the index of
// waiting ones, never at the whole queue (thousands of connection runs
// may wait).
func (l *layer) runState(ref store.SyncRef) string {
	if c := l.e.cluster.Load(); c != nil {
		// Runs wait in River and run on any host: ask the database.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := c.SyncState(ctx, l.cfg.Name, cluster.SyncKey{Source: ref.Source, Connection: ref.Connection, Sync: ref.Sync})
		if err == nil {
			switch st {
			case "running":
				return SyncRunning
			case "queued":
				return SyncQueued
			}
			return SyncIdle
		}
		l.log.Warn("could not read the sync's state across hosts; showing this host's", "error", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.running {
		if active(p) && slices.Contains(p.run.Syncs, ref) {
			return SyncRunning
		}
	}
	if l.waiting[waitKey{ref, false}] != nil || l.waiting[waitKey{ref, true}] != nil {
		return SyncQueued
	}
	return SyncIdle
}

// activeLocked counts the runs in progress. Call with l.mu held.
func (l *layer) activeLocked() int {
	n := 0
	for _, p := range l.running {
		if active(p) {
			n++
		}
	}
	return n
}

// RunStatus is a run with its live progress.
type RunStatus struct {
	*store.Run
	// Received counts the changes received so far, while the run runs.
	Received int64 `json:"received"`
	// Progress is what the connectors last reported, while the run runs.
	Progress []Progress `json:"progress,omitempty"`
}

// Run returns one run of a layer.
func (e *Engine) Run(layerName, id string) (*RunStatus, error) {
	l, err := e.layer(layerName)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	if p := l.running[id]; p != nil {
		rs := &RunStatus{Run: copyRun(p.run), Received: p.received.Load()}
		if rs.State == store.RunRunning {
			// A run that has just ended is still l.running until its
			// goroutine moves on: its progress is over.
			rs.Progress = p.progress.list()
		}
		l.mu.Unlock()
		return rs, nil
	}
	l.mu.Unlock()
	r, err := l.db.GetRun(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnknownRun
	}
	if err != nil {
		return nil, err
	}
	return &RunStatus{Run: r}, nil
}

func copyRun(r *store.Run) *store.Run {
	c := *r
	return &c
}

// Store returns the store layer of a configured layer, for reads.
func (e *Engine) Store(layerName string) (store.Layer, error) {
	l, err := e.layer(layerName)
	if err != nil {
		return nil, err
	}
	return l.db, nil
}

// Sources returns the names of a layer's sources.
func (e *Engine) Sources(layerName string) ([]string, error) {
	l, err := e.layer(layerName)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(l.sources))
	for i, s := range l.sources {
		out[i] = s.cfg.Name
	}
	return out, nil
}

// APITokens returns the read tokens of a layer (their hashes and scopes).
func (e *Engine) APITokens(layerName string) []*config.APIToken {
	l, ok := e.layers[layerName]
	if !ok {
		return nil
	}
	return l.cfg.APITokens
}
