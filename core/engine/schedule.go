package engine

import (
	"container/heap"
	"errors"
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

// schedItem is one scheduled sync (of one connection) in a layer's heap.
type schedItem struct {
	ref   store.SyncRef
	at    time.Time
	sched schedule
	index int
}

// schedHeap orders scheduled syncs by due time: the layer's scheduler
// holds every sync of every connection in it, with no goroutine or timer
// each.
type schedHeap []*schedItem

func (h schedHeap) Len() int           { return len(h) }
func (h schedHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h schedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *schedHeap) Push(x any) {
	it := x.(*schedItem)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *schedHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.index = -1
	return it
}

// setSchedule puts ref in the heap due at at (replacing its entry), or
// takes it out when ok is false. Call with l.nextMu held.
func (l *layer) setScheduleLocked(ref store.SyncRef, sc schedule, at time.Time, ok bool) {
	if l.sched == nil {
		l.sched = map[store.SyncRef]*schedItem{}
	}
	it := l.sched[ref]
	switch {
	case !ok && it != nil:
		heap.Remove(&l.heap, it.index)
		delete(l.sched, ref)
	case !ok:
	case it != nil:
		it.at, it.sched = at, sc
		heap.Fix(&l.heap, it.index)
	default:
		it = &schedItem{ref: ref, at: at, sched: sc}
		heap.Push(&l.heap, it)
		l.sched[ref] = it
	}
}

// rescheduled wakes the scheduler: an entry may now be due sooner.
func (l *layer) rescheduled() {
	select {
	case l.schedWake <- struct{}{}:
	default:
	}
}

// spread is a first due time for a new schedule of a connection: anywhere
// within one period, so that thousands of connections created together do
// not all run at the same instant.
func spread(sc schedule, now time.Time) time.Time {
	first := sc.next(now)
	if span := first.Sub(now); span > 0 {
		return now.Add(time.Duration(mathrand.Int64N(int64(span)) + 1))
	}
	return first
}

// connSchedule is the schedule of one sync of a connection: its override,
// else the source's.
func (l *layer) connSchedule(s *source, mc *conn, sync string) (schedule, bool) {
	if mc != nil {
		s.mu.Lock()
		d, ok := mc.every[sync]
		s.mu.Unlock()
		if ok && d > 0 {
			return schedule{every: d}, true
		}
	}
	return s.scheduleOf(sync)
}

// scheduleConnection (re)schedules the syncs of a connection. The first
// runs of a new connection spread over one period (its first full run is
// queued at once by its creation).
func (l *layer) scheduleConnection(s *source, mc *conn, first bool) {
	s.mu.Lock()
	desc := s.desc
	s.mu.Unlock()
	if desc == nil {
		return
	}
	if l.e.clusterOpts != nil {
		l.scheduleConnectionClustered(s, mc, desc, first)
		return
	}
	now := time.Now()
	l.nextMu.Lock()
	for _, y := range desc.Syncs {
		ref := store.SyncRef{Source: s.cfg.Name, Sync: y.Name, Connection: mc.id}
		sc, ok := l.connSchedule(s, mc, y.Name)
		at := time.Time{}
		if ok {
			at = spread(sc, now)
			if !first {
				at = sc.next(now)
			}
		}
		l.setScheduleLocked(ref, sc, at, ok)
	}
	l.nextMu.Unlock()
	l.rescheduled()
}

// unscheduleConnection takes a connection's syncs out of the schedule.
func (l *layer) unscheduleConnection(source, id string) {
	if l.e.clusterOpts != nil {
		l.unscheduleConnectionClustered(source, id)
		return
	}
	l.nextMu.Lock()
	defer l.nextMu.Unlock()
	for ref := range l.sched {
		if ref.Source == source && ref.Connection == id {
			l.setScheduleLocked(ref, schedule{}, time.Time{}, false)
		}
	}
}

// nextRun tells when a scheduled sync is due next.
func (l *layer) nextRun(ref store.SyncRef) (time.Time, bool) {
	if l.e.clusterOpts != nil {
		return l.nextRunClustered(ref)
	}
	l.nextMu.Lock()
	defer l.nextMu.Unlock()
	if it := l.sched[ref]; it != nil {
		return it.at, true
	}
	return time.Time{}, false
}

// schedulePaused tells whether a due sync's schedule is paused.
func (l *layer) schedulePaused(ref store.SyncRef) bool {
	if ref.Connection == "" {
		return l.paused(ref)
	}
	s := l.source(ref.Source)
	if s == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mc := s.conns[ref.Connection]
	return mc == nil || mc.paused[ref.Sync]
}

// scheduleLoop triggers each scheduled sync when it is due, unless paused:
// the syncs of the sources and of every connection, in one heap.
func (l *layer) scheduleLoop() {
	defer l.e.wg.Done()
	now := time.Now()
	l.nextMu.Lock()
	l.eachSchedule(func(s *source, mc *conn, ref store.SyncRef, sc schedule, ok bool) error {
		if ok {
			at := sc.next(now)
			if mc != nil {
				at = spread(sc, now) // connections' first runs spread over one period
			}
			l.setScheduleLocked(ref, sc, at, true)
		}
		return nil
	})
	l.nextMu.Unlock()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.nextMu.Lock()
		wait := time.Hour
		if len(l.heap) > 0 {
			wait = time.Until(l.heap[0].at)
		}
		l.nextMu.Unlock()
		timer.Reset(wait)
		select {
		case <-l.e.ctx.Done():
			return
		case <-l.schedWake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			continue
		case <-timer.C:
		}
		now := time.Now()
		var due []store.SyncRef
		l.nextMu.Lock()
		for len(l.heap) > 0 && !l.heap[0].at.After(now) {
			it := l.heap[0]
			due = append(due, it.ref)
			it.at = it.sched.next(now)
			heap.Fix(&l.heap, 0)
		}
		l.nextMu.Unlock()
		for _, ref := range due {
			if l.schedulePaused(ref) {
				continue
			}
			if _, err := l.e.Trigger(l.cfg.Name, TriggerRequest{Source: ref.Source, Sync: ref.Sync, Connection: ref.Connection, Trigger: TriggerSchedule}); err != nil &&
				!errors.Is(err, ErrUnknownConnection) {
				l.log.Error("scheduled trigger failed", "source", ref.Source, "sync", ref.Sync, "connection", ref.Connection, "error", err)
			}
		}
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
	refs, err := l.resolve(sourceName, syncName, "")
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
	if l.e.clusterOpts != nil && refs[0].Connection == "" {
		s := l.source(sourceName)
		sc, ok := s.scheduleOf(syncName)
		if err := l.putSchedule(refs[0], sc, ok && !paused, time.Time{}); err != nil {
			return err
		}
	}
	l.audit(action, map[string]string{"source": sourceName, "sync": syncName})
	l.event(store.Event{Type: action, Source: sourceName, Sync: syncName})
	return nil
}

// eachSchedule calls fn with every sync of the layer's sources and of
// their connections (mc is nil for a source's own): its ref and its
// schedule (ok false when it has none), until fn fails.
func (l *layer) eachSchedule(fn func(s *source, mc *conn, ref store.SyncRef, sc schedule, ok bool) error) error {
	for _, s := range l.sources {
		s.mu.Lock()
		desc := s.desc
		conns := make([]*conn, 0, len(s.conns))
		for _, c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		if desc == nil {
			continue
		}
		for _, y := range desc.Syncs {
			if !s.cfg.Connections {
				sc, ok := s.scheduleOf(y.Name)
				if err := fn(s, nil, store.SyncRef{Source: s.cfg.Name, Sync: y.Name}, sc, ok); err != nil {
					return err
				}
				continue
			}
			for _, mc := range conns {
				sc, ok := l.connSchedule(s, mc, y.Name)
				if err := fn(s, mc, store.SyncRef{Source: s.cfg.Name, Sync: y.Name, Connection: mc.id}, sc, ok); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
