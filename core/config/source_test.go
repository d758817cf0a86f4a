package config

import (
	"bytes"
	"encoding/hex"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// loadSource loads a one-layer file whose source "s" has the given body
// lines and returns that source, with the file's text.
func loadSource(t *testing.T, body string) (*Source, string) {
	t.Helper()
	src := "layer \"l\" {\n  source \"s\" {\n    plugin = \"rest\"\n" + body + "  }\n}\n"
	cfg := mustLoad(t, writeFile(t, t.TempDir(), "src.hcl", src))
	return cfg.Layers[0].Sources[0], src
}

// restFields is a schema with one field of each kind.
var restFields = []Field{
	{Name: "base_url", Type: cty.String, Required: true},
	{Name: "port", Type: cty.Number},
	{Name: "ratio", Type: cty.Number},
	{Name: "verbose", Type: cty.Bool},
	{Name: "models", Type: cty.List(cty.String)},
	{Name: "headers", Type: cty.Map(cty.String), Sensitive: true},
	{Name: "extra", Type: cty.DynamicPseudoType},
	{Name: "webhook_secret", Type: cty.String, Sensitive: true},
}

func TestDecodeSourceConfig(t *testing.T) {
	t.Setenv("API_TOKEN", "tok-123")
	t.Setenv("CFG_TEST_NOT_SET", "") // restored after the test
	os.Unsetenv("CFG_TEST_NOT_SET")
	cases := []struct {
		name   string
		body   string
		want   string // JSON; empty when an error is expected
		errAt  string // marker (see position); "source" for the source block
		errHas string
	}{
		{
			name: "every kind",
			body: `    config {
      base_url = "http://127.0.0.1:9000"
      port     = 8080
      ratio    = 0.01
      verbose  = true
      models   = ["Post", "User"]
      headers  = { Authorization = "Bearer ${env("API_TOKEN")}" }
      extra    = { nested = [1, "two", { three = 3 }], on = false }
    }
`,
			want: `{"base_url":"http://127.0.0.1:9000","extra":{"nested":[1,"two",{"three":3}],"on":false},"headers":{"Authorization":"Bearer tok-123"},"models":["Post","User"],"port":8080,"ratio":0.01,"verbose":true}`,
		},
		{
			name: "optional omitted and null left out",
			body: "    config {\n      base_url = \"http://x\"\n      port = null\n    }\n",
			want: `{"base_url":"http://x"}`,
		},
		{
			name: "conversions",
			body: "    config {\n      base_url = \"http://x\"\n      port = \"80\"\n      verbose = \"false\"\n      extra = \"plain\"\n    }\n",
			want: `{"base_url":"http://x","extra":"plain","port":80,"verbose":false}`,
		},
		{
			name:   "missing required",
			body:   "    config {\n      port = 1\n    }\n",
			errAt:  "|config {",
			errHas: `Missing required argument; The argument "base_url" is required`,
		},
		{
			name:   "missing required without config block",
			body:   "",
			errAt:  `|source "s"`,
			errHas: `needs a config block with the argument "base_url"`,
		},
		{
			name:   "unknown attribute",
			body:   "    config {\n      base_url = \"http://x\"\n      base_uri = \"http://y\"\n    }\n",
			errAt:  "|base_uri",
			errHas: `An argument named "base_uri" is not expected here. Valid attributes for plugin "rest": base_url, extra, headers, models, port, ratio, verbose, webhook_secret.`,
		},
		{
			name:   "nested block",
			body:   "    config {\n      base_url = \"http://x\"\n      page {}\n    }\n",
			errAt:  "|page {}",
			errHas: "Unsupported block type",
		},
		{
			name:   "wrong number",
			body:   "    config {\n      base_url = \"http://x\"\n      port = \"eighty\"\n    }\n",
			errAt:  `|"eighty"`,
			errHas: `Inappropriate value for attribute "port": a number is required.`,
		},
		{
			name:   "wrong list",
			body:   "    config {\n      base_url = \"http://x\"\n      models = \"Post\"\n    }\n",
			errAt:  `models = |"Post"`,
			errHas: `list of string required`,
		},
		{
			name:   "wrong map",
			body:   "    config {\n      base_url = \"http://x\"\n      headers = [\"a\"]\n    }\n",
			errAt:  `|["a"]`,
			errHas: `map of string required`,
		},
		{
			name:   "unset env",
			body:   "    config {\n      base_url = env(\"CFG_TEST_NOT_SET\")\n    }\n",
			errAt:  `|env(`,
			errHas: "environment variable CFG_TEST_NOT_SET is not set",
		},
		{
			// A variable's name is not secret: it is how the user finds
			// what to set.
			name:   "unset env in a sensitive attribute",
			body:   "    config {\n      base_url = \"http://x\"\n      webhook_secret = env(\"CFG_TEST_NOT_SET\")\n    }\n",
			errAt:  `webhook_secret = |env(`,
			errHas: "environment variable CFG_TEST_NOT_SET is not set",
		},
		{
			name:   "unset short env in a sensitive map",
			body:   "    config {\n      base_url = \"http://x\"\n      headers = { A = \"Bearer ${env(\"TOK\")}\" }\n    }\n",
			errAt:  `|env("TOK")`,
			errHas: "environment variable TOK is not set",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, text := loadSource(t, tc.body)
			js, diags := DecodeSourceConfig(s, restFields)
			out := FormatDiagnostics(diags)
			if tc.want != "" {
				if diags.HasErrors() {
					t.Fatalf("unexpected errors:\n%s", out)
				}
				if string(js) != tc.want {
					t.Errorf("JSON =\n%s\nwant\n%s", js, tc.want)
				}
				return
			}
			if !diags.HasErrors() || js != nil {
				t.Fatalf("want an error, got JSON %s, diags %q", js, out)
			}
			where := "src.hcl:" + position(t, text, tc.errAt) + ": error: "
			if !strings.Contains(out, where) || !strings.Contains(out, tc.errHas) {
				t.Errorf("want %q and %q in:\n%s", where, tc.errHas, out)
			}
		})
	}
}

