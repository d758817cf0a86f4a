package cluster

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestRiverLogGoesToHclog: River's log reaches the host's logger, its
// routine Info at Debug, with its attributes and groups.
func TestRiverLogGoesToHclog(t *testing.T) {
	var buf bytes.Buffer
	log := newSlog(hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Info, Output: &buf}))
	log.Info("client started", "client_id", "h1")
	log.WithGroup("job").With("id", 7).Warn("job appears to be stuck", "kind", Kind)
	log.Error("cannot reach the database")
	out := buf.String()
	if strings.Contains(out, "client started") {
		t.Errorf("River's Info went out at Info: %s", out)
	}
	for _, want := range []string{"[WARN]  host.river: job appears to be stuck: job.id=7 job.kind=synclayer_run", "[ERROR] host.river: cannot reach the database"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	debug := newSlog(hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Debug, Output: &buf}))
	debug.Info("client started", "client_id", "h1")
	if !strings.Contains(buf.String(), "[DEBUG] host.river: client started: client_id=h1") {
		t.Errorf("River's Info did not go out at Debug: %s", buf.String())
	}
}
