package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"go.uber.org/goleak"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
)

func TestMain(m *testing.M) {
	// A checkpoint every 1000 records: the checkpoint and resume logic is
	// the same as at 10000, with a tenth of the records (and of the time
	// under -race).
	checkpointEvery = 1000
	goleak.VerifyTestMain(m)
}

type record struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	N       int64  `json:"n"`
	Version int64  `json:"version"`
	Data    string `json:"data"`
}

func decode(t *testing.T, c sdktest.Change) record {
	t.Helper()
	var r record
	dec := json.NewDecoder(bytes.NewReader(c.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("record %s: %v: %s", c.ID, err, c.Data)
	}
	if r.ID != c.ID || r.Model != c.Model {
		t.Fatalf("record %s: id/model mismatch: %s", c.ID, c.Data)
	}
	return r
}

func syncGen(t *testing.T, h *sdktest.Harness, cfg map[string]any, full bool, cp sdk.Checkpoint) *sdktest.Result {
	t.Helper()
	res, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: SyncName, Full: full, Checkpoint: cp})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestDescribe(t *testing.T) {
	h := sdktest.New(t, &Generator{})
	d, err := h.Describe(nil)
	if err != nil || d.Name != "generator" || len(d.Models) != 1 || d.Models[0].Name != "Item" {
		t.Fatalf("%v %+v", err, d)
	}
	for _, f := range []string{"records", "payload_bytes", "models", "change_ratio", "seed"} {
		if d.Field(f) == nil {
			t.Errorf("no config attribute %q", f)
		}
	}
	d, err = h.Describe(map[string]any{"models": []string{"A", "B"}})
	if err != nil || len(d.Models) != 2 || d.Syncs[0].Name != "generate" || !d.Syncs[0].Incremental ||
		strings.Join(d.Syncs[0].Models, ",") != "A,B" {
		t.Fatalf("%v %+v", err, d)
	}
	if _, err := h.Describe(map[string]any{"change_ratio": 2}); err == nil || !strings.Contains(err.Error(), "change_ratio must be between 0 and 1") {
		t.Fatalf("got %v", err)
	}
}

func TestCountsAndShape(t *testing.T) {
	h := sdktest.New(t, &Generator{})
	cfg := map[string]any{"records": 250, "models": []string{"Item", "Other"}, "payload_bytes": 300}
	res := syncGen(t, h, cfg, true, nil)
	if len(res.Changes) != 500 {
		t.Fatalf("%d changes, want 500", len(res.Changes))
	}
	for i, c := range res.Changes {
		r := decode(t, c)
		model, n := "Item", int64(i)
		if i >= 250 {
			model, n = "Other", int64(i-250)
		}
		if want := fmt.Sprintf("%s-%09d", strings.ToLower(model), n); c.ID != want || r.N != n || r.Version != 0 || c.Model != model {
			t.Fatalf("change %d: %s %s", i, c.ID, c.Data)
		}
	}
	if g, _ := res.Checkpoint.GetInt64("generation"); g != 0 || res.Checkpoint["done"] != nil {
		t.Fatalf("checkpoint %v", res.Checkpoint)
	}
	// Defaults: 1000 Item records.
	res = syncGen(t, h, map[string]any{}, true, nil)
	if len(res.Changes) != 1000 || res.Changes[999].ID != "item-000000999" {
		t.Fatalf("%d changes", len(res.Changes))
	}
}

func TestPayloadSize(t *testing.T) {
	for _, size := range []int{200, 1024, 4096} {
		h := sdktest.New(t, &Generator{})
		cfg := map[string]any{"records": 400, "payload_bytes": size, "change_ratio": 0.5}
		res := syncGen(t, h, cfg, true, nil)
		// Move some records to later versions too.
		cp := res.Checkpoint
		for range 3 {
			cp = syncGen(t, h, cfg, false, cp).Checkpoint
		}
		res = syncGen(t, h, cfg, true, cp)
		for _, c := range res.Changes {
			if d := math.Abs(float64(len(c.Data)-size)) / float64(size); d > 0.05 {
				t.Fatalf("payload_bytes %d: record %s is %d bytes", size, c.ID, len(c.Data))
			}
		}
	}
}

func TestDeterminism(t *testing.T) {
	cfg := map[string]any{"records": 600, "seed": 42, "models": []string{"Item", "Thing"}}
	a := syncGen(t, sdktest.New(t, &Generator{}), cfg, true, nil)
	b := syncGen(t, sdktest.New(t, &Generator{}), cfg, true, nil)
	if len(a.Changes) != len(b.Changes) {
		t.Fatal("different counts")
	}
	distinct := map[string]bool{}
	for i := range a.Changes {
		if a.Changes[i].ID != b.Changes[i].ID || !bytes.Equal(a.Changes[i].Data, b.Changes[i].Data) {
			t.Fatalf("change %d differs:\n%s\n%s", i, a.Changes[i].Data, b.Changes[i].Data)
		}
		distinct[decode(t, a.Changes[i]).Data] = true
	}
	if len(distinct) < 100 {
		t.Fatalf("only %d distinct fillers", len(distinct))
	}
	cfg["seed"] = 43
	c := syncGen(t, sdktest.New(t, &Generator{}), cfg, true, nil)
	if bytes.Equal(a.Changes[0].Data, c.Changes[0].Data) {
		t.Fatal("another seed gave the same record")
	}
}

