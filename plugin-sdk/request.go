package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/hashicorp/go-hclog"

	"github.com/synclayer/synclayer/plugin-sdk/internal/schema"
)

// SyncRequest is one run of one sync.
type SyncRequest struct {
	// Layer and Source name the configured source being synced.
	Layer, Source string
	// Sync is the name of the sync to run, one of Description.Syncs.
	Sync string
	// Models are the models this run fetches: those the layer file selects
	// for the sync, or every model the sync declares. The Writer refuses
	// other models.
	Models []string
	// Full is true when the run must read everything (a first run, a reset,
	// a changed configuration, a user's request) rather than only what
	// changed since Checkpoint.
	Full bool
	// Resume is true when this is a retry of a run whose earlier attempt
	// failed, and Checkpoint is the last one that attempt wrote. Continue
	// from it: everything written before it is kept. For a full run this
	// means "go on reading everything from where the failed attempt
	// stopped", not "start over"; records the failed attempt saved before
	// its checkpoint count as seen, so track_deletes still works. A
	// connector that cannot resume a full run may start over: saving a
	// record again is harmless.
	//
	// The four cases:
	//   - Full, !Resume: start reading everything; Checkpoint, if set, is
	//     the previous run's (a connector may use it to detect what
	//     vanished) and must not be resumed from.
	//   - Full, Resume: continue the full read from Checkpoint.
	//   - !Full, !Resume: read what changed since Checkpoint.
	//   - !Full, Resume: the same, from the failed attempt's Checkpoint.
	Resume bool
	// Checkpoint is the last checkpoint this sync wrote (see Full and
	// Resume for which one), or nil on a first run or after a reset.
	Checkpoint Checkpoint
	// Logger writes to the host's log, tagged with layer, source and sync,
	// in order with the records written to the Writer.
	Logger hclog.Logger

	config []byte
}

// DecodeConfig decodes the source's configuration into v, a pointer to the
// connector's config struct (the type given as Description.Config).
// Attributes the user did not set keep the value v already holds, so the
// pattern for defaults is: fill the struct with defaults, then call
// DecodeConfig. It fails, naming the attribute, on an unknown attribute, a
// missing required one or a value of the wrong type; when v has a method
// Validate() error, DecodeConfig calls it last and returns its error.
func (r *SyncRequest) DecodeConfig(v any) error { return schema.Decode(r.config, v) }

// CheckRequest asks whether a configuration reaches the upstream.
type CheckRequest struct {
	// Layer and Source name the configured source.
	Layer, Source string
	// Logger writes hclog JSON to stderr, which the host logs.
	Logger hclog.Logger

	config []byte
}

// DecodeConfig decodes the configuration into v; see SyncRequest.DecodeConfig.
func (r *CheckRequest) DecodeConfig(v any) error { return schema.Decode(r.config, v) }

// ConfigRequest asks for the description of a configured source.
type ConfigRequest struct {
	// Layer and Source name the configured source.
	Layer, Source string
	// Logger writes to the host's log.
	Logger hclog.Logger

	config []byte
}

// DecodeConfig decodes the configuration into v; see SyncRequest.DecodeConfig.
func (r *ConfigRequest) DecodeConfig(v any) error { return schema.Decode(r.config, v) }

// WebhookRequest is an inbound payload webhook for a source.
type WebhookRequest struct {
	// Layer and Source name the configured source the webhook is for.
	Layer, Source string
	// Method is the HTTP method (normally POST).
	Method string
	// Path is the request path, as the host received it.
	Path string
	// Header holds the request headers, with canonical keys.
	Header http.Header
	// Body is the request body, as received: verify signatures over it.
	Body []byte
	// Logger writes to the host's log, tagged with layer and source (in
	// HandleWebhook, in order with the records written).
	Logger hclog.Logger

	config []byte
}

// DecodeConfig decodes the configuration into v; see SyncRequest.DecodeConfig.
func (r *WebhookRequest) DecodeConfig(v any) error { return schema.Decode(r.config, v) }

// WatchRequest opens the watch of a configured source (see
// ConnectorWithWatch).
type WatchRequest struct {
	// Layer and Source name the configured source being watched.
	Layer, Source string
	// Syncs are the source's syncs, as described for its configuration:
	// the names trigger accepts.
	Syncs []string
	// Logger writes hclog JSON to stderr, which the host logs, tagged
	// with layer and source.
	Logger hclog.Logger

	config []byte
}

// DecodeConfig decodes the configuration into v; see SyncRequest.DecodeConfig.
func (r *WatchRequest) DecodeConfig(v any) error { return schema.Decode(r.config, v) }

type triggerReasonKey struct{}

// WithTriggerReason returns a copy of ctx that carries reason, a short
// human-readable note of why a run is asked for ("NOTIFY
// synclayer_changes, 'Customer'"). Passed to the trigger of
// ConnectorWithWatch.Watch, it travels with the event, and the host
// records it with the runs the event starts. It means nothing elsewhere.
func WithTriggerReason(ctx context.Context, reason string) context.Context {
	return context.WithValue(ctx, triggerReasonKey{}, reason)
}

func triggerReason(ctx context.Context) string {
	r, _ := ctx.Value(triggerReasonKey{}).(string)
	return r
}

// Checkpoint is a sync's saved state, such as an updated_at high-water mark
// or an upstream sync token. It travels and is stored as a JSON object.
//
// A checkpoint given back to the connector (SyncRequest.Checkpoint) is
// decoded from JSON with numbers as json.Number, so that large integers keep
// their precision: read values with GetString, GetInt64 or Decode rather
// than by asserting float64.
type Checkpoint map[string]any

// GetString returns the value at key when it is a string.
func (c Checkpoint) GetString(key string) (string, bool) {
	s, ok := c[key].(string)
	return s, ok
}

// GetInt64 returns the value at key when it is a whole number (json.Number,
// any Go integer, or an integral float).
func (c Checkpoint) GetInt64(key string) (int64, bool) {
	switch v := c[key].(type) {
	case json.Number:
		n, err := strconv.ParseInt(string(v), 10, 64)
		return n, err == nil
	case int:
		return int64(v), true
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint64:
		if v > math.MaxInt64 {
			return 0, false
		}
		return int64(v), true
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, false
		}
		return int64(v), true
	}
	return 0, false
}

// Decode decodes the checkpoint into v (a pointer to a struct with json
// tags, or a map) through JSON.
func (c Checkpoint) Decode(v any) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("decoding checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding checkpoint: %w", err)
	}
	return nil
}

// decodeCheckpoint reads a checkpoint as the host stored it; empty or null
// is no checkpoint.
func decodeCheckpoint(b []byte) (Checkpoint, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var cp Checkpoint
	if err := dec.Decode(&cp); err != nil {
		return nil, fmt.Errorf("the stored checkpoint is not a JSON object: %w", err)
	}
	return cp, nil
}
