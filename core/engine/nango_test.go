package engine

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

// nangoLayer is a layer "crm" (sources contacts, with connections, and
// shop, a name another layer has too) as nangoDeliveries sees it.
func nangoLayer() *layer {
	cfg := &config.Config{Layers: []*config.Layer{
		{Name: "crm", Sources: []*config.Source{{Name: "contacts", Connections: true}, {Name: "shop"}}},
		{Name: "other", Sources: []*config.Source{{Name: "shop"}}},
	}}
	e := &Engine{cfg: cfg}
	l := &layer{e: e, cfg: cfg.Layers[0], log: hclog.NewNullLogger()}
	l.sources = []*source{
		{l: l, cfg: cfg.Layers[0].Sources[0], desc: &plugin.Description{Syncs: []plugin.SyncSpec{
			{Name: "people", Models: []string{"Contact", "Company"}}, {Name: "deals", Models: []string{"Deal"}}}}},
		{l: l, cfg: cfg.Layers[0].Sources[1], desc: &plugin.Description{Syncs: []plugin.SyncSpec{{Name: "products", Models: []string{"Product"}}}}},
	}
	return l
}

func nangoBodies(t *testing.T, ds []store.Delivery) []map[string]any {
	t.Helper()
	var out []map[string]any
	seen := map[string]bool{}
	for _, d := range ds {
		if seen[d.EventID] {
			t.Errorf("two deliveries share the event id %s", d.EventID)
		}
		seen[d.EventID] = true
		var m map[string]any
		if err := json.Unmarshal(d.Body, &m); err != nil {
			t.Fatalf("%s: %v", d.Body, err)
		}
		if sorted, _ := json.Marshal(m); string(sorted) != string(d.Body) {
			t.Errorf("body is not compact with sorted keys:\n%s\n%s", d.Body, sorted)
		}
		out = append(out, m)
	}
	return out
}

func TestNangoDeliveriesCompleted(t *testing.T) {
	l := nangoLayer()
	src, conn := "contacts", "acme"
	ev := &outEvent{Type: EventSyncCompleted, ID: "evt_1", Layer: "crm", Source: &src, Connection: &conn, SyncType: syncTypeFull,
		ModifiedAfter: "2026-11-23T07:05:00.000456Z", QueryTimeStamp: "2026-11-23T07:05:00.000456Z",
		refs: []store.SyncRef{{Source: "contacts", Sync: "people", Connection: "acme"}}}
	// Counts of a connection run, as the store keeps them: by source.
	ev.Results = results(ev, map[string]map[string]store.Counts{"contacts": {"Contact": {Added: 2, Updated: 1}}})
	n := &config.Notify{Name: "app", Format: config.NotifyFormatNango}
	bodies := nangoBodies(t, l.nangoDeliveries(n, ev))
	if len(bodies) != 2 {
		t.Fatalf("%d webhooks, want one per model of the sync (2)", len(bodies))
	}
	got, _ := json.Marshal(bodies[0])
	want := `{"connectionId":"acme","from":"nango","model":"Contact","modifiedAfter":"2026-11-23T07:05:00.000456Z","providerConfigKey":"contacts",` +
		`"queryTimeStamp":"2026-11-23T07:05:00.000456Z","responseResults":{"added":2,"deleted":0,"updated":1},"success":true,"syncName":"people",` +
		`"syncType":"INITIAL","syncVariant":"base","type":"sync"}`
	if string(got) != want {
		t.Errorf("body\n%s\nwant\n%s", got, want)
	}
	if bodies[1]["model"] != "Company" {
		t.Errorf("second webhook: %v", bodies[1])
	}
	// skip_empty leaves out the models the run did not change.
	n.SkipEmpty = true
	if ds := l.nangoDeliveries(n, ev); len(ds) != 1 || !strings.Contains(string(ds[0].Body), `"model":"Contact"`) {
		t.Errorf("skip_empty: %d webhooks", len(ds))
	}
}

func TestNangoDeliveriesFailedAndWholeLayer(t *testing.T) {
	l := nangoLayer()
	n := &config.Notify{Name: "app", Format: config.NotifyFormatNango}
	// A whole-layer run fails: each model of each sync, the connection
	// "default" for the source without connections, and a key with the
	// layer where another layer has a source of the same name.
	ev := &outEvent{Type: EventSyncFailed, ID: "evt_2", Layer: "crm", SyncType: syncTypeIncremental, Error: "upstream said 500",
		StartedAt: "2026-11-23T07:00:00.000000Z", FinishedAt: "2026-11-23T07:01:00.000000Z",
		refs: []store.SyncRef{{Source: "contacts", Sync: "deals", Connection: "acme"}, {Source: "shop", Sync: "products"}}}
	bodies := nangoBodies(t, l.nangoDeliveries(n, ev))
	if len(bodies) != 2 {
		t.Fatalf("%d webhooks, want 2", len(bodies))
	}
	shop := bodies[1]
	errObj, _ := shop["error"].(map[string]any)
	if shop["success"] != false || shop["connectionId"] != "default" || shop["providerConfigKey"] != "crm.shop" || shop["model"] != "Product" ||
		errObj["description"] != "upstream said 500" || errObj["type"] != "sync_failed" || shop["failedAt"] != "2026-11-23T07:01:00.000000Z" ||
		shop["startedAt"] != "2026-11-23T07:00:00.000000Z" || shop["responseResults"] != nil {
		t.Errorf("failure webhook: %v", shop)
	}
	// Events Nango has no webhook for send nothing.
	for _, typ := range []string{EventSyncStarted, EventRevisionPinned, EventConnectionCreated} {
		if ds := l.nangoDeliveries(n, &outEvent{Type: typ, ID: "evt_3", refs: ev.refs}); len(ds) != 0 {
			t.Errorf("%s: %d webhooks", typ, len(ds))
		}
	}
}

func TestNangoDeliveriesWebhookRevision(t *testing.T) {
	l := nangoLayer()
	n := &config.Notify{Name: "app", Format: config.NotifyFormatNango}
	// A webhook revision names no sync: each changed model goes with the
	// sync that fetches it.
	src := "contacts"
	ev := &outEvent{Type: EventSyncCompleted, ID: "evt_4", Layer: "crm", Source: &src, SyncType: syncTypeWebhook, ModifiedAfter: "t"}
	ev.Results = results(ev, map[string]map[string]store.Counts{"contacts": {"Deal": {Updated: 1}}})
	bodies := nangoBodies(t, l.nangoDeliveries(n, ev))
	if len(bodies) != 1 || bodies[0]["syncName"] != "deals" || bodies[0]["syncType"] != "WEBHOOK" || bodies[0]["model"] != "Deal" {
		t.Errorf("webhook revision: %v", bodies)
	}
}
