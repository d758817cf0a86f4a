package engine

import (
	"fmt"
	"sort"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// Pin makes revision n the one a layer's readers see.
func (e *Engine) Pin(layerName string, n int64) error {
	l, err := e.layer(layerName)
	if err != nil {
		return err
	}
	ds := l.deliveries(&outEvent{Type: EventRevisionPinned, ID: newID("evt"), Layer: l.cfg.Name, Revision: n}, false)
	if err := l.db.Pin(n, ds...); err != nil {
		return err
	}
	l.audit("revision.pinned", map[string]string{"revision": fmt.Sprint(n)})
	l.event(store.Event{Type: "revision.pinned", Message: fmt.Sprintf("revision %d", n)})
	return nil
}

// Unpin lets a layer's readers see its newest revision again; it returns
// the revision that was pinned (0 if none).
func (e *Engine) Unpin(layerName string) (int64, error) {
	l, err := e.layer(layerName)
	if err != nil {
		return 0, err
	}
	was, err := l.db.UnpinWith(func(was int64) []store.Delivery {
		return l.deliveries(&outEvent{Type: EventRevisionUnpinned, ID: newID("evt"), Layer: l.cfg.Name, Revision: was}, false)
	})
	if err != nil {
		return 0, err
	}
	if was != 0 {
		l.audit("revision.unpinned", map[string]string{"revision": fmt.Sprint(was)})
		l.event(store.Event{Type: "revision.unpinned", Message: fmt.Sprintf("revision %d", was)})
	}
	return was, nil
}

// Audit returns the newest audit entries of every layer (or of one), oldest
// first, at most limit.
func (e *Engine) Audit(layerName string, limit int) ([]store.AuditEntry, error) {
	names := e.order
	if layerName != "" {
		if _, err := e.layer(layerName); err != nil {
			return nil, err
		}
		names = []string{layerName}
	}
	all := []store.AuditEntry{}
	for _, name := range names {
		l, err := e.layer(name)
		if err != nil {
			continue
		}
		entries, err := l.db.AuditTail(limit)
		if err != nil {
			return nil, err
		}
		all = append(all, entries...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	if len(all) > limit {
		all = all[len(all)-limit:]
	}
	return all, nil
}

func (l *layer) audit(action string, details map[string]string) {
	if _, err := l.db.AppendAudit(store.AuditEntry{Action: action, Details: details}); err != nil {
		l.log.Error("could not append to the audit log", "action", action, "error", err)
	}
}

// AuditRetention is how long audit entries are kept.
const AuditRetention = 90 * 24 * time.Hour

// pruneLoop drops events and finished runs older than the layer's
// event_retention, and audit entries older than AuditRetention, hourly.
func (l *layer) pruneLoop() {
	defer l.e.wg.Done()
	retention := l.cfg.EventRetention
	if retention <= 0 {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		for _, p := range []struct {
			what  string
			prune func(time.Time) (int, error)
			keep  time.Duration
		}{
			{"events", l.db.PruneEvents, retention},
			{"runs", l.db.PruneRuns, retention},
			{"audit entries", l.db.PruneAudit, max(retention, AuditRetention)},
		} {
			if n, err := p.prune(now.Add(-p.keep)); err != nil {
				l.log.Warn("could not prune old "+p.what, "error", err)
			} else if n > 0 {
				l.log.Debug("pruned old "+p.what, "count", n)
			}
		}
		select {
		case <-l.e.ctx.Done():
			return
		case <-t.C:
		}
	}
}
