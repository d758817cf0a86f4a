package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// fakeSystemd is a NOTIFY_SOCKET: it collects the datagrams sent to it.
type fakeSystemd struct {
	conn *net.UnixConn
	msgs chan string
}

func listenFakeSystemd(t *testing.T, name string) *fakeSystemd {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSystemd{conn: conn, msgs: make(chan string, 100)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(f.msgs)
				return
			}
			f.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return f
}

// next returns the next message, failing after a generous wait.
func (f *fakeSystemd) next(t *testing.T) string {
	t.Helper()
	select {
	case m, ok := <-f.msgs:
		if !ok {
			t.Fatal("the fake NOTIFY_SOCKET closed")
		}
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no message on the fake NOTIFY_SOCKET")
	}
	return ""
}

// shortTempDir is a temp dir with a path short enough for a Unix socket.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestSDNotifyStatesAndWatchdog(t *testing.T) {
	sock := filepath.Join(shortTempDir(t), "notify")
	fake := listenFakeSystemd(t, sock)
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := newSDNotifier(hclog.NewNullLogger())
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%q is still set: plugins would inherit it", k, v)
		}
	}
	if n.watchdog != 20*time.Millisecond {
		t.Fatalf("watchdog interval %v, want 20ms", n.watchdog)
	}

	n.ready("serving 1 layer(s)")
	if m := fake.next(t); m != "READY=1\nSTATUS=serving 1 layer(s)" {
		t.Fatalf("first message %q, want READY=1 with a status", m)
	}
	stop := make(chan struct{})
	n.startWatchdog(stop)
	for range 3 {
		if m := fake.next(t); m != "WATCHDOG=1" {
			t.Fatalf("message %q, want WATCHDOG=1", m)
		}
	}
	close(stop)
	// Drain pings sent before the watchdog saw stop.
	n.reloading()
	var m string
	for m = fake.next(t); m == "WATCHDOG=1"; m = fake.next(t) {
	}
	if !strings.HasPrefix(m, "RELOADING=1\n") || !strings.Contains(m, "\nMONOTONIC_USEC=") {
		t.Fatalf("message %q, want RELOADING=1 with MONOTONIC_USEC", m)
	}
	n.stopping()
	if m := fake.next(t); !strings.HasPrefix(m, "STOPPING=1") {
		t.Fatalf("message %q, want STOPPING=1", m)
	}
}

func TestSDNotifyAbstractSocketAndOtherPID(t *testing.T) {
	name := "synclayer-test-" + strconv.Itoa(os.Getpid())
	fake := listenFakeSystemd(t, "\x00"+name)
	t.Setenv("NOTIFY_SOCKET", "@"+name)
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	n := newSDNotifier(hclog.NewNullLogger())
	if n.watchdog != 0 {
		t.Errorf("the watchdog of another process (WATCHDOG_PID) was taken: %v", n.watchdog)
	}
	n.ready("x")
	if m := fake.next(t); m != "READY=1\nSTATUS=x" {
		t.Fatalf("message %q on the abstract socket, want READY=1", m)
	}
}

func TestSDNotifyWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	n := newSDNotifier(hclog.NewNullLogger())
	if n.addr != nil {
		t.Fatal("a notifier without NOTIFY_SOCKET has an address")
	}
	n.ready("x") // must not fail or block
	stop := make(chan struct{})
	n.startWatchdog(stop)
	close(stop)
}