func TestIncremental(t *testing.T) {
	h := sdktest.New(t, &Generator{})
	cfg := map[string]any{"records": 1000, "change_ratio": 0.01, "payload_bytes": 128}
	full0 := syncGen(t, h, cfg, true, nil)
	state := map[string]string{}
	for _, c := range full0.Changes {
		state[c.ID] = string(c.Data)
	}

	cp := full0.Checkpoint
	for gen := int64(1); gen <= 102; gen++ { // wraps around the 100 blocks
		inc := syncGen(t, h, cfg, false, cp)
		if len(inc.Changes) != 10 {
			t.Fatalf("generation %d changed %d records, want round(1000*0.01) = 10", gen, len(inc.Changes))
		}
		block := (gen - 1) % 100
		for j, c := range inc.Changes {
			r := decode(t, c)
			if r.N != block*10+int64(j) || r.Version != gen {
				t.Fatalf("generation %d: %s", gen, c.Data)
			}
			if state[c.ID] == string(c.Data) {
				t.Fatalf("generation %d: %s did not change", gen, c.ID)
			}
			state[c.ID] = string(c.Data)
		}
		if g, _ := inc.Checkpoint.GetInt64("generation"); g != gen {
			t.Fatalf("checkpoint %v", inc.Checkpoint)
		}
		cp = inc.Checkpoint
	}

	// A full run at the reached generation reflects every change, twice
	// identically.
	for range 2 {
		full := syncGen(t, h, cfg, true, cp)
		if len(full.Changes) != 1000 {
			t.Fatalf("%d changes", len(full.Changes))
		}
		for _, c := range full.Changes {
			if state[c.ID] != string(c.Data) {
				t.Fatalf("full run: %s is %s, the incremental runs left %s", c.ID, c.Data, state[c.ID])
			}
		}
	}
}

func TestCheckpointsAndResume(t *testing.T) {
	h := sdktest.New(t, &Generator{})
	cfg := map[string]any{"records": 2500, "payload_bytes": 100, "models": []string{"A", "B"}}
	res := syncGen(t, h, cfg, true, nil)
	var dones []string
	for _, cp := range res.Checkpoints() {
		dones = append(dones, fmt.Sprint(cp["done"]))
	}
	if strings.Join(dones, ",") != "1000,2000,3000,4000,5000,<nil>" {
		t.Fatalf("checkpoints %v", dones)
	}
	progress := 0
	for _, m := range res.Messages {
		if m.Progress != nil {
			progress++
		}
	}
	if progress == 0 {
		t.Fatal("no progress reported")
	}
	// A retried full run resumes after the last "done".
	resumed := syncGen(t, h, cfg, true, sdk.Checkpoint{"generation": 0, "done": 3000})
	if len(resumed.Changes) != 2000 || resumed.Changes[0].ID != "b-000000500" {
		t.Fatalf("%d changes, first %s", len(resumed.Changes), resumed.Changes[0].ID)
	}
	for i, c := range resumed.Changes {
		if !bytes.Equal(c.Data, res.Changes[3000+i].Data) {
			t.Fatalf("resumed record %s differs", c.ID)
		}
	}
}

func TestEdgeConfigs(t *testing.T) {
	h := sdktest.New(t, &Generator{})
	res := syncGen(t, h, map[string]any{"records": 0}, true, nil)
	if len(res.Changes) != 0 {
		t.Fatal("records = 0 emitted records")
	}
	if inc := syncGen(t, h, map[string]any{"records": 0}, false, res.Checkpoint); len(inc.Changes) != 0 {
		t.Fatal("records = 0 changed records")
	}
	// change_ratio 0 still changes one record; 1 changes all.
	if inc := syncGen(t, h, map[string]any{"records": 5, "change_ratio": 0}, false, sdk.Checkpoint{"generation": 0}); len(inc.Changes) != 1 {
		t.Fatalf("ratio 0: %d", len(inc.Changes))
	}
	if inc := syncGen(t, h, map[string]any{"records": 5, "change_ratio": 1}, false, sdk.Checkpoint{"generation": 7}); len(inc.Changes) != 5 {
		t.Fatalf("ratio 1: %d", len(inc.Changes))
	}
	// A tiny payload: records are just their fixed attributes.
	res = syncGen(t, h, map[string]any{"records": 3, "payload_bytes": 10, "models": []string{`Wéird "M"`}}, true, nil)
	r := decode(t, res.Changes[2])
	if r.Data != "" || r.ID != `wéird "m"-000000002` {
		t.Fatalf("%s", res.Changes[2].Data)
	}
}

func BenchmarkAppendRecord(b *testing.B) {
	cfg := defaultConfig()
	m := newModel("Item", cfg)
	buf := make([]byte, 0, 2048)
	b.SetBytes(int64(cfg.PayloadBytes))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = m.appendRecord(buf[:0], int64(i%1_000_000), 3)
		_ = m.id(int64(i % 1_000_000))
	}
}

// BenchmarkSync measures records per second through the SDK and the real
// gRPC protocol, in-process.
func BenchmarkSync(b *testing.B) {
	const n = 20_000
	h := sdktest.New(b, &Generator{})
	cfg := map[string]any{"records": n}
	b.SetBytes(n * 1024)
	b.ReportAllocs()
	for b.Loop() {
		res, err := h.Sync(b.Context(), sdktest.SyncOptions{Config: cfg, Sync: SyncName, Full: true})
		if err != nil || len(res.Changes) != n {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}