func TestDecodeSourceConfigEmpty(t *testing.T) {
	s, _ := loadSource(t, "")
	js, diags := DecodeSourceConfig(s, []Field{{Name: "opt", Type: cty.String}})
	if diags.HasErrors() || string(js) != "{}" {
		t.Errorf("no config block, no required field: %s %s", js, FormatDiagnostics(diags))
	}
	s, _ = loadSource(t, "    config {}\n")
	js, diags = DecodeSourceConfig(s, nil)
	if diags.HasErrors() || string(js) != "{}" {
		t.Errorf("empty config block, no fields: %s %s", js, FormatDiagnostics(diags))
	}
	s, _ = loadSource(t, "    config {\n      x = 1\n    }\n")
	_, diags = DecodeSourceConfig(s, nil)
	if out := FormatDiagnostics(diags); !strings.Contains(out, `Plugin "rest" takes no configuration attributes.`) {
		t.Errorf("attribute for a plugin without a schema: %s", out)
	}
}

// A sensitive value must not appear in any diagnostic, however the config
// is wrong.
func TestDecodeSourceConfigNeverLeaksSensitiveValues(t *testing.T) {
	const secret = "s3cr3t-VALUE-do-not-print"
	t.Setenv("CFG_TEST_SECRET", secret)
	fields := []Field{
		{Name: "token", Type: cty.String, Sensitive: true},
		{Name: "pin", Type: cty.Number, Sensitive: true},
		{Name: "flag", Type: cty.Bool, Sensitive: true},
		{Name: "headers", Type: cty.Map(cty.String), Sensitive: true},
		{Name: "dsn", Type: cty.String, Required: true, Sensitive: true},
		{Name: "any", Type: cty.DynamicPseudoType, Sensitive: true},
	}
	bodies := []string{
		`pin = env("CFG_TEST_SECRET")`,
		`pin = "` + secret + `"`,
		`flag = env("CFG_TEST_SECRET")`,
		`token = [env("CFG_TEST_SECRET")]`,
		`token = { a = 1 }[env("CFG_TEST_SECRET")]`,
		`token = { a = 1 }.b == env("CFG_TEST_SECRET")`,
		`token = "${env("CFG_TEST_SECRET")}" + 1`,
		`token = env("CFG_TEST_SECRET") ? "a" : "b"`,
		`headers = { a = env("CFG_TEST_SECRET"), b = ["x"] }`,
		`headers = env("CFG_TEST_SECRET")`,
		`any = env("CFG_TEST_SECRET")[0]`,
		`any = { k = env("CFG_TEST_SECRET") }.k.x`,
		`toke = env("CFG_TEST_SECRET")`,
		// HCL names the key of a duplicate in a for expression.
		`any = { for k in [env("CFG_TEST_SECRET"), env("CFG_TEST_SECRET")] : k => 1 }`,
		`headers = { for k in ["` + secret + `", "` + secret + `"] : k => "v" }`,
		`token = env("CFG_TEST_SECRET", "x", "y")`,
	}
	for _, b := range bodies {
		t.Run(b, func(t *testing.T) {
			body := "    config {\n      dsn = \"postgres://u:" + secret + "@h/db\"\n      " + b + "\n    }\n"
			s, _ := loadSource(t, body)
			_, diags := DecodeSourceConfig(s, fields)
			if !diags.HasErrors() {
				t.Fatalf("expected an error")
			}
			var texts bytes.Buffer
			texts.WriteString(FormatDiagnostics(diags))
			for _, d := range diags {
				texts.WriteString(d.Summary + "\n" + d.Detail + "\n")
			}
			// HCL's own printer shows expression values when it can.
			w := hcl.NewDiagnosticTextWriter(&texts, nil, 0, false)
			if err := w.WriteDiagnostics(diags); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(texts.String(), secret) {
				t.Errorf("secret leaked:\n%s", texts.String())
			}
		})
	}
}

