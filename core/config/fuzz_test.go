package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// FuzzLoad writes arbitrary bytes as a layer file and loads it: Load never
// panics, returns a config exactly when there is no error, puts every
// error at a place in that file, and a loaded config is one the rest of the
// host can rely on (named blocks, a source in every layer, defaults set).
// Each loaded source's config block is also decoded against a small schema
// and hashed, as the engine does at start.
//
//	go test -run='^$' -fuzz='^FuzzLoad$' -fuzztime=30s ./core/config
//
// More seeds live in testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	for _, seed := range loadSeeds {
		f.Add([]byte(seed))
	}
	if b, err := os.ReadFile("../../configs/demo.hcl"); err == nil {
		f.Add(b)
	}

	dir := f.TempDir()
	// A file for file() to read, and a data dir for the files connector.
	if err := os.WriteFile(filepath.Join(dir, "token.txt"), []byte("s3cret\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(dir, "layers.hcl")
	schema := []Field{
		{Name: "dir", Type: cty.String},
		{Name: "records", Type: cty.Number},
		{Name: "models", Type: cty.List(cty.String)},
		{Name: "token", Type: cty.String, Sensitive: true},
		{Name: "headers", Type: cty.Map(cty.String), Sensitive: true},
		{Name: "extra"}, // any
	}

	f.Fuzz(func(t *testing.T, src []byte) {
		// Layer files are trusted input, and file() reads whatever path it
		// is given: keep the fuzzer away from device files that never end.
		for _, bad := range []string{"/dev", "/proc", "/sys", "fd/"} {
			if bytes.Contains(src, []byte(bad)) {
				t.Skip()
			}
		}
		if err := os.WriteFile(path, src, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, diags := Load(path)
		_ = FormatDiagnostics(diags)
		if diags.HasErrors() {
			if cfg != nil {
				t.Fatalf("Load returned a config with errors:\n%s", FormatDiagnostics(diags))
			}
			for _, d := range diags {
				if d.Severity != hcl.DiagError {
					continue
				}
				if d.Subject == nil || d.Subject.Filename != path {
					t.Fatalf("error without a place in %s: %+v", path, d)
				}
			}
			return
		}
		if cfg == nil {
			t.Fatal("Load returned neither a config nor an error")
		}
		checkLoaded(t, cfg, path)
		for _, l := range cfg.Layers {
			for _, s := range l.Sources {
				raw, ds := DecodeSourceConfig(s, schema)
				_ = FormatDiagnostics(ds)
				if ds.HasErrors() {
					continue
				}
				if raw == nil {
					t.Fatalf("source %q: DecodeSourceConfig returned no JSON and no error", s.Name)
				}
				_ = SourceHash(s.Plugin, raw, s.Syncs)
				_ = SensitiveValues(s, schema, raw)
			}
		}
	})
}

// checkLoaded checks what Load promises of a configuration without errors.
func checkLoaded(t *testing.T, cfg *Config, path string) {
	t.Helper()
	svc := cfg.Service
	if svc.Listen == "" || svc.DataDir == "" || svc.LogLevel == "" || svc.LogFormat == "" {
		t.Fatalf("service defaults not applied: %+v", svc)
	}
	if len(cfg.Files) != 1 || cfg.Files[0] != path {
		t.Fatalf("Files = %v", cfg.Files)
	}
	for name, p := range cfg.Plugins {
		if p == nil || p.Name != name || !identRe.MatchString(name) {
			t.Fatalf("plugin %q: %+v", name, p)
		}
		if p.SHA256 != "" && (len(p.SHA256) != 64 || strings.ToLower(p.SHA256) != p.SHA256) {
			t.Fatalf("plugin %q: sha256 %q", name, p.SHA256)
		}
	}
	layers := map[string]bool{}
	for _, l := range cfg.Layers {
		if !identRe.MatchString(l.Name) || layers[l.Name] {
			t.Fatalf("layer name %q invalid or repeated", l.Name)
		}
		layers[l.Name] = true
		if len(l.Sources) == 0 {
			t.Fatalf("layer %q without sources", l.Name)
		}
		if l.KeepRevisions < 1 || l.EventRetention <= 0 {
			t.Fatalf("layer %q: keep_revisions %d, event_retention %s", l.Name, l.KeepRevisions, l.EventRetention)
		}
		if cfg.Layer(l.Name) != l {
			t.Fatalf("Config.Layer(%q) is another layer", l.Name)
		}
		for _, s := range l.Sources {
			if !identRe.MatchString(s.Name) || !identRe.MatchString(s.Plugin) {
				t.Fatalf("layer %q: source %q, plugin %q", l.Name, s.Name, s.Plugin)
			}
			if l.Source(s.Name) != s {
				t.Fatalf("Layer.Source(%q) is another source", s.Name)
			}
			for _, y := range s.Syncs {
				if y.Every != 0 && y.Cron != "" {
					t.Fatalf("sync %q has both every and cron", y.Name)
				}
				if y.Merging != MergeOverride && y.Merging != MergeIgnoreIfModifiedAfter {
					t.Fatalf("sync %q: merging %q", y.Name, y.Merging)
				}
				if y.Retry.Attempts < 0 || y.Retry.Backoff < 0 || y.Retry.Max < 0 {
					t.Fatalf("sync %q: retry %+v", y.Name, y.Retry)
				}
			}
		}
		for _, n := range l.Notify {
			if n.URL == "" || (n.Secret == "" && n.Format != "slack") || len(n.Events) == 0 {
				t.Fatalf("notify %q: %+v", n.Name, n)
			}
		}
		for _, tok := range l.APITokens {
			if len(tok.TokenSHA256) != 64 {
				t.Fatalf("api_token %q: token_sha256 %q", tok.Name, tok.TokenSHA256)
			}
		}
	}
}

// loadSeeds cover every block and attribute, the functions, and a few
// broken files.
var loadSeeds = []string{
	``,
	`service {}`,
	`layer "a" {}`,
	`service {
  listen         = "127.0.0.1:8750"
  data_dir       = "./data"
  encryption_key = env("SYNCLAYER_FUZZ_UNSET", "0123456789abcdef")
  admin_token    = env("SYNCLAYER_FUZZ_UNSET", "")
  log_level      = "debug"
  log_format     = "json"
}
plugin "files" {
  path   = "./bin/synclayer-plugin-files"
  sha256 = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
}
layer "catalog" {
  keep_revisions  = 20
  event_retention = "120h"
  source "shop" {
    plugin       = "files"
    memory_limit = "512MiB"
    config {
      dir     = "./data"
      records = 10
      models  = ["Product", "Collection"]
      token   = file("token.txt")
      headers = { Authorization = "Bearer ${env("SYNCLAYER_FUZZ_UNSET", "x")}" }
      extra   = { a = [1, true, null], b = "c" }
    }
    sync "products" {
      models        = ["Product"]
      every         = "1h"
      track_deletes = true
      merging       = "ignore_if_modified_after"
      timeout       = "30m"
      retry {
        attempts = 5
        backoff  = "10s"
        max      = "10m"
      }
    }
    sync "nightly" {
      cron = "0 3 * * *"
    }
  }
  notify "app" {
    url        = "http://127.0.0.1:3000/hooks/synclayer"
    secret     = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    events     = ["sync.completed", "sync.failed"]
    skip_empty = true
  }
  notify "ops" {
    url    = "https://hooks.slack.com/services/T/B/x"
    format = "slack"
  }
  api_token "storefront" {
    token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    models       = ["Product"]
    sources      = ["shop"]
  }
}
`,
	`layer "x" {
  source "s" {
    plugin = "files"
    sync "y" {
      every = "1h"
      cron  = "* * * * *"
    }
  }
}`,
	`layer "x" {
  keep_revisions = 1e30
  source "s" { plugin = "files" }
  source "s" { plugin = "files" }
}`,
	`layer "x" {
  source "s" {
    plugin = "files"
    config { dir = env() }
    config { dir = file("") }
  }
}`,
	`layer "1bad" {
  source "s" {
    plugin = "fi les"
  }
}`,
	`layer "x" {
  source "s" {
    plugin = "files"
    sync "y" {
      models = ["", null]
      retry {
        max     = "1s"
        backoff = "1m"
      }
      retry {}
    }
  }
  notify "n" {
    url    = "ftp://x"
    events = []
    secret = null
  }
  api_token "t" {
    token_sha256 = "zz"
    sources      = ["nope"]
  }
}`,
	`layer "x" {
  source "s" {
    plugin       = "files"
    memory_limit = "0"
  }
}`,
	`layer "x" {
  source "s" {
    plugin = "files"
    config {
      extra = [for i in [1, 2, 3] : i * 2]
      dir   = "${"a"}%{ if true }b%{ endif }"
    }
  }
}`,
	"layer \"x\" {\n  source \"s\" {\n    plugin = <<EOT\nfiles\nEOT\n  }\n}\n",
	`layer "x" {
  source "s" {
    plugin = "files"
    config {
      token = sensitive("x")
    }
  }
}`,
	`layer "x" {
  source "s" {
    plugin = "files"
    config {
      records = -1
      nope    = true
    }
  }
}
layer "x" {}`,
	`service {
  listen    = "nope"
  data_dir  = ""
  log_level = "loud"
}
service {}`,
	`layer "x" { source "s" { plugin = "files"`,
	"\xff\xfe\x00",
}
