package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
	"go.uber.org/goleak"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/internal/wire"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		runHelperPlugin() // the test binary, started as a plugin by TestServe*
		return
	}
	goleak.VerifyTestMain(m)
}

// ---- a configurable test connector ----

type Nested struct {
	Path  string `config:"path,required" doc:"Path of the endpoint."`
	Limit int    `config:"limit"`
}

type testConfig struct {
	Dir      string            `config:"dir,required" doc:"Folder to read."`
	Token    string            `config:"token,sensitive"`
	Secret   string            `config:"secret,required,sensitive" doc:"Shared secret."`
	Debug    bool              `config:"debug"`
	Records  int               `config:"records"`
	Ratio    float64           `config:"ratio"`
	Every    time.Duration     `config:"every"`
	Tags     []string          `config:"tags"`
	Headers  map[string]string `config:"headers"`
	Models   map[string]Nested `config:"models"`
	One      *Nested           `config:"one"`
	Anything any               `config:"anything"`
	Count    *int64            `config:"count"`
	Ignored  string
	Skipped  string `config:"-"`
}

func (c *testConfig) Validate() error {
	if c.Records < 0 {
		return errors.New("records must not be negative")
	}
	return nil
}

// conn runs a function as its Sync.
type conn struct {
	sync func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error
}

func (c *conn) Describe() sdk.Description {
	return sdk.Description{
		Name:    "test",
		Version: "1.2.3",
		Config:  (*testConfig)(nil),
		Models: []sdk.Model{
			{Name: "A", Description: "an A", Fields: []sdk.ModelField{{Name: "title", Type: "string"}}},
			{Name: "B"},
		},
		Syncs: []sdk.SyncSpec{
			{Name: "all", Models: []string{"A", "B"}, Every: time.Hour, Incremental: true},
			{Name: "b", Models: []string{"B"}, Cron: "0 3 * * *"},
		},
	}
}

func (c *conn) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
	return c.sync(ctx, req, w)
}

func run(t *testing.T, f func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error) (*sdktest.Result, error) {
	t.Helper()
	h := sdktest.New(t, &conn{sync: f})
	return h.Sync(t.Context(), sdktest.SyncOptions{Sync: "all", Full: true})
}

