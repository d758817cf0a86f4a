package config

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Outbound event types a notify block may subscribe to (SPEC §8). A notify
// block without events gets all of them.
var notifyEvents = []string{
	"sync.started",
	"sync.completed",
	"sync.failed",
	"revision.pinned",
	"revision.unpinned",
	"connection.created",
	"connection.deleted",
	"connection.needs_attention",
	"connection.recovered",
}

// NotifyFormatNango is the notify format that sends Nango's sync webhooks
// (SPEC §13), signed with X-Nango-Hmac-Sha256.
const NotifyFormatNango = "nango"

// nangoEvents are the events a notify block of format "nango" takes (and
// its default): Nango's sync webhooks, on success and on failure.
var nangoEvents = []string{"sync.completed", "sync.failed"}

var (
	logLevels    = []string{"trace", "debug", "info", "warn", "error"}
	logFormats   = []string{"text", "json"}
	mergings     = []string{MergeOverride, MergeIgnoreIfModifiedAfter}
	storeDrivers = []string{StoreBadger, StorePostgres}
)

// identRe is what block names (labels) and plugin names must look like.
var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

var (
	fileSchema = &hcl.BodySchema{
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "service"},
			{Type: "plugin", LabelNames: []string{"name"}},
			{Type: "layer", LabelNames: []string{"name"}},
		},
	}
	serviceSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "listen"},
			{Name: "data_dir"},
			{Name: "encryption_key"},
			{Name: "admin_token"},
			{Name: "log_level"},
			{Name: "log_format"},
			{Name: "max_concurrent_runs"},
			{Name: "plugin_idle_timeout"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "store"},
		},
	}
	storeSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "driver"},
			{Name: "dsn"},
		},
	}
	pluginSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "path"},
			{Name: "sha256"},
		},
	}
	layerSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "keep_revisions"},
			{Name: "keep_for"},
			{Name: "event_retention"},
			{Name: "inbox_limit"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "source", LabelNames: []string{"name"}},
			{Type: "notify", LabelNames: []string{"name"}},
			{Type: "api_token", LabelNames: []string{"name"}},
			{Type: "reference", LabelNames: []string{"name"}},
			{Type: "index", LabelNames: []string{"name"}},
		},
	}
	sourceSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "plugin", Required: true},
			{Name: "memory_limit"},
			{Name: "type_prefix"},
			{Name: "connections"},
			{Name: "max_concurrent_runs"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "config"},
			{Type: "sync", LabelNames: []string{"name"}},
		},
	}
	syncSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "models"},
			{Name: "every"},
			{Name: "cron"},
			{Name: "track_deletes"},
			{Name: "merging"},
			{Name: "timeout"},
			{Name: "progress_timeout"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "retry"},
		},
	}
	retrySchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "attempts"},
			{Name: "backoff"},
			{Name: "max"},
		},
	}
	notifySchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "url", Required: true},
			{Name: "secret"},
			{Name: "events"},
			{Name: "skip_empty"},
			{Name: "format"},
		},
	}
	apiTokenSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "token_sha256", Required: true},
			{Name: "models"},
			{Name: "sources"},
			{Name: "connections"},
		},
	}
)

// Load reads one .hcl file, or every *.hcl file of a directory (sorted by
// name, not recursive, names starting with "." skipped), and decodes and
// validates them as one configuration: defaults applied, relative plugin
// paths and data_dir resolved against the directory of the file that sets
// them, source config blocks kept undecoded (see DecodeSourceConfig).
//
// Every diagnostic carries the file, line and column it is about (only a
// path that cannot be read at all has none). The returned Config is nil
// when the diagnostics hold an error.
func Load(path string) (*Config, hcl.Diagnostics) {
	files, diags := configFiles(path)
	if diags.HasErrors() {
		return nil, diags
	}
	l := &loader{
		cfg: &Config{
			Plugins: map[string]*Plugin{},
			Files:   files,
		},
		layers: map[string]*Layer{},
	}
	parser := hclparse.NewParser()
	for _, name := range files {
		f, pd := parser.ParseHCLFile(name)
		diags = append(diags, pd...)
		if pd.HasErrors() || f == nil {
			continue
		}
		l.file(name, f)
	}
	diags = append(diags, l.diags...)
	l.cfg.Service.applyDefaults()
	diags = append(diags, l.cfg.checkStore()...)
	if diags.HasErrors() {
		return nil, diags
	}
	return l.cfg, diags
}

