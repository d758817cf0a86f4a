package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Webhook secrets and a SHA-256 used by the tests.
const (
	testSecret   = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // 24 bytes
	testSecret32 = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	testHash     = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
)

// writeFile writes content to dir/name (creating directories) and returns
// the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// mustLoad loads path and fails the test on any error.
func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	cfg, diags := Load(path)
	if diags.HasErrors() {
		t.Fatalf("Load(%s): unexpected errors:\n%s", path, FormatDiagnostics(diags))
	}
	if cfg == nil {
		t.Fatalf("Load(%s): nil config without errors", path)
	}
	return cfg
}

// loadErrors loads src written as name into a temporary directory and
// returns the formatted diagnostics; it fails the test when there is no error.
func loadErrors(t *testing.T, name, src string) string {
	t.Helper()
	p := writeFile(t, t.TempDir(), name, src)
	cfg, diags := Load(p)
	if !diags.HasErrors() {
		t.Fatalf("Load: expected an error, got none\n--- source:\n%s", src)
	}
	if cfg != nil {
		t.Errorf("Load: config should be nil when there are errors")
	}
	return FormatDiagnostics(diags)
}

// position returns "LINE:COL" of a marker in src. The marker is a
// substring of src with one "|" in it marking the exact spot, e.g.
// `keep_revisions = |0`; "#N:" in front picks the N-th occurrence.
func position(t *testing.T, src, marker string) string {
	t.Helper()
	occurrence := 1
	if strings.HasPrefix(marker, "#") {
		var rest string
		if _, err := fmt.Sscanf(marker, "#%d:", &occurrence); err != nil {
			t.Fatalf("bad marker %q", marker)
		}
		_, rest, _ = strings.Cut(marker, ":")
		marker = rest
	}
	off := strings.Index(marker, "|")
	if off < 0 {
		t.Fatalf("marker %q has no |", marker)
	}
	plain := strings.Replace(marker, "|", "", 1)
	idx := -1
	from := 0
	for i := 0; i < occurrence; i++ {
		j := strings.Index(src[from:], plain)
		if j < 0 {
			t.Fatalf("marker %q (occurrence %d) not in source", plain, occurrence)
		}
		idx = from + j
		from = idx + 1
	}
	at := idx + off
	line := strings.Count(src[:at], "\n") + 1
	col := at - (strings.LastIndex(src[:at], "\n") + 1) + 1
	return fmt.Sprintf("%d:%d", line, col)
}

// A full layer file like SPEC §3.
const fullExample = `service {
  listen         = "127.0.0.1:9999"
  data_dir       = "./state"
  encryption_key = env("SYNCLAYER_KEY", "")
  admin_token    = env("SYNCLAYER_ADMIN_TOKEN", "")
  log_level      = "debug"
  log_format     = "json"
}

plugin "shopify" {
  path   = "./bin/synclayer-plugin-shopify"
  sha256 = "` + testHash + `"
}

layer "catalog" {
  keep_revisions  = 20
  event_retention = "120h"

  source "shop" {
    plugin       = "shopify"
    memory_limit = "512MiB"
    config {
      shop         = "demo.myshopify.com"
      access_token = env("SHOPIFY_TOKEN")
    }

    sync "products" {
      models        = ["Product"]
      every         = "1h"
      track_deletes = false
      merging       = "ignore_if_modified_after"
      timeout       = "30m"
      progress_timeout = "5m"
      retry {
        attempts = 5
        backoff  = "10s"
        max      = "10m"
      }
    }

    sync "collections" {
      cron          = "0 3 * * *"
      track_deletes = true
    }
  }

  notify "app" {
    url        = "http://127.0.0.1:3000/hooks/synclayer"
    secret     = env("APP_WEBHOOK_SECRET")
    events     = ["sync.completed", "sync.failed"]
    skip_empty = true
  }

  notify "ops" {
    url    = env("SLACK_WEBHOOK_URL")
    format = "slack"
    events = ["sync.failed"]
  }

  api_token "storefront" {
    token_sha256 = "` + testHash + `"
    models       = ["Product"]
    sources      = ["shop"]
  }
}
`

