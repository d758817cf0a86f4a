package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/synclayer/synclayer/core/cluster"
	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/notify"
	"github.com/synclayer/synclayer/core/store"
)

// replicas is what a host needs to share its PostgreSQL store with other
// hosts (SPEC §16): a pool for the run distribution (core/cluster, opened
// by the engine) and the notifier's leadership; nil for the badger store.
type replicas struct {
	pool   *pgxpool.Pool
	hostID string
	log    hclog.Logger
}

// clusterPoolSpare is room in the cluster's pool beyond what a start
// needs, so that a reload adding layers still fits.
const clusterPoolSpare = 8

// openReplicas opens the cluster's pool when the store is PostgreSQL.
func openReplicas(cfg *config.Config, log hclog.Logger) (*replicas, error) {
	if cfg.Service.Store.Driver != config.StorePostgres {
		return nil, nil
	}
	pc, err := pgxpool.ParseConfig(cfg.Service.Store.DSN)
	if err != nil {
		return nil, errors.New("the store's dsn does not parse (expected postgres://user:password@host:port/database?sslmode=...)")
	}
	// Each running run holds a connection (its sync locks and heartbeats),
	// each layer one for its inbox's leadership, the notifier one.
	need := int32(cfg.Service.MaxConcurrentRuns + cluster.ReservedConns + len(cfg.Layers) + 1 + clusterPoolSpare)
	if pc.MaxConns < need {
		pc.MaxConns = need
	}
	pc.ConnConfig.RuntimeParams["application_name"] = "synclayer-cluster"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("cluster pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cluster pool: cannot reach the server: %w", err)
	}
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return &replicas{pool: pool, hostID: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:])), log: log}, nil
}

// clusterOptions are the engine's cluster options (nil without replicas).
func (r *replicas) clusterOptions() *cluster.Options {
	if r == nil {
		return nil
	}
	o := &cluster.Options{Pool: r.pool, HostID: r.hostID, Logger: r.log.Named("cluster")}
	if v := os.Getenv(rescueAfterEnv); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			o.RescueAfter = d
		} else {
			r.log.Warn("ignoring "+rescueAfterEnv+": not a positive duration", "value", v)
		}
	}
	return o
}

// rescueAfterEnv sets how long a run's host may be silent before another
// host runs the run again (core/cluster's RescueAfter, default 30 s; a dead
// host's run restarts within about that + 36 s). Shorter rescues sooner,
// at one heartbeat per run every sixth of it.
const rescueAfterEnv = "SYNCLAYER_RESCUE_AFTER"

func (r *replicas) close() {
	if r != nil {
		r.pool.Close()
	}
}

// deliverer is the notifier as serve drives it.
type deliverer interface {
	Reload(cfg *config.Config)
	Stop(ctx context.Context)
}

// startDeliverer starts the notifier: at once on a host of its own, and
// with replicas on whichever host leads "notify", so that each attempt of
// each delivery is made by one host (the deliveries are claimed by the
// leadership: one notifier works the outbox at a time; another host takes
// over within a second or two of the leader's death, when PostgreSQL
// releases its lock).
func startDeliverer(cfg *config.Config, st store.Store, r *replicas, log hclog.Logger, metrics *notify.Metrics) (deliverer, error) {
	if r == nil {
		return startNotifier(cfg, st, log, metrics)
	}
	d := &ledNotifier{cfg: cfg, st: st, r: r, log: log, metrics: metrics, done: make(chan struct{})}
	var ctx context.Context
	ctx, d.cancel = context.WithCancel(context.Background())
	go d.run(ctx)
	return d, nil
}

// ledNotifier runs a notifier while this host leads "notify".
type ledNotifier struct {
	st      store.Store
	r       *replicas
	log     hclog.Logger
	metrics *notify.Metrics
	cancel  context.CancelFunc
	done    chan struct{}

	mu  sync.Mutex
	cfg *config.Config
	cur *notify.Notifier
}

func (d *ledNotifier) run(ctx context.Context) {
	defer close(d.done)
	for {
		lead, err := cluster.TryLeadOn(ctx, d.r.pool, "notify")
		if err != nil && ctx.Err() == nil {
			d.log.Warn("could not ask for the lead of outbound deliveries; retrying", "error", err)
		}
		if lead != nil {
			d.lead(ctx, lead)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// lead delivers until the leadership or the host ends.
func (d *ledNotifier) lead(ctx context.Context, lead *cluster.Leadership) {
	defer lead.Release()
	d.mu.Lock()
	n, err := startNotifier(d.cfg, d.st, d.log, d.metrics)
	if err != nil {
		d.mu.Unlock()
		d.log.Error("could not start delivering outbound events", "error", err)
		return
	}
	d.cur = n
	d.mu.Unlock()
	d.log.Info("this host delivers the outbound events")
	select {
	case <-ctx.Done():
	case <-lead.Context().Done():
		d.log.Warn("lost the lead of outbound deliveries; another host takes them over")
	}
	d.mu.Lock()
	d.cur = nil
	d.mu.Unlock()
	stop, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	n.Stop(stop)
	cancel()
}

func (d *ledNotifier) Reload(cfg *config.Config) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg = cfg
	if d.cur != nil {
		d.cur.Reload(cfg)
	}
}

func (d *ledNotifier) Stop(ctx context.Context) {
	d.mu.Lock()
	n := d.cur
	d.mu.Unlock()
	if n != nil {
		n.Stop(ctx)
	}
	d.cancel()
	<-d.done
}
