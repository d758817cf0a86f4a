// Package notify delivers outbound events (SPEC §8) from each layer's outbox
// to the notify endpoints of the configuration: a POST per event, signed by
// the Standard Webhooks scheme (or, with format "slack", a Slack message;
// with format "nango", Nango's sync webhooks signed X-Nango-Hmac-Sha256),
// retried on the schedule of SPEC §8 with jitter, honouring Retry-After,
// with at most a few attempts in flight per endpoint.
//
// The engine decides what happened and writes events to the outbox, in the
// same commit as what they announce; this package only carries them. Every
// attempt and every change of a delivery's state is written back to the
// store before the next step, so a restart resumes where the process
// stopped: an event is delivered at least once, and twice only when the
// process died between an endpoint's answer and the write that records it.
package notify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-hclog"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/store"
)

// DefaultSchedule is the wait before each retry of a delivery (SPEC §8):
// the first retry comes about 5 s after the first attempt, the last about
// 24 h after the one before it; a delivery whose last retry fails is
// failed. Each wait gets a jitter of ±Jitter.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// Defaults of Options.
const (
	// DefaultTimeout bounds one attempt, from connecting to reading the
	// answer's status and a little of its body.
	DefaultTimeout = 10 * time.Second
	// DefaultConcurrency is how many attempts may be in flight to one
	// endpoint at a time.
	DefaultConcurrency = 4
	// DefaultRetention is how long a settled delivery (delivered, failed
	// or stopped) stays in the outbox after its last attempt.
	DefaultRetention = 7 * 24 * time.Hour
	// Jitter is the fraction by which a scheduled wait varies either way.
	Jitter = 0.2
)

// AuditEndpointStopped is the audit action recorded when an endpoint
// answers 410 Gone and delivery to it stops.
const AuditEndpointStopped = "notify.endpoint_stopped"

// FormatSlack is the notify format that sends Slack incoming-webhook
// messages instead of signed JSON events.
const FormatSlack = "slack"

// Options configure a Notifier. Only Store and Config are required.
type Options struct {
	Store  store.Store
	Config *config.Config
	Logger hclog.Logger
	// Client sends the requests; nil: a pooled client that follows no
	// redirect (a 3xx answer is a failed attempt).
	Client *http.Client
	// Schedule is the wait before each retry; nil: DefaultSchedule; empty:
	// no retry. A delivery gets 1 + len(Schedule) attempts.
	Schedule []time.Duration
	// Timeout bounds one attempt; 0: DefaultTimeout.
	Timeout time.Duration
	// Concurrency bounds the attempts in flight per endpoint; 0:
	// DefaultConcurrency.
	Concurrency int
	// Retention: settled deliveries are pruned this long after their last
	// attempt; 0: DefaultRetention; negative: never.
	Retention time.Duration
	// Now is the clock of attempt times, next-attempt times and the
	// webhook-timestamp header; nil: time.Now. Waits still run on real
	// timers, for NextAt - Now().
	Now func() time.Time
	// Rand returns a number in [0, 1) that sets a wait's jitter; nil:
	// math/rand/v2. 0.5 means no jitter.
	Rand func() float64
	// Metrics receive the attempts and the queue of each layer; nil: a
	// fresh set, registered nowhere.
	Metrics *Metrics
}

// Notifier runs one delivery loop per layer of the configuration.
type Notifier struct {
	opts    Options
	log     hclog.Logger
	client  *http.Client
	metrics *Metrics

	// hard is cancelled when Stop runs out of time: attempts in flight are
	// cut and left pending.
	hard       context.Context
	hardCancel context.CancelFunc

	mu      sync.Mutex
	cfg     *config.Config
	loops   map[string]*layerLoop
	started bool
	stopped bool
}

// New builds a Notifier; nothing is sent until Start.
func New(opts Options) *Notifier {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Schedule == nil {
		opts.Schedule = DefaultSchedule
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	client := opts.Client
	if client == nil {
		client = cleanhttp.DefaultPooledClient()
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	n := &Notifier{opts: opts, log: opts.Logger, client: client, metrics: opts.Metrics, cfg: opts.Config, loops: map[string]*layerLoop{}}
	n.hard, n.hardCancel = context.WithCancel(context.Background())
	return n
}

// Start opens the outbox of every configured layer and starts delivering
// what is pending there, including what an earlier process left.
func (n *Notifier) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.stopped {
		return errors.New("notify: Start called twice or after Stop")
	}
	n.started = true
	var errs []error
	for _, lc := range n.cfg.Layers {
		if err := n.startLoop(lc); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// startLoop starts the delivery loop of a layer. Call with n.mu held.
func (n *Notifier) startLoop(lc *config.Layer) error {
	db, err := n.opts.Store.Layer(lc.Name)
	if err != nil {
		return fmt.Errorf("notify: open the outbox of layer %q: %w", lc.Name, err)
	}
	l := newLayerLoop(n, db, lc)
	n.loops[lc.Name] = l
	go l.run()
	if n.opts.Retention > 0 {
		go l.pruneLoop()
	} else {
		close(l.pruned)
	}
	return nil
}

// Reload switches to a new configuration: endpoints added, changed or
// removed take effect at once. An endpoint stopped by a 410 answer starts
// again when its notify block changed. Layers no longer configured stop
// being served once their attempts in flight end.
func (n *Notifier) Reload(cfg *config.Config) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cfg = cfg
	if !n.started || n.stopped {
		return
	}
	keep := map[string]bool{}
	for _, lc := range cfg.Layers {
		keep[lc.Name] = true
		if l, ok := n.loops[lc.Name]; ok {
			l.reconfigure(lc)
			continue
		}
		if err := n.startLoop(lc); err != nil {
			n.log.Error("reload: cannot deliver the events of a new layer", "layer", lc.Name, "error", err)
		}
	}
	for name, l := range n.loops {
		if keep[name] {
			continue
		}
		delete(n.loops, name)
		// Wait, so that a layer added back later never has two loops.
		ctx, cancel := context.WithTimeout(context.Background(), n.opts.Timeout+5*time.Second)
		l.stop(ctx)
		cancel()
	}
}

// Stop stops starting attempts, waits until those in flight end and are
// recorded, and returns. When ctx ends first, the attempts still in flight
// are cut: they stay pending and go again at the next start.
func (n *Notifier) Stop(ctx context.Context) {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return
	}
	n.stopped = true
	loops := make([]*layerLoop, 0, len(n.loops))
	for _, l := range n.loops {
		loops = append(loops, l)
	}
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Add(1)
		go func() { defer wg.Done(); l.stop(ctx) }()
	}
	wg.Wait()
	n.hardCancel()
}

// backoff is the wait before retry number i (0: the first retry), given
// the Retry-After the endpoint asked for (0: none). A Retry-After replaces
// the scheduled wait, but never below the schedule's first step (an
// endpoint cannot make us spin) nor above its last.
func (n *Notifier) backoff(i int, retryAfter time.Duration) time.Duration {
	s := n.opts.Schedule
	if retryAfter > 0 {
		return min(max(retryAfter, s[0]), s[len(s)-1])
	}
	d := s[min(i, len(s)-1)]
	return time.Duration(float64(d) * (1 - Jitter + 2*Jitter*n.opts.Rand()))
}