func mustRun(t *testing.T, f func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error) *sdktest.Result {
	t.Helper()
	res, err := run(t, f)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// ---- Describe and the config schema ----

func TestDescribeSchema(t *testing.T) {
	h := sdktest.New(t, &conn{})
	d, err := h.Describe(nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "test" || d.Version != "1.2.3" || d.ProtocolVersion != 1 || d.Webhooks {
		t.Errorf("description header: %+v", d)
	}
	want := map[string]cty.Type{
		"dir": cty.String, "token": cty.String, "secret": cty.String, "debug": cty.Bool,
		"records": cty.Number, "ratio": cty.Number, "every": cty.String,
		"tags": cty.List(cty.String), "headers": cty.Map(cty.String),
		"models": cty.DynamicPseudoType, "one": cty.DynamicPseudoType,
		"anything": cty.DynamicPseudoType, "count": cty.Number,
	}
	if len(d.Config) != len(want) {
		t.Fatalf("got %d config fields, want %d: %+v", len(d.Config), len(want), d.Config)
	}
	if d.Config[0].Name != "dir" || d.Config[len(d.Config)-1].Name != "count" {
		t.Errorf("fields not in declaration order: %+v", d.Config)
	}
	for name, typ := range want {
		f := d.Field(name)
		if f == nil {
			t.Errorf("no field %q", name)
			continue
		}
		if !f.Type.Equals(typ) {
			t.Errorf("%s: type %#v, want %#v", name, f.Type, typ)
		}
	}
	if f := d.Field("dir"); !f.Required || f.Sensitive || f.Description != "Folder to read." {
		t.Errorf("dir: %+v", f)
	}
	if f := d.Field("token"); f.Required || !f.Sensitive || f.Description != "" {
		t.Errorf("token: %+v", f)
	}
	if f := d.Field("secret"); !f.Required || !f.Sensitive || f.Description != "Shared secret." {
		t.Errorf("secret: %+v", f)
	}
	if len(d.Models) != 2 || d.Models[0].Fields[0] != (sdk.ModelField{Name: "title", Type: "string"}) || d.Models[0].Description != "an A" {
		t.Errorf("models: %+v", d.Models)
	}
	if len(d.Syncs) != 2 || d.Syncs[0].Every != time.Hour || !d.Syncs[0].Incremental || d.Syncs[1].Cron != "0 3 * * *" {
		t.Errorf("syncs: %+v", d.Syncs)
	}
}

// ---- DecodeConfig ----

func TestDecodeConfig(t *testing.T) {
	var got testConfig
	h := sdktest.New(t, &conn{sync: func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		got = testConfig{Records: 1000, Ratio: 0.5, Token: "default"}
		return req.DecodeConfig(&got)
	}})
	cfg := map[string]any{
		"dir": "./data", "secret": "s3", "debug": true, "records": 42, "every": "90s",
		"tags": []string{"x", "y"}, "headers": map[string]string{"A": "1"},
		"models":   map[string]any{"Post": map[string]any{"path": "/posts", "limit": 10}},
		"one":      map[string]any{"path": "/one"},
		"anything": map[string]any{"k": []any{1, "two"}},
		"count":    7,
		"token":    nil, // null keeps the default
	}
	if _, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: "all"}); err != nil {
		t.Fatal(err)
	}
	if got.Dir != "./data" || got.Secret != "s3" || !got.Debug || got.Records != 42 || got.Every != 90*time.Second {
		t.Errorf("scalars: %+v", got)
	}
	if got.Ratio != 0.5 || got.Token != "default" {
		t.Errorf("defaults lost: %+v", got)
	}
	if strings.Join(got.Tags, ",") != "x,y" || got.Headers["A"] != "1" {
		t.Errorf("collections: %+v", got)
	}
	if got.Models["Post"] != (Nested{Path: "/posts", Limit: 10}) || got.One == nil || got.One.Path != "/one" {
		t.Errorf("nested: %+v %+v", got.Models, got.One)
	}
	if got.Count == nil || *got.Count != 7 {
		t.Errorf("count: %v", got.Count)
	}
	if m, ok := got.Anything.(map[string]any); !ok || len(m["k"].([]any)) != 2 {
		t.Errorf("anything: %#v", got.Anything)
	}
}

func TestDecodeConfigErrors(t *testing.T) {
	base := func() map[string]any { return map[string]any{"dir": "d", "secret": "s"} }
	cases := []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"missing required", func(m map[string]any) { delete(m, "dir") }, `attribute "dir": required but not set`},
		{"null required", func(m map[string]any) { m["secret"] = nil }, `attribute "secret": required but not set`},
		{"unknown", func(m map[string]any) { m["dri"] = "x" }, `attribute "dri": unknown attribute; known attributes: dir, token`},
		{"wrong type", func(m map[string]any) { m["records"] = "many" }, `attribute "records": expected a whole number, got a string`},
		{"fraction", func(m map[string]any) { m["records"] = 1.5 }, `attribute "records": expected a whole number`},
		{"bool", func(m map[string]any) { m["debug"] = "yes" }, `attribute "debug": expected a bool, got a string`},
		{"list", func(m map[string]any) { m["tags"] = "x" }, `attribute "tags": expected a list, got a string`},
		{"list item", func(m map[string]any) { m["tags"] = []any{"x", 2} }, `attribute "tags[1]": expected a string, got a number`},
		{"nested required", func(m map[string]any) { m["models"] = map[string]any{"P": map[string]any{"limit": 1}} }, `attribute "models.P.path": required but not set`},
		{"nested unknown", func(m map[string]any) { m["one"] = map[string]any{"path": "/", "x": 1} }, `attribute "one.x": unknown attribute`},
		{"duration", func(m map[string]any) { m["every"] = "soon" }, `attribute "every": expected a duration`},
		{"validate", func(m map[string]any) { m["records"] = -1 }, `invalid config: records must not be negative`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := sdktest.New(t, &checkConn{})
			cfg := base()
			tc.edit(cfg)
			err := h.Check(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	h := sdktest.New(t, &checkConn{})
	if err := h.Check(t.Context(), base()); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}

// checkConn decodes its config in Check.
type checkConn struct{ conn }

func (c *checkConn) Check(ctx context.Context, req *sdk.CheckRequest) error {
	var cfg testConfig
	return req.DecodeConfig(&cfg)
}

func TestCheckWithoutCheckSucceeds(t *testing.T) {
	h := sdktest.New(t, &conn{})
	if err := h.Check(t.Context(), map[string]any{}); err != nil {
		t.Fatal(err)
	}
}

// ---- Writer ----

func TestBatchByCount(t *testing.T) {
	res := mustRun(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		for i := range 2500 {
			if err := w.Save(ctx, "A", map[string]any{"id": i, "n": i}); err != nil {
				return err
			}
		}
		return nil
	})
	var sizes []int
	for _, m := range res.Messages {
		sizes = append(sizes, len(m.Batch))
	}
	if fmt.Sprint(sizes) != "[1000 1000 500]" {
		t.Fatalf("batch sizes %v, want [1000 1000 500]", sizes)
	}
	if len(res.Changes) != 2500 || res.Changes[2499].ID != "2499" {
		t.Fatalf("changes: %d, last %+v", len(res.Changes), res.Changes[len(res.Changes)-1])
	}
}

