package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/robfig/cron/v3"
)

// Schedule is when one sync runs on its own, fired once across the hosts.
type Schedule struct {
	// Layer is the layer's name.
	Layer string
	// SyncKey is the sync (of one connection, or of a source without).
	SyncKey
	// Every is the period (whole milliseconds); or
	Every time.Duration
	// Cron is a five-field cron expression, or a descriptor like @hourly,
	// in the host's time zone unless it starts with CRON_TZ= (hosts should
	// share one).
	Cron string
	// First is when a new schedule fires first (the engine spreads the
	// first runs of many new connections over one period). Zero: one
	// period from now (Every), or the cron expression's next time.
	First time.Time
}

// batch bounds the firings claimed in one transaction.
const batch = 100

func (s Schedule) check() (cron.Schedule, error) {
	if s.Layer == "" || s.Source == "" || s.Sync == "" {
		return nil, fmt.Errorf("cluster: a schedule needs its layer, source and sync (got %q, %q, %q)", s.Layer, s.Source, s.Sync)
	}
	switch {
	case s.Every > 0 && s.Cron != "":
		return nil, fmt.Errorf("cluster: schedule of %s/%s: give Every or Cron, not both", s.Source, s.Sync)
	case s.Cron != "":
		sc, err := cron.ParseStandard(s.Cron)
		if err != nil {
			return nil, fmt.Errorf("cluster: schedule of %s/%s: the cron expression %q is not valid: %w", s.Source, s.Sync, s.Cron, err)
		}
		return sc, nil
	case s.Every < time.Millisecond:
		return nil, fmt.Errorf("cluster: schedule of %s/%s: Every (%s) must be at least 1ms, or give Cron", s.Source, s.Sync, s.Every)
	}
	return nil, nil
}

// UpsertSchedule adds a sync's schedule, or changes it. Every host may
// upsert the same schedules at start: a schedule whose period (or cron
// expression) is unchanged keeps its next firing; a changed one fires
// next at First (or one new period from now).
func (c *Cluster) UpsertSchedule(ctx context.Context, s Schedule) error {
	return c.UpsertSchedules(ctx, []Schedule{s})
}

// UpsertSchedules is UpsertSchedule for many schedules, in one statement
// per thousand (a host starting with ten thousand connections' schedules
// makes ten round trips, not ten thousand). They are all checked first:
// none is saved if one is not valid.
func (c *Cluster) UpsertSchedules(ctx context.Context, ss []Schedule) error {
	const chunk = 1000
	n := len(ss)
	layers, sources, conns, syncs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	every, crons, firsts := make([]int64, n), make([]string, n), make([]*time.Time, n)
	now := time.Now()
	for i, s := range ss {
		sc, err := s.check()
		if err != nil {
			return err
		}
		layers[i], sources[i], conns[i], syncs[i] = s.Layer, s.Source, s.Connection, s.Sync
		every[i], crons[i] = s.Every.Milliseconds(), s.Cron
		switch {
		case !s.First.IsZero():
			firsts[i] = &s.First
		case sc != nil:
			t := sc.Next(now)
			firsts[i] = &t
		}
	}
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		_, err := c.pool.Exec(ctx, `INSERT INTO synclayer_cluster_schedules AS s
				(layer, source, connection, sync, every_ms, cron, next_at)
			SELECT u.layer, u.source, u.connection, u.sync, u.every_ms, u.cron,
				coalesce(u.first, now() + u.every_ms * interval '1 millisecond')
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[])
				AS u(layer, source, connection, sync, every_ms, cron, first)
			ON CONFLICT (layer, source, connection, sync) DO UPDATE SET
				every_ms = EXCLUDED.every_ms,
				cron = EXCLUDED.cron,
				next_at = CASE WHEN s.every_ms = EXCLUDED.every_ms AND s.cron = EXCLUDED.cron
					THEN s.next_at ELSE EXCLUDED.next_at END`,
			layers[lo:hi], sources[lo:hi], conns[lo:hi], syncs[lo:hi], every[lo:hi], crons[lo:hi], firsts[lo:hi])
		if err != nil {
			if hi-lo == 1 {
				return fmt.Errorf("cluster: saving the schedule of %s/%s: %w", sources[lo], syncs[lo], err)
			}
			return fmt.Errorf("cluster: saving %d schedules: %w", hi-lo, err)
		}
	}
	if n > 0 {
		c.wakeSchedules()
	}
	return nil
}

