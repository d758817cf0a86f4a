package integration

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestReplicas runs three hosts on one PostgreSQL (SPEC §16), each its own
// process with its own listener: every host reads the same records; a
// schedule of every 2 s fires about once per period over all of them; a
// trigger storm spread over the hosts makes at most two runs; a kill -9 of
// the host running a run lets another finish it, with an exact revision;
// payload webhooks posted to different hosts all land; every outbound event
// is delivered, each under one stable id.
func TestReplicas(t *testing.T) {
	t.Setenv("SYNCLAYER_RESCUE_AFTER", "2s")
	t.Setenv("SYNCLAYER_NOTIFY_SCHEDULE", testSchedule)
	rc := newNotifyReceiver(t)
	const records = 60000
	dir := t.TempDir()
	cfg := filepath.Join(dir, "layer.hcl")
	writeFile(t, cfg, fmt.Sprintf(`
plugin "hook" {
  path = %q
}
layer "r" {
  source "g" {
    plugin = "generator"
    config {
      records       = %d
      payload_bytes = 256
      models        = ["Item"]
      change_ratio  = 0
    }
  }
%s
}
layer "tick" {
  source "g" {
    plugin = "generator"
    config {
      records = 10
      models  = ["Item"]
    }
    sync "generate" {
      every = "2s"
    }
  }
}
layer "rt" {
  source "h" {
    plugin = "hook"
    config {
      token = "s3cret-token"
    }
  }
}
`, hookPlugin(t), records, notifyBlock("app", rc.srv.URL+"/hooks/synclayer", rc.secret)))
	storeDSN.Store(t, sharedPostgres(t).Database(t))
	hosts := make([]*host, 3)
	for i := range hosts {
		hosts[i] = startHost(t, cfg, "")
	}
	for _, h := range hosts {
		h.waitRevision("r", 1, 2*time.Minute)
		h.waitRevision("rt", 1, time.Minute)
	}

	t.Run("same records everywhere", func(t *testing.T) {
		var first string
		for i, h := range hosts {
			all := h.records("r", "limit=10000")
			if len(all) != records {
				t.Fatalf("host %d reads %d records, want %d", i, len(all), records)
			}
			sig := fmt.Sprint(all[0]["id"], all[0].meta("cursor"), all[len(all)-1]["id"], all[len(all)-1].meta("cursor"))
			if i == 0 {
				first = sig
			} else if sig != first {
				t.Fatalf("host %d reads %s, host 0 %s", i, sig, first)
			}
		}
	})

	t.Run("a schedule fires once per period across hosts", func(t *testing.T) {
		// Every revision of layer tick after its first is a scheduled run.
		count := func() int { return int(revisionCount(hosts[0], "tick")) }
		before, start := count(), time.Now()
		time.Sleep(10 * time.Second)
		fired, took := count()-before, time.Since(start)
		periods := took.Seconds() / 2
		t.Logf("%d scheduled runs in %s (%.1f periods of 2 s) over 3 hosts", fired, took.Round(time.Millisecond), periods)
		if float64(fired) > periods+1.5 || float64(fired) < periods-2.5 {
			t.Fatalf("%d scheduled runs in %.1f periods: each firing must run once, on one host", fired, periods)
		}
	})

	t.Run("a trigger storm over the hosts makes at most two runs", func(t *testing.T) {
		before := revisionCount(hosts[0], "r")
		var wg sync.WaitGroup
		for i := 0; i < 60; i++ {
			wg.Add(1)
			go func(h *host) {
				defer wg.Done()
				resp, err := http.Post(h.url("/hooks/layers/r"), "application/json", strings.NewReader(`{}`))
				if err == nil {
					resp.Body.Close()
				}
			}(hosts[i%3])
		}
		wg.Wait()
		waitIdleEverywhere(t, hosts, "r")
		if runs := revisionCount(hosts[0], "r") - before; runs < 1 || runs > 2 {
			t.Fatalf("60 triggers over 3 hosts made %d runs, want 1 or 2", runs)
		}
	})

	// The kill below may cut the host delivering the outbound events
	// between a receiver's 2xx and its record of it: that one event is
	// delivered again by the next host, under the same id (at least once;
	// receivers deduplicate by webhook-id, SPEC §8).
	var killedAt time.Time
	victimLed := false
	t.Run("kill -9 of the running host: another finishes the run", func(t *testing.T) {
		before := revisionCount(hosts[0], "r")
		var run struct {
			Run string `json:"run"`
		}
		hosts[0].call("POST", "/v1/layers/r/syncs", map[string]any{"reset": true}, 202, &run)
		// Find the host running it: the one whose log says it started.
		victim := -1
		for deadline := time.Now().Add(30 * time.Second); victim < 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			for i, h := range hosts {
				if strings.Contains(h.logs(), "run started: layer=r run="+run.Run) {
					victim = i
				}
			}
		}
		if victim < 0 {
			t.Fatalf("no host ran %s", run.Run)
		}
		time.Sleep(300 * time.Millisecond)
		victimLed = strings.Contains(hosts[victim].logs(), "this host delivers the outbound events")
		hosts[victim].kill()
		killed := time.Now()
		killedAt = killed
		other := hosts[(victim+1)%3]
		other.waitRevision("r", before+1, 3*time.Minute)
		t.Logf("the run of the killed host %d was published %s after the kill", victim, time.Since(killed).Round(time.Millisecond))
		var revs revisionList
		other.call("GET", "/v1/layers/r/revisions", nil, 200, &revs)
		// One revision, of one whole run: the killed attempt published
		// nothing, the re-run every record once (the generator changes at
		// least one record per generation).
		c := revs.Revisions[0].Counts["g"]["Item"]
		if revs.Revisions[0].Revision != before+1 || c["added"] != 0 || c["deleted"] != 0 || c["unchanged"]+c["updated"] != records {
			t.Fatalf("the re-run's revision: %+v", revs.Revisions[0])
		}
		time.Sleep(time.Second)
		if n := revisionCount(other, "r"); n != before+1 {
			t.Fatalf("revision %d after the rescue, want %d: the run published twice", n, before+1)
		}
		if all := other.records("r", "limit=10000"); len(all) != records {
			t.Fatalf("%d records after the rescue, want %d", len(all), records)
		}
		hosts[victim].start()
	})

	t.Run("payload webhooks posted to different hosts all land", func(t *testing.T) {
		var ids []string
		for i := 0; i < 30; i++ {
			id := fmt.Sprintf("w%02d", i)
			ids = append(ids, id)
			if code, body := post(t, hosts[i%3].url("/hooks/sources/rt/h"), map[string]string{"X-Test-Token": "s3cret-token"}, fmt.Sprintf(`{"id":%q,"title":"from host %d"}`, id, i%3)); code != 202 {
				t.Fatalf("webhook %s: %d %s", id, code, body)
			}
		}
		for deadline := time.Now().Add(time.Minute); ; {
			got := hosts[2].records("rt", "model=Post&ids="+strings.Join(ids, ","))
			if len(got) == len(ids) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d webhooks published", len(got), len(ids))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("every outbound event delivered under one stable id", func(t *testing.T) {
		// Each sync.completed of layer r was delivered, and no event was
		// delivered twice with a 2xx (one host attempts each), but for one
		// in flight on the killed host when it died, if it was delivering.
		var revs revisionList
		hosts[0].call("GET", "/v1/layers/r/revisions", nil, 200, &revs)
		newest := revs.Revisions[0].Revision
		for deadline := time.Now().Add(time.Minute); ; {
			ok := map[int64]bool{}
			for _, x := range rc.all() {
				if x.Event.Type == "sync.completed" && x.Status/100 == 2 {
					ok[x.Event.Revision] = true
				}
			}
			if ok[newest] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sync.completed of revision %d never delivered; delivered: %v", newest, ok)
			}
			time.Sleep(100 * time.Millisecond)
		}
		acked := map[string][]time.Time{}
		for _, x := range rc.all() {
			if x.Status/100 == 2 {
				acked[x.ID] = append(acked[x.ID], x.At)
			}
		}
		cutByKill := 0
		for id, at := range acked {
			switch {
			case len(at) == 1:
			case len(at) == 2 && victimLed && at[0].Before(killedAt.Add(time.Second)) && at[1].After(killedAt):
				cutByKill++
				t.Logf("event %s delivered again after the kill of the host delivering it (first at %s, kill at %s)", id, at[0].Format(time.StampMicro), killedAt.Format(time.StampMicro))
			default:
				t.Errorf("event %s delivered %d times: %v (kill at %s, the killed host delivered: %t)", id, len(at), at, killedAt.Format(time.StampMicro), victimLed)
				for i, h := range hosts {
					for _, line := range strings.Split(h.logs(), "\n") {
						if strings.Contains(line, "outbound deliveries") || strings.Contains(line, "delivers the outbound events") {
							t.Logf("host %d: %s", i, line)
						}
					}
				}
			}
		}
		// The killed host had at most one attempt in flight per endpoint
		// and event it was sending (the notifier's concurrency is 4).
		if cutByKill > 4 {
			t.Errorf("%d events delivered again after the kill: more than were in flight", cutByKill)
		}
	})
}