func TestBatchByBytes(t *testing.T) {
	filler := strings.Repeat("x", 10<<10)
	res := mustRun(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		for i := range 300 {
			rec := fmt.Sprintf(`{"id":"%d","data":%q}`, i, filler)
			if err := w.SaveRaw(ctx, "A", fmt.Sprint(i), []byte(rec)); err != nil {
				return err
			}
		}
		return nil
	})
	if len(res.Changes) != 300 {
		t.Fatalf("%d changes", len(res.Changes))
	}
	if len(res.Messages) < 3 {
		t.Fatalf("300 records of 10 KiB in %d batches; want batches of at most 1 MiB", len(res.Messages))
	}
	for i, m := range res.Messages {
		size := 0
		for _, c := range m.Batch {
			size += len(c.Data) + len(c.ID) + len(c.Model)
		}
		if size > sdk.BatchBytes {
			t.Errorf("batch %d holds %d bytes, more than %d", i, size, sdk.BatchBytes)
		}
		if i < len(res.Messages)-1 && size < sdk.BatchBytes-20<<10 {
			t.Errorf("batch %d holds only %d bytes", i, size)
		}
	}
}

func TestLargeRecordTravelsAlone(t *testing.T) {
	big := fmt.Sprintf(`{"id":"big","data":%q}`, strings.Repeat("y", 2<<20))
	res := mustRun(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		if err := w.Save(ctx, "A", json.RawMessage(`{"id":"small"}`)); err != nil {
			return err
		}
		if err := w.Save(ctx, "A", json.RawMessage(big)); err != nil {
			return err
		}
		return w.Save(ctx, "A", json.RawMessage(`{"id":"after"}`))
	})
	var sizes []int
	for _, m := range res.Messages {
		sizes = append(sizes, len(m.Batch))
	}
	if fmt.Sprint(sizes) != "[1 1 1]" || string(res.Changes[1].Data) != big {
		t.Fatalf("batch sizes %v", sizes)
	}
}

func TestCheckpointFollowsItsChanges(t *testing.T) {
	res := mustRun(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		for i := range 10 {
			if err := w.Save(ctx, "A", map[string]any{"id": fmt.Sprint("a", i)}); err != nil {
				return err
			}
		}
		if err := w.Checkpoint(ctx, sdk.Checkpoint{"page": 1}); err != nil {
			return err
		}
		if err := w.Delete(ctx, "B", "b1", "b2"); err != nil {
			return err
		}
		if err := w.Progress(ctx, "B", 2, 0); err != nil {
			return err
		}
		if err := w.Save(ctx, "B", map[string]any{"id": "b3"}); err != nil {
			return err
		}
		return w.Checkpoint(ctx, sdk.Checkpoint{"page": 2})
	})
	var kinds []string
	for _, m := range res.Messages {
		switch {
		case m.Batch != nil:
			kinds = append(kinds, fmt.Sprintf("batch%d", len(m.Batch)))
		case m.Checkpoint != nil:
			kinds = append(kinds, fmt.Sprintf("cp%v", m.Checkpoint["page"]))
		case m.Progress != nil:
			kinds = append(kinds, fmt.Sprintf("progress%s%d", m.Progress.Model, m.Progress.Done))
		}
	}
	if got := strings.Join(kinds, " "); got != "batch10 cp1 batch2 progressB2 batch1 cp2" {
		t.Fatalf("stream order: %s", got)
	}
	if n, ok := res.Checkpoint.GetInt64("page"); !ok || n != 2 {
		t.Fatalf("last checkpoint %v", res.Checkpoint)
	}
	if c := res.Changes[10]; c.Model != "B" || c.ID != "b1" || !c.Delete || c.Data != nil {
		t.Fatalf("delete: %+v", c)
	}
}

