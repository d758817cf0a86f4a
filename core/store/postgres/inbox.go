package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

// The inbox of payload webhooks (synclayer_inbox): items are appended on
// any host before its 202, and handled in sequence order. Sequence numbers
// come from the layer's "inbox" counter, in commit order (takeNumbers): a
// reader that has handled every item up to N never finds a later commit
// with a number at or below N.

// SetInboxLimit bounds the payload webhooks accepted but not yet published
// (0: no bound). Every host should be given the same limit: it is checked
// against the database's count of the layer's items, so it holds across
// hosts.
func (l *Layer) SetInboxLimit(n int) { l.sys.inLimit.Store(int64(n)) }

// InboxDepth is the number of payload webhooks accepted and not yet
// published or set aside, on every host (the database's count; the last
// count read when the database cannot be reached).
func (l *Layer) InboxDepth() int {
	ctx, cancel := l.ctx()
	defer cancel()
	n, err := l.inboxDepth(ctx)
	if err != nil {
		if !l.sys.closed.Load() {
			l.log.Warn("could not count the webhook inbox; reporting the last count", "error", err)
		}
		return int(l.sys.inDepth.Load())
	}
	l.sys.inDepth.Store(n)
	return int(n)
}

// inboxDepth reads the number of waiting items: appended minus removed
// (an item whose removal is not committed yet still waits).
func (l *Layer) inboxDepth(ctx context.Context) (int64, error) {
	var n int64
	err := l.s.pool.QueryRow(ctx, `
		SELECT coalesce(sum(CASE name WHEN $2 THEN value ELSE -value END), 0)
		FROM synclayer_counters WHERE layer_id = $1 AND name IN ($2, $3)`,
		l.id, counterInbox, counterInboxDone).Scan(&n)
	return n, err
}

// durableCommit makes the transaction's commit wait for its WAL to be
// flushed when the server's (or the role's) synchronous_commit is off;
// any stronger setting (local, remote_write, on, remote_apply) is kept.
const durableCommit = `SELECT set_config('synchronous_commit', 'on', true) WHERE current_setting('synchronous_commit') = 'off'`

// AppendInbox stores a payload webhook durably and returns its sequence
// number: it returns once the database has committed it and flushed the
// commit to its WAL (the host answers 202 next). Items of a layer are handled in sequence order. It fails with
// store.ErrInboxFull when the layer already holds as many items as its
// inbox limit.
//
// The number is taken first: it locks the layer's inbox counter until the
// commit, so that the depth read next (the number minus the items
// removed, see counterInboxDone) counts every item committed by any host
// before, and no two hosts pass the limit together.
func (l *Layer) AppendInbox(it store.InboxItem) (uint64, error) {
	if l.sys.closed.Load() {
		return 0, store.ErrClosed
	}
	if it.Received.IsZero() {
		it.Received = time.Now().UTC()
	}
	body := it.Body
	if body == nil {
		body = []byte{}
	}
	meta := it
	meta.Seq, meta.Body = 0, nil
	limit := l.sys.inLimit.Load()
	ctx, cancel := l.ctx()
	defer cancel()
	// The item is stored without its number (the column holds it): it is
	// taken, and the item written, in one round trip.
	doc, err := json.Marshal(meta)
	if err != nil {
		return 0, err
	}
	var full bool
	var seq int64
	err = l.tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		// The 202 promises the item survives a crash: its commit waits
		// for the WAL flush even where the server is set not to wait.
		b.Queue(durableCommit)
		b.Queue(takeNumbers, l.id, counterInbox, 1)
		// This statement's snapshot is taken after the counter's lock was
		// granted: the items before this one are the number minus one,
		// less those whose removal was committed.
		b.Queue(`
			INSERT INTO synclayer_inbox (layer_id, seq, received, item, body)
			SELECT $1, c.value, $4, $5, $6
			FROM (SELECT value FROM synclayer_counters WHERE layer_id = $1 AND name = $2) c
			WHERE $7::bigint <= 0
			   OR c.value - 1 - coalesce((SELECT value FROM synclayer_counters WHERE layer_id = $1 AND name = $3), 0) < $7::bigint`,
			l.id, counterInbox, counterInboxDone, it.Received, doc, body, limit)
		b.Queue(`SELECT pg_notify($1, $2)`, notifyChannel, encodeNotification(l.name, kindInbox, ""))
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return err
		}
		if err := br.QueryRow().Scan(&seq); err != nil {
			return err
		}
		tag, err := br.Exec()
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			full = true
			return store.ErrInboxFull
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		return br.Close()
	})
	if full {
		return 0, store.ErrInboxFull
	}
	if err != nil {
		return 0, fmt.Errorf("store: append to the webhook inbox of layer %q: %w", l.name, err)
	}
	l.sys.inDepth.Add(1)
	l.sys.inbox.fire()
	return uint64(seq), nil
}

func decodeInbox(seq int64, doc, body []byte) (store.InboxItem, error) {
	var it store.InboxItem
	if err := json.Unmarshal(doc, &it); err != nil {
		return it, fmt.Errorf("store: decode inbox item %d: %w", seq, err)
	}
	it.Seq, it.Body = uint64(seq), body
	return it, nil
}

