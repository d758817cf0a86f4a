package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/plugin"
)

// launchTest starts the test connector under m.
func launchTest(t *testing.T, m *plugin.Manager, spec plugin.LaunchSpec) *plugin.Instance {
	t.Helper()
	spec.Plugin = "test"
	inst, err := m.Launch(ctxT(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// waitFile waits for a file the test connector writes and returns its
// content.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return string(b)
		}
	}
	t.Fatalf("the test connector did not write %s", path)
	return ""
}

// readPID waits for the test connector to write its child's pid.
func readPID(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(waitFile(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// alive tells whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// waitGone fails the test unless pid ends within a few seconds (a SIGKILLed
// process ends at once; the wait only covers the kernel's tear-down).
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !alive(pid) {
			return
		}
	}
	t.Errorf("%s (pid %d) still runs", what, pid)
}

func syncReq(cfg string) plugin.SyncRequest {
	return plugin.SyncRequest{Layer: "l", Source: "s", Config: []byte(cfg), Sync: "items", Models: []string{"Item"}}
}

// A sync that goes silent past its progress timeout fails as a timeout,
// transient, and the plugin is killed with the process it started: the
// next use launches a new one.
func TestProgressTimeoutKillsHungPlugin(t *testing.T) {
	m := manager(t, nil)
	inst := launchTest(t, m, plugin.LaunchSpec{Layer: "l", Source: "s"})
	pidFile := filepath.Join(t.TempDir(), "child")
	req := syncReq(fmt.Sprintf(`{"mode":"hang","pid_file":%q}`, pidFile))
	req.ProgressTimeout = 300 * time.Millisecond
	got := 0
	err := inst.Sync(ctxT(t), req, func(m *plugin.Message) error { got += len(m.Changes); return nil })
	var te *plugin.TimeoutError
	if !errors.As(err, &te) || te.Call != "Sync" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sync of a hung plugin: %T %v, want a *plugin.TimeoutError", err, err)
	}
	for _, want := range []string{"no batch, checkpoint, progress or log message for 300ms", "progress_timeout", "killed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if got != 1 {
		t.Errorf("%d changes before the plugin hung, want 1", got)
	}
	if !plugin.IsTransient(err) {
		t.Error("IsTransient(timeout) = false")
	}
	if !inst.Exited() {
		t.Error("Exited() is false after a timeout: the host would keep using the hung plugin")
	}
	waitGone(t, readPID(t, pidFile), "the hung plugin's child process")
	// Later calls on the killed instance say why it is gone.
	_, err = inst.Describe(ctxT(t), "", "", nil)
	var crash *plugin.CrashError
	if !errors.As(err, &crash) || !strings.Contains(err.Error(), "Sync timed out") {
		t.Errorf("Describe on the killed plugin: %T %v, want a *plugin.CrashError saying Sync timed out", err, err)
	}
}

// The deadline of the caller's context (the sync's timeout) kills a plugin
// that does not stop.
func TestSyncDeadlineKillsPlugin(t *testing.T) {
	m := manager(t, nil)
	inst := launchTest(t, m, plugin.LaunchSpec{})
	pidFile := filepath.Join(t.TempDir(), "child")
	ctx, cancel := context.WithTimeoutCause(ctxT(t), 300*time.Millisecond, errors.New("timed out after 300ms (the sync's timeout)"))
	defer cancel()
	err := inst.Sync(ctx, syncReq(fmt.Sprintf(`{"mode":"hang","pid_file":%q}`, pidFile)), func(*plugin.Message) error { return nil })
	var te *plugin.TimeoutError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "the sync's timeout") {
		t.Fatalf("Sync past its deadline: %T %v, want a *plugin.TimeoutError with the deadline's cause", err, err)
	}
	if !inst.Exited() {
		t.Error("Exited() is false after the sync's deadline passed")
	}
	waitGone(t, readPID(t, pidFile), "the plugin's child process")
}

