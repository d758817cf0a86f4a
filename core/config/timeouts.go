package config

import "time"

// Timeouts of the calls the host makes to a connector plugin. A sync block
// overrides the first two with timeout and progress_timeout; the others are
// the host's own. When one passes, the call fails and the host kills the
// plugin's whole process group (a plugin that does not answer in time may be
// hung); the next use of the source starts it again.
const (
	// DefaultSyncTimeout bounds a sync without a timeout of its own: the
	// run fails past it (and is retried per its retry block, from its last
	// checkpoint). Raise it with timeout for a first sync of a very large
	// upstream.
	DefaultSyncTimeout = 6 * time.Hour
	// DefaultProgressTimeout is how long a sync may go without sending
	// anything (a batch of records, a checkpoint, a progress report or a
	// log line) before it is failed as hung; progress_timeout overrides it.
	DefaultProgressTimeout = 10 * time.Minute
	// DefaultCallTimeout bounds Describe (which runs the connector's
	// Configure when the host describes a configured source) and Check.
	DefaultCallTimeout = time.Minute
)