func TestLoadFullExample(t *testing.T) {
	t.Setenv("SYNCLAYER_KEY", "key-0123456789")
	t.Setenv("SYNCLAYER_ADMIN_TOKEN", "admin-secret")
	t.Setenv("SHOPIFY_TOKEN", "shpat_secret")
	t.Setenv("APP_WEBHOOK_SECRET", testSecret)
	t.Setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X")

	dir := t.TempDir()
	path := writeFile(t, dir, "catalog.hcl", fullExample)
	cfg := mustLoad(t, path)

	if !reflect.DeepEqual(cfg.Files, []string{path}) {
		t.Errorf("Files = %v", cfg.Files)
	}
	svc := cfg.Service
	svc.Range = hcl.Range{}
	wantSvc := Service{
		Listen:            "127.0.0.1:9999",
		DataDir:           filepath.Join(dir, "state"),
		EncryptionKey:     "key-0123456789",
		AdminToken:        "admin-secret",
		LogLevel:          "debug",
		LogFormat:         "json",
		MaxConcurrentRuns: DefaultHostConcurrentRuns,
		PluginIdleTimeout: DefaultPluginIdleTimeout,
		Store:             Store{Driver: StoreBadger},
	}
	if svc != wantSvc {
		t.Errorf("Service = %+v\nwant %+v", svc, wantSvc)
	}
	if got := cfg.Service.Range; got.Filename != path || got.Start.Line != 1 {
		t.Errorf("Service.Range = %v", got)
	}

	p := cfg.Plugins["shopify"]
	if p == nil || p.Path != filepath.Join(dir, "bin", "synclayer-plugin-shopify") || p.SHA256 != strings.ToLower(testHash) || p.Name != "shopify" {
		t.Errorf("plugin = %+v", p)
	}

	if len(cfg.Layers) != 1 {
		t.Fatalf("%d layers", len(cfg.Layers))
	}
	l := cfg.Layer("catalog")
	if l == nil || cfg.Layer("nope") != nil {
		t.Fatalf("Layer lookup broken")
	}
	if l.KeepRevisions != 20 || l.EventRetention != 120*time.Hour {
		t.Errorf("layer settings = %d, %v", l.KeepRevisions, l.EventRetention)
	}
	if l.Range.Start.Line != 15 {
		t.Errorf("layer range = %v", l.Range)
	}

	if len(l.Sources) != 1 {
		t.Fatalf("%d sources", len(l.Sources))
	}
	s := l.Source("shop")
	if s == nil || s.Plugin != "shopify" || s.MemoryLimit != 512<<20 {
		t.Fatalf("source = %+v", s)
	}
	if s.ConfigBody == nil || s.EvalContext == nil || s.ConfigRange.Start.Line != 22 {
		t.Errorf("config block not kept: body %v ctx %v range %v", s.ConfigBody, s.EvalContext, s.ConfigRange)
	}
	if len(s.Syncs) != 2 {
		t.Fatalf("%d syncs", len(s.Syncs))
	}
	products := *s.Sync("products")
	products.Range = hcl.Range{}
	wantProducts := Sync{
		Name:            "products",
		Models:          []string{"Product"},
		Every:           time.Hour,
		Merging:         MergeIgnoreIfModifiedAfter,
		Timeout:         30 * time.Minute,
		ProgressTimeout: 5 * time.Minute,
		Retry:           Retry{Attempts: 5, Backoff: 10 * time.Second, Max: 10 * time.Minute},
		TrackDeletes:    false,
	}
	if !reflect.DeepEqual(products, wantProducts) {
		t.Errorf("sync products = %+v\nwant %+v", products, wantProducts)
	}
	collections := *s.Sync("collections")
	collections.Range = hcl.Range{}
	wantCollections := Sync{Name: "collections", Cron: "0 3 * * *", TrackDeletes: true, Merging: MergeOverride}
	if !reflect.DeepEqual(collections, wantCollections) {
		t.Errorf("sync collections = %+v\nwant %+v", collections, wantCollections)
	}

	if len(l.Notify) != 2 {
		t.Fatalf("%d notify", len(l.Notify))
	}
	app, ops := *l.Notify[0], *l.Notify[1]
	app.Range, ops.Range = hcl.Range{}, hcl.Range{}
	wantApp := Notify{Name: "app", URL: "http://127.0.0.1:3000/hooks/synclayer", Secret: testSecret,
		Events: []string{"sync.completed", "sync.failed"}, SkipEmpty: true}
	wantOps := Notify{Name: "ops", URL: "https://hooks.slack.com/services/T/B/X", Format: "slack",
		Events: []string{"sync.failed"}}
	if !reflect.DeepEqual(app, wantApp) {
		t.Errorf("notify app = %+v\nwant %+v", app, wantApp)
	}
	if !reflect.DeepEqual(ops, wantOps) {
		t.Errorf("notify ops = %+v\nwant %+v", ops, wantOps)
	}

	if len(l.APITokens) != 1 {
		t.Fatalf("%d api tokens", len(l.APITokens))
	}
	tok := *l.APITokens[0]
	tok.Range = hcl.Range{}
	wantTok := APIToken{Name: "storefront", TokenSHA256: strings.ToLower(testHash), Models: []string{"Product"}, Sources: []string{"shop"}}
	if !reflect.DeepEqual(tok, wantTok) {
		t.Errorf("api_token = %+v\nwant %+v", tok, wantTok)
	}

	// The config block evaluates later, with the file's functions.
	js, diags := DecodeSourceConfig(s, []Field{
		{Name: "shop", Type: cty.String, Required: true},
		{Name: "access_token", Type: cty.String, Required: true, Sensitive: true},
	})
	if diags.HasErrors() {
		t.Fatalf("DecodeSourceConfig: %s", FormatDiagnostics(diags))
	}
	if got, want := string(js), `{"access_token":"shpat_secret","shop":"demo.myshopify.com"}`; got != want {
		t.Errorf("config JSON = %s, want %s", got, want)
	}

	if got := cfg.Service.Secrets(); !reflect.DeepEqual(got, []string{"admin-secret", "key-0123456789"}) {
		t.Errorf("Service.Secrets() = %v", got)
	}
	if got := l.Notify[0].Secrets(); !reflect.DeepEqual(got, []string{testSecret}) {
		t.Errorf("Notify.Secrets() = %v", got)
	}
	if got := l.Notify[1].Secrets(); !reflect.DeepEqual(got, []string{"https://hooks.slack.com/services/T/B/X"}) {
		t.Errorf("slack Notify.Secrets() = %v", got)
	}
}

