package cluster

import (
	"context"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogHandler passes River's structured log (log/slog) to the host's
// hclog logger. River logs routine lifecycle steps (client started, leader
// elected, a job snoozed) at Info: they go out at Debug here, so that a
// host's log shows River's warnings and errors and stays quiet otherwise.
type hclogHandler struct {
	log   hclog.Logger
	attrs []any
	group string
}

func newSlog(log hclog.Logger) *slog.Logger {
	return slog.New(&hclogHandler{log: log.Named("river")})
}

func (h *hclogHandler) level(l slog.Level) hclog.Level {
	switch {
	case l >= slog.LevelError:
		return hclog.Error
	case l >= slog.LevelWarn:
		return hclog.Warn
	case l >= slog.LevelInfo:
		return hclog.Debug
	default:
		return hclog.Trace
	}
}

func (h *hclogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.GetLevel() <= h.level(l)
}

func (h *hclogHandler) Handle(_ context.Context, r slog.Record) error {
	args := append([]any(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		args = append(args, h.key(a.Key), a.Value.Resolve().Any())
		return true
	})
	h.log.Log(h.level(r.Level), r.Message, args...)
	return nil
}

func (h *hclogHandler) key(k string) string {
	if h.group != "" {
		return h.group + "." + k
	}
	return k
}

func (h *hclogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append([]any(nil), h.attrs...)
	for _, a := range attrs {
		n.attrs = append(n.attrs, h.key(a.Key), a.Value.Resolve().Any())
	}
	return &n
}

func (h *hclogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.group = h.key(name)
	return &n
}