// A cancellation by the host (shutdown, reload) is not a timeout: the
// plugin keeps running.
func TestCancelDoesNotKill(t *testing.T) {
	m := manager(t, nil)
	inst := launchTest(t, m, plugin.LaunchSpec{})
	dir := t.TempDir()
	gate, started := filepath.Join(dir, "gate"), filepath.Join(dir, "started")
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan error, 1)
	go func() {
		done <- inst.Sync(ctx, syncReq(fmt.Sprintf(`{"mode":"block","gate":%q,"started":%q}`, gate, started)), func(*plugin.Message) error { return nil })
	}()
	waitFile(t, started)
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || plugin.IsTransient(err) {
		t.Fatalf("cancelled Sync: %T %v, want context.Canceled, not transient", err, err)
	}
	if inst.Exited() {
		t.Fatal("a cancelled call killed the plugin")
	}
	if _, err := inst.Describe(ctxT(t), "", "", nil); err != nil {
		t.Errorf("Describe after a cancelled Sync: %v", err)
	}
}

// Describe and Check are bounded by the manager's call timeout.
func TestCallTimeout(t *testing.T) {
	m := plugin.NewManager(plugin.Options{SearchPaths: []string{binDir}, CallTimeout: 300 * time.Millisecond})
	t.Cleanup(m.Shutdown)
	for _, tc := range []struct {
		mode string
		call func(*plugin.Instance, []byte) error
	}{
		{"hang_describe", func(i *plugin.Instance, cfg []byte) error { _, err := i.Describe(ctxT(t), "l", "s", cfg); return err }},
		{"hang_check", func(i *plugin.Instance, cfg []byte) error { return i.Check(ctxT(t), "l", "s", cfg) }},
	} {
		inst := launchTest(t, m, plugin.LaunchSpec{})
		err := tc.call(inst, []byte(`{"mode":"`+tc.mode+`"}`))
		var te *plugin.TimeoutError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "no answer within 300ms") || !plugin.IsTransient(err) {
			t.Errorf("%s: %T %v, want a transient *plugin.TimeoutError", tc.mode, err, err)
		}
		if !inst.Exited() {
			t.Errorf("%s: the plugin was not killed", tc.mode)
		}
	}
}

func TestIsTransient(t *testing.T) {
	m := manager(t, nil)
	inst := launchTest(t, m, plugin.LaunchSpec{})
	// The SDK's answer for an upstream 5xx or 429.
	err := inst.Sync(ctxT(t), syncReq(`{"mode":"transient"}`), func(*plugin.Message) error { return nil })
	var ce *plugin.ConnectorError
	if !errors.As(err, &ce) || !ce.Temporary || !plugin.IsTransient(fmt.Errorf("wrapped: %w", err)) || !strings.Contains(err.Error(), "503") {
		t.Errorf("a temporary connector error: %T %v (%+v), want a transient *plugin.ConnectorError", err, err, ce)
	}
	// The connector's own failure is permanent.
	err = inst.Sync(ctxT(t), syncReq(`{"mode":"bogus"}`), func(*plugin.Message) error { return nil })
	if !errors.As(err, &ce) || plugin.IsTransient(err) {
		t.Errorf("a connector error: %T %v, want a permanent *plugin.ConnectorError", err, err)
	}
	// A crash is transient.
	err = inst.Sync(ctxT(t), syncReq(`{"mode":"exit"}`), func(*plugin.Message) error { return nil })
	if !plugin.IsTransient(err) {
		t.Errorf("a crash: %T %v, want transient", err, err)
	}
	if plugin.IsTransient(nil) || plugin.IsTransient(context.Canceled) || plugin.IsTransient(errors.New("x")) {
		t.Error("IsTransient is true for nil, a cancellation or a plain error")
	}
	if !plugin.IsTransient(&plugin.UnavailableError{Plugin: "p", Call: "Sync", Message: "EOF"}) {
		t.Error("a lost connection is not transient")
	}
}