func TestLoadDefaults(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "min.hcl", `
layer "l" {
  source "s" {
    plugin = "files"
    sync "files" {}
  }
  notify "n" {
    url    = "https://example.com/hook"
    secret = "`+testSecret32+`"
  }
  api_token "t" {
    token_sha256 = "`+testHash+`"
  }
}
`)
	cfg := mustLoad(t, path)
	want := Service{Listen: DefaultListen, DataDir: DefaultDataDir, LogLevel: DefaultLogLevel, LogFormat: DefaultLogFormat,
		MaxConcurrentRuns: DefaultHostConcurrentRuns, PluginIdleTimeout: DefaultPluginIdleTimeout, Store: Store{Driver: StoreBadger}}
	if cfg.Service != want {
		t.Errorf("Service = %+v, want defaults %+v", cfg.Service, want)
	}
	if len(cfg.Service.Secrets()) != 0 {
		t.Errorf("Secrets of an empty service = %v", cfg.Service.Secrets())
	}
	l := cfg.Layers[0]
	if l.KeepRevisions != DefaultKeepRevisions || l.EventRetention != DefaultEventRetention {
		t.Errorf("layer defaults = %d, %v", l.KeepRevisions, l.EventRetention)
	}
	s := l.Sources[0]
	if s.MemoryLimit != 0 || s.ConfigBody != nil {
		t.Errorf("source defaults: %+v", s)
	}
	y := s.Syncs[0]
	if y.Merging != MergeOverride || y.Every != 0 || y.Cron != "" || y.Models != nil || y.Retry != (Retry{}) {
		t.Errorf("sync defaults = %+v", y)
	}
	if !reflect.DeepEqual(l.Notify[0].Events, notifyEvents) || l.Notify[0].Format != "" {
		t.Errorf("notify defaults = %+v", l.Notify[0])
	}
	if l.APITokens[0].Models != nil || l.APITokens[0].Sources != nil {
		t.Errorf("api_token defaults = %+v", l.APITokens[0])
	}
	if len(cfg.Plugins) != 0 {
		t.Errorf("plugins = %v", cfg.Plugins)
	}
}

