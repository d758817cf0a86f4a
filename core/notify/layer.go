package notify

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/store"
)

// layerLoop delivers the outbox of one layer. One goroutine (run) owns its
// state and makes every write to the outbox; attempts run in goroutines of
// their own and report back on results.
type layerLoop struct {
	// pruned is closed when the prune loop has ended (at once without
	// retention).
	pruned chan struct{}
	n      *Notifier
	name   string
	db     store.Layer
	log    hclog.Logger

	// hard is cancelled when stop runs out of time: attempts in flight
	// are cut and left pending.
	hard       context.Context
	hardCancel context.CancelFunc

	reloads chan *config.Layer
	quit    chan struct{} // closed by stop: start nothing more
	dead    chan struct{} // closed when run returns
	results chan result

	// Owned by run.
	endpoints map[string]*endpoint
	pending   map[string]*item // pending deliveries by id
	since     uint64           // outbox position read up to
	inflight  int
	// stoppedHere are deliveries this loop marked stopped without an
	// attempt, because their endpoint was stopped: one of them pending
	// again was retried by hand.
	stoppedHere map[string]bool
}

// endpoint is a notify block and what the loop knows of it.
type endpoint struct {
	target   *target
	inflight int
	stopped  bool // answered 410 Gone
	// removed: gone from the configuration, kept while attempts to it are
	// in flight; nothing new is started.
	removed bool
}

// target is what an attempt needs of an endpoint. It is never changed, so
// attempts read it without locks.
type target struct {
	cfg    config.Notify
	signer *standardwebhooks.Webhook // nil for formats "slack" and "nango"
}

// item is a pending delivery.
type item struct {
	id, event, endpoint string
	nextAt              time.Time
	created             time.Time
	inflight            bool
}

// result is the outcome of one attempt.
type result struct {
	id, endpoint string
	// d is the delivery as the attempt found it; nil when it was no longer
	// pending (or could not be read): nothing was sent.
	d       *store.Delivery
	attempt store.Attempt
	// retryAfter is the wait the endpoint asked for (0: none).
	retryAfter time.Duration
	ok, gone   bool
	// cut: the attempt was cut short by Stop; nothing is recorded.
	cut bool
}

func newLayerLoop(n *Notifier, db store.Layer, lc *config.Layer) *layerLoop {
	l := &layerLoop{
		n: n, name: lc.Name, db: db, log: n.log.With("layer", lc.Name),
		reloads: make(chan *config.Layer, 1), quit: make(chan struct{}), dead: make(chan struct{}),
		pruned:    make(chan struct{}),
		results:   make(chan result),
		endpoints: map[string]*endpoint{}, pending: map[string]*item{}, stoppedHere: map[string]bool{},
	}
	l.hard, l.hardCancel = context.WithCancel(n.hard)
	l.configure(lc)
	return l
}

// reconfigure hands the loop a new configuration of its layer.
func (l *layerLoop) reconfigure(lc *config.Layer) {
	select {
	case <-l.reloads: // replaced by the newer one
	default:
	}
	l.reloads <- lc
}

// stop ends the loop; see Notifier.Stop.
func (l *layerLoop) stop(ctx context.Context) {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	// The prune loop ends at quit; a prune in progress finishes first
	// (the store closes after Stop).
	defer func() { <-l.pruned }()
	select {
	case <-l.dead:
		return
	case <-ctx.Done():
	}
	l.log.Warn("shutdown: outbound deliveries still in flight are cut; they go again at the next start")
	l.hardCancel()
	select {
	case <-l.dead:
	case <-time.After(5 * time.Second):
		l.log.Error("shutdown: the delivery loop did not stop")
	}
}

func (l *layerLoop) now() time.Time { return l.n.opts.Now().UTC() }

