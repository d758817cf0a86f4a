package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultLeaderCheck is how often a Leadership checks that the connection
// holding its lock still works.
const DefaultLeaderCheck = time.Second

// Leadership is this host's hold on a named task that one host at a time
// may do (a layer's webhook inbox): a PostgreSQL session advisory lock, on
// a pool connection held until Release. PostgreSQL releases the lock when
// the connection ends, so a dead host's leadership passes to another host
// as soon as its connection is gone. Its methods are safe for concurrent
// use.
type Leadership struct {
	key     string
	conn    *pgxpool.Conn
	ctx     context.Context
	cancel  context.CancelCauseFunc
	stopped chan struct{}
	once    sync.Once
}

// ErrLeadershipLost is the cause of a Leadership's context when the
// connection holding its lock broke: another host may lead now.
var ErrLeadershipLost = errors.New("cluster: this host lost its leadership (the connection holding its lock broke)")

// errReleased is the cause of a Leadership's context after Release.
var errReleased = errors.New("cluster: leadership released")

// leaderKey is the advisory lock key of a leadership (distinct from the
// sync locks' keys, which hash another prefix).
func leaderKey(key string) int64 {
	d := xxhash.New()
	d.WriteString("synclayer/leader")
	d.Write([]byte{0})
	d.WriteString(key)
	return int64(d.Sum64())
}

// TryLead makes this host the leader of key if no host is: it returns a
// Leadership, or nil (and no error) when another host (or another
// Leadership of this one) leads. It does not wait: call it again later to
// take over from a leader that stopped. The Leadership holds one
// connection of the pool until Release; its Context ends when the lock's
// connection breaks (ErrLeadershipLost: stop the task at once) or at
// Release. ctx bounds TryLead only.
func (c *Cluster) TryLead(ctx context.Context, key string) (*Leadership, error) {
	return tryLead(ctx, c.pool, key, c.leaderCheck())
}

// TryLeadOn is TryLead on a pool of its own, for a host's task that runs
// beside the engine's Cluster (the notifier).
func TryLeadOn(ctx context.Context, pool *pgxpool.Pool, key string) (*Leadership, error) {
	return tryLead(ctx, pool, key, DefaultLeaderCheck)
}

func tryLead(ctx context.Context, pool *pgxpool.Pool, key string, check time.Duration) (*Leadership, error) {
	if key == "" {
		return nil, errors.New("cluster: a leadership needs a key")
	}
	acq, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: no database connection to lead %s: %w", key, err)
	}
	var got bool
	if err := acq.Conn().QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, leaderKey(key)).Scan(&got); err != nil {
		acq.Release()
		return nil, fmt.Errorf("cluster: taking the lead of %s: %w", key, err)
	}
	if !got {
		acq.Release()
		return nil, nil
	}
	ld := &Leadership{key: key, conn: acq, stopped: make(chan struct{})}
	ld.ctx, ld.cancel = context.WithCancelCause(context.Background())
	go ld.watch(check)
	return ld, nil
}

func (c *Cluster) leaderCheck() time.Duration {
	if c.opts.leaderCheck > 0 {
		return c.opts.leaderCheck
	}
	return DefaultLeaderCheck
}

// watch checks every interval that the lock's connection still answers;
// when it does not, the lock is gone with it.
func (ld *Leadership) watch(every time.Duration) {
	defer close(ld.stopped)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ld.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(ld.ctx, max(every, time.Second)*5)
		_, err := ld.conn.Exec(ctx, `SELECT 1`)
		cancel()
		if err != nil && ld.ctx.Err() == nil {
			// A connection that fails to answer in time may still hold
			// the lock: closing it makes sure it does not.
			ld.conn.Conn().Close(context.Background())
			ld.cancel(ErrLeadershipLost)
			return
		}
	}
}

// Context is cancelled when the leadership ends: lost (its cause is
// ErrLeadershipLost) or released.
func (ld *Leadership) Context() context.Context { return ld.ctx }

// Release gives the leadership up (another host may take it at once) and
// the connection back to the pool. It may be called more than once.
func (ld *Leadership) Release() {
	ld.once.Do(func() {
		ld.cancel(errReleased)
		<-ld.stopped
		conn := ld.conn.Conn()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if !conn.IsClosed() {
			if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, leaderKey(ld.key)); err != nil {
				// Never hand a connection that may hold the lock back to
				// the pool: closed, the pool drops it.
				conn.Close(ctx)
			}
		}
		ld.conn.Release()
	})
}
