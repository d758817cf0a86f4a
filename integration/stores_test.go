package integration

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/synclayer/synclayer/plugins/postgres/pgtest"
)

// onEachStore runs test once per store driver, as subtests: "badger" (the
// embedded default) and "postgres" (a database of its own on a throwaway
// server the package's tests share): SPEC §16 asks every guarantee of
// §4–§8 of both, tested by the same tests. The hosts the postgres subtest
// starts get a store block (and an encryption key, which connections on
// that driver need) written into their configuration.
func onEachStore(t *testing.T, test func(t *testing.T)) {
	t.Run("badger", test)
	t.Run("postgres", func(t *testing.T) {
		storeDSN.Store(t, sharedPostgres(t).Database(t))
		test(t)
	})
}

// storeDSN holds the dsn of the postgres subtests' databases, by test.
var storeDSN sync.Map

var postgresServer struct {
	once sync.Once
	srv  *pgtest.Server
	err  error
}

// sharedPostgres starts the package's PostgreSQL server on first use;
// TestMain stops it. A missing server fails the test (never skips).
func sharedPostgres(t *testing.T) *pgtest.Server {
	t.Helper()
	postgresServer.once.Do(func() { postgresServer.srv, postgresServer.err = pgtest.New() })
	if postgresServer.err != nil {
		t.Fatal(postgresServer.err)
	}
	return postgresServer.srv
}

func stopSharedPostgres() {
	if postgresServer.srv != nil {
		postgresServer.srv.Stop()
	}
}

var serviceBlock = regexp.MustCompile(`(?m)^service\s*\{[ \t]*$`)

// useTestStore writes the store block of t's driver into the configuration
// at path (a file or a folder of *.hcl files); nothing for badger.
func useTestStore(t *testing.T, path string) {
	t.Helper()
	v, ok := storeDSN.Load(t)
	if !ok {
		return
	}
	settings := fmt.Sprintf("  store {\n    driver = \"postgres\"\n    dsn    = %q\n  }\n", v.(string))
	files := []string{path}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		files, _ = filepath.Glob(filepath.Join(path, "*.hcl"))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		if strings.Contains(src, `driver = "postgres"`) {
			return // written by an earlier start
		}
		if loc := serviceBlock.FindStringIndex(src); loc != nil {
			extra := settings
			if !strings.Contains(src, "encryption_key") {
				extra += "  encryption_key = \"integration-test-key-0123456789a\"\n"
			}
			writeFile(t, f, src[:loc[1]]+"\n"+extra+src[loc[1]:])
			return
		}
	}
	block := "service {\n" + settings + "  encryption_key = \"integration-test-key-0123456789a\"\n}\n"
	if len(files) == 1 && files[0] == path {
		b, _ := os.ReadFile(path)
		writeFile(t, path, block+string(b))
		return
	}
	writeFile(t, filepath.Join(path, "zz-store.hcl"), block)
}

// assertNoSecretsInDatabase reads every row of every table of the
// postgres store's database, as text, and fails when one holds a secret.
func assertNoSecretsInDatabase(t *testing.T, dsn string, secrets []string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for _, table := range tables {
		// Row text renders bytea as hex: search both forms.
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+table+` t`)
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range texts {
			read++
			for _, s := range secrets {
				if strings.Contains(text, s) || strings.Contains(text, hex.EncodeToString([]byte(s))) {
					t.Errorf("table %s holds a connection's token in plaintext", table)
				}
			}
		}
	}
	if read == 0 {
		t.Fatalf("no row in the store's database")
	}
}
