package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/synclayer/synclayer/plugin-sdk/internal/wire"
)

// Batch limits of the Writer: pending changes are sent as one batch once
// there are BatchChanges of them or about BatchBytes of record data,
// whichever comes first, and whenever a checkpoint, log line or progress
// report must follow them.
const (
	BatchChanges = wire.MaxBatchChanges
	BatchBytes   = wire.MaxBatchBytes
)

// Writer sends a run's records, deletes, checkpoints and progress to the
// host. Changes are buffered and sent in batches (see BatchChanges); every
// other message first sends the pending changes, so the host receives
// everything in the order it was written. A checkpoint therefore always
// follows the changes it covers.
//
// A Writer is only valid during the Sync or HandleWebhook call it was given
// to. It is safe for concurrent use; the order between goroutines is the
// order in which their calls happen, so a checkpoint covers only the changes
// whose Save or Delete returned before Checkpoint was called.
//
// Every method returns an error once the host is gone or the run cancelled;
// the connector should then return.
type Writer struct {
	out      *wire.Stream
	allowed  map[string]bool // the run's models
	declared map[string]bool // every model the connector declares
	// deleteGone lets Delete name a model the connector no longer declares
	// (ConnectorWithConfiguredModels: a removed file or table).
	deleteGone bool
}

func newWriter(out *wire.Stream, models []string, declared []Model, deleteGone bool) *Writer {
	w := &Writer{out: out, allowed: map[string]bool{}, declared: map[string]bool{}, deleteGone: deleteGone}
	for _, m := range models {
		w.allowed[m] = true
	}
	for _, m := range declared {
		w.declared[m.Name] = true
	}
	return w
}

func (w *Writer) checkModel(ctx context.Context, op, model string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.allowed[model] {
		return nil
	}
	if !w.declared[model] {
		if op == "Delete" && w.deleteGone {
			return nil
		}
		return fmt.Errorf("sdk: %s: model %q is not declared by the connector (declared: %s)", op, model, names(w.declared))
	}
	return fmt.Errorf("sdk: %s: model %q is not part of this run (models: %s)", op, model, names(w.allowed))
}

