package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/hashicorp/go-hclog"

	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

// Batch limits: a RecordBatch is sent once it holds MaxBatchChanges changes
// or about MaxBatchBytes of payload, whichever comes first. A single change
// larger than MaxBatchBytes travels alone.
const (
	MaxBatchChanges = 1000
	MaxBatchBytes   = 1 << 20
)

// changeOverhead approximates the protobuf framing of one Change.
const changeOverhead = 16

// ErrClosed is returned by a Stream used after its RPC returned.
var ErrClosed = errors.New("the Writer was used after Sync (or HandleWebhook) returned; it is only valid during the call")

// Stream turns writes into SyncMessages: changes are batched, and every
// other message (checkpoint, log, progress) first flushes the pending batch,
// so the host receives everything in the order it was written. It is safe
// for concurrent use.
//
// To stay allocation-free on the hot path it reuses its Change structs and
// its payload arena across batches. That is safe because grpc-go's
// ServerStream.SendMsg marshals the message before it returns and the
// server has no stats handler or tracing that keeps the message (the
// plugin's server is a plain grpc.NewServer with go-plugin's options and
// ServerOptions).
type Stream struct {
	mu       sync.Mutex
	send     func(*connectorv1.SyncMessage) error
	fallback hclog.Logger // where log lines go once the stream is closed
	closed   bool
	err      error // sticky send error

	slab  []connectorv1.Change
	batch []*connectorv1.Change
	arena []byte
	size  int

	msg      connectorv1.SyncMessage
	batchMsg connectorv1.SyncMessage_Batch
	records  connectorv1.RecordBatch
}

// NewStream returns a Stream that sends with send. fallback receives log
// lines written after the stream closed.
func NewStream(send func(*connectorv1.SyncMessage) error, fallback hclog.Logger) *Stream {
	s := &Stream{
		send:     send,
		fallback: fallback,
		slab:     make([]connectorv1.Change, MaxBatchChanges),
		batch:    make([]*connectorv1.Change, 0, MaxBatchChanges),
	}
	s.batchMsg.Batch = &s.records
	return s
}

// Add queues one change. When retain is false, data is copied and the
// caller may reuse it as soon as Add returns; when true the stream keeps
// data until the batch is sent. A delete has nil data.
func (s *Stream) Add(model, id string, data []byte, del, retain bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	n := len(model) + len(id) + len(data) + changeOverhead
	if len(s.batch) > 0 && s.size+n > MaxBatchBytes {
		if err := s.flushLocked(); err != nil {
			return err
		}
	}
	if !retain && data != nil {
		start := len(s.arena)
		s.arena = append(s.arena, data...)
		data = s.arena[start:len(s.arena):len(s.arena)]
	}
	c := &s.slab[len(s.batch)]
	c.Model, c.Id, c.Data, c.Delete = model, id, data, del
	s.batch = append(s.batch, c)
	s.size += n
	if len(s.batch) >= MaxBatchChanges || s.size >= MaxBatchBytes {
		return s.flushLocked()
	}
	return nil
}

// Flush sends the pending batch, if any.
func (s *Stream) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	return s.flushLocked()
}

// Checkpoint flushes the pending batch, then sends state (JSON).
func (s *Stream) Checkpoint(state []byte) error {
	return s.sendAfterFlush(&connectorv1.SyncMessage{Kind: &connectorv1.SyncMessage_Checkpoint{
		Checkpoint: &connectorv1.Checkpoint{State: state},
	}})
}

// Progress flushes the pending batch, then reports progress on a model.
func (s *Stream) Progress(model string, done, total int64) error {
	return s.sendAfterFlush(&connectorv1.SyncMessage{Kind: &connectorv1.SyncMessage_Progress{
		Progress: &connectorv1.Progress{Model: model, Done: done, Total: total},
	}})
}

// Log flushes the pending batch, then sends a log entry. Once the stream
// is closed or broken, the entry goes to the fallback logger instead.
func (s *Stream) Log(level hclog.Level, msg string, fields []string) error {
	s.mu.Lock()
	if s.closed || s.err != nil {
		s.mu.Unlock()
		args := make([]any, len(fields))
		for i, f := range fields {
			args[i] = f
		}
		s.fallback.Log(level, msg, args...)
		return nil
	}
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return err
	}
	return s.sendLocked(&connectorv1.SyncMessage{Kind: &connectorv1.SyncMessage_Log{
		Log: &connectorv1.LogEntry{Level: levelToProto(level), Message: msg, Fields: fields},
	}})
}

// Close marks the stream done: later writes fail with ErrClosed and later
// log lines go to the fallback logger. Pending changes are dropped (the
// server flushes before closing when the call succeeded).
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.resetBatch()
}

func (s *Stream) sendAfterFlush(m *connectorv1.SyncMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if err := s.flushLocked(); err != nil {
		return err
	}
	return s.sendLocked(m)
}

func (s *Stream) usable() error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return ErrClosed
	}
	return nil
}

func (s *Stream) flushLocked() error {
	if len(s.batch) == 0 {
		return nil
	}
	s.records.Changes = s.batch
	s.msg.Kind = &s.batchMsg
	err := s.sendLocked(&s.msg)
	s.records.Changes = nil
	s.resetBatch()
	return err
}

func (s *Stream) resetBatch() {
	for _, c := range s.batch {
		c.Model, c.Id, c.Data, c.Delete = "", "", nil, false
	}
	s.batch = s.batch[:0]
	s.arena = s.arena[:0]
	s.size = 0
}

func (s *Stream) sendLocked(m *connectorv1.SyncMessage) error {
	if err := s.send(m); err != nil {
		s.err = fmt.Errorf("sending to the host: %w", err)
		return s.err
	}
	return nil
}

func levelToProto(l hclog.Level) connectorv1.LogEntry_Level {
	switch l {
	case hclog.Trace:
		return connectorv1.LogEntry_LEVEL_TRACE
	case hclog.Debug:
		return connectorv1.LogEntry_LEVEL_DEBUG
	case hclog.Info:
		return connectorv1.LogEntry_LEVEL_INFO
	case hclog.Warn:
		return connectorv1.LogEntry_LEVEL_WARN
	case hclog.Error:
		return connectorv1.LogEntry_LEVEL_ERROR
	}
	return connectorv1.LogEntry_LEVEL_UNSPECIFIED
}

// Logger returns an hclog.Logger whose lines become LogEntry messages on
// the stream, in order with the changes.
func (s *Stream) Logger(level hclog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Level:       level,
		Output:      &logWriter{s: s},
		JSONFormat:  true,
		DisableTime: true,
	})
}

// logWriter parses each hclog JSON line into a LogEntry.
type logWriter struct{ s *Stream }

var _ io.Writer = (*logWriter)(nil)

// Write implements io.Writer: one or more hclog JSON lines.
func (w *logWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		level, msg, fields := parseLogLine(line)
		_ = w.s.Log(level, msg, fields) // a logger never fails its caller
	}
	return len(p), nil
}

// parseLogLine reads one hclog JSON line: @level, @message, and every other
// key (sorted; @timestamp dropped) as alternating key/value strings. A line
// that is not JSON is kept whole as an info message.
func parseLogLine(line []byte) (hclog.Level, string, []string) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return hclog.Info, string(line), nil
	}
	level := hclog.LevelFromString(fmt.Sprint(m["@level"]))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	msg, _ := m["@message"].(string)
	keys := make([]string, 0, len(m))
	for k := range m {
		switch k {
		case "@level", "@message", "@timestamp":
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fields := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		fields = append(fields, k, valueString(m[k]))
	}
	return level, msg, fields
}

func valueString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case nil:
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