// memory_limit counts and kills the plugin's whole process group: here a
// child process of the plugin takes the memory.
func TestMemoryLimitKillsProcessGroup(t *testing.T) {
	m := manager(t, nil)
	inst := launchTest(t, m, plugin.LaunchSpec{MemoryLimit: 64 << 20})
	pidFile := filepath.Join(t.TempDir(), "child")
	ctx, cancel := context.WithTimeout(ctxT(t), 20*time.Second)
	defer cancel()
	err := inst.Sync(ctx, syncReq(fmt.Sprintf(`{"mode":"hog","hog_mib":160,"pid_file":%q}`, pidFile)), func(*plugin.Message) error { return nil })
	var crash *plugin.CrashError
	if !errors.As(err, &crash) || !strings.Contains(err.Error(), "memory_limit of 64 MiB") {
		t.Fatalf("Sync of a plugin whose child hogs memory: %T %v, want a *plugin.CrashError naming the memory_limit", err, err)
	}
	if !inst.Exited() {
		t.Error("Exited() is false")
	}
	waitGone(t, readPID(t, pidFile), "the child process that took the memory")
}

// A message past MaxMessageBytes, or a batch past MaxBatchChanges, fails
// the sync with a clear, permanent error.
func TestMessageAndBatchLimits(t *testing.T) {
	m := manager(t, nil)
	inst := launchTest(t, m, plugin.LaunchSpec{})
	err := inst.Sync(ctxT(t), syncReq(`{"mode":"big_batch"}`), func(*plugin.Message) error { return nil })
	if !errors.Is(err, plugin.ErrTooLarge) || !strings.Contains(err.Error(), "limit of 16 MiB") || plugin.IsTransient(err) {
		t.Errorf("a 20 MiB batch: %v, want a permanent error naming the 16 MiB limit", err)
	}
	err = inst.Sync(ctxT(t), syncReq(`{"mode":"many_changes"}`), func(*plugin.Message) error { return nil })
	if !errors.Is(err, plugin.ErrTooLarge) || !strings.Contains(err.Error(), "10001 changes") {
		t.Errorf("a batch of 10,001 changes: %v, want an error naming the batch limit", err)
	}
	// The plugin is fine for the next call.
	n := 0
	if err := inst.Sync(ctxT(t), syncReq(`{"mode":"ok","records":3}`), func(m *plugin.Message) error { n += len(m.Changes); return nil }); err != nil || n != 3 {
		t.Errorf("after refused batches: %d changes, %v", n, err)
	}
}

// One webhook's changes are bounded.
func TestWebhookChangesLimit(t *testing.T) {
	m := manager(t, nil)
	inst := launchTest(t, m, plugin.LaunchSpec{})
	run := func(records int) (int, error) {
		n := 0
		w := &plugin.Webhook{Layer: "l", Source: "s", Config: []byte(fmt.Sprintf(`{"mode":"ok","records":%d}`, records)), Method: "POST", Path: "/hooks/sources/l/s"}
		err := inst.HandleWebhook(ctxT(t), w, func(m *plugin.Message) error { n += len(m.Changes); return nil })
		return n, err
	}
	if n, err := run(plugin.DefaultMaxWebhookChanges); err != nil || n != plugin.DefaultMaxWebhookChanges {
		t.Fatalf("a webhook of exactly the limit: %d changes, %v", n, err)
	}
	n, err := run(plugin.DefaultMaxWebhookChanges + 1)
	if !errors.Is(err, plugin.ErrTooLarge) || !strings.Contains(err.Error(), "the changes of one webhook passed the limit of 50000 changes") {
		t.Fatalf("a webhook past the limit: %v", err)
	}
	if n >= plugin.DefaultMaxWebhookChanges+1 {
		t.Errorf("%d changes handed over past the limit", n)
	}
}
