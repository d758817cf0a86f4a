package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/synclayer/synclayer/core/internal/redact"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

// Errors of the inbound hooks.
var (
	ErrUnknownHook    = errors.New("unknown hook")
	ErrNoWebhooks     = errors.New("this source does not take payload webhooks")
	ErrWebhookRefused = errors.New("webhook refused")
	// ErrInboxFull: the layer holds as many accepted, unpublished payload
	// webhooks as inbox_limit allows; the sender should retry later (429).
	ErrInboxFull = errors.New("too many payload webhooks waiting")
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

// ReceiveWebhook handles a payload webhook for a source (for one of its
// connections, when it has connections): the connector verifies it
// (ErrWebhookRefused with its reason when it fails) with that config, then
// it is stored durably; it returns once the request is on disk. Its changes
// are published in arrival order by the layer's inbox loop.
func (e *Engine) ReceiveWebhook(ctx context.Context, layerName, sourceName, connection string, r *http.Request, body []byte) error {
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
	switch {
	case s.cfg.Connections && connection == "":
		return fmt.Errorf("%w: source %q has connections: post to /hooks/sources/%s/%s/{connection}", ErrUnknownHook, sourceName, layerName, sourceName)
	case !s.cfg.Connections && connection != "":
		return fmt.Errorf("%w: source %q has no connections", ErrUnknownHook, sourceName)
	case connection != "":
		if !s.hasConnection(connection) {
			return fmt.Errorf("%w: %w %q of source %q", ErrUnknownHook, ErrUnknownConnection, connection, sourceName)
		}
		if raw, _, err = s.connectionConfig(connection); err != nil {
			return fmt.Errorf("%w: %w", ErrUnknownHook, err)
		}
	}
	inst, release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
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
	_, err = l.db.AppendInbox(store.InboxItem{Source: sourceName, Connection: connection, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	if errors.Is(err, store.ErrInboxFull) {
		return fmt.Errorf("%w: %d payload webhooks of layer %q wait to be published (inbox_limit)", ErrInboxFull, l.db.InboxDepth(), layerName)
	}
	return err
}

// Bounds of one inbox publish: webhooks waiting when the loop wakes share
// one revision (a revision per batch, not per webhook, under load), up to
// these many items and changes.
const (
	inboxBatch        = 256
	inboxBatchChanges = 20000
	inboxBatchBytes   = 32 << 20
)

// inboxLoop publishes payload webhooks in arrival order.
func (l *layer) inboxLoop() {
	defer l.e.wg.Done()
	l.processInbox(l.e.ctx, 0)
}

// processInbox publishes payload webhooks in arrival order until ctx ends.
// It looks again when the store signals a new item, when a retry is due,
// and, if poll is set, every poll at least (items another host appended,
// should the store not signal them here).
func (l *layer) processInbox(ctx context.Context, poll time.Duration) {
	in := &inbox{retry: map[uint64]time.Time{}}
	for ctx.Err() == nil {
		sig := l.db.InboxSignal()
		items, err := l.db.PendingInbox(in.after, inboxBatch)
		if err != nil {
			l.log.Error("could not read the webhook inbox", "error", err)
		}
		var wait time.Duration
		if len(items) > 0 {
			wait = l.publishInbox(ctx, in, items)
			if wait == 0 {
				continue
			}
		}
		if poll > 0 && (wait == 0 || wait > poll) {
			wait = poll
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-sig:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// inbox is the state of a layer's inbox loop.
type inbox struct {
	// after is the sequence number up to which every item is done:
	// published, dropped or set aside. Reads start there.
	after uint64
	// retry holds items that failed for a passing reason, with the time
	// of their next attempt.
	retry map[uint64]time.Time
	// Counts for the periodic summary.
	published, revisions int
	lastSummary          time.Time
}

// Retries of a payload webhook that fails for a passing reason (a plugin
// crash or timeout, an upstream error): with backoff doubling from
// webhookRetryBase up to webhookRetryMax, maxWebhookAttempts in all; then
// it is set aside, with an event, and the queue goes on.
const (
	maxWebhookAttempts = 8
	webhookRetryBase   = time.Second
	webhookRetryMax    = time.Minute
)

// webhookError is a failed webhook's redacted error, with whether the
// failure may pass (plugin.IsTransient of the original).
type webhookError struct {
	err       error
	transient bool
}

func (e webhookError) Error() string   { return e.err.Error() }
func (e webhookError) Transient() bool { return e.transient }

// maxPermanentAttempts is how often a webhook that failed for a reason the
// connector did not mark as passing is tried before it is set aside: a
// few, since older connectors mark nothing.
const maxPermanentAttempts = 3

// errInvalidWebhook marks a webhook whose changes can never be published
// (the connector's output is invalid, its source is gone): it is set aside
// at once.
type errInvalidWebhook struct{ err error }

func (e errInvalidWebhook) Error() string { return e.err.Error() }
func (e errInvalidWebhook) Unwrap() error { return e.err }

// publishInbox handles a run of waiting items: the ready ones become one
// revision; an item that failed for a passing reason holds back the later
// items of its source (their order matters) but not those of other
// sources. It returns how long to wait before the next pass when nothing
// is ready (0: go on at once). ctx ends the pass (the engine stops, or
// this host no longer leads the layer's inbox).
func (l *layer) publishInbox(ctx context.Context, in *inbox, items []store.InboxItem) time.Duration {
	var batches []store.Batch
	var consume []uint64
	var changes, bytes int
	sources := map[string]bool{}
	held := map[string]bool{} // sources whose earlier item waits for a retry
	now := time.Now()
	var wait time.Duration
	done := func(seq uint64) { consume = append(consume, seq) }
	for _, it := range items {
		key := store.SourceKey(it.Source, it.Connection)
		if held[key] {
			continue
		}
		if at, ok := in.retry[it.Seq]; ok && now.Before(at) {
			held[key] = true
			if d := at.Sub(now); wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		if changes >= inboxBatchChanges || bytes >= inboxBatchBytes {
			break
		}
		cs, err := l.handleWebhook(ctx, it)
		if ctx.Err() != nil {
			return 0
		}
		if err != nil {
			it.Attempts++
			var invalid errInvalidWebhook
			limit := maxWebhookAttempts
			if !plugin.IsTransient(err) {
				limit = maxPermanentAttempts
			}
			if errors.As(err, &invalid) || it.Attempts >= limit {
				l.setAside(it, err)
				delete(in.retry, it.Seq)
				continue
			}
			d := webhookRetryBase << (it.Attempts - 1)
			d = min(d, webhookRetryMax)
			in.retry[it.Seq] = now.Add(d)
			held[key] = true
			if wait == 0 || d < wait {
				wait = d
			}
			if uerr := l.db.UpdateInbox(it); uerr != nil {
				l.log.Error("could not record a webhook attempt", "error", uerr)
			}
			l.log.Warn("payload webhook failed; retrying", "source", it.Source, "attempt", it.Attempts, "delay", d, "error", err)
			continue
		}
		delete(in.retry, it.Seq)
		done(it.Seq)
		if len(cs) > 0 {
			batches = append(batches, store.Batch{Source: key, Changes: cs})
			sources[it.Source] = true
			changes += len(cs)
			for _, c := range cs {
				bytes += len(c.Data)
			}
		}
	}
	if len(consume) == 0 {
		if wait == 0 {
			wait = webhookRetryBase
		}
		in.advance(l, items, held)
		return wait
	}
	if len(batches) == 0 {
		if err := l.db.DropInbox(consume...); err != nil {
			l.log.Error("could not drop processed webhooks", "error", err)
			return time.Second
		}
		in.advance(l, items, held)
		return 0
	}
	var names []string
	for s := range sources {
		names = append(names, s)
	}
	sort.Strings(names)
	if ctx.Err() != nil {
		return 0 // stopping, or no longer the inbox's leader: they stay in the inbox
	}
	p := &pending{run: &store.Run{ID: newID("run"), Trigger: TriggerWebhook}, syncType: syncTypeWebhook}
	p.run.StartedAt = &now
	rev, err := l.db.PublishChanges(store.PublishInfo{Trigger: TriggerWebhook, Sources: names, Run: p.run.ID, Consume: consume, Announce: l.announceWebhook(p, names)}, batches)
	if err != nil {
		l.log.Error("could not publish payload webhooks; they stay in the inbox", "error", err)
		return time.Second
	}
	in.advance(l, items, held)
	l.countRecords(rev.Counts)
	in.published += len(consume)
	in.revisions++
	l.log.Debug("payload webhooks published", "webhooks", len(consume), "revision", rev.Number)
	if time.Since(in.lastSummary) >= time.Minute {
		l.log.Info("payload webhooks published", "webhooks", in.published, "revisions", in.revisions, "waiting", l.db.InboxDepth())
		in.published, in.revisions, in.lastSummary = 0, 0, time.Now()
	}
	l.event(store.Event{Type: "sync.completed", Run: p.run.ID, Message: fmt.Sprintf("revision %d (webhook)", rev.Number)})
	return 0
}

// advance moves the read position past the leading items that are done:
// every item before the first one still waiting (held back or not
// reached) was published, dropped or set aside.
func (in *inbox) advance(l *layer, items []store.InboxItem, held map[string]bool) {
	for _, it := range items {
		if _, waiting := in.retry[it.Seq]; waiting || held[store.SourceKey(it.Source, it.Connection)] {
			break
		}
		in.after = it.Seq
	}
	l.db.InboxProcessed(in.after)
}

// setAside moves a payload webhook that cannot be processed out of the
// queue, with an event saying why.
func (l *layer) setAside(it store.InboxItem, err error) {
	msg := l.e.redact.Replace(err.Error())
	if serr := l.db.SetAsideInbox(it, msg); serr != nil {
		l.log.Error("could not set a failed payload webhook aside", "error", serr)
		return
	}
	l.event(store.Event{Type: "webhook.failed", Source: it.Source, Connection: it.Connection, Message: msg,
		Fields: map[string]string{"attempts": fmt.Sprint(it.Attempts), "inbox_seq": fmt.Sprint(it.Seq)}})
	l.log.Error("payload webhook set aside", "source", it.Source, "attempts", it.Attempts, "error", msg)
}

// countRecords adds a revision's counts to the records metric.
func (l *layer) countRecords(counts map[string]map[string]store.Counts) {
	for _, models := range counts {
		for _, c := range models {
			l.e.metrics.Records.WithLabelValues(l.cfg.Name, "added").Add(float64(c.Added))
			l.e.metrics.Records.WithLabelValues(l.cfg.Name, "updated").Add(float64(c.Updated))
			l.e.metrics.Records.WithLabelValues(l.cfg.Name, "deleted").Add(float64(c.Deleted))
		}
	}
}

// handleWebhook asks the source's connector for the changes of one payload
// webhook and validates them.
func (l *layer) handleWebhook(ctx context.Context, it store.InboxItem) ([]store.Change, error) {
	s := l.source(it.Source)
	if s == nil {
		return nil, errInvalidWebhook{fmt.Errorf("%w %q (removed from the configuration)", ErrUnknownSource, it.Source)}
	}
	inst, release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	s.mu.Lock()
	desc, raw := s.desc, s.configRaw
	s.mu.Unlock()
	var rd replacer = l.e.redact
	if it.Connection != "" {
		var crd *redact.Redactor
		if raw, crd, err = s.connectionConfig(it.Connection); err != nil {
			// Deleted since: its webhooks have nowhere to go.
			return nil, errInvalidWebhook{err}
		}
		rd = chainRedactor{l.e.redact, crd}
	}
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
					return errInvalidWebhook{err}
				}
				// The store refuses a whole publish for one bad record:
				// check here, so that this webhook alone is set aside
				// rather than holding the inbox back.
				if err := store.CheckChanges(it.Source, cs); err != nil {
					return errInvalidWebhook{err}
				}
				out = append(out, cs...)
			}
			if m.Log != nil {
				inst.Logger().Log(m.Log.Level, m.Log.Message)
			}
			return nil
		})
	if err != nil {
		werr := fmt.Errorf("source %q webhook: %s", it.Source, rd.Replace(err.Error()))
		var invalid errInvalidWebhook
		if errors.As(err, &invalid) || errors.Is(err, plugin.ErrTooLarge) {
			return nil, errInvalidWebhook{werr}
		}
		// The message is redacted; whether it may pass is kept.
		return nil, webhookError{err: werr, transient: plugin.IsTransient(err)}
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
