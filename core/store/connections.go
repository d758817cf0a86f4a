package store

import (
	"encoding/json"
	"errors"
	"time"
)

// Connection is one instance of a source created at run time (SPEC §12):
// its own credentials, checkpoints, schedule and records. Its records,
// checkpoints and seen markers are stored under SourceKey(Source, ID).
type Connection struct {
	Source string `json:"source"`
	ID     string `json:"id"`
	// Config is the connection's config block, sealed by the caller: the
	// store never holds it in the clear.
	Config   []byte            `json:"config"`
	Metadata json.RawMessage   `json:"metadata,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`
	// Every overrides the schedule of syncs, by sync name ("1h").
	Every map[string]string `json:"every,omitempty"`
	// Paused lists the syncs whose schedule is paused.
	Paused []string `json:"paused,omitempty"`
	// State is "active", or "needs_attention" after an authentication
	// failure (Error says which), until a run or a check succeeds.
	State string `json:"state"`
	// LastRuns is the last run of each sync, by sync name.
	LastRuns  map[string]string `json:"last_runs,omitempty"`
	Error     string            `json:"error,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// ErrExists is returned when creating something that exists.
var ErrExists = errors.New("already exists")
