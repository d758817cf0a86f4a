package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

func TestStreamAfterCloseAndErrors(t *testing.T) {
	var fallback bytes.Buffer
	var sent []*connectorv1.SyncMessage
	fail := false
	s := NewStream(func(m *connectorv1.SyncMessage) error {
		if fail {
			return errors.New("broken pipe")
		}
		sent = append(sent, m)
		return nil
	}, hclog.New(&hclog.LoggerOptions{Output: &fallback, JSONFormat: true}))

	log := s.Logger(hclog.Debug)
	log.Debug("one", "k", "v")
	log.Trace("filtered")
	if len(sent) != 1 || sent[0].GetLog().GetLevel() != connectorv1.LogEntry_LEVEL_DEBUG ||
		strings.Join(sent[0].GetLog().GetFields(), ",") != "k,v" {
		t.Fatalf("sent %v", sent)
	}

	if err := s.Add("A", "1", []byte(`{}`), false, false); err != nil {
		t.Fatal(err)
	}
	fail = true
	err := s.Flush()
	if err == nil || !strings.Contains(err.Error(), "sending to the host: broken pipe") {
		t.Fatalf("got %v", err)
	}
	if err2 := s.Add("A", "2", []byte(`{}`), false, false); err2 != err {
		t.Fatalf("the send error is not sticky: %v", err2)
	}
	log.Warn("after the failure")
	s.Close()
	if err3 := s.Add("A", "3", nil, true, true); err3 != err {
		t.Fatalf("got %v", err3)
	}
	log.Info("after close")
	if !strings.Contains(fallback.String(), "after the failure") || !strings.Contains(fallback.String(), "after close") {
		t.Fatalf("fallback got %q", fallback.String())
	}

	s2 := NewStream(func(*connectorv1.SyncMessage) error { return nil }, hclog.NewNullLogger())
	s2.Close()
	if err := s2.Checkpoint([]byte(`{}`)); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v", err)
	}
}

func TestParseLogLine(t *testing.T) {
	level, msg, fields := parseLogLine([]byte(`not json`))
	if level != hclog.Info || msg != "not json" || fields != nil {
		t.Fatalf("%v %q %v", level, msg, fields)
	}
	level, msg, fields = parseLogLine([]byte(`{"@level":"error","@message":"m","@timestamp":"x","b":2.5,"a":null,"@module":"mod"}`))
	if level != hclog.Error || msg != "m" || strings.Join(fields, ",") != "@module,mod,a,null,b,2.5" {
		t.Fatalf("%v %q %v", level, msg, fields)
	}
}
