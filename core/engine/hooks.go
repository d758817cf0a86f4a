package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

// Errors of the inbound hooks.
var (
	ErrUnknownHook    = errors.New("unknown hook")
	ErrNoWebhooks     = errors.New("this source does not take payload webhooks")
	ErrWebhookRefused = errors.New("webhook refused")
)

// AddWebhook adds a trigger webhook to a layer.
func (e *Engine) AddWebhook(layerName, name string) (store.Webhook, error) {
	l, err := e.layer(layerName)
	if err != nil {
		return store.Webhook{}, err
	}
	w, err := l.db.AddWebhook(name)
	if err != nil {
		return w, err
	}
	l.audit("webhook.added", map[string]string{"name": name, "id_prefix": w.ID[:6]})
	return w, nil
}

// DeleteWebhook removes a trigger webhook.
func (e *Engine) DeleteWebhook(layerName, id string) error {
	l, err := e.layer(layerName)
	if err != nil {
		return err
	}
	w, err := l.db.DeleteWebhook(id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: no such webhook in layer %q", ErrUnknownHook, layerName)
	}
	if err != nil {
		return err
	}
	l.audit("webhook.deleted", map[string]string{"name": w.Name, "id_prefix": w.ID[:6]})
	return nil
}

// Webhooks lists a layer's trigger webhooks.
func (e *Engine) Webhooks(layerName string) ([]store.Webhook, error) {
	l, err := e.layer(layerName)
	if err != nil {
		return nil, err
	}
	return l.db.Webhooks(), nil
}

// TriggerHook handles a stateless trigger webhook: the default hook of a
// layer (hookID empty), answering only while the layer has no added
// webhooks, or an added one. source limits the run to one source.
func (e *Engine) TriggerHook(layerName, hookID, sourceName string) (string, error) {
	l, err := e.layer(layerName)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnknownHook, err)
	}
	if hookID == "" {
		if l.db.HasWebhooks() {
			return "", fmt.Errorf("%w: the default hook is off while the layer has added webhooks", ErrUnknownHook)
		}
	} else if _, ok := l.db.LookupWebhook(hookID); !ok {
		return "", ErrUnknownHook
	}
	if sourceName != "" && l.source(sourceName) == nil {
		return "", fmt.Errorf("%w %q in layer %q", ErrUnknownSource, sourceName, layerName)
	}
	return e.Trigger(layerName, TriggerRequest{Source: sourceName, Trigger: TriggerWebhook})
}