func TestLoadPaths(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(dir, "elsewhere", "bin")
	path := writeFile(t, dir, "conf/main.hcl", `
service {
  data_dir = "../var/data"
}
plugin "a" {
  path = "plugins/a"
}
plugin "b" {
  path = "`+filepath.ToSlash(abs)+`"
}
layer "l" {
  source "s" { plugin = "a" }
}
`)
	cfg := mustLoad(t, path)
	if got, want := cfg.Service.DataDir, filepath.Join(dir, "var", "data"); got != want {
		t.Errorf("DataDir = %q, want %q", got, want)
	}
	if got, want := cfg.Plugins["a"].Path, filepath.Join(dir, "conf", "plugins", "a"); got != want {
		t.Errorf("plugin a path = %q, want %q", got, want)
	}
	if got := cfg.Plugins["b"].Path; got != filepath.FromSlash(filepath.ToSlash(abs)) {
		t.Errorf("plugin b path = %q, want %q", got, abs)
	}
}

func TestLoadSlackNotifyNeedsNoSecret(t *testing.T) {
	path := writeFile(t, t.TempDir(), "n.hcl", `
layer "l" {
  source "s" { plugin = "p" }
  notify "ops" {
    url    = "https://hooks.slack.com/services/x"
    format = "slack"
  }
}
`)
	cfg := mustLoad(t, path)
	if n := cfg.Layers[0].Notify[0]; n.Secret != "" || n.Format != "slack" {
		t.Errorf("notify = %+v", n)
	}
}

