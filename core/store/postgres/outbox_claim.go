package postgres

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

// Claims of outbound deliveries (SPEC §16: "outbound deliveries are
// claimed so that each attempt is made by one host"). Every host's
// delivery worker sees every delivery (OutboxChanges, OutboxSignal), but
// only the host holding a delivery's claim makes its attempt:
//
//  1. ClaimDeliveries(host, limit, lease) claims due deliveries for host
//     until now + lease, skipping those another host holds; or
//     ClaimDelivery(host, id, lease) claims one the host's worker has
//     found due (fitting a worker that schedules deliveries itself).
//  2. The host makes the attempt and records it (ModifyDelivery or
//     UpdateDelivery; they leave the claim alone, so a redelivery asked for
//     on another host while the attempt is in flight does not open the
//     delivery to a second attempt at once).
//  3. ReleaseDeliveries(host, ids...) ends the claim, so that the next
//     attempt (a retry, a redelivery) can be claimed without waiting for
//     the lease to run out.
//
// A host that dies holding claims delays those deliveries by at most the
// lease: then any host claims them. An attempt that outlives its lease may
// be made again by another host (at-least-once delivery; the event's id,
// sent as webhook-id, lets the endpoint drop the duplicate): choose a lease
// above the attempt timeout.
//
// Due-ness and leases are judged by the database's clock (now()), the one
// clock every host shares; a delivery's NextAt, set by a host's clock, is
// compared with it.

// ClaimDeliveries claims for host up to limit deliveries that are pending,
// due (their next attempt is at or before now) and not claimed by a host
// whose lease still runs, marking them claimed by host until now + lease,
// and returns them, soonest due first. Two hosts claiming at once never
// get the same delivery: rows another claimer holds locked are skipped
// (SELECT ... FOR UPDATE SKIP LOCKED), and a row claimed by a commit that
// lands while the statement runs is checked again and left out.
func (l *Layer) ClaimDeliveries(host string, limit int, lease time.Duration) ([]*store.Delivery, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	if host == "" {
		return nil, fmt.Errorf("store: claim deliveries: a host name is needed")
	}
	if lease <= 0 {
		return nil, fmt.Errorf("store: claim deliveries: the lease must be positive (got %v)", lease)
	}
	if limit <= 0 {
		return []*store.Delivery{}, nil
	}
	ctx, cancel := l.ctx()
	defer cancel()
	rows, err := l.s.pool.Query(ctx, `
		WITH c AS (
			SELECT event_id, endpoint FROM synclayer_deliveries
			WHERE layer_id = $1 AND state = 'pending'
			  AND (next_at IS NULL OR next_at <= now())
			  AND (claimed_until IS NULL OR claimed_until <= now())
			ORDER BY next_at NULLS FIRST, event_id, endpoint
			LIMIT $3
			FOR UPDATE SKIP LOCKED)
		UPDATE synclayer_deliveries d
		SET claimed_by = $2, claimed_until = now() + $4 * interval '1 microsecond'
		FROM c
		WHERE d.layer_id = $1 AND d.event_id = c.event_id AND d.endpoint = c.endpoint
		RETURNING `+deliveryCols, l.id, host, limit, lease.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("store: claim deliveries of layer %q: %w", l.name, err)
	}
	ds, err := scanDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("store: claim deliveries of layer %q: %w", l.name, err)
	}
	sort.Slice(ds, func(i, j int) bool {
		if !ds[i].NextAt.Equal(ds[j].NextAt) {
			return ds[i].NextAt.Before(ds[j].NextAt)
		}
		return ds[i].ID() < ds[j].ID()
	})
	return ds, nil
}

// ClaimDelivery claims one delivery (by its store.Delivery.ID) for host
// until now + lease, when it is pending, due and not claimed by a host
// whose lease still runs, and returns it as stored; ok is false (and the
// delivery nil) when it is not claimable: unknown, settled, not due by the
// database's clock (an attempt another host recorded moved its next
// attempt on), or held. Of hosts claiming it at once, one gets it: the
// others' updates wait for its commit and find it claimed.
func (l *Layer) ClaimDelivery(host, id string, lease time.Duration) (d *store.Delivery, ok bool, err error) {
	if l.sys.closed.Load() {
		return nil, false, store.ErrClosed
	}
	if host == "" {
		return nil, false, fmt.Errorf("store: claim a delivery: a host name is needed")
	}
	if lease <= 0 {
		return nil, false, fmt.Errorf("store: claim a delivery: the lease must be positive (got %v)", lease)
	}
	ctx, cancel := l.ctx()
	defer cancel()
	ev, ep := splitDeliveryID(id)
	var doc, body []byte
	err = l.s.pool.QueryRow(ctx, `
		UPDATE synclayer_deliveries
		SET claimed_by = $4, claimed_until = now() + $5 * interval '1 microsecond'
		WHERE layer_id = $1 AND event_id = $2 AND endpoint = $3 AND state = 'pending'
		  AND (next_at IS NULL OR next_at <= now())
		  AND (claimed_until IS NULL OR claimed_until <= now())
		RETURNING `+deliveryCols, l.id, ev, ep, host, lease.Microseconds()).Scan(&doc, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: claim delivery %q of layer %q: %w", id, l.name, err)
	}
	d, err = decodeDelivery(doc, body)
	if err != nil {
		return nil, false, err
	}
	return d, true, nil
}

// ReleaseDeliveries ends the claims host holds on the deliveries with the
// given ids (store.Delivery.ID), once their attempts are recorded. A claim
// another host holds (this host's lease ran out and it was claimed again)
// is left alone.
func (l *Layer) ReleaseDeliveries(host string, ids ...string) error {
	if l.sys.closed.Load() {
		return store.ErrClosed
	}
	if len(ids) == 0 {
		return nil
	}
	events, endpoints := make([]string, len(ids)), make([]string, len(ids))
	for i, id := range ids {
		events[i], endpoints[i] = splitDeliveryID(id)
	}
	ctx, cancel := l.ctx()
	defer cancel()
	_, err := l.s.pool.Exec(ctx, `
		UPDATE synclayer_deliveries SET claimed_by = NULL, claimed_until = NULL
		WHERE layer_id = $1 AND claimed_by = $2
		  AND (event_id, endpoint) IN (SELECT * FROM unnest($3::text[], $4::text[]))`,
		l.id, host, events, endpoints)
	if err != nil {
		return fmt.Errorf("store: release claimed deliveries of layer %q: %w", l.name, err)
	}
	return nil
}
