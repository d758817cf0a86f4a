package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// sdNotifier tells systemd how the host is doing, by the sd_notify(3)
// protocol: datagrams of KEY=VALUE lines on the Unix socket named by
// $NOTIFY_SOCKET. Under Type=notify the host sends READY=1 once it listens
// and its engine has started, RELOADING=1 then READY=1 around a SIGHUP
// reload, STOPPING=1 when it begins to stop, and WATCHDOG=1 every half
// $WATCHDOG_USEC when the unit sets WatchdogSec=. Without $NOTIFY_SOCKET
// (not under systemd, or another Type=) it sends nothing.
type sdNotifier struct {
	addr     *net.UnixAddr // nil: not under systemd's notify protocol
	watchdog time.Duration // 0: no watchdog
	log      hclog.Logger
	warned   sync.Once
}

// newSDNotifier reads the environment systemd sets, and clears it so that
// nothing the host starts (plugins) talks to systemd in its name.
func newSDNotifier(log hclog.Logger) *sdNotifier {
	n := &sdNotifier{log: log}
	if path := os.Getenv("NOTIFY_SOCKET"); path != "" {
		if path[0] == '@' {
			// An abstract socket (Linux).
			path = "\x00" + path[1:]
		}
		n.addr = &net.UnixAddr{Name: path, Net: "unixgram"}
	}
	if usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && usec > 0 {
		// WATCHDOG_PID, when set, names the process the watchdog is for.
		if pid := os.Getenv("WATCHDOG_PID"); pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(usec) * time.Microsecond
		}
	}
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		os.Unsetenv(k)
	}
	return n
}

// notify sends one state message; a failure is logged once (systemd then
// notices by itself: a missing READY=1 fails the start, missing watchdog
// pings restart the host).
func (n *sdNotifier) notify(state string) {
	if n.addr == nil {
		return
	}
	err := n.send(state)
	if err != nil {
		n.warned.Do(func() { n.log.Warn("cannot notify systemd (NOTIFY_SOCKET)", "error", err) })
	}
}

func (n *sdNotifier) send(state string) error {
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, err = c.Write([]byte(state))
	return err
}

func (n *sdNotifier) ready(status string) { n.notify("READY=1\nSTATUS=" + status) }

func (n *sdNotifier) stopping() { n.notify("STOPPING=1\nSTATUS=stopping") }

// reloading announces a reload; systemd wants the monotonic clock with it.
func (n *sdNotifier) reloading() {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		n.notify("RELOADING=1\nSTATUS=reloading the configuration")
		return
	}
	usec := ts.Nano() / 1000
	n.notify(fmt.Sprintf("RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=%d", usec))
}

// startWatchdog pings systemd's watchdog at half its interval until stop
// is closed. The pings come from their own goroutine, so a reload that
// takes long (plugins starting) does not get the host killed.
func (n *sdNotifier) startWatchdog(stop <-chan struct{}) {
	if n.addr == nil || n.watchdog <= 0 {
		return
	}
	go func() {
		t := time.NewTicker(n.watchdog / 2)
		defer t.Stop()
		for {
			n.notify("WATCHDOG=1")
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	}()
}