// PendingInbox returns up to limit inbox items with a sequence number
// above after, oldest first.
func (l *Layer) PendingInbox(after uint64, limit int) ([]store.InboxItem, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := l.ctx()
	defer cancel()
	rows, err := l.s.pool.Query(ctx, `SELECT seq, item, body FROM synclayer_inbox
		WHERE layer_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, l.id, seqArg(after), limit)
	if err != nil {
		return nil, fmt.Errorf("store: read the webhook inbox of layer %q: %w", l.name, err)
	}
	defer rows.Close()
	var out []store.InboxItem
	for rows.Next() {
		var seq int64
		var doc, body []byte
		if err := rows.Scan(&seq, &doc, &body); err != nil {
			return nil, err
		}
		it, err := decodeInbox(seq, doc, body)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read the webhook inbox of layer %q: %w", l.name, err)
	}
	return out, nil
}

// oldestInbox returns when the oldest waiting payload webhook was received
// (ok false: none waits), looking after the position this host's inbox
// loop has handled.
func (l *Layer) oldestInbox() (time.Time, bool, error) {
	ctx, cancel := l.ctx()
	defer cancel()
	var at time.Time
	err := l.s.pool.QueryRow(ctx, `SELECT received FROM synclayer_inbox
		WHERE layer_id = $1 AND seq > $2 ORDER BY seq LIMIT 1`, l.id, seqArg(l.sys.inHead.Load())).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return at.UTC(), true, nil
}

// InboxProcessed tells the layer that every item up to seq was published
// or set aside, so that the oldest waiting item is looked for after them.
func (l *Layer) InboxProcessed(seq uint64) {
	for {
		cur := l.sys.inHead.Load()
		if seq <= cur || l.sys.inHead.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// UpdateInbox saves an item's attempt count (and the rest of its state)
// while it waits in the inbox.
func (l *Layer) UpdateInbox(it store.InboxItem) error {
	if l.sys.closed.Load() {
		return store.ErrClosed
	}
	meta := it
	meta.Seq, meta.Body = 0, nil
	doc, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	body := it.Body
	if body == nil {
		body = []byte{}
	}
	ctx, cancel := l.ctx()
	defer cancel()
	// An item already published or dropped stays gone.
	_, err = l.s.pool.Exec(ctx, `UPDATE synclayer_inbox SET item = $3, body = $4 WHERE layer_id = $1 AND seq = $2`,
		l.id, int64(it.Seq), doc, body)
	if err != nil {
		return fmt.Errorf("store: update webhook %d in the inbox of layer %q: %w", it.Seq, l.name, err)
	}
	return nil
}

// SetAsideInbox moves an item that cannot be processed out of the inbox,
// with the reason, so that it never blocks later ones; it stays in
// synclayer_inbox_set_aside for an operator until the event retention
// prunes it (PruneEvents).
func (l *Layer) SetAsideInbox(it store.InboxItem, reason string) error {
	if l.sys.closed.Load() {
		return store.ErrClosed
	}
	meta := it
	meta.Body = nil
	doc, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	body := it.Body
	if body == nil {
		body = []byte{}
	}
	ctx, cancel := l.ctx()
	defer cancel()
	err = l.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, removeInbox, l.id, []int64{int64(it.Seq)}, counterInboxDone); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO synclayer_inbox_set_aside (layer_id, seq, set_at, reason, item, body) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (layer_id, seq) DO UPDATE SET set_at = EXCLUDED.set_at, reason = EXCLUDED.reason, item = EXCLUDED.item, body = EXCLUDED.body`,
			l.id, int64(it.Seq), time.Now().UTC(), reason, doc, body)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: set webhook %d of layer %q aside: %w", it.Seq, l.name, err)
	}
	return nil
}

// DropInbox removes items that will not be processed (they failed for
// good, or changed nothing).
func (l *Layer) DropInbox(seqs ...uint64) error {
	if l.sys.closed.Load() {
		return store.ErrClosed
	}
	if len(seqs) == 0 {
		return nil
	}
	ctx, cancel := l.ctx()
	defer cancel()
	if _, err := l.s.pool.Exec(ctx, removeInbox, l.id, toInt64s(seqs), counterInboxDone); err != nil {
		return fmt.Errorf("store: drop webhooks from the inbox of layer %q: %w", l.name, err)
	}
	return nil
}

// InboxSignal returns a channel closed when an item is added, on any
// host.
func (l *Layer) InboxSignal() <-chan struct{} { return l.sys.inbox.wait() }

// InboxStats returns how many payload webhooks wait in the layer's inbox
// and when the oldest of them was received (zero when none waits).
func (l *Layer) InboxStats() (pending int, oldest time.Time, err error) {
	if l.sys.closed.Load() {
		return 0, time.Time{}, store.ErrClosed
	}
	oldest, _, err = l.oldestInbox()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("store: read the webhook inbox of layer %q: %w", l.name, err)
	}
	return l.InboxDepth(), oldest, nil
}
