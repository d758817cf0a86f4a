package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// Version is the connector's version.
const Version = "0.1.0"

// SyncName is the connector's only sync.
const SyncName = "generate"

// CheckpointEvery is how many records a full run emits between two
// checkpoints.
const CheckpointEvery = 10_000

// checkpointEvery is CheckpointEvery; tests lower it to see many
// checkpoints in a few records.
var checkpointEvery int64 = CheckpointEvery

// Config is the connector's configuration (SPEC §11 generator).
type Config struct {
	Records      int      `config:"records" doc:"Records per model (default 1000)."`
	PayloadBytes int      `config:"payload_bytes" doc:"Size of each record's JSON in bytes (default 1024); a record is never smaller than its fixed attributes (about 80 bytes)."`
	Models       []string `config:"models" doc:"Names of the models to generate (default [\"Item\"])."`
	ChangeRatio  float64  `config:"change_ratio" doc:"Share of each model's records an incremental run changes (default 0.01); at least one record."`
	Seed         int64    `config:"seed" doc:"Same seed, same records (default 1)."`
}

func defaultConfig() Config {
	return Config{Records: 1000, PayloadBytes: 1024, Models: []string{"Item"}, ChangeRatio: 0.01, Seed: 1}
}

// Validate is called by DecodeConfig.
func (c *Config) Validate() error {
	if c.Records < 0 {
		return errors.New("records must not be negative")
	}
	if c.Records > 999_999_999 {
		return errors.New("records must be at most 999999999 (ids have 9 digits)")
	}
	if c.PayloadBytes < 0 {
		return errors.New("payload_bytes must not be negative")
	}
	if c.ChangeRatio < 0 || c.ChangeRatio > 1 || math.IsNaN(c.ChangeRatio) {
		return errors.New("change_ratio must be between 0 and 1")
	}
	if len(c.Models) == 0 {
		return errors.New("models must name at least one model")
	}
	seen := map[string]bool{}
	for _, m := range c.Models {
		if m == "" {
			return errors.New("models must not contain an empty name")
		}
		if seen[m] {
			return fmt.Errorf("model %q is listed twice in models", m)
		}
		seen[m] = true
	}
	return nil
}

func decodeConfig(decode func(any) error) (Config, error) {
	cfg := defaultConfig()
	err := decode(&cfg)
	return cfg, err
}

// Generator emits synthetic records.
//
// State is the checkpoint {"generation": g}. Each model's records are split
// into blocks of k = max(1, round(records*change_ratio)); generation g ≥ 1
// changes block (g-1) mod nblocks, and a record's version is the last
// generation ≤ g that touched its block (0 if none). So:
//   - a full run (or a run without checkpoint) emits every record at its
//     state for the checkpoint's generation (0 if none): two full runs with
//     the same seed and state emit identical bytes;
//   - an incremental run moves to generation g+1 and emits only the records
//     of the block it changes.
//
// A full run writes {"generation": g, "done": n} every CheckpointEvery
// records (n counts records in emission order: model after model, by
// index), and {"generation": g} at the end. A full run given a checkpoint
// with "done" resumes there, skipping the records already emitted: that is
// the retry of an interrupted full run. An incremental run writes its
// checkpoint only at the end, so an interrupted one is simply redone.
type Generator struct{}

var _ sdk.ConnectorWithConfiguredModels = (*Generator)(nil)

// Describe implements sdk.Connector, for the default configuration.
func (g *Generator) Describe() sdk.Description {
	d := describe(defaultConfig())
	d.Name, d.Version, d.Config = "generator", Version, (*Config)(nil)
	return *d
}

func describe(cfg Config) *sdk.Description {
	d := &sdk.Description{Syncs: []sdk.SyncSpec{{Name: SyncName, Incremental: true}}}
	for _, m := range cfg.Models {
		d.Models = append(d.Models, sdk.Model{
			Name:        m,
			Description: "Synthetic records",
			Fields: []sdk.ModelField{
				{Name: "id", Type: "string"}, {Name: "model", Type: "string"},
				{Name: "n", Type: "number"}, {Name: "version", Type: "number"},
				{Name: "data", Type: "string"},
			},
		})
		d.Syncs[0].Models = append(d.Syncs[0].Models, m)
	}
	return d
}

// Configure implements sdk.ConnectorWithConfiguredModels: the models are
// those of the config.
func (g *Generator) Configure(ctx context.Context, req *sdk.ConfigRequest) (*sdk.Description, error) {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return nil, err
	}
	return describe(cfg), nil
}

// Sync implements sdk.Connector.
func (g *Generator) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	var gen, done int64
	if req.Checkpoint != nil {
		var ok bool
		if gen, ok = req.Checkpoint.GetInt64("generation"); !ok || gen < 0 {
			return fmt.Errorf("the checkpoint has no valid generation (%v); reset the sync", req.Checkpoint["generation"])
		}
		done, _ = req.Checkpoint.GetInt64("done")
	}
	models := make([]*model, 0, len(req.Models))
	for _, name := range req.Models {
		models = append(models, newModel(name, cfg))
	}
	if req.Full || req.Checkpoint == nil {
		return fullRun(ctx, req, w, models, cfg, gen, done)
	}
	return incrementalRun(ctx, req, w, models, cfg, gen+1)
}