// DeleteSchedule removes a sync's schedule (a sync paused, or gone). It
// reports whether there was one.
func (c *Cluster) DeleteSchedule(ctx context.Context, layer string, k SyncKey) (bool, error) {
	tag, err := c.pool.Exec(ctx, `DELETE FROM synclayer_cluster_schedules
		WHERE layer = $1 AND source = $2 AND connection = $3 AND sync = $4`, layer, k.Source, k.Connection, k.Sync)
	if err != nil {
		return false, fmt.Errorf("cluster: deleting the schedule of %s/%s: %w", k.Source, k.Sync, err)
	}
	return tag.RowsAffected() > 0, nil
}

// DeleteScheduleKeys removes the schedules of syncs of one layer (paused
// or unscheduled ones at a host's start), in one statement per thousand.
func (c *Cluster) DeleteScheduleKeys(ctx context.Context, layer string, keys []SyncKey) error {
	const chunk = 1000
	for lo := 0; lo < len(keys); lo += chunk {
		hi := min(lo+chunk, len(keys))
		var sources, conns, syncs []string
		for _, k := range keys[lo:hi] {
			sources, conns, syncs = append(sources, k.Source), append(conns, k.Connection), append(syncs, k.Sync)
		}
		if _, err := c.pool.Exec(ctx, `DELETE FROM synclayer_cluster_schedules s
			USING unnest($2::text[], $3::text[], $4::text[]) AS u(source, connection, sync)
			WHERE s.layer = $1 AND s.source = u.source AND s.connection = u.connection AND s.sync = u.sync`,
			layer, sources, conns, syncs); err != nil {
			return fmt.Errorf("cluster: deleting %d schedules: %w", hi-lo, err)
		}
	}
	return nil
}

// ScheduleFilter selects schedules: an empty Source or Connection matches
// any.
type ScheduleFilter struct {
	// Layer is required.
	Layer      string
	Source     string
	Connection string
}

// DeleteSchedules removes the schedules f selects (a connection deleted:
// Layer, Source and Connection; a layer or source gone) and returns how
// many.
func (c *Cluster) DeleteSchedules(ctx context.Context, f ScheduleFilter) (int64, error) {
	if f.Layer == "" {
		return 0, errors.New("cluster: DeleteSchedules needs a layer")
	}
	tag, err := c.pool.Exec(ctx, `DELETE FROM synclayer_cluster_schedules
		WHERE layer = $1 AND ($2 = '' OR source = $2) AND ($3 = '' OR connection = $3)`, f.Layer, f.Source, f.Connection)
	if err != nil {
		return 0, fmt.Errorf("cluster: deleting schedules of layer %s: %w", f.Layer, err)
	}
	return tag.RowsAffected(), nil
}

// NextRun tells when a sync's schedule fires next; ok is false when it has
// none.
func (c *Cluster) NextRun(ctx context.Context, layer string, k SyncKey) (at time.Time, ok bool, err error) {
	err = c.pool.QueryRow(ctx, `SELECT next_at FROM synclayer_cluster_schedules
		WHERE layer = $1 AND source = $2 AND connection = $3 AND sync = $4`, layer, k.Source, k.Connection, k.Sync).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("cluster: reading the schedule of %s/%s: %w", k.Source, k.Sync, err)
	}
	return at, true, nil
}

func (c *Cluster) wakeSchedules() {
	select {
	case c.schedWake <- struct{}{}:
	default:
	}
}

// scheduleLoop fires the due schedules, on every host: each claims due
// rows with FOR UPDATE SKIP LOCKED, so a firing is claimed by one host,
// which moves next_at on and enqueues the run in the same transaction.
// Between looks it sleeps until the next firing, SchedulePoll at most (a
// schedule another host added may be due sooner).
func (c *Cluster) scheduleLoop() {
	defer c.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-c.base.Done():
			return
		case <-c.schedWake:
		case <-timer.C:
		}
		wait, err := c.fireDue(c.base)
		if err != nil {
			if c.base.Err() != nil {
				return
			}
			c.log.Error("firing the due schedules failed; trying again", "error", err)
			wait = c.opts.SchedulePoll
		}
		timer.Reset(min(max(wait, time.Millisecond), c.opts.SchedulePoll))
	}
}

