package postgres

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

// The event log (synclayer_events) and the audit log (synclayer_audit).
// Sequence numbers come from the layer's "event" and "audit" counters, in
// commit order across hosts (takeNumbers): a follower that has read every
// entry up to N never finds a later commit numbered at or below N, so it
// never skips one. A batch commits whole: a reader sees all of it or none.
// Entries are stored without their number (the seq column holds it), so
// that the number is taken and the entries written in one round trip.

// AppendEvents adds events to the log in one commit, setting their
// sequence numbers and (when zero) times.
func (l *Layer) AppendEvents(es []store.Event) error {
	if l.sys.closed.Load() {
		return store.ErrClosed
	}
	if len(es) == 0 {
		return nil
	}
	now := time.Now().UTC()
	times := make([]time.Time, len(es))
	docs := make([][]byte, len(es))
	for i := range es {
		e := es[i]
		if e.Time.IsZero() {
			e.Time = now
		}
		e.Seq = 0
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		times[i], docs[i] = e.Time, b
	}
	last, err := l.appendLog(`synclayer_events`, counterEvent, kindEvents, times, docs)
	if err != nil {
		return fmt.Errorf("store: append to the event log of layer %q: %w", l.name, err)
	}
	first := last - int64(len(es)) + 1
	for i := range es {
		es[i].Seq = uint64(first + int64(i))
		es[i].Time = times[i]
	}
	l.sys.events.fire()
	return nil
}

// appendLog writes entries to a log table in one transaction, numbered
// from the counter, with a notification of kind (none when ""), and
// returns the last number.
func (l *Layer) appendLog(table, counter, kind string, times []time.Time, docs [][]byte) (int64, error) {
	ctx, cancel := l.ctx()
	defer cancel()
	var last int64
	err := l.tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(takeNumbers, l.id, counter, int64(len(docs)))
		b.Queue(`
			INSERT INTO `+table+` (layer_id, seq, time, doc)
			SELECT $1, c.value - $3 + u.n, u.t, u.d
			FROM unnest($4::timestamptz[], $5::bytea[]) WITH ORDINALITY AS u(t, d, n),
			     (SELECT value FROM synclayer_counters WHERE layer_id = $1 AND name = $2) c`,
			l.id, counter, int64(len(docs)), times, docs)
		if kind != "" {
			b.Queue(`SELECT pg_notify($1, $2)`, notifyChannel, encodeNotification(l.name, kind, ""))
		}
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		if err := br.QueryRow().Scan(&last); err != nil {
			return err
		}
		return br.Close()
	})
	return last, err
}

// readLog reads up to limit entries of a log table numbered above after,
// oldest first, calling add with each entry's number and document.
func (l *Layer) readLog(table string, after uint64, limit int, add func(seq int64, doc []byte) error) error {
	ctx, cancel := l.ctx()
	defer cancel()
	rows, err := l.s.pool.Query(ctx, `SELECT seq, doc FROM `+table+` WHERE layer_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		l.id, seqArg(after), limit)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var doc []byte
		if err := rows.Scan(&seq, &doc); err != nil {
			return err
		}
		if err := add(seq, doc); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Events returns up to limit events with a sequence number above after.
func (l *Layer) Events(after uint64, limit int) ([]store.Event, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	out := []store.Event{}
	if limit <= 0 {
		return out, nil
	}
	err := l.readLog(`synclayer_events`, after, limit, func(seq int64, doc []byte) error {
		var e store.Event
		if err := json.Unmarshal(doc, &e); err != nil {
			return fmt.Errorf("decode event %d: %w", seq, err)
		}
		e.Seq = uint64(seq)
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read the event log of layer %q: %w", l.name, err)
	}
	return out, nil
}

// LastEventSeq is the sequence number of the newest event in the log (0
// when it is empty).
func (l *Layer) LastEventSeq() (uint64, error) {
	if l.sys.closed.Load() {
		return 0, store.ErrClosed
	}
	ctx, cancel := l.ctx()
	defer cancel()
	var seq int64
	if err := l.s.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM synclayer_events WHERE layer_id = $1`, l.id).Scan(&seq); err != nil {
		return 0, fmt.Errorf("store: read the event log of layer %q: %w", l.name, err)
	}
	return uint64(seq), nil
}

// EventSignal is closed-and-replaced whenever events are appended, on any
// host, so a follower of the event log can wait for new entries instead of
// polling. Take the channel before reading, then read, then wait on it: an
// append between the read and the wait closes the channel already taken.
func (l *Layer) EventSignal() <-chan struct{} { return l.sys.events.wait() }