func TestLoadValidation(t *testing.T) {
	layerWith := func(body string) string {
		return "layer \"l\" {\n  source \"s\" { plugin = \"p\" }\n" + body + "}\n"
	}
	sourceWith := func(body string) string {
		return "layer \"l\" {\n  source \"s\" {\n    plugin = \"p\"\n" + body + "  }\n}\n"
	}
	notifyWith := func(body string) string {
		return layerWith("  notify \"n\" {\n    url = \"https://example.com/h\"\n" + body + "  }\n")
	}
	cases := []struct {
		name string
		src  string
		at   string // marker, see position
		want string // substring of the formatted diagnostics
	}{
		{"second service", "service {}\nservice {}\n" + layerWith(""), "#2:|service", "Duplicate service block"},
		{"unknown top-level block", "servic {}\n" + layerWith(""), "|servic", "Unsupported block type"},
		{"unknown service attribute", "service {\n  port = 1\n}\n" + layerWith(""), "|port", "Unsupported argument"},
		{"bad listen", "service {\n  listen = \"nowhere\"\n}\n" + layerWith(""), `|"nowhere"`, "host:port"},
		{"bad log level", "service {\n  log_level = \"verbose\"\n}\n" + layerWith(""), `|"verbose"`, `"trace", "debug", "info", "warn" or "error"`},
		{"bad log format", "service {\n  log_format = \"xml\"\n}\n" + layerWith(""), `|"xml"`, `"text" or "json"`},
		{"empty data_dir", "service {\n  data_dir = \"\"\n}\n" + layerWith(""), `data_dir = |""`, "must not be empty"},
		{"wrong type", "service {\n  listen = [\"a\"]\n}\n" + layerWith(""), `|["a"]`, "string required"},
		{"duplicate plugin", "plugin \"p\" {}\nplugin \"p\" {}\n" + layerWith(""), `#2:|plugin "p"`, `Duplicate plugin "p"; A plugin block named "p" was already declared at `},
		{"bad plugin sha256", "plugin \"p\" {\n  sha256 = \"abc\"\n}\n" + layerWith(""), `|"abc"`, "64 hexadecimal"},
		{"bad plugin name", "plugin \"my plugin\" {}\n" + layerWith(""), `plugin |"my plugin"`, "Invalid plugin name"},
		{"unknown plugin attribute", "plugin \"p\" {\n  sha = \"\"\n}\n" + layerWith(""), "|sha =", "Unsupported argument"},
		{"duplicate layer", layerWith("") + layerWith(""), `#2:|layer "l"`, `Duplicate layer "l"`},
		{"bad layer name", "layer \"1st\" {\n  source \"s\" { plugin = \"p\" }\n}\n", `layer |"1st"`, "Invalid layer name"},
		{"layer without source", "layer \"empty\" {\n}\n", `|layer "empty"`, "Layer without sources"},
		{"keep_revisions zero", layerWith("  keep_revisions = 0\n"), "keep_revisions = |0", "at least 1"},
		{"keep_revisions fraction", layerWith("  keep_revisions = 1.5\n"), "|1.5", "whole number"},
		{"keep_revisions string", layerWith("  keep_revisions = \"ten\"\n"), `|"ten"`, "a number is required"},
		{"bad event_retention", layerWith("  event_retention = \"5 days\"\n"), `|"5 days"`, "is not a duration"},
		{"negative event_retention", layerWith("  event_retention = \"-1h\"\n"), `|"-1h"`, "positive"},
		{"unknown layer attribute", layerWith("  colour = \"red\"\n"), "|colour", "Unsupported argument"},
		{"unknown layer block", layerWith("  webhook \"w\" {}\n"), "|webhook", "Unsupported block type"},
		{"duplicate source", layerWith("  source \"s\" { plugin = \"q\" }\n"), `#2:|source "s"`, `Duplicate source "s"`},
		{"bad source name", layerWith("  source \"a.b\" { plugin = \"q\" }\n"), `source |"a.b"`, "Invalid source name"},
		{"source without plugin", "layer \"l\" {\n  source \"s\" {\n  }\n}\n", `source "s" |{`, `The argument "plugin" is required`},
		{"bad plugin reference", "layer \"l\" {\n  source \"s\" { plugin = \"../evil\" }\n}\n", `|"../evil"`, "not a valid plugin name"},
		{"bad memory_limit", sourceWith("    memory_limit = \"lots\"\n"), `|"lots"`, "is not a size"},
		{"zero memory_limit", sourceWith("    memory_limit = \"0B\"\n"), `|"0B"`, "greater than zero"},
		{"duplicate config", sourceWith("    config {}\n    config {}\n"), "#2:|config {}", "Duplicate config block"},
		{"unknown source attribute", sourceWith("    memory = \"1GB\"\n"), "|memory =", "Unsupported argument"},
		{"duplicate sync", sourceWith("    sync \"a\" {}\n    sync \"a\" {}\n"), `#2:|sync "a"`, `Duplicate sync "a"`},
		{"bad sync name", sourceWith("    sync \"\" {}\n"), `sync |""`, "Invalid sync name"},
		{"every and cron", sourceWith("    sync \"a\" {\n      every = \"1h\"\n      cron = \"0 3 * * *\"\n    }\n"), "|cron =", "Conflicting schedules"},
		{"bad every", sourceWith("    sync \"a\" {\n      every = \"hourly\"\n    }\n"), `|"hourly"`, "is not a duration"},
		{"bad timeout", sourceWith("    sync \"a\" {\n      timeout = \"30 minutes\"\n    }\n"), `|"30 minutes"`, "is not a duration"},
		{"zero progress_timeout", sourceWith("    sync \"a\" {\n      progress_timeout = \"0s\"\n    }\n"), `|"0s"`, "progress_timeout must be a positive duration"},
		{"bad merging", sourceWith("    sync \"a\" {\n      merging = \"merge\"\n    }\n"), `|"merge"`, `"override" or "ignore_if_modified_after"`},
		{"models not a list", sourceWith("    sync \"a\" {\n      models = \"Product\"\n    }\n"), `|"Product"`, "list of string required"},
		{"empty model", sourceWith("    sync \"a\" {\n      models = [\"A\", \"\"]\n    }\n"), `"A", |""`, "must not be empty"},
		{"track_deletes not bool", sourceWith("    sync \"a\" {\n      track_deletes = \"maybe\"\n    }\n"), `|"maybe"`, "a bool is required"},
		{"negative attempts", sourceWith("    sync \"a\" {\n      retry {\n        attempts = -1\n      }\n    }\n"), "|-1", "must not be negative"},
		{"bad backoff", sourceWith("    sync \"a\" {\n      retry {\n        backoff = \"soon\"\n      }\n    }\n"), `|"soon"`, "is not a duration"},
		{"max below backoff", sourceWith("    sync \"a\" {\n      retry {\n        backoff = \"1m\"\n        max = \"10s\"\n      }\n    }\n"), `|"10s"`, "must not be less than backoff"},
		{"duplicate retry", sourceWith("    sync \"a\" {\n      retry {}\n      retry {}\n    }\n"), "#2:|retry {}", "Duplicate retry block"},
		{"unknown retry attribute", sourceWith("    sync \"a\" {\n      retry {\n        tries = 1\n      }\n    }\n"), "|tries", "Unsupported argument"},
		{"duplicate notify", layerWith("  notify \"n\" {\n    url = \"https://a/\"\n    format = \"slack\"\n  }\n  notify \"n\" {\n    url = \"https://a/\"\n    format = \"slack\"\n  }\n"), `#2:|notify "n"`, `Duplicate notify "n"`},
		{"notify without url", layerWith("  notify \"n\" {\n    format = \"slack\"\n  }\n"), `notify "n" |{`, `The argument "url" is required`},
		{"notify bad url", layerWith("  notify \"n\" {\n    url = \"ftp://x/\"\n    format = \"slack\"\n  }\n"), `|"ftp://x/"`, "http:// or https://"},
		{"notify without secret", notifyWith(""), `|notify "n"`, "needs a secret"},
		{"notify secret without prefix", notifyWith("    secret = \"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n"), `|"MfKQ9r8G`, `does not start with "whsec_"`},
		{"notify secret not base64", notifyWith("    secret = \"whsec_not base64!\"\n"), `|"whsec_not`, "not standard base64"},
		{"notify secret too short", notifyWith("    secret = \"whsec_c2hvcnQ=\"\n"), `|"whsec_c2`, "decodes to 5 bytes"},
		{"notify secret too long", notifyWith("    secret = \"whsec_" + strings.Repeat("AAAA", 22) + "\"\n"), `|"whsec_AAAA`, "decodes to 66 bytes"},
		{"notify bad event", notifyWith("    secret = \"" + testSecret + "\"\n    events = [\"sync.failed\", \"sync.done\"]\n"), `|"sync.done"`, `"sync.done" is not an event`},
		{"notify empty events", notifyWith("    secret = \"" + testSecret + "\"\n    events = []\n"), "events = |[]", "must not be empty"},
		{"notify bad format", notifyWith("    secret = \"" + testSecret + "\"\n    format = \"teams\"\n"), `|"teams"`, `"", "slack" or "nango"`},
		{"notify skip_empty not bool", notifyWith("    secret = \"" + testSecret + "\"\n    skip_empty = \"no\"\n"), `|"no"`, "a bool is required"},
		{"duplicate api_token", layerWith("  api_token \"t\" {\n    token_sha256 = \"" + testHash + "\"\n  }\n  api_token \"t\" {\n    token_sha256 = \"" + testHash + "\"\n  }\n"), `#2:|api_token "t"`, `Duplicate api_token "t"`},
		{"api_token without hash", layerWith("  api_token \"t\" {\n  }\n"), `api_token "t" |{`, `The argument "token_sha256" is required`},
		{"api_token bad hash", layerWith("  api_token \"t\" {\n    token_sha256 = \"" + testHash[:63] + "\"\n  }\n"), `|"` + testHash[:10], "64 hexadecimal"},
		{"api_token unknown source", layerWith("  api_token \"t\" {\n    token_sha256 = \"" + testHash + "\"\n    sources = [\"s\", \"shop\"]\n  }\n"), `|"shop"`, `names source "shop", which this layer does not have; its sources are "s"`},
		{"syntax error", "layer \"l\" {\n  source \"s\" { plugin = }\n}\n", "plugin = |}", "Invalid expression"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := loadErrors(t, "bad.hcl", tc.src)
			where := "bad.hcl:" + position(t, tc.src, tc.at) + ": error: "
			found := false
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, where) && strings.Contains(line, tc.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("want a line with %q and %q, got:\n%s--- source:\n%s", where, tc.want, out, tc.src)
			}
		})
	}
}