// fireDue fires what is due, a batch per transaction, and returns how long
// until the next firing (SchedulePoll when none).
func (c *Cluster) fireDue(ctx context.Context) (time.Duration, error) {
	for {
		n, err := c.fireBatch(ctx)
		if err != nil {
			return 0, err
		}
		if n < batch {
			break
		}
	}
	var secs *float64
	if err := c.pool.QueryRow(ctx, `SELECT extract(epoch FROM min(next_at) - now())::float8 FROM synclayer_cluster_schedules`).Scan(&secs); err != nil {
		return 0, fmt.Errorf("reading the next firing: %w", err)
	}
	if secs == nil {
		return c.opts.SchedulePoll, nil
	}
	return time.Duration(*secs * float64(time.Second)), nil
}

type dueRow struct {
	s       Schedule
	everyMS int64
	due     time.Time
}

// fireBatch claims up to batch due schedules and fires them in one
// transaction; it returns how many.
func (c *Cluster) fireBatch(ctx context.Context) (int, error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, `SELECT layer, source, connection, sync, every_ms, cron, next_at, now()
		FROM synclayer_cluster_schedules
		WHERE next_at <= now()
		ORDER BY next_at
		LIMIT $1
		FOR UPDATE SKIP LOCKED`, batch)
	if err != nil {
		return 0, err
	}
	var due []dueRow
	var now time.Time
	for rows.Next() {
		var r dueRow
		if err := rows.Scan(&r.s.Layer, &r.s.Source, &r.s.Connection, &r.s.Sync, &r.everyMS, &r.s.Cron, &r.due, &now); err != nil {
			rows.Close()
			return 0, err
		}
		r.s.Every = time.Duration(r.everyMS) * time.Millisecond
		due = append(due, r)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(due) == 0 {
		return 0, nil
	}
	fired := due[:0:0]
	for _, r := range due {
		next, unreadable := nextFiring(r.s, r.due, now)
		if unreadable != nil {
			// A cron expression this version cannot read (saved by a
			// newer one?): leave it, look again in an hour.
			c.log.Error("a schedule cannot be read; skipping it for an hour", "layer", r.s.Layer, "source", r.s.Source, "sync", r.s.Sync, "error", unreadable)
			next = now.Add(time.Hour)
		}
		if _, err := tx.Exec(ctx, `UPDATE synclayer_cluster_schedules SET next_at = $5
			WHERE layer = $1 AND source = $2 AND connection = $3 AND sync = $4`,
			r.s.Layer, r.s.Source, r.s.Connection, r.s.Sync, next); err != nil {
			return 0, err
		}
		if unreadable != nil {
			continue
		}
		fired = append(fired, r)
		job := RunJob{Layer: r.s.Layer, Run: c.opts.NewRunID(), Syncs: []SyncKey{r.s.SyncKey}, Trigger: "schedule"}
		if _, _, err := c.enqueue(ctx, tx, job); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	if c.opts.fired != nil {
		for _, r := range fired {
			c.opts.fired(r.s, r.due)
		}
	}
	return len(due), nil
}

// nextFiring is a schedule's next firing after the one due at due, at now
// (the database's clock): the next period from due, skipping the periods
// missed while no host was up (so the beat stays put and does not drift
// with the loop's delays); the cron expression's next time after now.
func nextFiring(s Schedule, due, now time.Time) (time.Time, error) {
	if s.Cron != "" {
		sc, err := cron.ParseStandard(s.Cron)
		if err != nil {
			return time.Time{}, err
		}
		return sc.Next(now.In(time.Local)), nil
	}
	if s.Every <= 0 {
		return time.Time{}, fmt.Errorf("the period is %s", s.Every)
	}
	missed := now.Sub(due) / s.Every
	return due.Add((missed + 1) * s.Every), nil
}
