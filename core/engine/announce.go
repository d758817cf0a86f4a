package engine

import (
	"encoding/json"
	"time"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/store"
)

// Outbound event types (SPEC §8).
const (
	EventSyncStarted      = "sync.started"
	EventSyncCompleted    = "sync.completed"
	EventSyncFailed       = "sync.failed"
	EventRevisionPinned   = "revision.pinned"
	EventRevisionUnpinned = "revision.unpinned"
	eventTimeFormat       = "2006-01-02T15:04:05.000000Z07:00"
	syncTypeInitial       = "INITIAL"
	syncTypeIncremental   = "INCREMENTAL"
	syncTypeFull          = "FULL"
	syncTypeWebhook       = "WEBHOOK"
)

// outEvent is the JSON body of an outbound event.
type outEvent struct {
	Type           string  `json:"type"`
	ID             string  `json:"id"`
	Layer          string  `json:"layer"`
	Source         *string `json:"source,omitempty"`
	Sync           *string `json:"sync,omitempty"`
	Connection     *string `json:"connection,omitempty"`
	Run            string  `json:"run,omitempty"`
	Trigger        string  `json:"trigger,omitempty"`
	SyncType       string  `json:"syncType,omitempty"`
	Revision       int64   `json:"revision,omitempty"`
	ModifiedAfter  string  `json:"modifiedAfter,omitempty"`
	QueryTimeStamp string  `json:"queryTimeStamp,omitempty"`
	StartedAt      string  `json:"startedAt,omitempty"`
	FinishedAt     string  `json:"finishedAt,omitempty"`
	Results        any     `json:"results,omitempty"`
	Error          string  `json:"error,omitempty"`
	// refs are the syncs of the run the event is about (nango.go).
	refs []store.SyncRef
}

func fmtTime(t time.Time) string { return t.UTC().Format(eventTimeFormat) }

// deliveries turns an event into one delivery per notify endpoint that
// takes its type. completedEmpty marks a sync.completed that changed
// nothing (skipped by endpoints with skip_empty).
func (l *layer) deliveries(ev *outEvent, completedEmpty bool) []store.Delivery {
	var out []store.Delivery
	var body []byte
	for _, n := range l.cfg.Notify {
		if !contains(n.Events, ev.Type) && len(n.Events) > 0 {
			continue
		}
		if n.Format == config.NotifyFormatNango {
			out = append(out, l.nangoDeliveries(n, ev)...) // nango.go
			continue
		}
		if completedEmpty && n.SkipEmpty {
			continue
		}
		if body == nil {
			var err error
			if body, err = json.Marshal(ev); err != nil {
				l.log.Error("could not encode an outbound event", "type", ev.Type, "error", err)
				return nil
			}
		}
		out = append(out, store.Delivery{EventID: ev.ID, Endpoint: n.Name, Type: ev.Type, Body: body})
	}
	return out
}

// runEvent starts the event of a run: who, what and how.
func (l *layer) runEvent(typ string, p *pending) *outEvent {
	ev := &outEvent{Type: typ, ID: newID("evt"), Layer: l.cfg.Name, Run: p.run.ID, Trigger: p.run.Trigger, SyncType: p.syncType, refs: p.run.Syncs}
	if src, sync := runScope(p.run.Syncs, l.isWholeLayer(p)); src != "" {
		ev.Source = &src
		if sync != "" {
			ev.Sync = &sync
		}
	}
	if c := connectionOf(p.run.Syncs); c != "" {
		ev.Connection = &c
	}
	if p.run.StartedAt != nil {
		ev.StartedAt = fmtTime(*p.run.StartedAt)
	}
	return ev
}

// runScope names the source (and sync) a run covers, or "" for several.
func runScope(refs []store.SyncRef, wholeLayer bool) (source, sync string) {
	if len(refs) == 0 || wholeLayer {
		return "", ""
	}
	source = refs[0].Source
	for _, r := range refs[1:] {
		if r.Source != source {
			return "", ""
		}
	}
	if len(refs) == 1 {
		sync = refs[0].Sync
	}
	return source, sync
}

// isWholeLayer tells whether a run covers every sync of every source.
func (l *layer) isWholeLayer(p *pending) bool {
	if len(l.sources) < 2 {
		return false
	}
	for _, s := range l.sources {
		if !l.coversSource(p, s) {
			return false
		}
	}
	return true
}

// results shapes a revision's counts for an event: per model for a run of
// one source, per source and model otherwise.
func results(ev *outEvent, counts map[string]map[string]store.Counts) any {
	type res struct {
		Added   int64 `json:"added"`
		Updated int64 `json:"updated"`
		Deleted int64 `json:"deleted"`
	}
	per := func(m map[string]store.Counts) map[string]res {
		out := map[string]res{}
		for model, c := range m {
			out[model] = res{c.Added, c.Updated, c.Deleted}
		}
		return out
	}
	if ev.Source != nil {
		return per(counts[*ev.Source])
	}
	out := map[string]map[string]res{}
	for src, m := range counts {
		out[src] = per(m)
	}
	return out
}

func changedAny(counts map[string]map[string]store.Counts) bool {
	for _, m := range counts {
		for _, c := range m {
			if c.Changed() > 0 {
				return true
			}
		}
	}
	return false
}

// announceCompleted returns the Announce callback of a run's publish.
func (l *layer) announceCompleted(p *pending) func(store.Revision) []store.Delivery {
	return func(rev store.Revision) []store.Delivery {
		ev := l.runEvent(EventSyncCompleted, p)
		ev.Revision = rev.Number
		// Every record the run changed has last_modified_at = the commit
		// time of its revision, and every older change an earlier one.
		ev.ModifiedAfter = fmtTime(rev.CreatedAt)
		ev.QueryTimeStamp = ev.ModifiedAfter
		ev.FinishedAt = fmtTime(rev.CreatedAt)
		ev.Results = results(ev, rev.Counts)
		return l.deliveries(ev, !changedAny(rev.Counts))
	}
}

// syncedKey marks a sync (of a connection) that completed once: its next
// runs are not INITIAL.
func syncedKey(r store.SyncRef) string { return "synced/" + r.Key() + "/" + r.Sync }

// syncTypeOf classifies a run for its events: INITIAL when none of its
// syncs ever completed, FULL for a full run, INCREMENTAL otherwise.
func (l *layer) syncTypeOf(p *pending) string {
	initial := true
	p.unsynced = nil
	for _, r := range p.run.Syncs {
		if v, err := l.db.Meta(syncedKey(r)); err == nil && v != nil {
			initial = false
		} else {
			p.unsynced = append(p.unsynced, r)
		}
	}
	switch {
	case initial:
		return syncTypeInitial
	case p.run.Full:
		return syncTypeFull
	}
	return syncTypeIncremental
}