func (l *layerLoop) run() {
	defer close(l.dead)
	defer l.n.metrics.dropQueue(l.name)
	defer l.hardCancel()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var sig <-chan struct{}
	scan := true
	quitting := false
	quit := l.quit
	for {
		if quitting && l.inflight == 0 {
			return
		}
		if scan && !quitting {
			// Take the signal before reading, and a new one only after it
			// fired: a write between the two is never missed.
			sig = l.db.OutboxSignal()
			l.scan()
			scan = false
		}
		var wake <-chan time.Time
		if !quitting {
			if at, ok := l.dispatch(); ok {
				timer.Reset(max(at.Sub(l.now()), 0))
				wake = timer.C
			}
		}
		select {
		case <-sig:
			scan = true
		case r := <-l.results:
			l.settle(r)
		case lc := <-l.reloads:
			l.configure(lc)
		case <-wake:
		case <-quit:
			quitting, quit, sig = true, nil, nil
		}
		if wake != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// scan reads what changed in the outbox since the last scan.
func (l *layerLoop) scan() {
	ds, since, err := l.db.OutboxChanges(l.since)
	if err != nil {
		l.log.Error("cannot read the outbox; trying again at the next event", "error", err)
		return
	}
	first := l.since == 0
	l.since = since
	for _, d := range ds {
		l.absorb(d)
	}
	if first && len(l.pending) > 0 {
		l.log.Info("delivering outbound events left in the outbox", "pending", len(l.pending))
	}
}

// absorb takes in the stored state of a delivery.
func (l *layerLoop) absorb(d *store.Delivery) {
	id := d.ID()
	it := l.pending[id]
	if it != nil && it.inflight {
		// The attempt's outcome settles it; a retry asked for by hand
		// meanwhile is taken in then (see settle).
		return
	}
	if d.State != store.DeliveryPending {
		delete(l.pending, id)
		return
	}
	if ep := l.endpoints[d.Endpoint]; ep != nil && ep.stopped {
		if len(d.Attempts) == 0 && !l.stoppedHere[id] {
			// A new event for a stopped endpoint.
			l.markStopped(d)
			return
		}
		// Every pending delivery of the endpoint was marked stopped when
		// it stopped: this one was retried by hand.
		ep.stopped = false
		l.log.Info("notify endpoint started again: one of its deliveries was retried", "endpoint", d.Endpoint, "delivery", id)
	}
	if it == nil {
		it = &item{id: id, event: d.EventID, endpoint: d.Endpoint, created: d.Created}
		l.pending[id] = it
	}
	it.nextAt = d.NextAt
}

// dispatch starts the attempts that are due, oldest event first, as long
// as their endpoints have room, and returns when the next one is due.
func (l *layerLoop) dispatch() (time.Time, bool) {
	now := l.now()
	var next, oldest time.Time
	var due []*item
	for _, it := range l.pending {
		if oldest.IsZero() || it.created.Before(oldest) {
			oldest = it.created
		}
		ep := l.endpoints[it.endpoint]
		if it.inflight || ep == nil || ep.stopped || ep.removed || ep.inflight >= l.n.opts.Concurrency {
			continue
		}
		if it.nextAt.After(now) {
			if next.IsZero() || it.nextAt.Before(next) {
				next = it.nextAt
			}
			continue
		}
		due = append(due, it)
	}
	l.n.metrics.setQueue(l.name, len(l.pending), oldest)
	slices.SortFunc(due, func(a, b *item) int {
		return cmp.Or(cmp.Compare(a.event, b.event), cmp.Compare(a.endpoint, b.endpoint))
	})
	for _, it := range due {
		ep := l.endpoints[it.endpoint]
		if ep.inflight >= l.n.opts.Concurrency {
			// Full now: a result wakes the loop.
			continue
		}
		it.inflight = true
		ep.inflight++
		l.inflight++
		go l.attempt(ep.target, it.id)
	}
	return next, !next.IsZero()
}

// attempt runs one attempt and reports it.
func (l *layerLoop) attempt(t *target, id string) {
	r := result{}
	d, err := l.db.GetDelivery(id)
	switch {
	case err != nil:
		if !errors.Is(err, store.ErrNotFound) {
			l.log.Error("cannot read a delivery", "delivery", id, "error", err)
		}
	case d.State == store.DeliveryPending:
		r = l.n.send(l.hard, t, d)
		r.d = d
	}
	r.id, r.endpoint = id, t.cfg.Name
	select {
	case l.results <- r:
	case <-l.dead:
	}
}

// settle records an attempt and the delivery's next state. The record is
// written onto the stored delivery in one atomic step: a retry asked for
// by hand while the attempt was in flight (its redelivery count moved)
// stands, and the delivery stays pending, due when it was asked for,
// whatever the attempt's outcome: the retry gets an attempt of its own.
func (l *layerLoop) settle(r result) {
	it := l.pending[r.id]
	if it != nil {
		it.inflight = false
	}
	if ep := l.endpoints[r.endpoint]; ep != nil {
		ep.inflight--
		if ep.removed && ep.inflight == 0 {
			delete(l.endpoints, r.endpoint)
		}
	}
	l.inflight--
	if r.d == nil || r.cut {
		// Nothing sent, or nothing known of it: the store says what next.
		l.reread(r.id)
		return
	}
	l.n.metrics.attempt(l.name, r.endpoint, r.ok)
	ep := l.endpoints[r.d.Endpoint]
	var redelivered, exhausted bool
	d, err := l.db.ModifyDelivery(r.id, func(d *store.Delivery) error {
		redelivered = d.Redeliveries != r.d.Redeliveries
		due := d.NextAt
		d.Attempts = append(d.Attempts, r.attempt)
		d.NextAt = time.Time{}
		switch n := len(d.Attempts); {
		case redelivered:
			d.State, d.NextAt = store.DeliveryPending, due
		case r.ok:
			d.State = store.DeliveryDelivered
		case r.gone:
			d.State = store.DeliveryStopped
		case ep != nil && ep.stopped:
			d.State = store.DeliveryStopped
		case n > len(l.n.opts.Schedule):
			d.State, exhausted = store.DeliveryFailed, true
		default:
			d.State = store.DeliveryPending
			d.NextAt = l.now().Add(l.n.backoff(n-1, r.retryAfter))
		}
		return nil
	})
	if err != nil {
		l.log.Error("cannot record a delivery attempt", "delivery", r.id, "error", err)
		l.reread(r.id)
		return
	}
	switch {
	case redelivered:
		l.log.Info("a retry was asked for while an attempt was in flight: it gets an attempt of its own", "endpoint", d.Endpoint, "event", d.EventID, "attempt_ok", r.ok)
	case exhausted:
		l.log.Warn("outbound event not delivered: every retry failed", "endpoint", d.Endpoint, "event", d.EventID, "type", d.Type, "attempts", len(d.Attempts), "last_error", r.attempt.Error)
	case d.State == store.DeliveryPending:
		l.log.Debug("outbound event attempt failed; will retry", "endpoint", d.Endpoint, "event", d.EventID, "attempt", len(d.Attempts), "error", r.attempt.Error, "next_attempt_at", d.NextAt)
	}
	if d.State == store.DeliveryPending && it != nil {
		it.nextAt = d.NextAt
	} else {
		delete(l.pending, r.id)
	}
	if r.gone && ep != nil && !ep.stopped && !redelivered {
		l.stopEndpoint(ep, d)
	}
}

// reread takes in the stored state of one delivery.
func (l *layerLoop) reread(id string) {
	d, err := l.db.GetDelivery(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		delete(l.pending, id)
	case err != nil:
		l.log.Error("cannot read a delivery", "delivery", id, "error", err)
		if it := l.pending[id]; it != nil {
			it.nextAt = l.now().Add(time.Second)
		}
	default:
		l.absorb(d)
	}
}

// stopEndpoint stops delivery to an endpoint that answered 410 Gone: its
// pending deliveries are marked stopped, and so is every new one, until
// the host restarts, the endpoint's notify block changes or one of its
// deliveries is retried by hand.
func (l *layerLoop) stopEndpoint(ep *endpoint, by *store.Delivery) {
	ep.stopped = true
	name := ep.target.cfg.Name
	l.log.Warn("notify endpoint answered 410 Gone: no more deliveries to it until the host restarts, its notify block changes or one of its deliveries is retried",
		"endpoint", name, "event", by.EventID)
	if _, err := l.db.AppendAudit(store.AuditEntry{Action: AuditEndpointStopped, Details: map[string]string{
		"endpoint": name, "event": by.EventID, "type": by.Type, "status": "410",
	}}); err != nil {
		l.log.Error("cannot write the audit entry of a stopped endpoint", "endpoint", name, "error", err)
	}
	for id, it := range l.pending {
		if it.endpoint != name || it.inflight {
			continue
		}
		d, err := l.db.GetDelivery(id)
		if err != nil {
			l.log.Error("cannot read a delivery", "delivery", id, "error", err)
			continue
		}
		if d.State == store.DeliveryPending {
			l.markStopped(d)
		} else {
			delete(l.pending, id)
		}
	}
}

// markStopped settles a pending delivery of a stopped endpoint, unsent.
func (l *layerLoop) markStopped(d *store.Delivery) {
	id := d.ID()
	d.State, d.NextAt = store.DeliveryStopped, time.Time{}
	if err := l.db.UpdateDelivery(d); err != nil {
		l.log.Error("cannot record a stopped delivery", "delivery", id, "error", err)
	}
	l.stoppedHere[id] = true
	delete(l.pending, id)
}

// configure applies a layer's notify blocks. An unchanged block keeps its
// state (a 410 stop among it); a changed one starts afresh.
func (l *layerLoop) configure(lc *config.Layer) {
	next := map[string]*endpoint{}
	for _, nc := range lc.Notify {
		old := l.endpoints[nc.Name]
		if old != nil && sameNotify(&old.target.cfg, nc) {
			next[nc.Name] = old
			continue
		}
		t := &target{cfg: *nc}
		t.cfg.Events = slices.Clone(nc.Events)
		if nc.Format != FormatSlack && nc.Format != FormatNango {
			s, err := standardwebhooks.NewWebhook(nc.Secret)
			if err != nil {
				// config.Load checks secrets; this is a bug if it happens.
				l.log.Error("notify endpoint has an unusable secret; its events wait", "endpoint", nc.Name)
				continue
			}
			t.signer = s
		}
		l.n.metrics.endpoint(l.name, nc.Name)
		ep := &endpoint{target: t}
		if old != nil {
			ep.inflight = old.inflight
			if old.stopped {
				l.log.Info("notify endpoint changed: delivering to it again", "endpoint", nc.Name)
			}
		}
		next[nc.Name] = ep
	}
	for name, old := range l.endpoints {
		if next[name] == nil && old.inflight > 0 {
			// Gone from the configuration with attempts in flight: keep
			// counting them until they end; nothing new is started.
			next[name] = &endpoint{target: old.target, inflight: old.inflight, removed: true}
		}
	}
	l.endpoints = next
}

func sameNotify(a, b *config.Notify) bool {
	return a.Name == b.Name && a.URL == b.URL && a.Secret == b.Secret && a.Format == b.Format &&
		a.SkipEmpty == b.SkipEmpty && slices.Equal(a.Events, b.Events)
}

// pruneLoop drops settled deliveries older than the retention, hourly.
func (l *layerLoop) pruneLoop() {
	defer close(l.pruned)
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		n, err := l.db.PruneDeliveries(l.now().Add(-l.n.opts.Retention))
		if err != nil {
			l.log.Error("cannot prune the outbox", "error", err)
		} else if n > 0 {
			l.log.Debug("pruned settled deliveries", "deliveries", n)
		}
		select {
		case <-tick.C:
		case <-l.quit:
			return
		}
	}
}
