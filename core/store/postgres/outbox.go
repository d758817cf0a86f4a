package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/synclayer/synclayer/core/store"
)

// The outbox holds outbound events until their endpoints have them, one
// row per delivery (an event for an endpoint) in synclayer_deliveries.
// Events that announce a revision, a run or a connection are written in
// the transaction of what they announce (enqueue), so none is announced
// before its data nor goes unannounced.
//
// Every write to a delivery takes the layer's next outbox change number
// (the "outbox" counter, whose row it holds locked until it commits, see
// takeNumbers) and stores it on the row: change numbers grow in commit
// order across hosts, and OutboxChanges reads the rows above a number.
//
// Locks are always taken in one order, so that writers never deadlock:
// the delivery rows first (in key order), then the counter.

// deliveryCols are the columns a delivery is decoded from.
const deliveryCols = `doc, body`

// putDeliveries stores new deliveries in tx, with the defaults of a new
// one (pending, created now, due at once), and queues the outbox
// notification. It changes ds in place.
func putDeliveries(ctx context.Context, tx pgx.Tx, l *Layer, ds []store.Delivery) error {
	now := time.Now().UTC()
	for i := range ds {
		d := &ds[i]
		if d.State == "" {
			d.State = store.DeliveryPending
		}
		if d.Created.IsZero() {
			d.Created = now
		}
		if d.NextAt.IsZero() {
			d.NextAt = d.Created
		}
	}
	ptrs := make([]*store.Delivery, len(ds))
	for i := range ds {
		ptrs[i] = &ds[i]
	}
	return writeDeliveries(ctx, tx, l, ptrs)
}

// writeDeliveries writes deliveries as they are in tx (a delivery with the
// key of another replaces it; a claim on it stays), each with the layer's
// next outbox change number, and queues the outbox notification, in one
// round trip.
func writeDeliveries(ctx context.Context, tx pgx.Tx, l *Layer, ds []*store.Delivery) error {
	// One row per key, the last one written winning (as a second write of
	// the key would): one statement may not change a row twice.
	byKey := make(map[[2]string]int, len(ds))
	var uniq []*store.Delivery
	for _, d := range ds {
		k := [2]string{d.EventID, d.Endpoint}
		if i, ok := byKey[k]; ok {
			uniq[i] = d
			continue
		}
		byKey[k] = len(uniq)
		uniq = append(uniq, d)
	}
	// Key order: the rows are locked in it.
	sort.Slice(uniq, func(i, j int) bool {
		if uniq[i].EventID != uniq[j].EventID {
			return uniq[i].EventID < uniq[j].EventID
		}
		return uniq[i].Endpoint < uniq[j].Endpoint
	})
	n := len(uniq)
	events, endpoints, states := make([]string, n), make([]string, n), make([]string, n)
	nextAt, lastAt := make([]pgtype.Timestamptz, n), make([]time.Time, n)
	docs, bodies := make([][]byte, n), make([][]byte, n)
	for i, d := range uniq {
		doc, err := json.Marshal(d)
		if err != nil {
			return err
		}
		events[i], endpoints[i], states[i], docs[i] = d.EventID, d.Endpoint, d.State, doc
		bodies[i] = d.Body
		if bodies[i] == nil {
			bodies[i] = []byte{}
		}
		if !d.NextAt.IsZero() {
			nextAt[i] = pgtype.Timestamptz{Time: d.NextAt, Valid: true}
		}
		lastAt[i] = deliveryLastAt(d)
	}
	b := &pgx.Batch{}
	// The rows that exist, locked before the counter.
	b.Queue(`
		SELECT 1 FROM synclayer_deliveries
		WHERE layer_id = $1 AND (event_id, endpoint) IN (SELECT * FROM unnest($2::text[], $3::text[]))
		ORDER BY event_id, endpoint
		FOR UPDATE`, l.id, events, endpoints)
	b.Queue(takeNumbers, l.id, counterOutbox, 1)
	b.Queue(`
		INSERT INTO synclayer_deliveries (layer_id, event_id, endpoint, state, next_at, last_at, change, doc, body)
		SELECT $1, u.e, u.p, u.s, u.n, u.a,
		       (SELECT value FROM synclayer_counters WHERE layer_id = $1 AND name = $2),
		       u.d, u.b
		FROM unnest($3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::bytea[], $9::bytea[])
		     AS u(e, p, s, n, a, d, b)
		ON CONFLICT (layer_id, event_id, endpoint) DO UPDATE SET
		    state = EXCLUDED.state, next_at = EXCLUDED.next_at, last_at = EXCLUDED.last_at,
		    change = EXCLUDED.change, doc = EXCLUDED.doc, body = EXCLUDED.body`,
		l.id, counterOutbox, events, endpoints, states, nextAt, lastAt, docs, bodies)
	b.Queue(`SELECT pg_notify($1, $2)`, notifyChannel, encodeNotification(l.name, kindOutbox, ""))
	return tx.SendBatch(ctx, b).Close()
}

