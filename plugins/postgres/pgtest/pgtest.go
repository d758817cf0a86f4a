// Package pgtest starts a throwaway PostgreSQL server for tests, from the
// Debian binaries (initdb, pg_ctl) in a temporary folder, on a free
// loopback port with its unix socket in that folder. The postgres
// connector's tests and the integration tests share it. (It is not under
// internal/ so that the integration tests, outside plugins/postgres, may
// import it.)
//
// PostgreSQL refuses to run as root, and CI runs as root: then the server
// runs as the "postgres" user (runuser -u postgres --) and the folder is
// owned by it. Where the binaries are missing, New fails with the command
// that installs them: tests must fail, never skip silently.
package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// InstallHint is what to run where the binaries are missing.
const InstallHint = "apt-get install -y postgresql"

// Server is a running PostgreSQL.
type Server struct {
	// Dir is the temporary folder holding the data directory, the log and
	// the socket.
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// DSN connects to the "postgres" database as the superuser "postgres"
	// over TCP, without a password.
	DSN string

	bin    string
	asUser *user.User // run as this user (when we are root)
	data   string
}

// BinDir finds the folder holding initdb and pg_ctl: the highest version
// under /usr/lib/postgresql/*/bin, else the PATH.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("pgtest: PostgreSQL's initdb and pg_ctl were not found (looked in /usr/lib/postgresql/*/bin and the PATH); install them: %s", InstallHint)
}

func version(dir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
	return v
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// New starts a server; Stop ends it and removes its folder.
func New() (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		if s.asUser, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("pgtest: running as root, PostgreSQL must run as the postgres user, which does not exist (%v); install the server package, which creates it: %s", err, InstallHint)
		}
	}
	if s.Dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return nil, err
	}
	if s.asUser != nil {
		uid, _ := strconv.Atoi(s.asUser.Uid)
		gid, _ := strconv.Atoi(s.asUser.Gid)
		if err := os.Chown(s.Dir, uid, gid); err != nil {
			s.cleanup()
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	s.data = filepath.Join(s.Dir, "data")
	if out, err := s.run("initdb", "-D", s.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	// A free port can be taken between our probe and the server's bind:
	// try a few.
	for attempt := 0; ; attempt++ {
		if s.Port, err = freePort(); err != nil {
			s.cleanup()
			return nil, err
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50", s.Port, s.Dir)
		out, err := s.run("pg_ctl", "-D", s.data, "-l", filepath.Join(s.Dir, "server.log"), "-o", opts, "-w", "-t", "60", "start")
		if err == nil {
			break
		}
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
			s.cleanup()
			return nil, fmt.Errorf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, log)
		}
	}
	s.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	return s, nil
}

// Start starts a server for the test and stops it when the test ends; it
// fails the test (never skips) when PostgreSQL cannot start.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// run runs a PostgreSQL binary, as the postgres user when we are root.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.asUser != nil {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.Dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// Stop stops the server (immediately: it is a throwaway) and removes its
// folder.
func (s *Server) Stop() error {
	defer s.cleanup()
	if out, err := s.run("pg_ctl", "-D", s.data, "-m", "immediate", "-w", "-t", "30", "stop"); err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

func (s *Server) cleanup() { os.RemoveAll(s.Dir) }

// CreateDatabase creates an empty database and returns its DSN.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: creating database %s: %w", name, err)
	}
	return strings.Replace(s.DSN, "/postgres?", "/"+name+"?", 1), nil
}

// Database creates a database named after the test (made unique) and
// returns its DSN; it fails the test on error.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("%s_%d", name, time.Now().UnixNano()%1_000_000_000)
	dsn, err := s.CreateDatabase(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// Exec runs SQL statements on dsn, failing the test on error.
func Exec(t testing.TB, dsn string, sql ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range sql {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
