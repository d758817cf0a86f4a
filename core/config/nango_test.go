package config

import (
	"strings"
	"testing"
)

// A notify block of format "nango" takes any non-empty secret (Nango's
// signing key, used as it is) and only the events Nango has webhooks for.
func TestLoadNangoNotify(t *testing.T) {
	path := writeFile(t, t.TempDir(), "n.hcl", `
layer "l" {
  source "s" { plugin = "p" }
  notify "app" {
    url    = "https://app.example.com/nango"
    format = "nango"
    secret = " not a whsec secret "
  }
  notify "failures" {
    url    = "https://app.example.com/nango"
    format = "nango"
    secret = "k"
    events = ["sync.failed"]
  }
}
`)
	cfg := mustLoad(t, path)
	n := cfg.Layers[0].Notify[0]
	if n.Format != NotifyFormatNango || n.Secret != " not a whsec secret " {
		t.Errorf("notify = %+v: want format nango and the secret as written", n)
	}
	if strings.Join(n.Events, ",") != "sync.completed,sync.failed" {
		t.Errorf("default events of a nango notify = %v, want sync.completed and sync.failed", n.Events)
	}
	if f := cfg.Layers[0].Notify[1]; strings.Join(f.Events, ",") != "sync.failed" {
		t.Errorf("events = %v", f.Events)
	}
}

func TestLoadNangoNotifyValidation(t *testing.T) {
	notify := func(body string) string {
		return "layer \"l\" {\n  source \"s\" { plugin = \"p\" }\n  notify \"n\" {\n    url = \"https://example.com/h\"\n    format = \"nango\"\n" + body + "  }\n}\n"
	}
	cases := []struct{ name, src, want string }{
		{"no secret", notify(""), `with format "nango" it is the key of the X-Nango-Hmac-Sha256 signature`},
		{"empty secret", notify("    secret = \"  \"\n"), "secret must not be empty"},
		{"event without a Nango webhook", notify("    secret = \"k\"\n    events = [\"sync.started\"]\n"), `"sync.started" has no Nango webhook; with format "nango" use "sync.completed" or "sync.failed"`},
		{"unknown event", notify("    secret = \"k\"\n    events = [\"sync.done\"]\n"), `"sync.done" is not an event`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "n.hcl", c.src)
			_, diags := Load(path)
			if !diags.HasErrors() {
				t.Fatal("loaded; want an error")
			}
			if got := FormatDiagnostics(diags); !strings.Contains(got, c.want) {
				t.Errorf("diagnostics:\n%s\nwant them to contain %q", got, c.want)
			}
		})
	}
}
