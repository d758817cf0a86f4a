package badger

import (
	"time"
)

// Read-only figures for the host's metrics.

// InboxStats returns how many payload webhooks wait in the layer's inbox
// and when the oldest of them was received (zero when none waits). The
// count is the layer's counter and the oldest item is one seek from the
// processed position: a scrape costs nothing like a walk of the inbox
// (whose deleted items a walk would step over).
func (l *Layer) InboxStats() (pending int, oldest time.Time, err error) {
	if l.closed.Load() {
		return 0, time.Time{}, ErrClosed
	}
	oldest, _ = l.OldestInbox()
	return l.InboxDepth(), oldest, nil
}

// DiskSize returns the bytes the layer's database takes on disk: its LSM
// tree (keys, the record index, small values) and its value log (record
// payloads). Badger refreshes these figures about once a minute; an
// in-memory store reports zero.
func (l *Layer) DiskSize() (lsm, vlog int64) {
	if l.closed.Load() {
		return 0, 0
	}
	return l.db.Size()
}