func fullRun(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer, models []*model, cfg Config, gen, done int64) error {
	n := int64(cfg.Records)
	total := n * int64(len(models))
	if done < 0 || done > total {
		done = 0
	}
	if done > 0 {
		req.Logger.Info("resuming a full run", "generation", gen, "done", done)
	} else {
		req.Logger.Info("full run", "generation", gen, "records", total)
	}
	buf := make([]byte, 0, cfg.PayloadBytes+256)
	pos := int64(0)
	for _, m := range models {
		start := int64(0)
		if done > pos {
			start = min(done-pos, n)
		}
		pos += start
		for i := start; i < n; i++ {
			buf = m.appendRecord(buf[:0], i, m.version(i, gen))
			if err := w.SaveRaw(ctx, m.name, m.id(i), buf); err != nil {
				return err
			}
			pos++
			if pos%checkpointEvery == 0 {
				if err := w.Checkpoint(ctx, sdk.Checkpoint{"generation": gen, "done": pos}); err != nil {
					return err
				}
				if err := w.Progress(ctx, m.name, i+1, n); err != nil {
					return err
				}
			}
		}
		if err := w.Progress(ctx, m.name, n, n); err != nil {
			return err
		}
	}
	return w.Checkpoint(ctx, sdk.Checkpoint{"generation": gen})
}

func incrementalRun(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer, models []*model, cfg Config, gen int64) error {
	buf := make([]byte, 0, cfg.PayloadBytes+256)
	changed := int64(0)
	for _, m := range models {
		from, to := m.changedBy(gen)
		for i := from; i < to; i++ {
			buf = m.appendRecord(buf[:0], i, gen)
			if err := w.SaveRaw(ctx, m.name, m.id(i), buf); err != nil {
				return err
			}
		}
		changed += to - from
		if err := w.Progress(ctx, m.name, to-from, to-from); err != nil {
			return err
		}
	}
	req.Logger.Info("incremental run", "generation", gen, "changed", changed)
	return w.Checkpoint(ctx, sdk.Checkpoint{"generation": gen})
}

// model generates the records of one model.
type model struct {
	name    string
	n       int64 // records
	k       int64 // block size
	nblocks int64
	payload int
	seed    uint64

	idPrefix string // lower-cased name + "-"
	head     []byte // {"id":"<lower>-
	mid      []byte // ","model":<name>,"n":
	pool     []byte // filler characters, derived from the seed
}

const poolSlack = 4096

func newModel(name string, cfg Config) *model {
	m := &model{name: name, n: int64(cfg.Records), payload: cfg.PayloadBytes}
	m.k = int64(math.Round(float64(cfg.Records) * cfg.ChangeRatio))
	m.k = max(1, min(m.k, m.n))
	if m.n > 0 {
		m.nblocks = (m.n + m.k - 1) / m.k
	}
	m.seed = splitmix(uint64(cfg.Seed) ^ fnv(name))
	lower := strings.ToLower(name)
	m.idPrefix = lower + "-"
	m.head = appendJSONStringPrefix([]byte(`{"id":`), m.idPrefix)
	m.mid = appendJSONString([]byte(`","model":`), name)
	m.mid = append(m.mid, `,"n":`...)
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	m.pool = make([]byte, cfg.PayloadBytes+poolSlack)
	s := m.seed
	for i := 0; i < len(m.pool); i += 8 {
		s = splitmix(s)
		for j := 0; j < 8 && i+j < len(m.pool); j++ {
			m.pool[i+j] = alphabet[(s>>(6*j))&63]
		}
	}
	return m
}

// version is the version of record i at generation gen: the last
// generation ≤ gen that changed its block, or 0.
func (m *model) version(i, gen int64) int64 {
	b := i / m.k
	first := b + 1 // the first generation that changes block b
	if gen < first {
		return 0
	}
	return first + (gen-first)/m.nblocks*m.nblocks
}

// changedBy returns the index range of the records generation gen changes.
func (m *model) changedBy(gen int64) (from, to int64) {
	if m.n == 0 || gen < 1 {
		return 0, 0
	}
	b := (gen - 1) % m.nblocks
	return b * m.k, min((b+1)*m.k, m.n)
}

// id returns record i's id: "<lower-cased model>-<9-digit index>".
func (m *model) id(i int64) string {
	var b [32]byte
	return string(appendIndex(append(b[:0], m.idPrefix...), i))
}

// appendRecord appends record i at version v:
// {"id":"item-000000042","model":"Item","n":42,"version":3,"data":"<filler>"}
// with the filler sized so that the whole is m.payload bytes.
func (m *model) appendRecord(buf []byte, i, v int64) []byte {
	start := len(buf)
	buf = append(buf, m.head...)
	buf = appendIndex(buf, i)
	buf = append(buf, m.mid...)
	buf = appendInt(buf, i)
	buf = append(buf, `,"version":`...)
	buf = appendInt(buf, v)
	buf = append(buf, `,"data":"`...)
	fill := m.payload - (len(buf) - start) - 2 // closing "}
	if fill > 0 {
		off := splitmix(m.seed^uint64(i)*0x9E3779B97F4A7C15^uint64(v)) % poolSlack
		buf = append(buf, m.pool[off:off+uint64(fill)]...)
	}
	return append(buf, '"', '}')
}

// appendIndex appends i as 9 digits.
func appendIndex(b []byte, i int64) []byte {
	var d [9]byte
	for j := 8; j >= 0; j-- {
		d[j] = byte('0' + i%10)
		i /= 10
	}
	return append(b, d[:]...)
}

func appendInt(b []byte, v int64) []byte {
	if v == 0 {
		return append(b, '0')
	}
	var d [20]byte
	j := len(d)
	for v > 0 {
		j--
		d[j] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[j:]...)
}

func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

func fnv(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
