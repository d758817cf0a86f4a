package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLeadershipOneHostAtATime: one host leads a key at a time; others
// (and a second try on the leader) are told no at once; the leadership of
// another key is independent; after Release, another host takes it.
func TestLeadershipOneHostAtATime(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	a := openHost(t, dsn, Options{HostID: "a", Runner: rec.runner("a"), NoSchedules: true})
	b := openHost(t, dsn, Options{HostID: "b", Runner: rec.runner("b"), NoSchedules: true})
	ctx := context.Background()

	la, err := a.TryLead(ctx, "inbox/crm")
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v; want the leadership", la, err)
	}
	for name, c := range map[string]*Cluster{"a": a, "b": b} {
		if l, err := c.TryLead(ctx, "inbox/crm"); err != nil || l != nil {
			t.Fatalf("%s.TryLead while a leads = %v, %v; want nil, nil", name, l, err)
		}
	}
	other, err := b.TryLead(ctx, "inbox/erp")
	if err != nil || other == nil {
		t.Fatalf("b.TryLead(another key) = %v, %v; want the leadership", other, err)
	}
	other.Release()
	if _, err := a.TryLead(ctx, ""); err == nil {
		t.Fatal("TryLead accepted an empty key")
	}

	la.Release()
	la.Release() // a second Release does nothing
	if la.Context().Err() == nil {
		t.Fatal("a released leadership's context is not done")
	}
	lb, err := b.TryLead(ctx, "inbox/crm")
	if err != nil || lb == nil {
		t.Fatalf("b.TryLead after a released = %v, %v; want the leadership", lb, err)
	}
	defer lb.Release()
	if lb.Context().Err() != nil {
		t.Fatal("a held leadership's context is done")
	}
}

// TestLeadershipLostWithItsConnection: when the connection holding the
// lock breaks (as when its host dies), PostgreSQL frees the lock, the
// leader's context ends with ErrLeadershipLost, and another host leads.
func TestLeadershipLostWithItsConnection(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	a := openHost(t, dsn, Options{HostID: "a", Runner: rec.runner("a"), NoSchedules: true, leaderCheck: 50 * time.Millisecond})
	b := openHost(t, dsn, Options{HostID: "b", Runner: rec.runner("b"), NoSchedules: true})
	ctx := context.Background()
	la, err := a.TryLead(ctx, "inbox/crm")
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v", la, err)
	}
	defer la.Release()
	pid := la.conn.Conn().PgConn().PID()
	if _, err := b.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	select {
	case <-la.Context().Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the leader did not notice that its lock's connection broke")
	}
	if cause := context.Cause(la.Context()); !errors.Is(cause, ErrLeadershipLost) {
		t.Fatalf("the lost leadership's cause is %v, want ErrLeadershipLost", cause)
	}
	var lb *Leadership
	waitFor(t, 20*time.Second, "b never took the leadership over", func() bool {
		lb, err = b.TryLead(ctx, "inbox/crm")
		if err != nil {
			t.Fatal(err)
		}
		return lb != nil
	})
	lb.Release()
	// The pool works on: the broken connection was not handed back.
	la.Release()
	if _, err := a.pool.Exec(ctx, `SELECT 1`); err != nil {
		t.Fatal(err)
	}
}
