package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSchedulesFireOnceAcrossHosts: three hosts share one schedule, every
// 2 s; over about 10 s it fires about 5 times in all, each firing once (by
// one host), and each firing's run goes.
func TestSchedulesFireOnceAcrossHosts(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	var mu sync.Mutex
	firings := map[time.Time][]string{}
	var hosts []*Cluster
	for i := range 3 {
		host := fmt.Sprintf("h%d", i)
		hosts = append(hosts, openHost(t, dsn, Options{
			HostID: host,
			Runner: rec.runner(host),
			fired: func(s Schedule, due time.Time) {
				mu.Lock()
				firings[due] = append(firings[due], host)
				mu.Unlock()
			},
		}))
	}
	ctx := context.Background()
	key := SyncKey{Source: "hubspot", Sync: "contacts"}
	start := time.Now()
	// Every host upserts the schedule at its start: it stays one.
	for _, h := range hosts {
		if err := h.UpsertSchedule(ctx, Schedule{Layer: "crm", SyncKey: key, Every: 2 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10*time.Second - time.Since(start) + 500*time.Millisecond)
	for _, h := range hosts {
		if _, err := h.DeleteSchedule(ctx, "crm", key); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	n := len(firings)
	var byHost []string
	for due, hs := range firings {
		if len(hs) != 1 {
			t.Errorf("the firing due at %s was fired by %v", due.Format(time.StampMilli), hs)
		}
		byHost = append(byHost, hs...)
	}
	mu.Unlock()
	t.Logf("%d firings in %s, by %v", n, time.Since(start).Round(time.Millisecond), byHost)
	if n < 4 || n > 6 {
		t.Fatalf("every = 2s over 10s fired %d times, want about 5", n)
	}
	waitFor(t, 20*time.Second, "the scheduled runs did not all go", func() bool { return jobStates(t, hosts[0].pool)["completed"] == n })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, r := range rec.runs {
		if r.Trigger != "schedule" || r.Layer != "crm" || len(r.Syncs) != 1 || r.Syncs[0] != key {
			t.Fatalf("a scheduled run went as %+v", r)
		}
	}
}

// TestScheduleTable: upserts keep an unchanged schedule's next firing and
// restart a changed one; deletes by sync and by filter; bad schedules are
// refused.
func TestScheduleTable(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	c := openHost(t, dsn, Options{HostID: "a", Runner: newRecorder().runner("a"), NoSchedules: true})
	ctx := context.Background()
	k := SyncKey{Source: "s", Connection: "c1", Sync: "y"}
	first := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := c.UpsertSchedule(ctx, Schedule{Layer: "l", SyncKey: k, Every: time.Hour, First: first}); err != nil {
		t.Fatal(err)
	}
	at, ok, err := c.NextRun(ctx, "l", k)
	if err != nil || !ok || !at.Equal(first) {
		t.Fatalf("NextRun = %v, %v, %v; want %v", at, ok, err, first)
	}
	// The same schedule again (another host starting): unchanged.
	if err := c.UpsertSchedule(ctx, Schedule{Layer: "l", SyncKey: k, Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if at2, _, _ := c.NextRun(ctx, "l", k); !at2.Equal(first) {
		t.Fatalf("an unchanged upsert moved the next firing from %v to %v", first, at2)
	}
	// A new period: one new period from now.
	if err := c.UpsertSchedule(ctx, Schedule{Layer: "l", SyncKey: k, Every: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if at3, _, _ := c.NextRun(ctx, "l", k); at3.After(time.Now().Add(time.Minute+5*time.Second)) || at3.Before(time.Now()) {
		t.Fatalf("a changed period fires next at %v, want in about a minute", at3)
	}
	// A cron schedule.
	k2 := SyncKey{Source: "s", Connection: "c2", Sync: "y"}
	if err := c.UpsertSchedule(ctx, Schedule{Layer: "l", SyncKey: k2, Cron: "0 * * * *"}); err != nil {
		t.Fatal(err)
	}
	if at4, ok, _ := c.NextRun(ctx, "l", k2); !ok || at4.Minute() != 0 || at4.Before(time.Now()) || at4.After(time.Now().Add(time.Hour)) {
		t.Fatalf("the hourly cron schedule fires next at %v", at4)
	}
	k3 := SyncKey{Source: "t", Sync: "y"}
	if err := c.UpsertSchedule(ctx, Schedule{Layer: "l", SyncKey: k3, Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.DeleteSchedules(ctx, ScheduleFilter{Layer: "l", Source: "s", Connection: "c2"}); err != nil || n != 1 {
		t.Fatalf("DeleteSchedules(connection c2) = %d, %v", n, err)
	}
	if found, err := c.DeleteSchedule(ctx, "l", k); err != nil || !found {
		t.Fatalf("DeleteSchedule = %v, %v", found, err)
	}
	if _, ok, _ := c.NextRun(ctx, "l", k); ok {
		t.Fatal("a deleted schedule still has a next run")
	}
	if n, err := c.DeleteSchedules(ctx, ScheduleFilter{Layer: "l"}); err != nil || n != 1 {
		t.Fatalf("DeleteSchedules(layer) = %d, %v", n, err)
	}
	for _, bad := range []struct {
		s    Schedule
		want string
	}{
		{Schedule{SyncKey: k, Every: time.Hour}, "needs its layer"},
		{Schedule{Layer: "l", SyncKey: k}, "at least 1ms"},
		{Schedule{Layer: "l", SyncKey: k, Every: time.Hour, Cron: "@hourly"}, "not both"},
		{Schedule{Layer: "l", SyncKey: k, Cron: "every tuesday"}, "not valid"},
	} {
		if err := c.UpsertSchedule(ctx, bad.s); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("UpsertSchedule(%+v) = %v, want an error saying %q", bad.s, err, bad.want)
		}
	}
	if _, err := c.DeleteSchedules(ctx, ScheduleFilter{}); err == nil {
		t.Error("DeleteSchedules without a layer was accepted")
	}
}

// TestUpsertSchedulesInBulk: 2,500 schedules upserted at once (three
// statements) are all there; upserting them again keeps their firings, one
// changed among them moves; a bad one refuses the whole set;
// DeleteScheduleKeys removes exactly the keys given.
func TestUpsertSchedulesInBulk(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	c := openHost(t, dsn, Options{HostID: "a", Runner: newRecorder().runner("a"), NoSchedules: true})
	ctx := context.Background()
	first := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	var ss []Schedule
	for i := 0; i < 2500; i++ {
		ss = append(ss, Schedule{Layer: "l", SyncKey: SyncKey{Source: "s", Connection: fmt.Sprintf("c%04d", i), Sync: "y"}, Every: time.Hour, First: first})
	}
	if err := c.UpsertSchedules(ctx, ss); err != nil {
		t.Fatal(err)
	}
	again := append([]Schedule(nil), ss...)
	for i := range again {
		again[i].First = time.Time{}
	}
	again[7].Every = time.Minute
	if err := c.UpsertSchedules(ctx, again); err != nil {
		t.Fatal(err)
	}
	for i, s := range ss {
		at, ok, err := c.NextRun(ctx, "l", s.SyncKey)
		switch {
		case err != nil || !ok:
			t.Fatalf("schedule %d: %v %v", i, ok, err)
		case i == 7 && (at.Equal(first) || at.After(time.Now().Add(2*time.Minute))):
			t.Fatalf("the changed schedule fires next at %v, want in about a minute", at)
		case i != 7 && !at.Equal(first):
			t.Fatalf("schedule %d fires next at %v, want %v (unchanged)", i, at, first)
		}
	}
	bad := append([]Schedule{{Layer: "l", SyncKey: SyncKey{Source: "s", Connection: "new", Sync: "y"}, Every: time.Hour}}, Schedule{Layer: "l", SyncKey: SyncKey{Source: "s", Sync: "y"}})
	if err := c.UpsertSchedules(ctx, bad); err == nil {
		t.Fatal("a set with an invalid schedule was accepted")
	}
	if _, ok, _ := c.NextRun(ctx, "l", bad[0].SyncKey); ok {
		t.Fatal("a valid schedule of a refused set was saved")
	}
	var keys []SyncKey
	for _, s := range ss[:1500] {
		keys = append(keys, s.SyncKey)
	}
	if err := c.DeleteScheduleKeys(ctx, "l", keys); err != nil {
		t.Fatal(err)
	}
	if n, err := c.DeleteSchedules(ctx, ScheduleFilter{Layer: "l"}); err != nil || n != 1000 {
		t.Fatalf("%d schedules left after deleting 1,500 of 2,500 (%v)", n, err)
	}
}

// TestMissedPeriodsFireOnce: a schedule left due for many periods (no host
// was up) fires once, and its next firing stays on its beat.
func TestMissedPeriodsFireOnce(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	var mu sync.Mutex
	var dues []time.Time
	c := openHost(t, dsn, Options{HostID: "a", Runner: rec.runner("a"), fired: func(s Schedule, due time.Time) {
		mu.Lock()
		dues = append(dues, due)
		mu.Unlock()
	}})
	ctx := context.Background()
	k := SyncKey{Source: "s", Sync: "y"}
	// Due 10 periods and a bit ago.
	first := time.Now().Add(-10*time.Hour - 30*time.Minute).Truncate(time.Millisecond)
	if err := c.UpsertSchedule(ctx, Schedule{Layer: "l", SyncKey: k, Every: time.Hour, First: first}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the overdue schedule did not fire", func() bool { return rec.count() == 1 })
	at, _, err := c.NextRun(ctx, "l", k)
	if err != nil {
		t.Fatal(err)
	}
	if want := first.Add(11 * time.Hour); !at.Equal(want) {
		t.Fatalf("next firing %v, want %v (the next beat after now)", at, want)
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(dues) != 1 || !dues[0].Equal(first) {
		t.Fatalf("firings %v, want one, due at %v", dues, first)
	}
}

func TestNextFiring(t *testing.T) {
	due := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	every := Schedule{Every: 2 * time.Second}
	for _, tc := range []struct {
		now, want time.Time
	}{
		{due, due.Add(2 * time.Second)},
		{due.Add(100 * time.Millisecond), due.Add(2 * time.Second)},
		{due.Add(2 * time.Second), due.Add(4 * time.Second)},
		{due.Add(9 * time.Second), due.Add(10 * time.Second)},
	} {
		if got, err := nextFiring(every, due, tc.now); err != nil || !got.Equal(tc.want) {
			t.Errorf("nextFiring(every 2s, due %v, now %v) = %v, %v; want %v", due, tc.now, got, err, tc.want)
		}
	}
	hourly := Schedule{Cron: "CRON_TZ=UTC 30 * * * *"}
	if got, err := nextFiring(hourly, due, due.Add(3*time.Hour)); err != nil || !got.Equal(due.Add(3*time.Hour+30*time.Minute)) {
		t.Errorf("nextFiring(cron) = %v, %v", got, err)
	}
	if _, err := nextFiring(Schedule{Cron: "nope"}, due, due); err == nil {
		t.Error("a bad cron expression gave a next firing")
	}
}
