package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// Version is the connector's version.
const Version = "0.1.0"

// MaxTies is how many ids sharing the highest updated_at a checkpoint
// remembers, so that the next incremental run skips them; past it, they
// are fetched again (harmless: the host ignores identical saves).
const MaxTies = 10_000

// Rest syncs the models of a JSON-over-HTTP API.
type Rest struct {
	// HTTP configures the HTTP client (retries, backoff, rate limit); the
	// zero value is the SDK's defaults. Tests shorten the backoff here.
	HTTP sdk.HTTPClientOptions
}

var (
	_ sdk.ConnectorWithConfiguredModels   = (*Rest)(nil)
	_ sdk.ConnectorWithCheck              = (*Rest)(nil)
	_ sdk.ConnectorWithWebhooks           = (*Rest)(nil)
	_ sdk.ConnectorWithConfiguredWebhooks = (*Rest)(nil)
)

// Describe implements sdk.Connector. The models come from the
// configuration (see Configure).
func (r *Rest) Describe() sdk.Description {
	return sdk.Description{Name: "rest", Version: Version, Config: (*Config)(nil)}
}

func decodeConfig(decode func(any) error) (*Config, error) {
	cfg := &Config{}
	if err := decode(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Configure implements sdk.ConnectorWithConfiguredModels: one model per
// entry of models, each its own sync of the same name.
func (r *Rest) Configure(ctx context.Context, req *sdk.ConfigRequest) (*sdk.Description, error) {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return nil, err
	}
	d := &sdk.Description{}
	for _, name := range cfg.modelNames() {
		m := cfg.Models[name]
		fields := []sdk.ModelField{{Name: "id", Type: "string"}}
		if m.UpdatedAt != "" {
			fields = append(fields, sdk.ModelField{Name: m.UpdatedAt, Type: "timestamp"})
		}
		d.Models = append(d.Models, sdk.Model{Name: name, Description: "Records of " + m.Path, Fields: fields})
		d.Syncs = append(d.Syncs, sdk.SyncSpec{Name: name, Models: []string{name}, Incremental: m.UpdatedAt != ""})
	}
	return d, nil
}

// Check implements sdk.ConnectorWithCheck: the first page of each model
// answers 2xx with records where the config says.
func (r *Rest) Check(ctx context.Context, req *sdk.CheckRequest) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	client := r.client(cfg, req.Logger)
	defer client.CloseIdleConnections()
	for _, name := range cfg.modelNames() {
		m := cfg.Models[name]
		u, err := firstURL(cfg, m, "")
		if err != nil {
			return fmt.Errorf("model %s: %w", name, err)
		}
		page, err := client.FetchPage(ctx, u)
		if err != nil {
			return fmt.Errorf("model %s: %w", name, err)
		}
		if _, err := records(page, m); err != nil {
			return fmt.Errorf("model %s: %w", name, err)
		}
	}
	return nil
}

func (r *Rest) client(cfg *Config, log hclog.Logger) *sdk.HTTPClient {
	opts := r.HTTP
	if opts.Logger == nil {
		opts.Logger = log
	}
	opts.Header = opts.Header.Clone()
	if opts.Header == nil {
		opts.Header = map[string][]string{}
	}
	for k, v := range cfg.Headers {
		opts.Header.Set(k, v)
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "synclayer-plugin-rest/" + Version
	}
	return sdk.NewHTTPClient(opts)
}

// state is the checkpoint of a model's sync.
//
// After a completed run it is {"since": S, "at_since": [ids]}: S is the
// highest updated_at seen, and at_since the ids of the records that have
// it, which the next incremental run (sent ?<since_param>=S, inclusive at
// most APIs) skips unless they changed their updated_at.
//
// After each page of a run that has more pages, it also holds "next", the
// URL of the next page, and "max" / "at_max", the highest updated_at so
// far: a retry resumes at next, still filtering on since.
type state struct {
	Since   string   `json:"since,omitempty"`
	AtSince []string `json:"at_since,omitempty"`
	Next    string   `json:"next,omitempty"`
	Max     string   `json:"max,omitempty"`
	AtMax   []string `json:"at_max,omitempty"`
}

// run is one sync's progress.
type run struct {
	base    string          // the since filter of this run; "" for none
	atBase  map[string]bool // ids at base already synced
	max     string
	atMax   map[string]bool
	tooMany bool // more than MaxTies ids at max: not remembered
}

