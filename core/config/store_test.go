package config

import (
	"strings"
	"testing"
)

func TestLoadStoreBlock(t *testing.T) {
	cfg := mustLoad(t, writeFile(t, t.TempDir(), "a.hcl", `service {}`))
	if cfg.Service.Store.Driver != StoreBadger || cfg.Service.Store.DSN != "" {
		t.Fatalf("default store = %+v, want badger without dsn", cfg.Service.Store)
	}

	t.Setenv("SL_TEST_DSN", "postgres://u:s3cr3t-pw@db:5432/sl")
	cfg = mustLoad(t, writeFile(t, t.TempDir(), "a.hcl", `service {
  encryption_key = "0123456789abcdef0123456789abcdef"
  store {
    driver = "postgres"
    dsn    = env("SL_TEST_DSN")
  }
}
layer "l" {
  source "s" {
    plugin      = "rest"
    connections = true
  }
}`))
	if cfg.Service.Store.Driver != StorePostgres || cfg.Service.Store.DSN != "postgres://u:s3cr3t-pw@db:5432/sl" {
		t.Fatalf("store = %+v", cfg.Service.Store)
	}
	secrets := strings.Join(cfg.Service.Secrets(), "\n")
	if !strings.Contains(secrets, cfg.Service.Store.DSN) || !strings.Contains(secrets, "s3cr3t-pw") {
		t.Fatalf("the dsn and its password must be redacted from logs; secrets: %q", cfg.Service.Secrets())
	}

	for name, tc := range map[string]struct{ src, want string }{
		"unknown driver": {`service {
  store { driver = "mysql" }
}`, `"mysql"`},
		"postgres without dsn": {`service {
  store { driver = "postgres" }
}`, "Missing dsn"},
		"dsn on badger": {`service {
  store { dsn = "postgres://x@y/z" }
}`, `dsn is for driver = "postgres"`},
		"two store blocks": {`service {
  store { driver = "badger" }
  store { driver = "badger" }
}`, "Duplicate store block"},
		"connections without a shared key": {`service {
  store {
    driver = "postgres"
    dsn    = "postgres://x@y/z"
  }
}
layer "l" {
  source "s" {
    plugin      = "rest"
    connections = true
  }
}`, "Missing encryption_key"},
	} {
		t.Run(name, func(t *testing.T) {
			got := loadErrors(t, "a.hcl", tc.src)
			if !strings.Contains(got, tc.want) {
				t.Fatalf("errors do not mention %q:\n%s", tc.want, got)
			}
			if strings.Contains(got, "postgres://x@y/z") {
				t.Fatalf("an error quotes the dsn:\n%s", got)
			}
		})
	}
}
