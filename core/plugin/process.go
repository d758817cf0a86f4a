package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// kill ends the plugin at once: SIGKILL to its whole process group (the
// plugin and every process it started), then go-plugin's clean-up. From
// then on Exited reports true, so that the next use of the source launches
// a new process, and calls on the instance fail with a *CrashError carrying
// reason. Only the first reason is kept.
func (i *Instance) kill(reason string) {
	if !i.killed.CompareAndSwap(nil, &reason) {
		return
	}
	i.log.Error("killing the plugin", "reason", reason)
	i.signalGroup()
	i.Kill()
}

// signalGroup sends SIGKILL to the plugin's process group. The plugin is
// its group's leader (Setpgid at launch), so the group's id is its pid;
// the group outlives the leader as long as one of its processes lives.
func (i *Instance) signalGroup() {
	if i.pid > 0 {
		_ = syscall.Kill(-i.pid, syscall.SIGKILL)
	}
}

// memoryTick is how often a plugin's memory is measured: the plugin and its
// descendants, from their /proc children lists (about 0.1 ms). Every
// memoryFullScan ticks (5 s) the whole process group is looked up instead,
// reading every /proc/<pid>/stat (milliseconds on a busy machine), to count
// a process that left its parent (a daemon that forked twice).
const (
	memoryTick     = 100 * time.Millisecond
	memoryFullScan = 50
)

// watchMemory kills the plugin's process group once the resident memory of
// its processes, together, passes limit.
func (i *Instance) watchMemory(pid int, limit int64) {
	t := time.NewTicker(memoryTick)
	defer t.Stop()
	for n := 0; ; n++ {
		<-t.C
		if i.Exited() {
			return
		}
		var procs []int
		if n%memoryFullScan != 0 {
			procs = descendants(pid)
		}
		if procs == nil {
			procs = groupMembers(pid)
		}
		var rss int64
		for _, p := range procs {
			b, err := residentBytes(p)
			if err == nil {
				rss += b
			}
		}
		if rss > limit {
			i.log.Error("plugin over its memory limit", "rss_bytes", rss, "limit_bytes", limit, "processes", len(procs))
			i.kill(fmt.Sprintf("killed: its memory (%d MiB resident, %d processes) passed the source's memory_limit of %d MiB", rss>>20, len(procs), limit>>20))
			return
		}
	}
}

// descendants returns pid and every live descendant of it, read from the
// children lists of /proc/<pid>/task/<tid>/children; nil when the kernel
// does not provide them.
func descendants(pid int) []int {
	out := []int{pid}
	for k := 0; k < len(out) && k < 4096; k++ {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", out[k]))
		if err != nil {
			if k == 0 {
				return nil
			}
			continue
		}
		for _, t := range tasks {
			b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(out[k]), "task", t.Name(), "children"))
			if err != nil {
				if k == 0 && os.IsNotExist(err) {
					return nil // no CONFIG_PROC_CHILDREN
				}
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// groupMembers returns the live processes whose process group is pgid.
func groupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []int{pgid}
	}
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and
		// parentheses, so split after the last ')'.
		s := string(b)
		j := strings.LastIndexByte(s, ')')
		if j < 0 {
			continue
		}
		f := strings.Fields(s[j+1:])
		if len(f) < 3 {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			out = append(out, p)
		}
	}
	return out
}

// residentBytes reads a process's resident set size from /proc.
func residentBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, nil // a zombie: no memory left
}
