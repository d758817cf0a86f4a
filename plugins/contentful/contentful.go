package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"unicode"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// Version is the connector's version.
const Version = "0.1.0"

// SyncName is the connector's one sync.
const SyncName = "content"

// AssetModel is the model of assets.
const AssetModel = "Asset"

// Attributes every entry record has besides its fields (assets have all
// but content_type). A field of the same name is overwritten.
const (
	attrID          = "id"
	attrCreatedAt   = "created_at"
	attrUpdatedAt   = "updated_at"
	attrRevision    = "revision"
	attrContentType = "content_type"
)

var sysAttributes = []string{attrID, attrCreatedAt, attrUpdatedAt, attrRevision, attrContentType}

// Contentful syncs the entries and assets of a Contentful environment
// through the Sync API.
type Contentful struct {
	// HTTP configures the HTTP client (retries, backoff, rate limit); the
	// zero value is the SDK's defaults. Tests shorten the backoff here.
	HTTP sdk.HTTPClientOptions

	relays relays
}

var (
	_ sdk.ConnectorWithConfiguredModels = (*Contentful)(nil)
	_ sdk.ConnectorWithCheck            = (*Contentful)(nil)
	_ sdk.ConnectorWithWebhooks         = (*Contentful)(nil)
	_ sdk.ConnectorWithWatch            = (*Contentful)(nil)
)

// Describe implements sdk.Connector. The models come from the space's
// content types (see Configure).
func (c *Contentful) Describe() sdk.Description {
	return sdk.Description{Name: "contentful", Version: Version, Config: (*Config)(nil)}
}