// deliveryLastAt is when a delivery last changed for pruning: its last
// attempt, or its creation before any (or when later).
func deliveryLastAt(d *store.Delivery) time.Time {
	last := d.Created
	if n := len(d.Attempts); n > 0 && d.Attempts[n-1].At.After(last) {
		last = d.Attempts[n-1].At
	}
	return last
}

func decodeDelivery(doc, body []byte) (*store.Delivery, error) {
	var d store.Delivery
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("store: decode delivery: %w", err)
	}
	if len(body) > 0 {
		d.Body = body
	}
	return &d, nil
}

func scanDeliveries(rows pgx.Rows) ([]*store.Delivery, error) {
	out := []*store.Delivery{}
	defer rows.Close()
	for rows.Next() {
		var doc, body []byte
		if err := rows.Scan(&doc, &body); err != nil {
			return nil, err
		}
		d, err := decodeDelivery(doc, body)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// splitDeliveryID splits a delivery's id (store.Delivery.ID) into its
// event id and endpoint, at the last dot.
func splitDeliveryID(id string) (event, endpoint string) {
	if i := strings.LastIndexByte(id, '.'); i >= 0 {
		return id[:i], id[i+1:]
	}
	return id, ""
}

// Enqueue adds deliveries that announce no revision (sync.started,
// sync.failed, pins) to the outbox, durably, in one commit.
func (l *Layer) Enqueue(ds []store.Delivery) error {
	if l.sys.closed.Load() {
		return store.ErrClosed
	}
	if len(ds) == 0 {
		return nil
	}
	ctx, cancel := l.ctx()
	defer cancel()
	if err := l.tx(ctx, func(tx pgx.Tx) error { return putDeliveries(ctx, tx, l, ds) }); err != nil {
		return fmt.Errorf("store: enqueue outbound events of layer %q: %w", l.name, err)
	}
	l.sys.outbox.fire()
	return nil
}

// OutboxSignal is closed-and-replaced whenever deliveries are stored or
// change, on any host, so a delivery worker can wait for work.
func (l *Layer) OutboxSignal() <-chan struct{} { return l.sys.outbox.wait() }

// Deliveries returns deliveries in event order, after the given delivery
// id ("" from the start), at most limit. With pendingOnly, only those
// waiting for an attempt.
func (l *Layer) Deliveries(after string, limit int, pendingOnly bool) ([]*store.Delivery, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	if limit <= 0 {
		return []*store.Delivery{}, nil
	}
	ctx, cancel := l.ctx()
	defer cancel()
	q := `SELECT ` + deliveryCols + ` FROM synclayer_deliveries WHERE layer_id = $1`
	args := []any{l.id, limit}
	if after != "" {
		ev, ep := splitDeliveryID(after)
		q += ` AND (event_id, endpoint) > ($3, $4)`
		args = append(args, ev, ep)
	}
	if pendingOnly {
		q += ` AND state = 'pending'`
	}
	q += ` ORDER BY event_id, endpoint LIMIT $2`
	rows, err := l.s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list deliveries of layer %q: %w", l.name, err)
	}
	return scanDeliveries(rows)
}

// GetDelivery returns one delivery by its id; store.ErrNotFound when
// unknown.
func (l *Layer) GetDelivery(id string) (*store.Delivery, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	ctx, cancel := l.ctx()
	defer cancel()
	ev, ep := splitDeliveryID(id)
	var doc, body []byte
	err := l.s.pool.QueryRow(ctx, `SELECT `+deliveryCols+` FROM synclayer_deliveries
		WHERE layer_id = $1 AND event_id = $2 AND endpoint = $3`, l.id, ev, ep).Scan(&doc, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: read delivery %q of layer %q: %w", id, l.name, err)
	}
	return decodeDelivery(doc, body)
}

// UpdateDelivery records an attempt and the delivery's new state (it
// stores the delivery as it is, creating it when unknown).
func (l *Layer) UpdateDelivery(d *store.Delivery) error {
	if l.sys.closed.Load() {
		return store.ErrClosed
	}
	ctx, cancel := l.ctx()
	defer cancel()
	if err := l.tx(ctx, func(tx pgx.Tx) error { return writeDeliveries(ctx, tx, l, []*store.Delivery{d}) }); err != nil {
		return fmt.Errorf("store: update delivery %q of layer %q: %w", d.ID(), l.name, err)
	}
	l.sys.outbox.fire()
	return nil
}

// ModifyDelivery reads a delivery, lets fn change it and writes it back,
// as one step: the row is read under a lock (SELECT ... FOR UPDATE) held
// until the write commits, so no other write to the delivery, from any
// host, falls between the read and the write (a redelivery asked for by
// hand and the record of an attempt in flight cannot overwrite each
// other). It returns the delivery as written; store.ErrNotFound when
// unknown. When fn returns an error nothing is written and that error is
// returned.
func (l *Layer) ModifyDelivery(id string, fn func(d *store.Delivery) error) (*store.Delivery, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	ctx, cancel := l.ctx()
	defer cancel()
	ev, ep := splitDeliveryID(id)
	var out *store.Delivery
	var fnErr error
	err := l.tx(ctx, func(tx pgx.Tx) error {
		var doc, body []byte
		err := tx.QueryRow(ctx, `SELECT `+deliveryCols+` FROM synclayer_deliveries
			WHERE layer_id = $1 AND event_id = $2 AND endpoint = $3
			FOR UPDATE`, l.id, ev, ep).Scan(&doc, &body)
		if errors.Is(err, pgx.ErrNoRows) {
			fnErr = store.ErrNotFound
			return fnErr
		}
		if err != nil {
			return err
		}
		d, err := decodeDelivery(doc, body)
		if err != nil {
			return err
		}
		if err := fn(d); err != nil {
			fnErr = err
			return err
		}
		out = d
		return writeDeliveries(ctx, tx, l, []*store.Delivery{d})
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, fmt.Errorf("store: modify delivery %q of layer %q: %w", id, l.name, err)
	}
	l.sys.outbox.fire()
	return out, nil
}

// RedeliverDelivery makes a delivery pending again, due now, and counts
// the redelivery, in one atomic step (see ModifyDelivery).
func (l *Layer) RedeliverDelivery(id string) (*store.Delivery, error) {
	return l.ModifyDelivery(id, func(d *store.Delivery) error {
		d.State, d.NextAt = store.DeliveryPending, time.Now().UTC()
		d.Redeliveries++
		return nil
	})
}

// OutboxChanges returns the deliveries written after the outbox position
// since (0: every delivery), each at its newest state, in event order, and
// the position to pass next time. Nothing written after the returned
// position is included, and everything written up to it is.
//
// The position is the layer's outbox change number. It is read with the
// rows in one snapshot (a repeatable-read transaction): since change
// numbers are handed out in commit order (takeNumbers), a snapshot that
// sees number N sees every write numbered N or below and none above, so
// a follower of the positions misses no write made on any host.
func (l *Layer) OutboxChanges(since uint64) ([]*store.Delivery, uint64, error) {
	if l.sys.closed.Load() {
		return nil, since, store.ErrClosed
	}
	ctx, cancel := l.ctx()
	defer cancel()
	var out []*store.Delivery
	upTo := since
	err := pgx.BeginTxFunc(ctx, l.s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var v int64
		err := tx.QueryRow(ctx, `SELECT value FROM synclayer_counters WHERE layer_id = $1 AND name = $2`, l.id, counterOutbox).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if uint64(v) <= since {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT `+deliveryCols+` FROM synclayer_deliveries
			WHERE layer_id = $1 AND change > $2
			ORDER BY event_id, endpoint`, l.id, seqArg(since))
		if err != nil {
			return err
		}
		ds, err := scanDeliveries(rows)
		if err != nil {
			return err
		}
		if len(ds) > 0 {
			out = ds
		}
		upTo = uint64(v)
		return nil
	})
	if err != nil {
		return nil, since, fmt.Errorf("store: read the outbox changes of layer %q: %w", l.name, err)
	}
	return out, upTo, nil
}

// pruneChunk is how many rows one pruning statement deletes: a prune of a
// long history is many short transactions, not one long one.
const pruneChunk = 1000

// PruneDeliveries deletes the deliveries that are settled (delivered,
// failed or stopped) and whose last attempt (or creation, if none) is
// before the given time. Pending deliveries always stay (a delivery
// redelivered meanwhile is pending again, and stays). It returns how many
// it deleted.
func (l *Layer) PruneDeliveries(before time.Time) (int, error) {
	if l.sys.closed.Load() {
		return 0, store.ErrClosed
	}
	n, err := l.pruneChunks(`
		WITH d AS (
			SELECT event_id, endpoint FROM synclayer_deliveries
			WHERE layer_id = $1 AND state <> 'pending' AND last_at < $2
			LIMIT $3
			FOR UPDATE SKIP LOCKED)
		DELETE FROM synclayer_deliveries x USING d
		WHERE x.layer_id = $1 AND x.event_id = d.event_id AND x.endpoint = d.endpoint`, before)
	if err != nil {
		return n, fmt.Errorf("store: prune deliveries of layer %q: %w", l.name, err)
	}
	return n, nil
}

// pruneChunks runs a deleting statement (taking the layer id, the cutoff
// and the chunk size) until it deletes less than a chunk, and returns how
// many rows it deleted.
func (l *Layer) pruneChunks(q string, before time.Time) (int, error) {
	ctx, cancel := l.ctx()
	defer cancel()
	total := 0
	for {
		tag, err := l.s.pool.Exec(ctx, q, l.id, before, pruneChunk)
		if err != nil {
			return total, err
		}
		total += int(tag.RowsAffected())
		if tag.RowsAffected() < pruneChunk {
			return total, nil
		}
	}
}
