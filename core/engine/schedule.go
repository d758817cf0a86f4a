package engine

import (
	"fmt"
	mathrand "math/rand/v2"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/synclayer/synclayer/core/store"
)

// schedule is when a sync runs on its own: every interval, or on a cron
// expression.
type schedule struct {
	every time.Duration
	cron  cron.Schedule
	expr  string
}

func (s schedule) next(after time.Time) time.Time {
	var t time.Time
	var span time.Duration
	if s.cron != nil {
		t = s.cron.Next(after)
		span = s.cron.Next(t).Sub(t)
	} else {
		t, span = after.Add(s.every), s.every
	}
	// A little jitter (up to 2% of the period, at most 10s), so that many
	// layers on one schedule do not hit their upstreams in the same instant.
	if j := min(span/50, 10*time.Second); j > 0 {
		t = t.Add(time.Duration(mathrand.Int64N(int64(j))))
	}
	return t
}

// parseCron parses a standard five-field cron expression (or a descriptor
// like @hourly).
func parseCron(expr string) (cron.Schedule, error) {
	return cron.ParseStandard(expr)
}

// scheduleOf is a sync's schedule: its sync block's, else the connector's
// default; ok is false when it has none.
func (s *source) scheduleOf(name string) (schedule, bool) {
	s.mu.Lock()
	desc := s.desc
	s.mu.Unlock()
	var every time.Duration
	var expr string
	if b := s.cfg.Sync(name); b != nil && (b.Every > 0 || b.Cron != "") {
		every, expr = b.Every, b.Cron
	} else if desc != nil {
		if spec := desc.Sync(name); spec != nil {
			every, expr = spec.Every, spec.Cron
		}
	}
	switch {
	case expr != "":
		c, err := parseCron(expr)
		if err != nil {
			return schedule{}, false // refused at prepare time
		}
		return schedule{cron: c, expr: expr}, true
	case every > 0:
		return schedule{every: every}, true
	}
	return schedule{}, false
}

func pausedKey(r store.SyncRef) string { return "paused/" + r.Source + "/" + r.Sync }

// paused tells whether a sync's schedule is paused.
func (l *layer) paused(r store.SyncRef) bool {
	v, err := l.db.Meta(pausedKey(r))
	return err == nil && len(v) > 0
}

// scheduleLoop triggers each scheduled sync when it is due, unless paused.
func (l *layer) scheduleLoop() {
	defer l.e.wg.Done()
	nextAt := map[store.SyncRef]time.Time{}
	scheds := map[store.SyncRef]schedule{}
	now := time.Now()
	for _, s := range l.sources {
		s.mu.Lock()
		desc := s.desc
		s.mu.Unlock()
		if desc == nil {
			continue
		}
		for _, y := range desc.Syncs {
			if sc, ok := s.scheduleOf(y.Name); ok {
				ref := store.SyncRef{Source: s.cfg.Name, Sync: y.Name}
				scheds[ref] = sc
				nextAt[ref] = sc.next(now)
			}
		}
	}
	if len(scheds) == 0 {
		return
	}
	l.setNextRuns(nextAt)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var soonest time.Time
		for _, t := range nextAt {
			if soonest.IsZero() || t.Before(soonest) {
				soonest = t
			}
		}
		timer.Reset(time.Until(soonest))
		select {
		case <-l.e.ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		for ref, t := range nextAt {
			if t.After(now) {
				continue
			}
			nextAt[ref] = scheds[ref].next(now)
			if l.paused(ref) {
				continue
			}
			if _, err := l.e.Trigger(l.cfg.Name, TriggerRequest{Source: ref.Source, Sync: ref.Sync, Trigger: TriggerSchedule}); err != nil {
				l.log.Error("scheduled trigger failed", "source", ref.Source, "sync", ref.Sync, "error", err)
			}
		}
		l.setNextRuns(nextAt)
	}
}

// Pause stops a sync's schedule (manual and webhook runs still go); the
// pause survives restarts.
func (e *Engine) Pause(layerName, sourceName, syncName string) error {
	return e.setPaused(layerName, sourceName, syncName, true)
}

// Resume restarts a paused sync's schedule.
func (e *Engine) Resume(layerName, sourceName, syncName string) error {
	return e.setPaused(layerName, sourceName, syncName, false)
}

func (e *Engine) setPaused(layerName, sourceName, syncName string, paused bool) error {
	l, err := e.layer(layerName)
	if err != nil {
		return err
	}
	refs, err := l.resolve(sourceName, syncName)
	if err != nil {
		return err
	}
	if syncName == "" || len(refs) != 1 {
		return fmt.Errorf("%w: name one sync of source %q", ErrUnknownSync, sourceName)
	}
	v := []byte(nil)
	action := "sync.resumed"
	if paused {
		v, action = []byte("1"), "sync.paused"
	}
	if err := l.db.SetMeta(pausedKey(refs[0]), v); err != nil {
		return err
	}
	l.audit(action, map[string]string{"source": sourceName, "sync": syncName})
	l.event(store.Event{Type: action, Source: sourceName, Sync: syncName})
	return nil
}