// revisionCount is the newest revision of a layer.
func revisionCount(h *host, layer string) int64 {
	var st struct {
		Revision int64 `json:"revision"`
	}
	h.call("GET", "/v1/layers/"+layer, nil, 200, &st)
	return st.Revision
}

// waitIdleEverywhere waits until no host runs the layer and two seconds
// pass with its revision unchanged (a run may wait in the queue, which no
// host's status shows).
func waitIdleEverywhere(t *testing.T, hosts []*host, layer string) {
	t.Helper()
	last, since := revisionCount(hosts[0], layer), time.Now()
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		busy := false
		for _, h := range hosts {
			busy = busy || h.busy(layer)
		}
		if n := revisionCount(hosts[0], layer); n != last || busy {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) > 2*time.Second {
			return
		}
	}
	t.Fatalf("layer %s still busy", layer)
}

// TestMigrateCommand: `synclayer migrate` brings an empty database to the
// schema (the store's, River's and the cluster's tables), is a no-op the
// second time, keeps the dsn's password out of its errors, and refuses a
// configuration on the badger store.
func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	dsn := sharedPostgres(t).Database(t)
	cfg := filepath.Join(dir, "pg.hcl")
	writeFile(t, cfg, fmt.Sprintf("service {\n  store {\n    driver = \"postgres\"\n    dsn    = %q\n  }\n}\n", dsn))
	for i := 0; i < 2; i++ {
		out, err := execCommand(bin("synclayer"), "migrate", "--config", cfg).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "the database schema is current") {
			t.Fatalf("migrate (run %d): %v\n%s", i+1, err, out)
		}
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, table := range []string{"synclayer_schema_migrations", "synclayer_records", "river_job", "synclayer_cluster_schedules"} {
		var ok bool
		if err := conn.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s after migrate: %v %v", table, ok, err)
		}
	}

	// A server that refuses the password: the error does not quote it.
	bad := strings.Replace(dsn, "postgres@", "nobody:s3cret-pw@", 1)
	writeFile(t, cfg, fmt.Sprintf("service {\n  store {\n    driver = \"postgres\"\n    dsn    = %q\n  }\n}\n", bad))
	out, err := execCommand(bin("synclayer"), "migrate", "--config", cfg).CombinedOutput()
	if err == nil || strings.Contains(string(out), "s3cret-pw") {
		t.Fatalf("migrate with a refused role: %v\n%s", err, out)
	}

	writeFile(t, cfg, "service {}\n")
	out, err = execCommand(bin("synclayer"), "migrate", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "badger store needs none") {
		t.Fatalf("migrate on badger: %v\n%s", err, out)
	}
}