func names(m map[string]bool) string {
	s := make([]string, 0, len(m))
	for k := range m {
		s = append(s, k)
	}
	if len(s) == 0 {
		return "none"
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// Save writes records of model. Each record is one of:
//   - a map[string]any,
//   - a struct or pointer to a struct (encoded with encoding/json, so json
//     tags apply),
//   - a json.RawMessage or []byte holding a JSON object (copied).
//
// A record's id is its top-level "id" attribute, a string or a number (a
// number's JSON text becomes the id: 17 → "17"). A record that is not a JSON
// object, or has no usable id, is an error naming the model and the record's
// index; the records before it have been written. A record may not have a
// top-level "_metadata" attribute (the host adds its own there): the host
// fails a run that sends one. Saving a record identical to the stored one
// changes nothing in the host.
func (w *Writer) Save(ctx context.Context, model string, records ...any) error {
	if err := w.checkModel(ctx, "Save", model); err != nil {
		return err
	}
	for i, r := range records {
		id, data, owned, err := encodeRecord(r)
		if err != nil {
			return fmt.Errorf("sdk: Save %q record %d: %w", model, i, err)
		}
		if err := w.out.Add(model, id, data, false, owned); err != nil {
			return err
		}
	}
	return nil
}

// SaveRaw is the fast path of Save for a record already encoded as a JSON
// object, with its id known. It checks only that data looks like an object
// (starts with '{' and ends with '}'); the host validates it fully.
//
// SaveRaw copies data into the pending batch before it returns, so the
// caller may reuse its buffer right away: build each record by appending to
// one reused []byte and call SaveRaw with it. (The copy is a memmove into a
// batch arena that is itself reused; it costs far less than the allocation
// per record that retaining the caller's slice would force.)
func (w *Writer) SaveRaw(ctx context.Context, model, id string, data []byte) error {
	if err := w.checkModel(ctx, "SaveRaw", model); err != nil {
		return err
	}
	if id == "" {
		return fmt.Errorf("sdk: SaveRaw %q: empty id", model)
	}
	if !looksLikeObject(data) {
		return fmt.Errorf("sdk: SaveRaw %q id %q: data is not a JSON object", model, id)
	}
	return w.out.Add(model, id, data, false, false)
}

// Delete marks records of model as deleted, by id. Deleting an id the host
// does not have is harmless. A connector with configured models
// (ConnectorWithConfiguredModels) may also delete records of a model its
// current configuration no longer declares, such as the records of a file
// or table that was removed.
func (w *Writer) Delete(ctx context.Context, model string, ids ...string) error {
	if err := w.checkModel(ctx, "Delete", model); err != nil {
		return err
	}
	for i, id := range ids {
		if id == "" {
			return fmt.Errorf("sdk: Delete %q id %d: empty id", model, i)
		}
		if err := w.out.Add(model, id, nil, true, true); err != nil {
			return err
		}
	}
	return nil
}

// DeleteByID marks records of this source as deleted by id alone, for an
// upstream that reports a deletion without saying what kind of record it
// was (Contentful's DeletedEntry, a tombstone feed). The host looks each id
// up in its index and deletes the record with that id in every model of
// the source that holds one, including models outside this run's sync;
// an id no model holds is harmless. When the model is known, use Delete:
// where ids repeat across models (numeric ids, say), DeleteByID deletes
// them all.
func (w *Writer) DeleteByID(ctx context.Context, ids ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, id := range ids {
		if id == "" {
			return fmt.Errorf("sdk: DeleteByID id %d: empty id", i)
		}
		if err := w.out.Add("", id, nil, true, true); err != nil {
			return err
		}
	}
	return nil
}

// Checkpoint sends the pending changes, then cp. The host stores cp with
// the changes before it, and a retry or the next incremental run of this
// sync gets it back as SyncRequest.Checkpoint. Write one after each page or
// chunk whose changes are all written, so that a failed run resumes without
// losing or refetching much. cp must encode as JSON; nil is an empty object.
func (w *Writer) Checkpoint(ctx context.Context, cp Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if cp == nil {
		cp = Checkpoint{}
	}
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("sdk: Checkpoint: not encodable as JSON: %w", err)
	}
	return w.out.Checkpoint(b)
}

// Progress reports how far the run is on model: done records of total (0 if
// unknown). model may be "" for the run as a whole. It sends the pending
// changes first, so report per page or every few thousand records, not per
// record.
func (w *Writer) Progress(ctx context.Context, model string, done, total int64) error {
	if model != "" {
		if err := w.checkModel(ctx, "Progress", model); err != nil {
			return err
		}
	} else if err := ctx.Err(); err != nil {
		return err
	}
	return w.out.Progress(model, done, total)
}

func looksLikeObject(b []byte) bool {
	i, j := 0, len(b)-1
	for i <= j && isSpace(b[i]) {
		i++
	}
	for j >= i && isSpace(b[j]) {
		j--
	}
	return i < j && b[i] == '{' && b[j] == '}'
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

var errNoID = errors.New(`no "id" attribute`)

// encodeRecord returns the record's id and JSON; owned is true when data
// was freshly allocated here (so the stream may keep it without copying).
func encodeRecord(r any) (id string, data []byte, owned bool, err error) {
	switch x := r.(type) {
	case nil:
		return "", nil, false, errors.New("record is nil")
	case json.RawMessage:
		id, err = idOfJSON(x)
		return id, x, false, err
	case []byte:
		id, err = idOfJSON(x)
		return id, x, false, err
	case map[string]any:
		v, has := x["id"]
		id, err = idOfValue(v, has)
		if err != nil {
			return "", nil, false, err
		}
		data, err = json.Marshal(x)
		if err != nil {
			return "", nil, false, fmt.Errorf("not encodable as JSON: %w", err)
		}
		return id, data, true, nil
	}
	data, err = json.Marshal(r)
	if err != nil {
		return "", nil, false, fmt.Errorf("not encodable as JSON: %w", err)
	}
	if len(data) == 0 || data[0] != '{' {
		return "", nil, false, fmt.Errorf("a %T is not a JSON object", r)
	}
	id, err = idOfJSON(data)
	return id, data, true, err
}

func idOfJSON(b []byte) (string, error) {
	if !looksLikeObject(b) {
		return "", errors.New("not a JSON object")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return "", fmt.Errorf("not a valid JSON object: %w", err)
	}
	raw, ok := obj["id"]
	if !ok {
		return "", errNoID
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("bad id: %w", err)
	}
	return idOfValue(v, true)
}

// idOfValue turns an id value into its string: strings as they are, numbers
// as their decimal text.
func idOfValue(v any, present bool) (string, error) {
	if !present || v == nil {
		return "", errNoID
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = x.String()
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", fmt.Errorf("id %v is not a valid number", x)
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		s = strconv.FormatFloat(float64(x), 'f', -1, 32)
	default:
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			s = strconv.FormatInt(rv.Int(), 10)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			s = strconv.FormatUint(rv.Uint(), 10)
		case reflect.String:
			s = rv.String()
		default:
			return "", fmt.Errorf(`"id" must be a string or a number, not %s`, describeValue(v))
		}
	}
	if s == "" {
		return "", errors.New(`empty "id"`)
	}
	return s, nil
}

func describeValue(v any) string {
	switch v.(type) {
	case bool:
		return "a bool"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("a %T", v)
}