// PruneEvents deletes events older than the cutoff and returns how many,
// and the payload webhooks set aside before it. The sequence numbers of
// later events go on from the highest ever handed out, even when every
// event was pruned (clients poll with after=).
func (l *Layer) PruneEvents(before time.Time) (int, error) {
	if l.sys.closed.Load() {
		return 0, store.ErrClosed
	}
	n, err := l.pruneChunks(`
		DELETE FROM synclayer_events WHERE (layer_id, seq) IN (
			SELECT layer_id, seq FROM synclayer_events WHERE layer_id = $1 AND time < $2 LIMIT $3)`, before)
	if err != nil {
		return n, fmt.Errorf("store: prune the event log of layer %q: %w", l.name, err)
	}
	if _, err := l.pruneChunks(`
		DELETE FROM synclayer_inbox_set_aside WHERE (layer_id, seq) IN (
			SELECT layer_id, seq FROM synclayer_inbox_set_aside WHERE layer_id = $1 AND set_at < $2 LIMIT $3)`, before); err != nil {
		return n, fmt.Errorf("store: prune the webhooks set aside in layer %q: %w", l.name, err)
	}
	return n, nil
}

// AppendAudit adds an entry to the layer's audit log and returns it with
// its number, layer and (when zero) time set.
func (l *Layer) AppendAudit(a store.AuditEntry) (store.AuditEntry, error) {
	if l.sys.closed.Load() {
		return a, store.ErrClosed
	}
	a.Layer = l.name
	if a.Time.IsZero() {
		a.Time = time.Now().UTC()
	}
	a.Seq = 0
	doc, err := json.Marshal(a)
	if err != nil {
		return a, err
	}
	last, err := l.appendLog(`synclayer_audit`, counterAudit, "", []time.Time{a.Time}, [][]byte{doc})
	if err != nil {
		return a, fmt.Errorf("store: append to the audit log of layer %q: %w", l.name, err)
	}
	a.Seq = uint64(last)
	return a, nil
}

func decodeAudit(seq int64, doc []byte) (store.AuditEntry, error) {
	var a store.AuditEntry
	if err := json.Unmarshal(doc, &a); err != nil {
		return a, fmt.Errorf("decode audit entry %d: %w", seq, err)
	}
	a.Seq = uint64(seq)
	return a, nil
}

// Audit returns up to limit audit entries with a sequence number above
// after, oldest first.
func (l *Layer) Audit(after uint64, limit int) ([]store.AuditEntry, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	out := []store.AuditEntry{}
	if limit <= 0 {
		return out, nil
	}
	err := l.readLog(`synclayer_audit`, after, limit, func(seq int64, doc []byte) error {
		a, err := decodeAudit(seq, doc)
		out = append(out, a)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: read the audit log of layer %q: %w", l.name, err)
	}
	return out, nil
}

// AuditTail returns the newest limit audit entries, oldest first.
func (l *Layer) AuditTail(limit int) ([]store.AuditEntry, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	out := []store.AuditEntry{}
	if limit <= 0 {
		return out, nil
	}
	ctx, cancel := l.ctx()
	defer cancel()
	rows, err := l.s.pool.Query(ctx, `SELECT seq, doc FROM synclayer_audit WHERE layer_id = $1 ORDER BY seq DESC LIMIT $2`, l.id, limit)
	if err != nil {
		return nil, fmt.Errorf("store: read the audit log of layer %q: %w", l.name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var doc []byte
		if err := rows.Scan(&seq, &doc); err != nil {
			return nil, err
		}
		a, err := decodeAudit(seq, doc)
		if err != nil {
			return nil, fmt.Errorf("store: read the audit log of layer %q: %w", l.name, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read the audit log of layer %q: %w", l.name, err)
	}
	slices.Reverse(out)
	return out, nil
}

// PruneAudit deletes audit entries older than the cutoff and returns how
// many. Numbering goes on from the highest ever handed out.
func (l *Layer) PruneAudit(before time.Time) (int, error) {
	if l.sys.closed.Load() {
		return 0, store.ErrClosed
	}
	n, err := l.pruneChunks(`
		DELETE FROM synclayer_audit WHERE (layer_id, seq) IN (
			SELECT layer_id, seq FROM synclayer_audit WHERE layer_id = $1 AND time < $2 LIMIT $3)`, before)
	if err != nil {
		return n, fmt.Errorf("store: prune the audit log of layer %q: %w", l.name, err)
	}
	return n, nil
}
