package engine

import (
	"errors"

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
}

// SourceStatus is one source of a layer.
type SourceStatus struct {
	Name   string       `json:"name"`
	Plugin string       `json:"plugin"`
	Syncs  []SyncStatus `json:"syncs"`
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
	l.mu.Lock()
	running := map[store.SyncRef]bool{}
	queued := map[store.SyncRef]bool{}
	if p := l.activeLocked(); p != nil {
		for _, r := range p.run.Syncs {
			running[r] = true
		}
	}
	for _, p := range l.queue {
		for _, r := range p.run.Syncs {
			queued[r] = true
		}
	}
	l.mu.Unlock()
	for _, s := range l.sources {
		ss := SourceStatus{Name: s.cfg.Name, Plugin: s.cfg.Plugin, Syncs: []SyncStatus{}}
		s.mu.Lock()
		desc := s.desc
		s.mu.Unlock()
		if desc != nil {
			for _, y := range desc.Syncs {
				ref := store.SyncRef{Source: s.cfg.Name, Sync: y.Name}
				state := SyncIdle
				switch {
				case running[ref]:
					state = SyncRunning
				case queued[ref]:
					state = SyncQueued
				case l.paused(ref):
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

// activeLocked returns the run the layer's worker is running, nil when
// none is. A run that has just ended is still l.running until its worker
// moves on: it counts as over. l.mu must be held.
func (l *layer) activeLocked() *pending {
	if p := l.running; p != nil && p.run.State != store.RunCompleted && p.run.State != store.RunFailed {
		return p
	}
	return nil
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
	if l.running != nil && l.running.run.ID == id {
		rs := &RunStatus{Run: copyRun(l.running.run), Received: l.running.received.Load()}
		if rs.State == store.RunRunning {
			// A run that has just ended is still l.running until its
			// worker moves on: its progress is over.
			rs.Progress = l.running.progress.list()
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
func (e *Engine) Store(layerName string) (*store.Layer, error) {
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
