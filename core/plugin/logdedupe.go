package plugin

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
)

// dedupeLogger drops, from each line, the key-value pairs its implied
// arguments already carry with the same value. A plugin tags its own log
// lines with layer, source and sync (plugin-sdk does), and the host's
// logger for the plugin does too: without this, lines read
// "layer=demo source=api … layer=demo source=api".
type dedupeLogger struct{ hclog.Logger }

func dedupe(l hclog.Logger) hclog.Logger {
	if d, ok := l.(dedupeLogger); ok {
		return d
	}
	return dedupeLogger{l}
}

// strip returns args without the pairs that repeat an implied argument.
func (d dedupeLogger) strip(args []interface{}) []interface{} {
	implied := d.Logger.ImpliedArgs()
	if len(implied) == 0 || len(args) < 2 {
		return args
	}
	has := make(map[string]string, len(implied)/2)
	for i := 0; i+1 < len(implied); i += 2 {
		if k, ok := implied[i].(string); ok {
			has[k] = fmt.Sprint(implied[i+1])
		}
	}
	out := args[:0:0]
	for i := 0; i < len(args); i += 2 {
		if i+1 >= len(args) {
			out = append(out, args[i])
			break
		}
		if k, ok := args[i].(string); ok {
			if v, dup := has[k]; dup && v == fmt.Sprint(args[i+1]) {
				continue
			}
		}
		out = append(out, args[i], args[i+1])
	}
	return out
}

// Log implements hclog.Logger.
func (d dedupeLogger) Log(level hclog.Level, msg string, args ...interface{}) {
	d.Logger.Log(level, msg, d.strip(args)...)
}

// Trace implements hclog.Logger.
func (d dedupeLogger) Trace(msg string, args ...interface{}) { d.Logger.Trace(msg, d.strip(args)...) }

// Debug implements hclog.Logger.
func (d dedupeLogger) Debug(msg string, args ...interface{}) { d.Logger.Debug(msg, d.strip(args)...) }

// Info implements hclog.Logger.
func (d dedupeLogger) Info(msg string, args ...interface{}) { d.Logger.Info(msg, d.strip(args)...) }

// Warn implements hclog.Logger.
func (d dedupeLogger) Warn(msg string, args ...interface{}) { d.Logger.Warn(msg, d.strip(args)...) }

// Error implements hclog.Logger.
func (d dedupeLogger) Error(msg string, args ...interface{}) { d.Logger.Error(msg, d.strip(args)...) }

// With implements hclog.Logger.
func (d dedupeLogger) With(args ...interface{}) hclog.Logger {
	return dedupeLogger{d.Logger.With(d.strip(args)...)}
}

// Named implements hclog.Logger.
func (d dedupeLogger) Named(name string) hclog.Logger { return dedupeLogger{d.Logger.Named(name)} }

// ResetNamed implements hclog.Logger.
func (d dedupeLogger) ResetNamed(name string) hclog.Logger {
	return dedupeLogger{d.Logger.ResetNamed(name)}
}