// TestDeleteByID: a delete by id alone goes out with an empty model, in
// order with the other changes; an empty id is refused.
func TestDeleteByID(t *testing.T) {
	res := mustRun(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		if err := w.Save(ctx, "A", map[string]any{"id": "a1"}); err != nil {
			return err
		}
		if err := w.DeleteByID(ctx, "x1", "x2"); err != nil {
			return err
		}
		return w.Delete(ctx, "B", "b1")
	})
	var got []string
	for _, c := range res.Changes {
		got = append(got, fmt.Sprintf("%s/%s/%v/%d", c.Model, c.ID, c.Delete, len(c.Data)))
	}
	if s := strings.Join(got, " "); s != "A/a1/false/11 /x1/true/0 /x2/true/0 B/b1/true/0" {
		t.Fatalf("changes: %s", s)
	}
	_, err := run(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		return w.DeleteByID(ctx, "ok", "")
	})
	if err == nil || !strings.Contains(err.Error(), "DeleteByID id 1: empty id") {
		t.Fatalf("got %v", err)
	}
}

func TestUndeclaredModelRejected(t *testing.T) {
	_, err := run(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		return w.Save(ctx, "Nope", map[string]any{"id": "1"})
	})
	if err == nil || !strings.Contains(err.Error(), `model "Nope" is not declared by the connector (declared: A, B)`) {
		t.Fatalf("got %v", err)
	}

	// Declared, but not part of this run.
	h := sdktest.New(t, &conn{sync: func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		if fmt.Sprint(req.Models) != "[B]" {
			return fmt.Errorf("models %v", req.Models)
		}
		return w.Delete(ctx, "A", "1")
	}})
	_, err = h.Sync(t.Context(), sdktest.SyncOptions{Sync: "all", Models: []string{"B"}})
	if err == nil || !strings.Contains(err.Error(), `model "A" is not part of this run (models: B)`) {
		t.Fatalf("got %v", err)
	}
	// A model the sync does not fetch is refused before the connector runs.
	_, err = h.Sync(t.Context(), sdktest.SyncOptions{Sync: "b", Models: []string{"A"}})
	if err == nil || !strings.Contains(err.Error(), `sync "b" does not fetch model "A"`) {
		t.Fatalf("got %v", err)
	}
	_, err = h.Sync(t.Context(), sdktest.SyncOptions{Sync: "nope"})
	if err == nil || !strings.Contains(err.Error(), `unknown sync "nope"; this connector's syncs: all, b`) {
		t.Fatalf("got %v", err)
	}
}

type idStruct struct {
	ID    int    `json:"id"`
	Title string `json:"title"`
}

func TestRecordIDs(t *testing.T) {
	res := mustRun(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		return w.Save(ctx, "A",
			map[string]any{"id": "s"},
			map[string]any{"id": 17},
			map[string]any{"id": 2.5},
			idStruct{ID: 9, Title: "t"},
			&idStruct{ID: 10},
			json.RawMessage(`{"title":"x","id":12345678901234567890}`),
			[]byte(` {"id":"raw"} `),
		)
	})
	var ids []string
	for _, c := range res.Changes {
		ids = append(ids, c.ID)
	}
	if got := strings.Join(ids, ","); got != "s,17,2.5,9,10,12345678901234567890,raw" {
		t.Fatalf("ids %s", got)
	}
	if string(res.Changes[3].Data) != `{"id":9,"title":"t"}` {
		t.Fatalf("struct data %s", res.Changes[3].Data)
	}
}