// configFiles lists the files Load reads for path.
func configFiles(path string) ([]string, hcl.Diagnostics) {
	fail := func(summary, detail string, args ...any) hcl.Diagnostics {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  summary,
			Detail:   fmt.Sprintf(detail, args...),
			Subject:  &hcl.Range{Filename: path},
		}}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fail("Cannot read configuration", "%v.", unwrapPathError(err))
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fail("Cannot read configuration directory", "%v.", unwrapPathError(err))
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".hcl") {
			continue
		}
		if e.IsDir() {
			continue
		}
		files = append(files, filepath.Join(path, n))
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fail("No configuration files", "The directory holds no *.hcl file.")
	}
	return files, nil
}

// loader merges the files of one Load.
type loader struct {
	cfg        *Config
	diags      hcl.Diagnostics
	serviceSet bool
	layers     map[string]*Layer
}

// file decodes the top-level blocks of one parsed file.
func (l *loader) file(name string, f *hcl.File) {
	dir := filepath.Dir(name)
	d := &decoder{ctx: evalContext(dir)}
	defer func() { l.diags = append(l.diags, d.diags...) }()

	content, diags := f.Body.Content(fileSchema)
	d.diags = append(d.diags, diags...)
	for _, b := range content.Blocks {
		switch b.Type {
		case "service":
			if l.serviceSet {
				d.errorAt(b.DefRange, "Duplicate service block",
					"Only one service block is allowed; the first is at %s.", rangeString(l.cfg.Service.Range))
				continue
			}
			l.serviceSet = true
			l.cfg.Service = d.service(b, dir)
		case "plugin":
			if !d.checkName(b, "plugin") {
				continue
			}
			if first, ok := l.cfg.Plugins[b.Labels[0]]; ok {
				d.duplicate(b, "plugin", first.Range)
				continue
			}
			l.cfg.Plugins[b.Labels[0]] = d.plugin(b, dir)
		case "layer":
			if !d.checkName(b, "layer") {
				continue
			}
			if first, ok := l.layers[b.Labels[0]]; ok {
				d.duplicate(b, "layer", first.Range)
				continue
			}
			layer := d.layer(b)
			l.layers[layer.Name] = layer
			l.cfg.Layers = append(l.cfg.Layers, layer)
		}
	}
}

// checkName reports a label that is not an identifier.
func (d *decoder) checkName(b *hcl.Block, kind string) bool {
	name := b.Labels[0]
	if identRe.MatchString(name) {
		return true
	}
	rng := b.DefRange
	if len(b.LabelRanges) > 0 {
		rng = b.LabelRanges[0]
	}
	d.errorAt(rng, fmt.Sprintf("Invalid %s name", kind),
		"%q is not a valid name: use letters, digits, underscores and dashes, starting with a letter or an underscore.", name)
	return false
}

// duplicate reports a second block of one kind with one name.
func (d *decoder) duplicate(b *hcl.Block, kind string, first hcl.Range) {
	d.errorAt(b.DefRange, fmt.Sprintf("Duplicate %s %q", kind, b.Labels[0]),
		"%s %s block named %q was already declared at %s; names must be unique.", article(kind), kind, b.Labels[0], rangeString(first))
}

// article is "An" before a vowel, else "A".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "An"
	}
	return "A"
}

// rangeString is "file:line:column" of the start of rng.
func rangeString(rng hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", rng.Filename, rng.Start.Line, rng.Start.Column)
}

// oneOf reports attr's value s unless it is one of allowed.
func (d *decoder) oneOf(attr *hcl.Attribute, s string, allowed []string) bool {
	if contains(allowed, s) {
		return true
	}
	d.invalid(attr, "%q is not one of %s.", s, quoteList(allowed))
	return false
}

// contains reports whether s is in ss.
func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// quoteList is `"a", "b" or "c"`.
func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// resolvePath makes a relative path relative to dir.
func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// applyDefaults fills the unset fields of the service block.
func (s *Service) applyDefaults() {
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if s.DataDir == "" {
		s.DataDir = DefaultDataDir
	}
	if s.LogLevel == "" {
		s.LogLevel = DefaultLogLevel
	}
	if s.LogFormat == "" {
		s.LogFormat = DefaultLogFormat
	}
	if s.MaxConcurrentRuns == 0 {
		s.MaxConcurrentRuns = DefaultHostConcurrentRuns
	}
	if s.PluginIdleTimeout == 0 {
		s.PluginIdleTimeout = DefaultPluginIdleTimeout
	}
	if s.Store.Driver == "" {
		s.Store.Driver = StoreBadger
	}
}

