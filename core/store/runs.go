package store

import (
	"strconv"
	"strings"
	"time"
)

// Event is one entry of a layer's sync event log.
type Event struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Type   string    `json:"type"`
	Run    string    `json:"run,omitempty"`
	Source string    `json:"source,omitempty"`
	Sync   string    `json:"sync,omitempty"`
	// Connection is set for events of one connection of a source.
	Connection string            `json:"connection,omitempty"`
	Message    string            `json:"message,omitempty"`
	Fields     map[string]string `json:"fields,omitempty"`
}

// Run states.
const (
	RunQueued    = "queued"
	RunRunning   = "running"
	RunCompleted = "completed"
	RunFailed    = "failed"
)

// SyncRef names one sync of one source.
type SyncRef struct {
	Source string `json:"source"`
	Sync   string `json:"sync"`
	// Connection is the connection of a source with connections.
	Connection string `json:"connection,omitempty"`
}

// Key is the source key of the ref's records and checkpoints.
func (r SyncRef) Key() string { return SourceKey(r.Source, r.Connection) }

// Run is the record of one run, kept for the API and for recovery.
type Run struct {
	ID       string                       `json:"run"`
	State    string                       `json:"state"`
	Trigger  string                       `json:"trigger"`
	Syncs    []SyncRef                    `json:"syncs"`
	Full     bool                         `json:"full"`
	Reset    bool                         `json:"reset,omitempty"`
	Counts   map[string]map[string]Counts `json:"counts"`
	Revision int64                        `json:"revision,omitempty"`
	Error    string                       `json:"error,omitempty"`
	// Attempt counts the attempts made so far (1 on the first).
	Attempt    int        `json:"attempt,omitempty"`
	RetryAt    *time.Time `json:"retry_at,omitempty"`
	QueuedAt   time.Time  `json:"queued_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// RunIDTime reads the creation time that a run id made by the engine
// ("run_" + 12 hex digits of Unix milliseconds + random) starts with.
func RunIDTime(id string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(id, "run_")
	if !ok || len(rest) < 12 {
		return time.Time{}, false
	}
	ms, err := strconv.ParseUint(rest[:12], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(ms)), true
}
