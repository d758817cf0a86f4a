package engine

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/store"
)

// Nango's sync webhooks (SPEC §13): a notify endpoint of format "nango"
// gets, for a sync.completed or sync.failed, one delivery per model of the
// run's syncs, each with Nango's body. They wait in the outbox and are
// retried like every other delivery; core/notify signs them.

// NangoConnectionDefault is the connection id under which the Nango API
// shows a source without connections.
const NangoConnectionDefault = "default"

// nangoCounts are a model's changes in a Nango body (responseResults).
// Its fields are in key order: bodies have their keys sorted.
type nangoCounts struct {
	Added   int64 `json:"added"`
	Deleted int64 `json:"deleted"`
	Updated int64 `json:"updated"`
}

// nangoItem is one webhook: a model of a sync of a source (connection).
type nangoItem struct{ source, connection, sync, model string }

// nangoDeliveries returns the deliveries of an event to a notify endpoint
// of format "nango" (none for the events Nango has no webhook for).
func (l *layer) nangoDeliveries(n *config.Notify, ev *outEvent) []store.Delivery {
	if ev.Type != EventSyncCompleted && ev.Type != EventSyncFailed {
		return nil
	}
	counts := nangoResults(ev)
	var items []nangoItem
	if len(ev.refs) > 0 {
		for _, r := range ev.refs {
			for _, m := range l.syncModels(r.Source, r.Sync) {
				items = append(items, nangoItem{r.Source, r.Connection, r.Sync, m})
			}
		}
	} else {
		// A webhook revision names no sync: each changed model goes with
		// the sync of its source that fetches it.
		sources := make([]string, 0, len(counts))
		for s := range counts {
			sources = append(sources, s)
		}
		sort.Strings(sources)
		for _, src := range sources {
			models := make([]string, 0, len(counts[src]))
			for m := range counts[src] {
				models = append(models, m)
			}
			sort.Strings(models)
			for _, m := range models {
				items = append(items, nangoItem{src, "", l.syncOfModel(src, m), m})
			}
		}
	}
	var out []store.Delivery
	for _, it := range items {
		conn := it.connection
		if conn == "" {
			conn = NangoConnectionDefault
		}
		body := map[string]any{
			"from":              "nango",
			"type":              "sync",
			"connectionId":      conn,
			"providerConfigKey": l.nangoProviderConfigKey(it.source),
			"syncName":          it.sync,
			"syncVariant":       "base",
			"model":             it.model,
			"syncType":          nangoSyncType(ev.SyncType),
		}
		if ev.Type == EventSyncCompleted {
			c := counts[it.source][it.model]
			if n.SkipEmpty && c == (nangoCounts{}) {
				continue
			}
			body["success"] = true
			body["modifiedAfter"] = ev.ModifiedAfter
			body["queryTimeStamp"] = ev.QueryTimeStamp
			body["responseResults"] = c
		} else {
			body["success"] = false
			body["error"] = map[string]string{"type": "sync_failed", "description": ev.Error}
			body["startedAt"] = ev.StartedAt
			body["failedAt"] = ev.FinishedAt
		}
		// Keys sorted (encoding/json sorts map keys), no HTML escaping: the
		// body is what JSON.stringify gives back after JSON.parse.
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(body); err != nil {
			l.log.Error("could not encode a Nango webhook", "type", ev.Type, "error", err)
			continue
		}
		out = append(out, store.Delivery{EventID: ev.ID + "-" + strconv.Itoa(len(out)+1), Endpoint: n.Name, Type: ev.Type,
			Body: bytes.TrimSuffix(b.Bytes(), []byte("\n"))})
	}
	return out
}

// nangoResults reads an event's results as counts by source and model.
func nangoResults(ev *outEvent) map[string]map[string]nangoCounts {
	out := map[string]map[string]nangoCounts{}
	if ev.Results == nil {
		return out
	}
	raw, err := json.Marshal(ev.Results)
	if err != nil {
		return out
	}
	if ev.Source != nil {
		var m map[string]nangoCounts
		if json.Unmarshal(raw, &m) == nil {
			out[*ev.Source] = m
		}
		return out
	}
	_ = json.Unmarshal(raw, &out)
	return out
}

// nangoSyncType maps a synclayer sync type to Nango's words: a full run
// is reported as INITIAL, as Nango reports a full resync.
func nangoSyncType(t string) string {
	if t == syncTypeFull {
		return syncTypeInitial
	}
	return t
}

// syncModels lists the models a sync of a source fetches.
func (l *layer) syncModels(source, sync string) []string {
	s := l.source(source)
	if s == nil {
		return nil
	}
	s.mu.Lock()
	desc := s.desc
	s.mu.Unlock()
	if b := s.cfg.Sync(sync); b != nil && len(b.Models) > 0 {
		return b.Models
	}
	if desc == nil {
		return nil
	}
	if y := desc.Sync(sync); y != nil {
		return y.Models
	}
	return nil
}

// syncOfModel names the first sync of a source that fetches a model ("" if
// none does).
func (l *layer) syncOfModel(source, model string) string {
	s := l.source(source)
	if s == nil {
		return ""
	}
	s.mu.Lock()
	desc := s.desc
	s.mu.Unlock()
	if desc == nil {
		return ""
	}
	for _, y := range desc.Syncs {
		for _, m := range l.syncModels(source, y.Name) {
			if m == model {
				return y.Name
			}
		}
	}
	return ""
}

// nangoProviderConfigKey is a source's Provider-Config-Key in the Nango
// API: its name alone when no other layer of the host has a source of that
// name, else "<layer>.<source>".
func (l *layer) nangoProviderConfigKey(source string) string {
	n := 0
	for _, lc := range l.e.cfg.Layers {
		if lc.Source(source) != nil {
			n++
		}
	}
	if n == 1 {
		return source
	}
	return l.cfg.Name + "." + source
}