func TestDuplicateNamesTheFirst(t *testing.T) {
	src := "layer \"l\" {\n  source \"s\" { plugin = \"p\" }\n  source \"s\" { plugin = \"q\" }\n}\n"
	out := loadErrors(t, "dup.hcl", src)
	if !strings.Contains(out, "dup.hcl:3:3: error: Duplicate source \"s\"") || !strings.Contains(out, "already declared at ") || !strings.Contains(out, "dup.hcl:2:3;") {
		t.Errorf("diagnostic should point at the duplicate and name the first:\n%s", out)
	}
}

func TestEnvFunction(t *testing.T) {
	t.Setenv("CFG_TEST_SET", "from-env")
	t.Setenv("CFG_TEST_EMPTY", "")
	t.Setenv("CFG_TEST_UNSET", "") // restored after the test
	os.Unsetenv("CFG_TEST_UNSET")

	src := `service {
  listen      = env("CFG_TEST_UNSET", "127.0.0.1:1234")
  admin_token = env("CFG_TEST_SET")
  data_dir    = "${env("CFG_TEST_SET", "x")}-dir"
  log_level   = "${env("CFG_TEST_EMPTY", "x")}info"
}
layer "l" {
  source "s" { plugin = "p" }
}
`
	dir := t.TempDir()
	cfg := mustLoad(t, writeFile(t, dir, "env.hcl", src))
	if cfg.Service.Listen != "127.0.0.1:1234" {
		t.Errorf("env with default for unset variable = %q", cfg.Service.Listen)
	}
	if cfg.Service.AdminToken != "from-env" {
		t.Errorf("env of set variable = %q", cfg.Service.AdminToken)
	}
	if cfg.Service.DataDir != filepath.Join(dir, "from-env-dir") {
		t.Errorf("env in a template = %q", cfg.Service.DataDir)
	}
	if cfg.Service.LogLevel != "info" {
		t.Errorf("a variable set to \"\" must win over the default, got %q", cfg.Service.LogLevel)
	}

	unset := "service {\n  admin_token = env(\"CFG_TEST_UNSET\")\n}\nlayer \"l\" {\n  source \"s\" { plugin = \"p\" }\n}\n"
	out := loadErrors(t, "env.hcl", unset)
	want := "env.hcl:" + position(t, unset, `= |env(`) + ": error: "
	if !strings.Contains(out, want) || !strings.Contains(out, "environment variable CFG_TEST_UNSET is not set; set it or give env() a default") {
		t.Errorf("unset variable: got\n%s", out)
	}

	tooMany := "service {\n  admin_token = env(\"A\", \"b\", \"c\")\n}\nlayer \"l\" {\n  source \"s\" { plugin = \"p\" }\n}\n"
	if out := loadErrors(t, "env.hcl", tooMany); !strings.Contains(out, "env.hcl:2:") {
		t.Errorf("env with three arguments: got\n%s", out)
	}
}