func TestBadRecordsRejected(t *testing.T) {
	cases := []struct {
		rec  any
		want string
	}{
		{map[string]any{"title": "x"}, `Save "A" record 1: no "id" attribute`},
		{map[string]any{"id": nil}, `Save "A" record 1: no "id" attribute`},
		{map[string]any{"id": ""}, `Save "A" record 1: empty "id"`},
		{map[string]any{"id": true}, `Save "A" record 1: "id" must be a string or a number, not a bool`},
		{json.RawMessage(`[1,2]`), `Save "A" record 1: not a JSON object`},
		{json.RawMessage(`{"id":}`), `Save "A" record 1: not a valid JSON object`},
		{json.RawMessage(`{"id":{"a":1}}`), `Save "A" record 1: "id" must be a string or a number, not an object`},
		{[]int{1}, `Save "A" record 1: a []int is not a JSON object`},
		{struct{ Name string }{"x"}, `Save "A" record 1: no "id" attribute`},
		{nil, `Save "A" record 1: record is nil`},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			res, err := run(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
				return w.Save(ctx, "A", map[string]any{"id": "ok"}, tc.rec)
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if len(res.Changes) != 0 {
				t.Fatalf("a failed run sent its pending changes: %+v", res.Changes)
			}
		})
	}
	_, err := run(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		return w.SaveRaw(ctx, "A", "", []byte(`{}`))
	})
	if err == nil || !strings.Contains(err.Error(), `SaveRaw "A": empty id`) {
		t.Fatalf("got %v", err)
	}
	_, err = run(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		return w.SaveRaw(ctx, "A", "x", []byte(`"str"`))
	})
	if err == nil || !strings.Contains(err.Error(), `data is not a JSON object`) {
		t.Fatalf("got %v", err)
	}
}

func TestSaveRawCopies(t *testing.T) {
	res := mustRun(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		buf := make([]byte, 0, 64)
		for i := range 2100 {
			buf = fmt.Appendf(buf[:0], `{"id":"%d"}`, i)
			if err := w.SaveRaw(ctx, "A", fmt.Sprint(i), buf); err != nil {
				return err
			}
		}
		return nil
	})
	for i, c := range res.Changes {
		if want := fmt.Sprintf(`{"id":"%d"}`, i); string(c.Data) != want {
			t.Fatalf("change %d: %s, want %s", i, c.Data, want)
		}
	}
}

func TestWriterConcurrent(t *testing.T) {
	res := mustRun(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Go(func() {
				for i := range 500 {
					if err := w.Save(ctx, "A", map[string]any{"id": fmt.Sprintf("%d-%d", g, i)}); err != nil {
						errs <- err
						return
					}
					if i%100 == 0 {
						req.Logger.Debug("progress", "g", g, "i", i)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	})
	seen := map[string]bool{}
	for _, c := range res.Changes {
		seen[c.ID] = true
	}
	if len(seen) != 4000 {
		t.Fatalf("%d distinct ids, want 4000", len(seen))
	}
}

func TestWriterAfterSyncReturned(t *testing.T) {
	var kept *sdk.Writer
	mustRun(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		kept = w
		return nil
	})
	err := kept.Save(context.Background(), "A", map[string]any{"id": "late"})
	if err == nil || !strings.Contains(err.Error(), "used after Sync") {
		t.Fatalf("got %v", err)
	}
}

// ---- failures ----

func TestSyncErrorCarriesMessage(t *testing.T) {
	res, err := run(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		if err := w.Save(ctx, "A", map[string]any{"id": "1"}); err != nil {
			return err
		}
		if err := w.Checkpoint(ctx, sdk.Checkpoint{"at": "x"}); err != nil {
			return err
		}
		return errors.New("upstream said 403: token expired")
	})
	if err == nil || err.Error() != "upstream said 403: token expired" {
		t.Fatalf("got %v", err)
	}
	if len(res.Changes) != 1 || res.Checkpoint["at"] != "x" {
		t.Fatalf("what arrived before the failure: %+v", res)
	}
}

func TestPanicInSyncIsAnError(t *testing.T) {
	calls := 0
	h := sdktest.New(t, &conn{sync: func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		calls++
		if calls == 1 {
			var m map[string]int
			m["boom"] = 1 // nil map write
		}
		return w.Save(ctx, "A", map[string]any{"id": "alive"})
	}})
	_, err := h.Sync(t.Context(), sdktest.SyncOptions{Sync: "all"})
	if err == nil || !strings.Contains(err.Error(), "connector panicked: assignment to entry in nil map") {
		t.Fatalf("got %v", err)
	}
	res, err := h.Sync(t.Context(), sdktest.SyncOptions{Sync: "all"})
	if err != nil || len(res.Changes) != 1 {
		t.Fatalf("the server did not survive the panic: %v %+v", err, res)
	}
}

