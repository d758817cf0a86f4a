package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nangoClientDir is the pinned @nangohq/node and the script that drives
// it: package.json and package-lock.json pin the client (npm ci installs
// exactly what the lock file says).
const nangoClientDir = "testdata/nango"

const nangoInstallHint = "the Nango compatibility test runs Nango's own Node client and needs Node.js (20 or later) and npm: apt-get install -y nodejs npm (scripts/test-deps does it in make test)"

// installNangoClient installs the pinned client into a temporary folder
// with npm ci, next to a copy of the script, and returns the folder. It
// fails, never skips, without node or npm. npm ci prefers its cache, so a
// second run needs no network.
func installNangoClient(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: %s", tool, nangoInstallHint)
		}
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "check.mjs"} {
		b, err := os.ReadFile(filepath.Join(nangoClientDir, f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, f), string(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci of the pinned @nangohq/node failed (it needs the npm registry, or npm's cache from an earlier run): %v\n%s", err, out)
	}
	return dir
}

// TestNangoClient: code written for Nango, run through Nango's own Node
// client against a real host (only host and key changed), works: records
// with cursors, limit, ids, filter and inclusive modifiedAfter, sync
// trigger, pause, start and status, connections and their metadata, and
// the client's webhook verifier on the webhooks the host sends (notify
// format "nango") to a receiver the script runs.
func TestNangoClient(t *testing.T) {
	clientDir := installNangoClient(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "contacts", "Contact.json"), `[{"id":"t0","name":"Template"}]`)
	acme := filepath.Join(dir, "acme")
	writeFile(t, filepath.Join(acme, "Contact.json"),
		`[{"id":"c1","name":"Ann"},{"id":"c2","name":"Bob"},{"id":"c3","name":"Cid"},{"id":"c4","name":"Dee"},{"id":"c5","name":"Eli"}]`)
	writeFile(t, filepath.Join(dir, "notes", "Note.json"), `[{"id":"n1","text":"one"},{"id":"n2","text":"two"}]`)
	const admin, reader, signing = "admin-token-for-nango-test", "read-token-for-nango-test", "a Nango webhook signing key"
	sum := sha256.Sum256([]byte(reader))
	receiver := freeAddr(t)
	cfg := filepath.Join(dir, "layers.hcl")
	writeFile(t, cfg, fmt.Sprintf(`
service {
  admin_token = %q
}

layer "crm" {
  source "contacts" {
    plugin      = "files"
    connections = true
    config { dir = %q }
  }
  source "notes" {
    plugin = "files"
    config { dir = %q }
  }
  notify "app" {
    url    = "http://%s/webhooks/nango"
    format = "nango"
    secret = %q
  }
  api_token "app" {
    token_sha256 = %q
  }
}
`, admin, filepath.Join(dir, "contacts"), filepath.Join(dir, "notes"), receiver, signing, hex.EncodeToString(sum[:])))
	h := startHost(t, cfg, "")
	_, port, _ := strings.Cut(receiver, ":")

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "check.mjs")
	cmd.Dir = clientDir
	cmd.Env = append(os.Environ(),
		"SYNCLAYER_URL=http://"+h.addr, "ADMIN_TOKEN="+admin, "READ_TOKEN="+reader, "SIGNING_KEY="+signing,
		"RECEIVER_PORT="+port, "ACME_DIR="+acme)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("Nango's client against synclayer: %v\n%s\nhost log:\n%s", err, out, h.logs())
	}
	t.Log(strings.TrimSpace(string(out)))
	if !strings.Contains(string(out), "checks passed") {
		t.Fatalf("the script ended without its summary:\n%s", out)
	}
}