func (r *run) see(id, updated string) {
	if updated == "" {
		return
	}
	switch c := compareTimes(updated, r.max); {
	case r.max == "" || c > 0:
		r.max, r.atMax, r.tooMany = updated, map[string]bool{id: true}, false
	case c == 0 && !r.tooMany:
		r.atMax[id] = true
		if len(r.atMax) > MaxTies {
			r.atMax, r.tooMany = map[string]bool{}, true
		}
	}
}

// unchanged tells whether a record was synced by an earlier run: older
// than the filter, or at it and among the ids seen there.
func (r *run) unchanged(id, updated string) bool {
	if r.base == "" || updated == "" {
		return false
	}
	switch compareTimes(updated, r.base) {
	case -1:
		return true
	case 0:
		return r.atBase[id]
	}
	return false
}

func (r *run) state(next string) state {
	st := state{Since: r.max, AtSince: keys(r.atMax)}
	if next != "" {
		st = state{Since: r.base, AtSince: keys(r.atBase), Next: next, Max: r.max, AtMax: keys(r.atMax)}
	}
	return st
}

// Sync implements sdk.Connector: it walks the model's list page by page,
// saving each record, with a checkpoint after each page. An incremental
// run asks for ?<since_param>=<since> and skips what the checkpoint says
// is already synced; a run whose checkpoint has a next page (a retry)
// resumes there. A full run reads every record, so that the host's
// track_deletes can find those that disappeared.
func (r *Rest) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	m := cfg.Models[req.Sync]
	if m == nil {
		return fmt.Errorf("sync %q: no model of that name in the config's models", req.Sync)
	}
	var prev state
	if req.Checkpoint != nil {
		if err := req.Checkpoint.Decode(&prev); err != nil {
			return fmt.Errorf("the checkpoint is not one of this connector's; reset the sync: %w", err)
		}
	}
	rn := &run{atBase: map[string]bool{}, atMax: map[string]bool{}}
	var u *url.URL
	switch {
	case prev.Next != "" && (req.Resume || !req.Full || prev.Since == ""):
		// The retry of an interrupted run (a full run's own checkpoint
		// included), or the walk a previous run left unfinished.
		rn.base, rn.atBase = prev.Since, set(prev.AtSince)
		rn.max, rn.atMax = prev.Max, set(prev.AtMax)
		if u, err = url.Parse(prev.Next); err != nil {
			return fmt.Errorf("the checkpoint's next page %q is not a URL; reset the sync", prev.Next)
		}
		req.Logger.Info("resuming an interrupted run", "model", req.Sync, "page", sdk.RedactURL(u))
	default:
		if !req.Full && m.UpdatedAt != "" && prev.Since != "" {
			rn.base, rn.atBase = prev.Since, set(prev.AtSince)
			rn.max, rn.atMax = prev.Since, set(prev.AtSince)
		}
		if u, err = firstURL(cfg, m, rn.base); err != nil {
			return err
		}
	}

	client := r.client(cfg, req.Logger)
	defer client.CloseIdleConnections()
	pager := paginator(m.Page)
	var saved, skipped int64
	for u != nil {
		page, err := client.FetchPage(ctx, u)
		if err != nil {
			return fmt.Errorf("model %s: %w", req.Sync, err)
		}
		recs, err := records(page, m)
		if err != nil {
			return fmt.Errorf("model %s: %w", req.Sync, err)
		}
		for i, rec := range recs {
			id, updated, err := identify(rec, m)
			if err != nil {
				return fmt.Errorf("model %s: record %d of %s: %w", req.Sync, i, sdk.RedactURL(page.URL), err)
			}
			if rn.unchanged(id, updated) {
				skipped++
				continue
			}
			if err := w.Save(ctx, req.Sync, withID(rec, m, id)); err != nil {
				return err
			}
			saved++
			rn.see(id, updated)
		}
		var next *url.URL
		if pager != nil {
			if next, err = pager.Next(page, len(recs)); err != nil {
				return fmt.Errorf("model %s: %w", req.Sync, err)
			}
		}
		req.Logger.Debug("page", "model", req.Sync, "url", sdk.RedactURL(page.URL), "records", len(recs))
		if err := w.Progress(ctx, req.Sync, saved, 0); err != nil {
			return err
		}
		nextURL := ""
		if next != nil {
			nextURL = next.String()
		}
		if err := w.Checkpoint(ctx, checkpointOf(rn.state(nextURL))); err != nil {
			return err
		}
		u = next
	}
	req.Logger.Info("synced", "model", req.Sync, "saved", saved, "skipped_unchanged", skipped, "since", rn.base)
	return nil
}