func TestCancelledSync(t *testing.T) {
	h := sdktest.New(t, &conn{sync: func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		<-ctx.Done()
		return w.Save(ctx, "A", map[string]any{"id": "1"})
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.Sync(ctx, sdktest.SyncOptions{Sync: "all"}); err == nil {
		t.Fatal("a cancelled sync succeeded")
	}
}

// ---- logs ----

func TestLogsArriveInOrder(t *testing.T) {
	res := mustRun(t, func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		req.Logger.Info("starting", "page_size", 100)
		if err := w.Save(ctx, "A", map[string]any{"id": "1"}); err != nil {
			return err
		}
		req.Logger.Warn("slow upstream", "after", "2s", "err", errors.New("timeout"))
		req.Logger.Debug("details", "obj", map[string]int{"a": 1})
		req.Logger.Error("multi\nline")
		req.Logger.Trace("trace")
		return nil
	})
	var got []string
	for _, m := range res.Messages {
		switch {
		case m.Log != nil:
			got = append(got, m.Log.String())
		case m.Batch != nil:
			got = append(got, "batch")
		}
	}
	want := []string{
		"[INFO] starting layer=test page_size=100 source=test sync=all",
		"batch",
		"[WARN] slow upstream after=2s err=timeout layer=test source=test sync=all",
		`[DEBUG] details layer=test obj={"a":1} source=test sync=all`,
		"[ERROR] multi\nline layer=test source=test sync=all",
		"[TRACE] trace layer=test source=test sync=all",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(res.Logs) != 5 || res.Logs[0] != want[0] {
		t.Fatalf("Logs: %q", res.Logs)
	}
}

// ---- checkpoints given back ----

func TestCheckpointRoundTrip(t *testing.T) {
	var got sdk.Checkpoint
	var full bool
	h := sdktest.New(t, &conn{sync: func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		got, full = req.Checkpoint, req.Full
		return w.Checkpoint(ctx, sdk.Checkpoint{"token": "abc", "n": int64(1) << 60, "nested": map[string]any{"x": 1}})
	}})
	first, err := h.Sync(t.Context(), sdktest.SyncOptions{Sync: "all", Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if got != nil || !full {
		t.Fatalf("first run: checkpoint %v full %v", got, full)
	}
	if _, err := h.Sync(t.Context(), sdktest.SyncOptions{Sync: "all", Checkpoint: first.Checkpoint}); err != nil {
		t.Fatal(err)
	}
	if s, _ := got.GetString("token"); s != "abc" {
		t.Fatalf("token %v", got)
	}
	if n, ok := got.GetInt64("n"); !ok || n != 1<<60 {
		t.Fatalf("n lost precision: %v", got["n"])
	}
	var st struct {
		Nested struct{ X int } `json:"nested"`
	}
	if err := got.Decode(&st); err != nil || st.Nested.X != 1 {
		t.Fatalf("Decode: %v %+v", err, st)
	}
}

// ---- configured models ----

type dynConn struct{ conn }

func (c *dynConn) Configure(ctx context.Context, req *sdk.ConfigRequest) (*sdk.Description, error) {
	var cfg struct {
		Names []string `config:"names"`
	}
	if err := req.DecodeConfig(&cfg); err != nil {
		return nil, err
	}
	d := &sdk.Description{}
	for _, n := range cfg.Names {
		d.Models = append(d.Models, sdk.Model{Name: n})
	}
	d.Syncs = []sdk.SyncSpec{{Name: "all", Models: cfg.Names}}
	return d, nil
}

func (c *dynConn) Describe() sdk.Description {
	return sdk.Description{Name: "dyn", Config: &struct {
		Names []string `config:"names"`
	}{}}
}

func TestConfiguredModels(t *testing.T) {
	c := &dynConn{}
	c.sync = func(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
		for _, m := range req.Models {
			if err := w.Save(ctx, m, map[string]any{"id": m}); err != nil {
				return err
			}
		}
		return w.Save(ctx, "Other", map[string]any{"id": "x"})
	}
	h := sdktest.New(t, c)
	d, err := h.Describe(nil)
	if err != nil || len(d.Models) != 0 || d.Name != "dyn" || len(d.Config) != 1 {
		t.Fatalf("static: %v %+v", err, d)
	}
	cfg := map[string]any{"names": []string{"X", "Y"}}
	d, err = h.Describe(cfg)
	if err != nil || len(d.Models) != 2 || d.Models[1].Name != "Y" || d.Syncs[0].Name != "all" || d.Name != "dyn" {
		t.Fatalf("configured: %v %+v", err, d)
	}
	res, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: "all"})
	if err == nil || !strings.Contains(err.Error(), `model "Other" is not declared`) || len(res.Changes) != 0 {
		t.Fatalf("got %v %+v", err, res)
	}
	if _, err := h.Describe(map[string]any{"names": "bad"}); err == nil || !strings.Contains(err.Error(), `attribute "names": expected a list`) {
		t.Fatalf("got %v", err)
	}
}

// ---- webhooks ----

type hookConn struct{ conn }

func (c *hookConn) VerifyWebhook(ctx context.Context, req *sdk.WebhookRequest) error {
	if req.Header.Get("X-Signature") != "good" {
		return errors.New("bad signature")
	}
	return nil
}

func (c *hookConn) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest, w *sdk.Writer) error {
	req.Logger.Info("webhook", "path", req.Path)
	return w.Save(ctx, "B", json.RawMessage(req.Body))
}

