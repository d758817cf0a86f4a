package plugin

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestLogLinesDoNotRepeatKeys: a plugin's own layer/source/sync tags, the
// same as the host's, appear once per line (hclog sorts the implied ones);
// a different value stays.
func TestLogLinesDoNotRepeatKeys(t *testing.T) {
	var buf bytes.Buffer
	base := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Trace, DisableTime: true})
	log := dedupe(base.Named("plugin").With("plugin", "rest", "layer", "demo", "source", "api"))
	log.With("sync", "posts", "run", "run_1").Info("page", "layer", "demo", "source", "api", "sync", "posts", "records", 2)
	log.Named("synclayer-plugin-rest").Warn("odd", "source", "other", "plugin", "rest")
	log.Log(hclog.Error, "dangling", "layer")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		"[INFO]  plugin: page: layer=demo plugin=rest run=run_1 source=api sync=posts records=2",
		"[WARN]  plugin.synclayer-plugin-rest: odd: layer=demo plugin=rest source=api source=other",
		"[ERROR] plugin: dangling: layer=demo plugin=rest source=api EXTRA_VALUE_AT_END=layer",
	}
	if len(lines) != len(want) {
		t.Fatalf("lines:\n%s", buf.String())
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
}
