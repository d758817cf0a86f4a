package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"time"

	"github.com/synclayer/synclayer/core/plugin"
)

// TestWatch drives Instance.Watch against testdata/watchconn, a plugin-sdk
// connector that asks for a run of sync "a" every 50ms, built here into a
// temporary folder searched before binDir.
func TestWatch(t *testing.T) {
	m := plugin.NewManager(plugin.Options{SearchPaths: []string{binDir}})
	t.Cleanup(m.Shutdown)
	launch := func(t *testing.T, name string) *plugin.Instance {
		t.Helper()
		inst, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: name, Layer: "l", Source: "s"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(inst.Kill)
		return inst
	}
	// watch runs Watch until it returns, at most 10s, with the events.
	watch := func(t *testing.T, inst *plugin.Instance, cfg string, stopAfter int) (events []string, err error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctxT(t), 10*time.Second)
		defer cancel()
		err = inst.Watch(ctx, "l", "s", []byte(cfg), func(syncs []string, reason string) {
			events = append(events, fmt.Sprintf("%v %s", syncs, reason))
			if len(events) == stopAfter {
				cancel()
			}
		})
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("Watch still running after 10s; events %q", events)
		}
		return events, err
	}

	t.Run("events until ctx ends", func(t *testing.T) {
		inst := launch(t, "watch")
		for cfg, want := range map[string]bool{"": true, `{"watch":true}`: true, `{"watch":false}`: false} {
			var raw []byte
			if cfg != "" {
				raw = []byte(cfg)
			}
			d, err := inst.Describe(ctxT(t), "l", "s", raw)
			if err != nil || d.Watches != want {
				t.Errorf("Describe(%s).Watches = %v (%v), want %v", cfg, d != nil && d.Watches, err, want)
			}
		}
		start := time.Now()
		events, err := watch(t, inst, `{"watch":true}`, 3)
		if err != nil {
			t.Fatalf("Watch after ctx ended: %v, want nil", err)
		}
		if strings.Join(events, "; ") != "[a] tick 1; [a] tick 2; [a] tick 3" {
			t.Errorf("events %q", events)
		}
		t.Logf("3 events and the end in %s", time.Since(start).Round(time.Millisecond))
		// The plugin is still fine, and a second watch starts afresh.
		if events, err := watch(t, inst, `{"watch":true}`, 1); err != nil || len(events) != 1 {
			t.Errorf("second Watch: %q %v", events, err)
		}
	})

	t.Run("the connector ends the stream", func(t *testing.T) {
		events, err := watch(t, launch(t, "watch"), `{"watch":true,"end_after":2}`, -1)
		if err != nil || len(events) != 2 {
			t.Errorf("Watch = %q, %v; want 2 events and nil", events, err)
		}
	})

	t.Run("unsupported", func(t *testing.T) {
		// A configuration that does not enable watching, and a plugin
		// without Watch.
		for name, cfg := range map[string]string{"watch": `{"watch":false}`, "files": `{"dir":"."}`} {
			start := time.Now()
			_, err := watch(t, launch(t, name), cfg, -1)
			if !errors.Is(err, plugin.ErrWatchUnsupported) {
				t.Errorf("%s: %T %v, want ErrWatchUnsupported", name, err, err)
				continue
			}
			t.Logf("%s: %v (%s)", name, err, time.Since(start).Round(time.Millisecond))
		}
	})

	t.Run("the connector fails", func(t *testing.T) {
		inst := launch(t, "watch")
		events, err := watch(t, inst, `{"watch":true,"fail_after":2}`, -1)
		var ce *plugin.ConnectorError
		if !errors.As(err, &ce) || ce.Call != "Watch" || !strings.Contains(err.Error(), "the upstream's change feed is gone") || len(events) != 2 {
			t.Fatalf("Watch = %q, %T %v; want 2 events and a ConnectorError", events, err, err)
		}
		if _, err := inst.Describe(ctxT(t), "", "", nil); err != nil || inst.Exited() {
			t.Errorf("the plugin after a failed watch: %v, exited %v", err, inst.Exited())
		}
	})

	t.Run("the plugin crashes", func(t *testing.T) {
		inst := launch(t, "watch")
		events, err := watch(t, inst, `{"watch":true,"exit_after":2}`, -1)
		var crash *plugin.CrashError
		// The second event may die with the process, unflushed.
		if !errors.As(err, &crash) || crash.Call != "Watch" || crash.Plugin != "watch" || len(events) == 0 || len(events) > 2 {
			t.Fatalf("Watch = %q, %T %v; want 1 or 2 events and a CrashError", events, err, err)
		}
		if !inst.Exited() {
			t.Error("Exited() is false after the crash")
		}
	})
}