// ReceiveWebhook handles a payload webhook for a source: the connector
// verifies it (ErrWebhookRefused with its reason when it fails), then it is
// stored durably; it returns once the request is on disk. Its changes are
// published in arrival order by the layer's inbox loop.
func (e *Engine) ReceiveWebhook(ctx context.Context, layerName, sourceName string, r *http.Request, body []byte) error {
	l, err := e.layer(layerName)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnknownHook, err)
	}
	s := l.source(sourceName)
	if s == nil {
		return fmt.Errorf("%w: %w %q in layer %q", ErrUnknownHook, ErrUnknownSource, sourceName, layerName)
	}
	e.mu.RLock()
	stopped := e.stopped
	e.mu.RUnlock()
	if stopped {
		return fmt.Errorf("%w: the host is stopping or reloading; try again", ErrNotReady)
	}
	s.mu.Lock()
	desc, raw := s.desc, s.configRaw
	s.mu.Unlock()
	if desc == nil || !desc.Webhooks {
		return fmt.Errorf("%w: %w (plugin %q)", ErrUnknownHook, ErrNoWebhooks, s.cfg.Plugin)
	}
	inst, err := s.instance(ctx)
	if err != nil {
		return err
	}
	wh := &plugin.Webhook{Layer: layerName, Source: sourceName, Config: raw, Method: r.Method, Path: r.URL.Path, Header: r.Header, Body: body}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	ok, reason, err := inst.VerifyWebhook(vctx, wh)
	cancel()
	if err != nil {
		return fmt.Errorf("verify webhook: %w", err)
	}
	if !ok {
		if reason == "" {
			reason = "the connector refused the request"
		}
		return fmt.Errorf("%w: %s", ErrWebhookRefused, reason)
	}
	_, err = l.db.AppendInbox(store.InboxItem{Source: sourceName, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	return err
}

// inboxBatch bounds how many payload webhooks share one revision.
const inboxBatch = 256

// inboxLoop publishes payload webhooks: everything waiting when it wakes
// shares one revision, so latency stays low when they queue up.
func (l *layer) inboxLoop() {
	defer l.e.wg.Done()
	for {
		sig := l.db.InboxSignal()
		items, err := l.db.PendingInbox(inboxBatch)
		if err != nil {
			l.log.Error("could not read the webhook inbox", "error", err)
		}
		if len(items) > 0 {
			l.publishInbox(items)
			if l.e.ctx.Err() != nil {
				return // publishInbox gave up on the items: do not spin on them
			}
			continue
		}
		select {
		case <-l.e.ctx.Done():
			return
		case <-sig:
		}
	}
}

// maxWebhookAttempts is how often a payload webhook is tried before it is
// dropped (with an event saying why).
const maxWebhookAttempts = 3

func (l *layer) publishInbox(items []store.InboxItem) {
	ctx := l.e.ctx
	var batches []store.Batch
	var consume []uint64
	sources := map[string]bool{}
	for _, it := range items {
		cs, err := l.handleWebhook(ctx, it)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			it.Attempts++
			var crash *plugin.CrashError
			if it.Attempts < maxWebhookAttempts && errors.As(err, &crash) {
				// The plugin died: it is started again for the next try.
				if uerr := l.db.UpdateInbox(it); uerr != nil {
					l.log.Error("could not record a webhook attempt", "error", uerr)
				}
				break // keep arrival order: later items wait for this one
			}
			l.event(store.Event{Type: "webhook.failed", Source: it.Source, Message: err.Error()})
			l.log.Error("payload webhook dropped", "source", it.Source, "error", err)
			consume = append(consume, it.Seq)
			continue
		}
		consume = append(consume, it.Seq)
		if len(cs) > 0 {
			batches = append(batches, store.Batch{Source: it.Source, Changes: cs})
			sources[it.Source] = true
		}
	}
	if len(consume) == 0 {
		l.pause(100 * time.Millisecond) // a crashed plugin: let it go before the retry
		return
	}
	if len(batches) == 0 {
		if err := l.db.DropInbox(consume...); err != nil {
			l.log.Error("could not drop processed webhooks", "error", err)
		}
		return
	}
	var names []string
	for s := range sources {
		names = append(names, s)
	}
	sort.Strings(names)
	p := &pending{run: &store.Run{ID: newID("run"), Trigger: TriggerWebhook}, syncType: syncTypeWebhook}
	now := time.Now().UTC()
	p.run.StartedAt = &now
	rev, err := l.db.PublishChanges(store.PublishInfo{Trigger: TriggerWebhook, Sources: names, Run: p.run.ID, Consume: consume, Announce: l.announceWebhook(p, names)}, batches)
	if err != nil {
		l.log.Error("could not publish payload webhooks; they stay in the inbox", "error", err)
		l.pause(time.Second)
		return
	}
	l.event(store.Event{Type: "sync.completed", Run: p.run.ID, Message: fmt.Sprintf("revision %d (webhook)", rev.Number)})
}

// handleWebhook asks the source's connector for the changes of one payload
// webhook and validates them.
func (l *layer) handleWebhook(ctx context.Context, it store.InboxItem) ([]store.Change, error) {
	s := l.source(it.Source)
	if s == nil {
		return nil, fmt.Errorf("%w %q (removed from the configuration)", ErrUnknownSource, it.Source)
	}
	inst, err := s.instance(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	desc, raw := s.desc, s.configRaw
	s.mu.Unlock()
	allowed := map[string]bool{}
	for _, m := range desc.Models {
		allowed[m.Name] = true
	}
	var out []store.Change
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = inst.HandleWebhook(hctx, &plugin.Webhook{Layer: l.cfg.Name, Source: it.Source, Config: raw, Method: it.Method, Path: it.Path, Header: it.Header, Body: it.Body},
		func(m *plugin.Message) error {
			if m.Changes != nil {
				cs, err := validate(m.Changes, allowed)
				if err != nil {
					return err
				}
				out = append(out, cs...)
			}
			if m.Log != nil {
				inst.Logger().Log(m.Log.Level, m.Log.Message)
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("source %q webhook: %s", it.Source, l.e.redact.Replace(err.Error()))
	}
	return out, nil
}

// announceWebhook is the Announce callback of a webhook revision: one
// sync.completed of type WEBHOOK.
func (l *layer) announceWebhook(p *pending, sources []string) func(store.Revision) []store.Delivery {
	return func(rev store.Revision) []store.Delivery {
		ev := &outEvent{Type: EventSyncCompleted, ID: newID("evt"), Layer: l.cfg.Name, Run: p.run.ID, Trigger: TriggerWebhook, SyncType: syncTypeWebhook,
			Revision: rev.Number, ModifiedAfter: fmtTime(rev.CreatedAt), StartedAt: fmtTime(*p.run.StartedAt), FinishedAt: fmtTime(rev.CreatedAt)}
		ev.QueryTimeStamp = ev.ModifiedAfter
		if len(sources) == 1 {
			ev.Source = &sources[0]
		}
		ev.Results = results(ev, rev.Counts)
		return l.deliveries(ev, !changedAny(rev.Counts))
	}
}

// pause waits for d, or less if the engine stops.
func (l *layer) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.e.ctx.Done():
	case <-t.C:
	}
}