func decodeConfig(decode func(any) error) (*Config, error) {
	cfg := &Config{}
	if err := decode(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Configure implements sdk.ConnectorWithConfiguredModels: one model per
// content type of the environment, plus Asset, all fetched by the one sync
// "content". With a webhook_secret the source watches (see Watch): a
// verified webhook then asks the host for an incremental run. As the host
// calls it when it loads the source, its errors name what to fix: the
// token, the space, the environment or the locale.
func (c *Contentful) Configure(ctx context.Context, req *sdk.ConfigRequest) (*sdk.Description, error) {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return nil, err
	}
	a := newAPI(cfg, c.HTTP, req.Logger)
	defer a.close()
	cts, err := a.contentTypes(ctx)
	if err != nil {
		return nil, explain(ctx, a, err)
	}
	names, err := modelNames(cts)
	if err != nil {
		return nil, err
	}
	if cfg.Locale != "" {
		locs, err := a.locales(ctx)
		if err != nil {
			return nil, explain(ctx, a, err)
		}
		if _, err := newShaper(cfg.Locale, locs, nil); err != nil {
			return nil, err
		}
	}
	d := &sdk.Description{Watches: cfg.WebhookSecret != ""}
	sync := sdk.SyncSpec{Name: SyncName, Incremental: true}
	for _, ct := range cts {
		name := names[ct.Sys.ID]
		desc := fmt.Sprintf("Entries of the content type %q (%s)", ct.Name, ct.Sys.ID)
		d.Models = append(d.Models, sdk.Model{Name: name, Description: desc, Fields: entryFields(ct)})
		sync.Models = append(sync.Models, name)
	}
	d.Models = append(d.Models, sdk.Model{Name: AssetModel, Description: "Assets (media files) of the environment", Fields: assetFields()})
	sync.Models = append(sync.Models, AssetModel)
	d.Syncs = []sdk.SyncSpec{sync}
	return d, nil
}

// ModelName is the model of a content type: its id in PascalCase
// (blogPost → BlogPost, blog-post → BlogPost).
func ModelName(contentTypeID string) string {
	var b strings.Builder
	upper := true
	for _, r := range contentTypeID {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			upper = true
			continue
		}
		if upper {
			r = unicode.ToUpper(r)
			upper = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// modelNames maps content type ids to model names, and refuses two content
// types (or one and assets) that would share a model.
func modelNames(cts []contentType) (map[string]string, error) {
	names := map[string]string{}
	owner := map[string]string{AssetModel: "the assets"}
	for _, ct := range cts {
		name := ModelName(ct.Sys.ID)
		if name == "" {
			return nil, fmt.Errorf("content type %q has no letter or digit to name a model after", ct.Sys.ID)
		}
		if prev, dup := owner[name]; dup {
			return nil, fmt.Errorf("content type %q and %s would both be model %s; rename one of the content types' ids", ct.Sys.ID, prev, name)
		}
		owner[name] = fmt.Sprintf("content type %q", ct.Sys.ID)
		names[ct.Sys.ID] = name
	}
	return names, nil
}

// fieldType maps a Contentful field type to a model field type.
func fieldType(typ, itemsType string) string {
	switch typ {
	case "Symbol", "Text", "Link":
		return "string"
	case "Integer", "Number":
		return "number"
	case "Boolean":
		return "bool"
	case "Date":
		return "timestamp"
	case "Array":
		return "array"
	}
	return "object" // Location, Object, RichText
}

func entryFields(ct contentType) []sdk.ModelField {
	fields := []sdk.ModelField{{Name: attrID, Type: "string"}}
	for _, f := range ct.Fields {
		if f.Omitted || slices.Contains(sysAttributes, f.ID) {
			continue
		}
		items := ""
		if f.Items != nil {
			items = f.Items.Type
		}
		fields = append(fields, sdk.ModelField{Name: f.ID, Type: fieldType(f.Type, items)})
	}
	return append(fields,
		sdk.ModelField{Name: attrCreatedAt, Type: "timestamp"},
		sdk.ModelField{Name: attrUpdatedAt, Type: "timestamp"},
		sdk.ModelField{Name: attrRevision, Type: "number"},
		sdk.ModelField{Name: attrContentType, Type: "string"})
}

func assetFields() []sdk.ModelField {
	return []sdk.ModelField{
		{Name: attrID, Type: "string"},
		{Name: "title", Type: "string"},
		{Name: "description", Type: "string"},
		{Name: "file", Type: "object"},
		{Name: attrCreatedAt, Type: "timestamp"},
		{Name: attrUpdatedAt, Type: "timestamp"},
		{Name: attrRevision, Type: "number"},
	}
}

// Check implements sdk.ConnectorWithCheck: the token reads the space's
// environment, the locale is one of its locales, and its content types
// make distinct models. Its errors say which of token, space, environment
// or locale is wrong.
func (c *Contentful) Check(ctx context.Context, req *sdk.CheckRequest) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	a := newAPI(cfg, c.HTTP, req.Logger)
	defer a.close()
	locs, err := a.locales(ctx)
	if err != nil {
		return explain(ctx, a, err)
	}
	if _, err := newShaper(cfg.Locale, locs, nil); err != nil {
		return err
	}
	cts, err := a.contentTypes(ctx)
	if err != nil {
		return explain(ctx, a, err)
	}
	_, err = modelNames(cts)
	return err
}

// explain turns an error of the environment's endpoints into one that says
// what to fix: the token, the space or the environment. On a 404 it asks
// for the space itself to tell an unknown space from an unknown
// environment.
func explain(ctx context.Context, a *api, err error) error {
	ae := asAPIError(err)
	if ae == nil {
		return err
	}
	cfg := a.cfg
	switch {
	case ae.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("access_token is not valid for space %q: use the Content Delivery API token of an API key of that space (Settings → API keys), not a Preview or Management token: %w", cfg.SpaceID, err)
	case ae.StatusCode == http.StatusNotFound:
		var space struct{}
		serr := a.get(ctx, cfg.spaceURL(), &space)
		if se := asAPIError(serr); se != nil && se.StatusCode == http.StatusNotFound {
			return fmt.Errorf("space_id %q: no such space (check the id under Settings → General settings): %w", cfg.SpaceID, serr)
		}
		if serr == nil {
			return fmt.Errorf("environment %q: no such environment in space %q, or the API key may not read it (Settings → API keys → Environments): %w", cfg.Environment, cfg.SpaceID, err)
		}
	}
	return err
}

// checkpoint is the sync's state: after a complete run, the token of the
// nextSyncUrl; within a run, also the token of the next page, so that a
// retry resumes at that page.
type checkpoint struct {
	// SyncToken is the token of the last complete sync; empty before the
	// first one completed.
	SyncToken string `json:"sync_token,omitempty"`
	// NextPage is the token of the next page of the run under way.
	NextPage string `json:"next_page,omitempty"`
}

func (cp checkpoint) sdk() sdk.Checkpoint {
	out := sdk.Checkpoint{}
	if cp.SyncToken != "" {
		out["sync_token"] = cp.SyncToken
	}
	if cp.NextPage != "" {
		out["next_page"] = cp.NextPage
	}
	return out
}

// Sync implements sdk.Connector. A full run starts an initial sync
// (initial=true); an incremental one sends the checkpoint's sync_token and
// gets what changed since, deletions included. Either follows the pages
// and writes a checkpoint after each: the next page's token while there
// is one, then the nextSyncUrl's token. A retry resumes at the page its
// checkpoint names.
func (c *Contentful) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	if req.Sync != SyncName {
		return fmt.Errorf("sync %q: the contentful connector has one sync, %q", req.Sync, SyncName)
	}
	var prev checkpoint
	if req.Checkpoint != nil {
		if err := req.Checkpoint.Decode(&prev); err != nil {
			return fmt.Errorf("the checkpoint is not one of this connector's; reset the sync: %w", err)
		}
	}
	a := newAPI(cfg, c.HTTP, req.Logger)
	defer a.close()
	r, err := newRun(ctx, a, req, w)
	if err != nil {
		return err
	}
	// base is the sync token the run started from ("" for an initial
	// sync); token the one of the page to fetch.
	base, token := "", ""
	switch {
	case req.Full:
	case prev.NextPage != "":
		base, token = prev.SyncToken, prev.NextPage
		req.Logger.Info("resuming an interrupted sync at its next page")
	default:
		base, token = prev.SyncToken, prev.SyncToken
	}
	if err := r.walk(ctx, a, base, token); err != nil {
		return err
	}
	req.Logger.Info("synced", "initial", base == "", "saved", r.saved, "deleted", r.deleted, "skipped", r.skipped)
	return nil
}

// run is one Sync call's state.
type run struct {
	req     *sdk.SyncRequest
	w       *sdk.Writer
	shaper  *shaper
	names   map[string]string // content type id → model
	allowed map[string]bool   // the run's models
	unknown map[string]bool   // content types skipped, said once

	saved, deleted, skipped int64
}

// newRun reads what a run needs besides the sync: the content types (for
// the models and which fields are localized) and the locales (for the
// fallbacks).
func newRun(ctx context.Context, a *api, req *sdk.SyncRequest, w *sdk.Writer) (*run, error) {
	cts, err := a.contentTypes(ctx)
	if err != nil {
		return nil, explain(ctx, a, err)
	}
	locs, err := a.locales(ctx)
	if err != nil {
		return nil, explain(ctx, a, err)
	}
	sh, err := newShaper(a.cfg.Locale, locs, cts)
	if err != nil {
		return nil, err
	}
	names, err := modelNames(cts)
	if err != nil {
		return nil, err
	}
	r := &run{req: req, w: w, shaper: sh, names: names, allowed: map[string]bool{}, unknown: map[string]bool{}}
	for _, m := range req.Models {
		r.allowed[m] = true
	}
	return r, nil
}

// walk fetches the pages of the sync from token (base's first page when
// token is base) to the last one, writing their changes and a checkpoint
// after each.
func (r *run) walk(ctx context.Context, a *api, base, token string) error {
	for {
		page, err := a.sync(ctx, token)
		switch {
		case err != nil && token != base && isBadToken(err):
			// A page token outlives its sync only so long: start the
			// interrupted sync again, from its own start.
			r.req.Logger.Warn("the next page's token was refused; starting the sync again", "error", err.Error())
			token = base
			continue
		case err != nil && token != "" && isBadToken(err):
			return fmt.Errorf("the Sync API refused the checkpoint's sync token; reset the sync to start it again with a full run: %w", err)
		case err != nil:
			return explain(ctx, a, err)
		}
		if err := r.apply(ctx, page.Items); err != nil {
			return err
		}
		if err := r.w.Progress(ctx, "", r.saved+r.deleted, 0); err != nil {
			return err
		}
		cp := checkpoint{SyncToken: base}
		if page.NextPageURL != "" {
			if cp.NextPage, err = tokenOf(page.NextPageURL); err != nil {
				return err
			}
		} else if cp.SyncToken, err = tokenOf(page.NextSyncURL); err != nil {
			return err
		}
		if err := r.w.Checkpoint(ctx, cp.sdk()); err != nil {
			return err
		}
		if cp.NextPage == "" {
			return nil
		}
		token = cp.NextPage
	}
}

// isBadToken tells whether the API refused a sync token (400 Bad
// Request: a 404 means the space or environment is gone, which explain
// says).
func isBadToken(err error) bool {
	ae := asAPIError(err)
	return ae != nil && ae.StatusCode == http.StatusBadRequest
}

// apply writes the changes of a page of sync items.
func (r *run) apply(ctx context.Context, items []syncItem) error {
	for i := range items {
		it := &items[i]
		if it.Sys.ID == "" {
			return fmt.Errorf("a sync item of type %q has no sys.id", it.Sys.Type)
		}
		switch it.Sys.Type {
		case typeEntry:
			if it.Sys.ContentType == nil || it.Sys.ContentType.Sys.ID == "" {
				return fmt.Errorf("entry %q has no sys.contentType", it.Sys.ID)
			}
			ct := it.Sys.ContentType.Sys.ID
			model, ok := r.names[ct]
			if !ok {
				model = ModelName(ct)
			}
			if !r.allowed[model] {
				r.skip(ct, model)
				continue
			}
			if err := r.w.Save(ctx, model, r.shaper.entry(it)); err != nil {
				return err
			}
			r.saved++
		case typeAsset:
			if !r.allowed[AssetModel] {
				r.skipped++
				continue
			}
			if err := r.w.Save(ctx, AssetModel, r.shaper.asset(it)); err != nil {
				return err
			}
			r.saved++
		case typeDeletedEntry:
			if err := r.deleteEntry(ctx, it.Sys.ID); err != nil {
				return err
			}
			r.deleted++
		case typeDeletedAsset:
			if !r.allowed[AssetModel] {
				r.skipped++
				continue
			}
			if err := r.w.Delete(ctx, AssetModel, it.Sys.ID); err != nil {
				return err
			}
			r.deleted++
		default:
			r.req.Logger.Debug("ignoring a sync item of an unknown type", "type", it.Sys.Type, "id", it.Sys.ID)
			r.skipped++
		}
	}
	return nil
}

// skip counts an entry of a model the run does not fetch, and says so once
// per content type: the layer may select other models, or the content type
// may be newer than the host's description of the source, which a reload
// renews.
func (r *run) skip(contentType, model string) {
	r.skipped++
	if r.unknown[contentType] {
		return
	}
	r.unknown[contentType] = true
	r.req.Logger.Info("skipping entries of a model this run does not fetch; if the content type is new, reload the host and reset the sync to fetch them",
		"content_type", contentType, "model", model)
}

// deleteEntry deletes an unpublished entry. A DeletedEntry does not say
// its content type, so the host resolves the id across the source's
// models (sdk.Writer.DeleteByID); an id it never saw changes nothing.
func (r *run) deleteEntry(ctx context.Context, id string) error {
	return r.w.DeleteByID(ctx, id)
}

// shaper turns sync items into records.
type shaper struct {
	locale    string
	chain     []string                   // locale, then its fallbacks
	defLocale string                     // the environment's default locale
	plain     map[string]map[string]bool // content type → its fields that are not localized
}

// newShaper checks locale against the environment's locales and prepares
// its fallback chain.
func newShaper(loc string, locs []locale, cts []contentType) (*shaper, error) {
	sh := &shaper{locale: loc, plain: map[string]map[string]bool{}}
	fallback := map[string]string{}
	var codes []string
	for _, l := range locs {
		codes = append(codes, l.Code)
		if l.Default {
			sh.defLocale = l.Code
		}
		if l.FallbackCode != nil {
			fallback[l.Code] = *l.FallbackCode
		}
	}
	if loc != "" {
		if !slices.Contains(codes, loc) {
			sort.Strings(codes)
			return nil, fmt.Errorf("locale %q is not one of the environment's locales (%s)", loc, strings.Join(codes, ", "))
		}
		for l := loc; l != "" && !slices.Contains(sh.chain, l); l = fallback[l] {
			sh.chain = append(sh.chain, l)
		}
	}
	for _, ct := range cts {
		plain := map[string]bool{}
		for _, f := range ct.Fields {
			if !f.Localized {
				plain[f.ID] = true
			}
		}
		sh.plain[ct.Sys.ID] = plain
	}
	return sh, nil
}

// entry is an entry's record: its fields, then the sys attributes.
func (sh *shaper) entry(it *syncItem) map[string]any {
	ct := it.Sys.ContentType.Sys.ID
	rec := sh.fields(it.Fields, sh.plain[ct])
	sh.sys(rec, it)
	rec[attrContentType] = ct
	return rec
}

// asset is an asset's record: title, description and file, then the sys
// attributes.
func (sh *shaper) asset(it *syncItem) map[string]any {
	rec := sh.fields(it.Fields, nil)
	sh.sys(rec, it)
	return rec
}

func (sh *shaper) sys(rec map[string]any, it *syncItem) {
	rec[attrID] = it.Sys.ID
	rec[attrCreatedAt] = it.Sys.CreatedAt
	rec[attrUpdatedAt] = it.Sys.UpdatedAt
	if rev, err := it.Sys.Revision.Int64(); err == nil {
		rec[attrRevision] = rev
	} else {
		rec[attrRevision] = nil
	}
}

// fields renders the fields: links become ids, and with a locale each
// field is the value of the first locale of the chain that has one (of
// the default locale for a field that is not localized); a field without
// a value is left out, as the Content Delivery API does.
func (sh *shaper) fields(fields map[string]map[string]any, plain map[string]bool) map[string]any {
	rec := make(map[string]any, len(fields)+len(sysAttributes))
	for name, byLocale := range fields {
		if sh.locale == "" {
			m := make(map[string]any, len(byLocale))
			for loc, v := range byLocale {
				m[loc] = linkIDs(v)
			}
			rec[name] = m
			continue
		}
		chain := sh.chain
		if plain[name] {
			chain = []string{sh.defLocale}
		}
		for _, loc := range chain {
			if v, ok := byLocale[loc]; ok {
				rec[name] = linkIDs(v)
				break
			}
		}
	}
	return rec
}

// linkIDs replaces a link ({"sys":{"type":"Link","id":…}}) by its id, and
// the links of a list by theirs; any other value is kept as it is (the
// links inside rich text stay: they are the document's structure).
func linkIDs(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if id, ok := linkID(x); ok {
			return id
		}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
			if m, ok := e.(map[string]any); ok {
				if id, ok := linkID(m); ok {
					out[i] = id
				}
			}
		}
		return out
	}
	return v
}

func linkID(m map[string]any) (string, bool) {
	sys, ok := m["sys"].(map[string]any)
	if !ok || len(m) != 1 || sys["type"] != "Link" {
		return "", false
	}
	id, ok := sys["id"].(string)
	return id, ok && id != ""
}

// errNoSecret refuses payload webhooks of a source without webhook_secret.
var errNoSecret = errors.New("payload webhooks are off for this source: set webhook_secret to the space's webhook signing secret (Settings → Webhooks → Settings → Request verification) to accept them")
