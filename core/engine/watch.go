package engine

import (
	"errors"
	"time"

	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

// watchLoop keeps a Watch stream open to a source whose connector watches
// its upstream (postgres LISTEN): each event queues a run of the syncs it
// names through the normal queue, so coalescing applies. The stream is
// opened again, with backoff, when the plugin dies or the connection drops.
// Runs it starts have the trigger webhook: the upstream pushed them.
func (s *source) watchLoop() {
	l := s.l
	defer l.e.wg.Done()
	ctx := l.e.ctx
	delay := time.Second
	for ctx.Err() == nil {
		s.mu.Lock()
		desc, raw := s.desc, s.configRaw
		s.mu.Unlock()
		if desc == nil || !desc.Watches {
			return
		}
		inst, release, err := s.acquire(ctx)
		if err == nil {
			opened := time.Now()
			err = inst.Watch(ctx, l.cfg.Name, s.cfg.Name, raw, func(syncs []string, reason string) {
				s.watchEvent(syncs, reason)
			})
			release()
			if time.Since(opened) > time.Minute {
				delay = time.Second // it ran well for a while
			}
		}
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			s.log.Info("the connector stopped watching its upstream")
			return
		case errors.Is(err, plugin.ErrWatchUnsupported):
			s.log.Warn("the connector does not watch for this configuration", "error", err)
			return
		}
		s.log.Warn("watching the upstream failed; watching again", "error", l.e.redact.Replace(err.Error()), "in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
}

// watchEvent queues a run for a watch event (no syncs: every sync).
func (s *source) watchEvent(syncs []string, reason string) {
	l := s.l
	l.event(store.Event{Type: "upstream.changed", Source: s.cfg.Name, Message: reason})
	if len(syncs) == 0 {
		syncs = []string{""}
	}
	for _, y := range syncs {
		if _, err := l.e.Trigger(l.cfg.Name, TriggerRequest{Source: s.cfg.Name, Sync: y, Trigger: TriggerWebhook}); err != nil {
			s.log.Warn("could not queue a run for a watch event", "sync", y, "error", err)
		}
	}
}