func TestWebhooks(t *testing.T) {
	h := sdktest.New(t, &hookConn{})
	d, err := h.Describe(nil)
	if err != nil || !d.Webhooks {
		t.Fatalf("webhooks not advertised: %v %+v", err, d)
	}
	opts := sdktest.WebhookOptions{Header: map[string][]string{"x-signature": {"good"}}, Body: []byte(`{"id":"w1"}`)}
	if err := h.VerifyWebhook(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	if err := h.VerifyWebhook(t.Context(), sdktest.WebhookOptions{}); err == nil || err.Error() != "bad signature" {
		t.Fatalf("got %v", err)
	}
	res, err := h.HandleWebhook(t.Context(), opts)
	if err != nil || len(res.Changes) != 1 || res.Changes[0].ID != "w1" {
		t.Fatalf("%v %+v", err, res)
	}
	if res.Logs[0] != "[INFO] webhook layer=test path=/hooks/sources/test/test source=test" {
		t.Fatalf("logs %q", res.Logs)
	}

	plain := sdktest.New(t, &conn{})
	if err := plain.VerifyWebhook(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "not implemented") {
		t.Fatalf("got %v", err)
	}
}

// ---- start-up validation ----

type descConn struct {
	conn
	d func() sdk.Description
}

func (c *descConn) Describe() sdk.Description { return c.d() }

func TestInvalidDescriptionRefusedAtStartUp(t *testing.T) {
	cases := []struct {
		d    sdk.Description
		want string
	}{
		{sdk.Description{}, "Describe returned no Name"},
		{sdk.Description{Name: "x", Models: []sdk.Model{{Name: "A"}, {Name: "A"}}}, `model "A" is declared twice`},
		{sdk.Description{Name: "x", Syncs: []sdk.SyncSpec{{Name: "s", Models: []string{"A"}}}}, `sync "s" names model "A", which is not declared`},
		{sdk.Description{Name: "x", Syncs: []sdk.SyncSpec{{Name: "s", Every: time.Hour, Cron: "* * * * *"}}}, `sets both Every and Cron`},
		{sdk.Description{Name: "x", Config: new(string)}, "must be a pointer to a struct"},
		{sdk.Description{Name: "x", Config: &struct {
			A int `config:"a,secret"`
		}{}}, `unknown config tag option "secret"`},
	}
	for _, tc := range cases {
		_, err := wire.Adapt(&descConn{d: func() sdk.Description { return tc.d }})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
	_, err := wire.Adapt(&descConn{d: func() sdk.Description { panic("oops") }})
	if err == nil || !strings.Contains(err.Error(), "connector panicked in Describe: oops") {
		t.Errorf("got %v", err)
	}
}