func TestSensitiveValues(t *testing.T) {
	t.Setenv("API_TOKEN", "tok-123")
	s, _ := loadSource(t, `    config {
      base_url       = "http://public.example"
      headers        = { Authorization = "Bearer ${env("API_TOKEN")}", Empty = "" }
      webhook_secret = "hook-secret"
      extra          = { deep = ["public-but-not-marked"] }
    }
`)
	js, diags := DecodeSourceConfig(s, restFields)
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}
	got := SensitiveValues(s, restFields, js)
	want := []string{"Bearer tok-123", "hook-secret"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SensitiveValues = %q, want %q", got, want)
	}

	// Nested values of a sensitive "any" field.
	fields := []Field{{Name: "any", Type: cty.DynamicPseudoType, Sensitive: true}, {Name: "pub", Type: cty.String}}
	js2 := []byte(`{"any":{"a":["x1",{"b":"y22"}],"n":5,"e":"","dup":"x1"},"pub":"visible"}`)
	if got := SensitiveValues(nil, fields, js2); !reflect.DeepEqual(got, []string{"y22", "x1"}) {
		t.Errorf("nested SensitiveValues = %q", got)
	}

	// Without JSON the block itself is evaluated; function results count.
	got = SensitiveValues(s, restFields, nil)
	want = []string{"Bearer tok-123", "hook-secret", "tok-123"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SensitiveValues from the block = %q, want %q", got, want)
	}
	if got := SensitiveValues(s, []Field{{Name: "base_url", Type: cty.String}}, js); got != nil {
		t.Errorf("no sensitive field: %q", got)
	}
}

func TestSourceHash(t *testing.T) {
	syncs := func() []*Sync {
		return []*Sync{
			{Name: "products", Models: []string{"Product", "Variant"}, Merging: MergeOverride, Every: time.Hour},
			{Name: "collections", TrackDeletes: true, Merging: MergeIgnoreIfModifiedAfter},
		}
	}
	cfg := []byte(`{"a":1,"b":{"c":"x","d":[1,2]}}`)
	base := SourceHash("shopify", cfg, syncs())

	if len(base) != 64 {
		t.Fatalf("hash %q is not 64 hex characters", base)
	}
	if _, err := hex.DecodeString(base); err != nil {
		t.Fatalf("hash %q is not hex", base)
	}
	// A golden value: the hash is stored, so its encoding must not drift.
	const golden = "37013b9e2d43d5ee0bc93f8db95d9c7778a061dc58633632b5d81d4eb408ac7f"
	if base != golden {
		t.Errorf("SourceHash = %s, want %s (the encoding changed; bump sourceHashVersion if on purpose)", base, golden)
	}

	same := map[string]func() string{
		"again":      func() string { return SourceHash("shopify", cfg, syncs()) },
		"key order":  func() string { return SourceHash("shopify", []byte(`{ "b": {"d":[1,2], "c":"x"}, "a": 1 }`), syncs()) },
		"sync order": func() string { y := syncs(); y[0], y[1] = y[1], y[0]; return SourceHash("shopify", cfg, y) },
		"model order": func() string {
			y := syncs()
			y[0].Models = []string{"Variant", "Product"}
			return SourceHash("shopify", cfg, y)
		},
		"default merging": func() string { y := syncs(); y[0].Merging = ""; return SourceHash("shopify", cfg, y) },
		"schedule": func() string {
			y := syncs()
			y[0].Every, y[1].Cron, y[0].Timeout = time.Minute, "0 3 * * *", time.Hour
			y[1].Retry = Retry{Attempts: 3, Backoff: time.Second}
			return SourceHash("shopify", cfg, y)
		},
	}
	for name, f := range same {
		if h := f(); h != base {
			t.Errorf("%s: hash changed (%s != %s)", name, h, base)
		}
	}

	different := map[string]func() string{
		"plugin":        func() string { return SourceHash("shopify2", cfg, syncs()) },
		"config value":  func() string { return SourceHash("shopify", []byte(`{"a":2,"b":{"c":"x","d":[1,2]}}`), syncs()) },
		"config list":   func() string { return SourceHash("shopify", []byte(`{"a":1,"b":{"c":"x","d":[2,1]}}`), syncs()) },
		"config number": func() string { return SourceHash("shopify", []byte(`{"a":1.0,"b":{"c":"x","d":[1,2]}}`), syncs()) },
		"no config":     func() string { return SourceHash("shopify", nil, syncs()) },
		"not json":      func() string { return SourceHash("shopify", []byte(`{"a":1`), syncs()) },
		"models":        func() string { y := syncs(); y[0].Models = []string{"Product"}; return SourceHash("shopify", cfg, y) },
		"track_deletes": func() string { y := syncs(); y[1].TrackDeletes = false; return SourceHash("shopify", cfg, y) },
		"merging":       func() string { y := syncs(); y[1].Merging = MergeOverride; return SourceHash("shopify", cfg, y) },
		"sync removed":  func() string { return SourceHash("shopify", cfg, syncs()[:1]) },
		"sync renamed":  func() string { y := syncs(); y[1].Name = "colls"; return SourceHash("shopify", cfg, y) },
	}
	seen := map[string]string{base: "base"}
	for name, f := range different {
		h := f()
		if prev, dup := seen[h]; dup {
			t.Errorf("%s: hash equal to %s's", name, prev)
		}
		seen[h] = name
	}
}