func TestFileFunction(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "conf/secrets/token.txt", "tok-from-file")
	writeFile(t, dir, "token.txt", "wrong file")
	path := writeFile(t, dir, "conf/layer.hcl", `
service {
  admin_token = file("secrets/token.txt")
}
layer "l" {
  source "s" {
    plugin = "p"
    config {
      token = file("secrets/token.txt")
      greeting = "hello ${file("secrets/token.txt")}"
    }
  }
}
`)
	// The working directory must not matter.
	t.Chdir(dir)
	cfg := mustLoad(t, path)
	if cfg.Service.AdminToken != "tok-from-file" {
		t.Errorf("file() = %q", cfg.Service.AdminToken)
	}
	js, diags := DecodeSourceConfig(cfg.Layers[0].Sources[0], []Field{
		{Name: "token", Type: cty.String},
		{Name: "greeting", Type: cty.String},
	})
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}
	if want := `{"greeting":"hello tok-from-file","token":"tok-from-file"}`; string(js) != want {
		t.Errorf("config = %s, want %s", js, want)
	}

	missing := "service {\n  admin_token = file(\"nope.txt\")\n}\nlayer \"l\" {\n  source \"s\" { plugin = \"p\" }\n}\n"
	out := loadErrors(t, "f.hcl", missing)
	if !strings.Contains(out, "f.hcl:2:17: error: ") || !strings.Contains(out, "nope.txt") {
		t.Errorf("missing file: got\n%s", out)
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.hcl", `
service {
  listen = "127.0.0.1:1"
}
plugin "p" {
  path = "p-bin"
}
layer "one" {
  source "s" { plugin = "p" }
}
`)
	b := writeFile(t, dir, "b.hcl", `
layer "two" {
  source "s" { plugin = "p" }
}
`)
	writeFile(t, dir, "notes.txt", "not hcl {")
	writeFile(t, dir, ".hidden.hcl", "broken {")
	writeFile(t, dir, "sub/c.hcl", "broken {")

	cfg := mustLoad(t, dir)
	if !reflect.DeepEqual(cfg.Files, []string{a, b}) {
		t.Errorf("Files = %v", cfg.Files)
	}
	if cfg.Service.Listen != "127.0.0.1:1" || cfg.Plugins["p"] == nil || cfg.Plugins["p"].Path != filepath.Join(dir, "p-bin") {
		t.Errorf("merged config: service %+v plugins %v", cfg.Service, cfg.Plugins)
	}
	if len(cfg.Layers) != 2 || cfg.Layers[0].Name != "one" || cfg.Layers[1].Name != "two" {
		t.Errorf("layers = %v", cfg.Layers)
	}

	// Duplicates across files name both.
	writeFile(t, dir, "c.hcl", "service {}\n\nlayer \"one\" {\n  source \"s\" { plugin = \"p\" }\n}\n")
	_, diags := Load(dir)
	out := FormatDiagnostics(diags)
	if !strings.Contains(out, "c.hcl:1:1: error: Duplicate service block") || !strings.Contains(out, "a.hcl:2:1") {
		t.Errorf("second service in another file: got\n%s", out)
	}
	if !strings.Contains(out, "c.hcl:3:1: error: Duplicate layer \"one\"") {
		t.Errorf("duplicate layer in another file: got\n%s", out)
	}
}

func TestLoadBadPaths(t *testing.T) {
	dir := t.TempDir()
	if _, diags := Load(filepath.Join(dir, "missing.hcl")); !diags.HasErrors() || !strings.Contains(FormatDiagnostics(diags), "missing.hcl: error: ") {
		t.Errorf("missing file: %s", FormatDiagnostics(diags))
	}
	if _, diags := Load(dir); !diags.HasErrors() || !strings.Contains(FormatDiagnostics(diags), "No configuration files") {
		t.Errorf("empty directory: %s", FormatDiagnostics(diags))
	}
}

func TestFormatDiagnostics(t *testing.T) {
	rng := &hcl.Range{Filename: "dir/file.hcl", Start: hcl.Pos{Line: 3, Column: 7}, End: hcl.Pos{Line: 3, Column: 9}}
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Bad thing", Detail: "It is bad.\nReally.", Subject: rng},
		{Severity: hcl.DiagWarning, Summary: "Odd thing", Subject: rng},
		{Severity: hcl.DiagError, Summary: "No place", Detail: "Somewhere."},
		{Severity: hcl.DiagError, Summary: "Whole file", Subject: &hcl.Range{Filename: "x.hcl"}},
	}
	want := "dir/file.hcl:3:7: error: Bad thing; It is bad. Really.\n" +
		"dir/file.hcl:3:7: warning: Odd thing\n" +
		"error: No place; Somewhere.\n" +
		"x.hcl: error: Whole file\n"
	if got := FormatDiagnostics(diags); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if FormatDiagnostics(nil) != "" {
		t.Error("no diagnostics should format as empty")
	}
}

func TestLoadConnectionsAndConcurrency(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "c.hcl", `
service {
  max_concurrent_runs = 4
  plugin_idle_timeout = "90s"
}
layer "l" {
  keep_for    = "2h"
  inbox_limit = 50
  source "crm" {
    plugin              = "rest"
    connections         = true
    max_concurrent_runs = 2
  }
  source "plain" {
    plugin = "files"
  }
  api_token "t" {
    token_sha256 = "`+testHash+`"
    connections  = ["acme", "globex"]
  }
}
`)
	cfg := mustLoad(t, path)
	if cfg.Service.MaxConcurrentRuns != 4 || cfg.Service.PluginIdleTimeout != 90*time.Second {
		t.Errorf("service %+v", cfg.Service)
	}
	l := cfg.Layers[0]
	if l.KeepFor != 2*time.Hour || l.InboxLimit != 50 {
		t.Errorf("keep_for %v inbox_limit %d", l.KeepFor, l.InboxLimit)
	}
	if s := l.Source("crm"); !s.Connections || s.MaxConcurrentRuns != 2 {
		t.Errorf("crm %+v", s)
	}
	if s := l.Source("plain"); s.Connections || s.MaxConcurrentRuns != DefaultSourceConcurrentRuns {
		t.Errorf("plain: connections %v max %d", s.Connections, s.MaxConcurrentRuns)
	}
	if got := l.APITokens[0].Connections; len(got) != 2 || got[1] != "globex" {
		t.Errorf("token connections %v", got)
	}

	bad := writeFile(t, dir, "bad.hcl", `
service { max_concurrent_runs = 0 }
layer "l" {
  source "s" {
    plugin = "files"
    max_concurrent_runs = -1
  }
}
`)
	_, diags := Load(bad)
	if msg := FormatDiagnostics(diags); strings.Count(msg, "max_concurrent_runs must be at least 1") != 2 {
		t.Errorf("diagnostics:\n%s", msg)
	}
}