func checkpointOf(st state) sdk.Checkpoint {
	cp := sdk.Checkpoint{}
	b, _ := json.Marshal(st)
	_ = json.Unmarshal(b, &cp)
	return cp
}

// firstURL is the list's URL, with the since filter and the first page's
// parameters.
func firstURL(cfg *Config, m *ModelConfig, since string) (*url.URL, error) {
	u, err := cfg.listURL(m)
	if err != nil {
		return nil, err
	}
	if since != "" && m.SinceParam != "" {
		q := u.Query()
		q.Set(m.SinceParam, since)
		u.RawQuery = q.Encode()
	}
	if p := m.Page; p != nil {
		if p.LimitParam != "" && p.Limit > 0 {
			q := u.Query()
			q.Set(p.LimitParam, strconv.Itoa(p.Limit))
			u.RawQuery = q.Encode()
		}
		return paginator(p).First(u)
	}
	return u, nil
}

func paginator(p *PageConfig) sdk.Paginator {
	if p == nil {
		return nil
	}
	switch p.Type {
	case PageCursor:
		return sdk.CursorPagination{Param: p.Param, NextPath: p.Next}
	case PageOffset:
		return sdk.OffsetPagination{Param: p.Param, LimitParam: p.LimitParam, Limit: p.Limit}
	case PageNumber:
		return sdk.PageNumberPagination{Param: p.Param, LimitParam: p.LimitParam, Limit: p.Limit}
	case PageLink:
		return sdk.LinkPagination{}
	}
	return nil
}

// records extracts the page's records: the array at the model's records
// path. A null or absent array is an empty page.
func records(page *sdk.Page, m *ModelConfig) ([]map[string]any, error) {
	var body any
	if err := page.JSON(&body); err != nil {
		return nil, err
	}
	v, ok := sdk.Lookup(body, m.Records)
	if !ok || v == nil {
		if m.Records == "" {
			return nil, fmt.Errorf("GET %s: the answer is null, not an array of records", sdk.RedactURL(page.URL))
		}
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		where := "the answer"
		if m.Records != "" {
			where = fmt.Sprintf("%q in the answer", m.Records)
		}
		return nil, fmt.Errorf("GET %s: %s is not an array of records; set records to the dot path of the array", sdk.RedactURL(page.URL), where)
	}
	out := make([]map[string]any, 0, len(arr))
	for i, x := range arr {
		rec, ok := x.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("GET %s: record %d is not a JSON object", sdk.RedactURL(page.URL), i)
		}
		out = append(out, rec)
	}
	return out, nil
}

// identify reads a record's id and updated_at (as text).
func identify(rec map[string]any, m *ModelConfig) (id, updated string, err error) {
	id, err = sdk.LookupString(rec, m.ID)
	if errors.Is(err, sdk.ErrPathNotFound) || (err == nil && id == "") {
		return "", "", fmt.Errorf("no id at %q", m.ID)
	}
	if err != nil {
		return "", "", fmt.Errorf("the id at %q is %w", m.ID, err)
	}
	if m.UpdatedAt != "" {
		updated, err = sdk.LookupString(rec, m.UpdatedAt)
		if errors.Is(err, sdk.ErrPathNotFound) {
			updated, err = "", nil
		}
		if err != nil {
			return "", "", fmt.Errorf("the updated_at at %q is %w", m.UpdatedAt, err)
		}
	}
	return id, updated, nil
}

// withID makes the record's top-level "id" its id: records are keyed by
// it. With the default id path the record is left as it is.
func withID(rec map[string]any, m *ModelConfig, id string) map[string]any {
	if m.ID != "id" {
		rec["id"] = id
	}
	return rec
}

// compareTimes orders two updated_at values: as numbers when both are
// (Unix times, versions), as times when both are RFC 3339, else as
// strings. It returns -1, 0 or 1.
func compareTimes(a, b string) int {
	if a == b {
		return 0
	}
	if x, ok := new(big.Float).SetString(a); ok {
		if y, ok := new(big.Float).SetString(b); ok {
			return x.Cmp(y)
		}
	}
	if x, err := time.Parse(time.RFC3339Nano, a); err == nil {
		if y, err := time.Parse(time.RFC3339Nano, b); err == nil {
			return x.Compare(y)
		}
	}
	return strings.Compare(a, b)
}

func set(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