func (d *decoder) service(b *hcl.Block, dir string) Service {
	s := Service{Range: b.DefRange}
	content, diags := b.Body.Content(serviceSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	if v, attr, ok := d.str(a, "listen"); ok {
		if _, _, err := net.SplitHostPort(v); err != nil {
			d.invalid(attr, "%q is not a host:port address, like \"127.0.0.1:8750\" or \":8750\".", v)
		} else {
			s.Listen = v
		}
	}
	if v, attr, ok := d.str(a, "data_dir"); ok {
		if v == "" {
			d.invalid(attr, "data_dir must not be empty; omit it for the default %q.", DefaultDataDir)
		} else {
			s.DataDir = resolvePath(dir, v)
		}
	}
	if v, _, ok := d.str(a, "encryption_key"); ok {
		s.EncryptionKey = v
	}
	if v, _, ok := d.str(a, "admin_token"); ok {
		s.AdminToken = v
	}
	if v, attr, ok := d.str(a, "log_level"); ok && d.oneOf(attr, v, logLevels) {
		s.LogLevel = v
	}
	if v, attr, ok := d.str(a, "log_format"); ok && d.oneOf(attr, v, logFormats) {
		s.LogFormat = v
	}
	if v, attr, ok := d.integer(a, "max_concurrent_runs"); ok {
		if v < 1 {
			d.invalid(attr, "max_concurrent_runs must be at least 1; omit it for the default %d.", DefaultHostConcurrentRuns)
		} else {
			s.MaxConcurrentRuns = v
		}
	}
	if v, _, ok := d.positiveDuration(a, "plugin_idle_timeout"); ok {
		s.PluginIdleTimeout = v
	}
	for i, blk := range content.Blocks {
		if i > 0 {
			d.errorAt(blk.DefRange, "Duplicate store block",
				"Only one store block is allowed in the service block; the first is at %s.", rangeString(s.Store.Range))
			continue
		}
		s.Store = d.store(blk)
	}
	return s
}

// store decodes the service's store block (SPEC §16).
func (d *decoder) store(b *hcl.Block) Store {
	st := Store{Range: b.DefRange}
	content, diags := b.Body.Content(storeSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	if v, attr, ok := d.str(a, "driver"); ok && d.oneOf(attr, v, storeDrivers) {
		st.Driver = v
	}
	dsn, dsnAttr, hasDSN := d.str(a, "dsn")
	switch {
	case st.Driver == StorePostgres && (!hasDSN || dsn == ""):
		d.errorAt(b.DefRange, "Missing dsn",
			`The postgres driver needs the database's connection string: dsn = env("DATABASE_URL"), like "postgres://user:password@host:5432/synclayer?sslmode=require".`)
	case st.Driver != StorePostgres && hasDSN:
		d.invalid(dsnAttr, `dsn is for driver = "postgres"; the badger driver keeps its data under data_dir.`)
	case hasDSN:
		st.DSN = dsn
	}
	return st
}

func (d *decoder) plugin(b *hcl.Block, dir string) *Plugin {
	p := &Plugin{Name: b.Labels[0], Range: b.DefRange}
	content, diags := b.Body.Content(pluginSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	if v, attr, ok := d.str(a, "path"); ok {
		if v == "" {
			d.invalid(attr, "path must not be empty; omit it to look the plugin up.")
		} else {
			p.Path = resolvePath(dir, v)
		}
	}
	if v, attr, ok := d.str(a, "sha256"); ok {
		if h, ok := d.hexSHA256(attr, v); ok {
			p.SHA256 = h
		}
	}
	return p
}

// hexSHA256 checks that v is a SHA-256 in hex and returns it lower-case.
// Surrounding white space is ignored.
func (d *decoder) hexSHA256(attr *hcl.Attribute, v string) (string, bool) {
	v = strings.ToLower(strings.TrimSpace(v))
	if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
		d.invalid(attr, "%s must be a SHA-256 checksum: 64 hexadecimal characters.", attr.Name)
		return "", false
	}
	return v, true
}

func (d *decoder) layer(b *hcl.Block) *Layer {
	l := &Layer{
		Name:           b.Labels[0],
		KeepRevisions:  DefaultKeepRevisions,
		KeepFor:        DefaultKeepFor,
		EventRetention: DefaultEventRetention,
		InboxLimit:     DefaultInboxLimit,
		Range:          b.DefRange,
	}
	content, diags := b.Body.Content(layerSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	if n, attr, ok := d.integer(a, "keep_revisions"); ok {
		if n < 1 {
			d.invalid(attr, "keep_revisions must be at least 1.")
		} else {
			l.KeepRevisions = n
		}
	}
	if v, _, ok := d.positiveDuration(a, "event_retention"); ok {
		l.EventRetention = v
	}
	if v, _, ok := d.nonNegativeDuration(a, "keep_for"); ok {
		l.KeepFor = v
	}
	if n, attr, ok := d.integer(a, "inbox_limit"); ok {
		if n < 1 {
			d.invalid(attr, "inbox_limit must be at least 1.")
		} else {
			l.InboxLimit = n
		}
	}
	sources := map[string]*Source{}
	notifies := map[string]*Notify{}
	tokens := map[string]*APIToken{}
	var tokenBlocks []*hcl.Block
	sourceBlocks := 0
	for _, blk := range content.Blocks {
		if blk.Type == "source" {
			sourceBlocks++
		}
		if d.graphqlBlock(l, blk) {
			continue
		}
		if !d.checkName(blk, blk.Type) {
			continue
		}
		name := blk.Labels[0]
		switch blk.Type {
		case "source":
			if first, ok := sources[name]; ok {
				d.duplicate(blk, "source", first.Range)
				continue
			}
			s := d.source(blk)
			sources[name] = s
			l.Sources = append(l.Sources, s)
		case "notify":
			if first, ok := notifies[name]; ok {
				d.duplicate(blk, "notify", first.Range)
				continue
			}
			n := d.notify(blk)
			notifies[name] = n
			l.Notify = append(l.Notify, n)
		case "api_token":
			if first, ok := tokens[name]; ok {
				d.duplicate(blk, "api_token", first.Range)
				continue
			}
			t := &APIToken{Name: name, Range: blk.DefRange}
			tokens[name] = t
			l.APITokens = append(l.APITokens, t)
			tokenBlocks = append(tokenBlocks, blk)
		}
	}
	// api_token blocks last: their sources must name this layer's sources,
	// wherever those are declared in the block.
	for i, blk := range tokenBlocks {
		d.apiToken(blk, l.APITokens[i], sources)
	}
	if sourceBlocks == 0 {
		d.errorAt(b.DefRange, "Layer without sources",
			"Layer %q has no source block; a layer needs at least one.", l.Name)
	}
	return l
}

func (d *decoder) source(b *hcl.Block) *Source {
	s := &Source{Name: b.Labels[0], Range: b.DefRange, EvalContext: d.ctx}
	content, diags := b.Body.Content(sourceSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	if v, attr, ok := d.str(a, "plugin"); ok {
		if !identRe.MatchString(v) {
			d.invalid(attr, "%q is not a valid plugin name: use letters, digits, underscores and dashes, starting with a letter or an underscore.", v)
		} else {
			s.Plugin, s.PluginRange = v, attr.Expr.Range()
		}
	}
	d.typePrefix(a, s)
	if v, ok := d.boolean(a, "connections"); ok {
		s.Connections = v
	}
	s.MaxConcurrentRuns = DefaultSourceConcurrentRuns
	if v, attr, ok := d.integer(a, "max_concurrent_runs"); ok {
		if v < 1 {
			d.invalid(attr, "max_concurrent_runs must be at least 1; omit it for the default %d.", DefaultSourceConcurrentRuns)
		} else {
			s.MaxConcurrentRuns = v
		}
	}
	if v, attr, ok := d.str(a, "memory_limit"); ok {
		n, err := humanize.ParseBytes(v)
		switch {
		case err != nil:
			d.invalid(attr, "%q is not a size; write a number and a unit, like \"512MiB\" or \"1GB\".", v)
		case n == 0:
			d.invalid(attr, "memory_limit must be greater than zero; omit it for no limit.")
		case n > 1<<62:
			d.invalid(attr, "memory_limit is too large.")
		default:
			s.MemoryLimit = int64(n)
		}
	}
	syncs := map[string]*Sync{}
	for _, blk := range content.Blocks {
		switch blk.Type {
		case "config":
			if s.ConfigBody != nil {
				d.errorAt(blk.DefRange, "Duplicate config block",
					"Source %q already has a config block at %s.", s.Name, rangeString(s.ConfigRange))
				continue
			}
			s.ConfigBody = blk.Body
			s.ConfigRange = blk.DefRange
		case "sync":
			if !d.checkName(blk, "sync") {
				continue
			}
			if first, ok := syncs[blk.Labels[0]]; ok {
				d.duplicate(blk, "sync", first.Range)
				continue
			}
			y := d.sync(blk)
			syncs[y.Name] = y
			s.Syncs = append(s.Syncs, y)
		}
	}
	return s
}

func (d *decoder) sync(b *hcl.Block) *Sync {
	y := &Sync{Name: b.Labels[0], Merging: MergeOverride, Range: b.DefRange}
	content, diags := b.Body.Content(syncSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	if v, attr, ok := d.strList(a, "models"); ok {
		for i, m := range v {
			if m == "" {
				d.errorAt(elemRange(attr.Expr, i), "Invalid value for models", "A model name must not be empty.")
				ok = false
			}
		}
		if ok {
			y.Models = v
		}
	}
	every, everyAttr, everyOK := d.positiveDuration(a, "every")
	if everyOK {
		y.Every = every
	}
	if v, attr, ok := d.str(a, "cron"); ok {
		switch {
		case strings.TrimSpace(v) == "":
			d.invalid(attr, "cron must not be empty; omit it for the connector's schedule.")
		case everyAttr != nil:
			d.errorAt(attr.NameRange, "Conflicting schedules",
				"Sync %q sets both every (at %s) and cron; set one of them.", y.Name, rangeString(everyAttr.NameRange))
		default:
			y.Cron = strings.TrimSpace(v)
		}
	}
	if v, ok := d.boolean(a, "track_deletes"); ok {
		y.TrackDeletes = v
	}
	if v, attr, ok := d.str(a, "merging"); ok && d.oneOf(attr, v, mergings) {
		y.Merging = v
	}
	if v, _, ok := d.positiveDuration(a, "timeout"); ok {
		y.Timeout = v
	}
	if v, _, ok := d.positiveDuration(a, "progress_timeout"); ok {
		y.ProgressTimeout = v
	}
	var retryRange *hcl.Range
	for _, blk := range content.Blocks {
		if retryRange != nil {
			d.errorAt(blk.DefRange, "Duplicate retry block",
				"Sync %q already has a retry block at %s.", y.Name, rangeString(*retryRange))
			continue
		}
		retryRange = blk.DefRange.Ptr()
		y.Retry = d.retry(blk)
	}
	return y
}

func (d *decoder) retry(b *hcl.Block) Retry {
	var r Retry
	content, diags := b.Body.Content(retrySchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	if n, attr, ok := d.integer(a, "attempts"); ok {
		if n < 0 {
			d.invalid(attr, "attempts must not be negative; 0 means no retry.")
		} else {
			r.Attempts = n
		}
	}
	if v, _, ok := d.nonNegativeDuration(a, "backoff"); ok {
		r.Backoff = v
	}
	if v, attr, ok := d.nonNegativeDuration(a, "max"); ok {
		if r.Backoff > 0 && v > 0 && v < r.Backoff {
			d.invalid(attr, "max (%s) must not be less than backoff (%s).", v, r.Backoff)
		} else {
			r.Max = v
		}
	}
	return r
}

func (d *decoder) notify(b *hcl.Block) *Notify {
	n := &Notify{Name: b.Labels[0], Range: b.DefRange}
	content, diags := b.Body.Content(notifySchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	formatFailed := false
	if v, attr, ok := d.str(a, "format"); ok {
		if d.oneOf(attr, v, []string{"", "slack", NotifyFormatNango}) {
			n.Format = v
		} else {
			formatFailed = true
		}
	} else if attr != nil && !d.isNull(attr) {
		formatFailed = true
	}
	if v, attr, ok := d.str(a, "url"); ok {
		// The URL may hold a credential (Slack's do): never repeat it.
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.invalid(attr, "url must be an absolute http:// or https:// URL.")
		} else {
			n.URL = v
		}
	}
	if v, attr, ok := d.str(a, "secret"); ok && n.Format == NotifyFormatNango {
		// Nango's webhook signing key: any string, used as it is.
		if strings.TrimSpace(v) == "" {
			d.invalid(attr, "secret must not be empty: with format \"nango\" it is the key of the X-Nango-Hmac-Sha256 signature (the webhookSigningKey your Nango client verifies with).")
		} else {
			n.Secret = v
		}
	} else if ok {
		v = strings.TrimSpace(v)
		if why := checkWebhookSecret(v); why != "" {
			d.invalid(attr, "secret must be \"whsec_\" followed by the standard base64 encoding of 24 to 64 random bytes (Standard Webhooks); %s.", why)
		} else {
			n.Secret = v
		}
	} else if n.Format != "slack" && !formatFailed {
		switch {
		case attr == nil && n.Format == NotifyFormatNango:
			d.errorAt(b.DefRange, "Missing required argument",
				"Notify %q needs a secret: with format \"nango\" it is the key of the X-Nango-Hmac-Sha256 signature (the webhookSigningKey your Nango client verifies with).", n.Name)
		case attr == nil:
			d.errorAt(b.DefRange, "Missing required argument",
				"Notify %q needs a secret (\"whsec_\" followed by the standard base64 encoding of 24 to 64 random bytes) unless format is \"slack\".", n.Name)
		case d.isNull(attr):
			d.invalid(attr, "secret must not be null unless format is \"slack\".")
		}
	}
	if v, attr, ok := d.strList(a, "events"); ok {
		good := len(v) > 0
		if !good {
			d.invalid(attr, "events must not be empty; omit it for every event.")
		}
		allowed := notifyEvents
		if n.Format == NotifyFormatNango {
			allowed = nangoEvents
		}
		for i, e := range v {
			if !contains(allowed, e) {
				msg := "%q is not an event; use %s."
				if n.Format == NotifyFormatNango && contains(notifyEvents, e) {
					msg = "%q has no Nango webhook; with format \"nango\" use %s."
				}
				d.errorAt(elemRange(attr.Expr, i), "Invalid value for events", msg, e, quoteList(allowed))
				good = false
			}
		}
		if good {
			n.Events = v
		}
	} else if n.Format == NotifyFormatNango {
		n.Events = append([]string(nil), nangoEvents...)
	} else {
		// Unset or null: every event. (When wrong, Load fails anyway.)
		n.Events = append([]string(nil), notifyEvents...)
	}
	if v, ok := d.boolean(a, "skip_empty"); ok {
		n.SkipEmpty = v
	}
	return n
}

// checkWebhookSecret returns why s is not a Standard Webhooks secret, or "".
// The reason never includes the secret.
func checkWebhookSecret(s string) string {
	rest, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return "the value does not start with \"whsec_\""
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return "the part after \"whsec_\" is not standard base64"
	}
	if len(b) < 24 || len(b) > 64 {
		return fmt.Sprintf("it decodes to %d bytes", len(b))
	}
	return ""
}

func (d *decoder) apiToken(b *hcl.Block, t *APIToken, sources map[string]*Source) {
	content, diags := b.Body.Content(apiTokenSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	if v, attr, ok := d.str(a, "token_sha256"); ok {
		if h, ok := d.hexSHA256(attr, v); ok {
			t.TokenSHA256 = h
		}
	}
	if v, _, ok := d.strList(a, "models"); ok {
		t.Models = v
	}
	if v, _, ok := d.strList(a, "connections"); ok {
		t.Connections = v
	}
	if v, attr, ok := d.strList(a, "sources"); ok {
		for i, s := range v {
			if sources[s] == nil {
				names := make([]string, 0, len(sources))
				for n := range sources {
					names = append(names, n)
				}
				sort.Strings(names)
				known := "it has none"
				if len(names) > 0 {
					known = "its sources are " + quoteList(names)
				}
				d.errorAt(elemRange(attr.Expr, i), "Unknown source",
					"api_token %q names source %q, which this layer does not have; %s.", t.Name, s, known)
				ok = false
			}
		}
		if ok {
			t.Sources = v
		}
	}
}

// checkStore checks what the store driver asks of the rest: replicas seal
// connection configs with one key, which must be the service's
// encryption_key (a key file would differ per host).
func (c *Config) checkStore() hcl.Diagnostics {
	if c.Service.Store.Driver != StorePostgres || c.Service.EncryptionKey != "" {
		return nil
	}
	for _, l := range c.Layers {
		for _, s := range l.Sources {
			if s.Connections {
				return hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Missing encryption_key",
					Detail: fmt.Sprintf("Source %q of layer %q has connections, whose configs are sealed at rest; with driver = \"postgres\" every host must seal with the same key: set encryption_key in the service block (the same on every host).",
						s.Name, l.Name),
					Subject: &s.Range,
				}}
			}
		}
	}
	return nil
}
