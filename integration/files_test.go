package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const filesLayer = `
layer "blog" {
  source "content" {
    plugin = "files"
    config {
      dir = "./data"
    }
  }
}
`

// TestFilesSyncEndToEnd syncs a folder of files through the real plugin,
// edits the files, syncs again through the CLI and reads exactly the changes
// after the previous cursor, over HTTP and through the CLI.
func TestFilesSyncEndToEnd(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "layer.hcl"), filesLayer)
	writeFile(t, filepath.Join(dir, "data", "Post.json"), `[
  {"id": "p-1", "title": "One"},
  {"id": "p-2", "title": "Two"},
  {"id": "p-3", "title": "Three"}
]`)
	writeFile(t, filepath.Join(dir, "data", "Author.csv"), "id,name\na-1,Ada\na-2,Grace\n")
	writeFile(t, filepath.Join(dir, "data", "Tag.jsonl"), `{"id": 1, "name": "go"}`+"\n")

	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")
	h.waitRevision("blog", 1, 30*time.Second)

	all := h.records("blog", "limit=2")
	if len(all) != 6 {
		t.Fatalf("first sync: %d records, want 6: %v", len(all), all)
	}
	for _, r := range all {
		if r.meta("last_action") != "ADDED" || r.meta("source") != "content" || r.meta("revision").(float64) != 1 {
			t.Fatalf("bad record after first sync: %v", r)
		}
	}
	prev := all[len(all)-1].meta("cursor").(string)

	var revs struct {
		Revisions []struct {
			Revision int64  `json:"revision"`
			Trigger  string `json:"trigger"`
		} `json:"revisions"`
	}
	h.call("GET", "/v1/layers/blog/revisions", nil, 200, &revs)
	if len(revs.Revisions) != 1 || revs.Revisions[0].Trigger != "startup" {
		t.Fatalf("revisions after start: %+v", revs)
	}

	// Edit: update p-2, delete p-3, add p-4; the Tag file disappears; the
	// Author file is untouched.
	writeFile(t, filepath.Join(dir, "data", "Post.json"), `[
  {"id": "p-1", "title": "One"},
  {"id": "p-2", "title": "Two, edited"},
  {"id": "p-4", "title": "Four"}
]`)
	if err := os.Remove(filepath.Join(dir, "data", "Tag.jsonl")); err != nil {
		t.Fatal(err)
	}
	out, err := h.cli("sync", "blog", "--wait")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "completed") || !strings.Contains(out, "revision 2") {
		t.Fatalf("sync --wait printed:\n%s", out)
	}

	want := map[string]string{"p-2": "UPDATED", "p-3": "DELETED", "p-4": "ADDED", "1": "DELETED"}
	check := func(how string, got []record) {
		t.Helper()
		actions := map[string]string{}
		for _, r := range got {
			actions[fmt.Sprint(r["id"])] = r.meta("last_action").(string)
			if r.meta("revision").(float64) != 2 {
				t.Fatalf("%s: record %v not from revision 2", how, r)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: got %v, want %v", how, actions, want)
		}
		for id, a := range want {
			if actions[id] != a {
				t.Fatalf("%s: got %v, want %v", how, actions, want)
			}
		}
	}
	check("HTTP", h.records("blog", "cursor="+prev))

	out, err = h.cli("records", "blog", "--cursor", prev)
	if err != nil {
		t.Fatal(err)
	}
	var lines []record
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("records printed a line that is not JSON: %q", sc.Text())
		}
		lines = append(lines, r)
	}
	check("CLI", lines)

	// The deleted post keeps its last payload, with deleted_at set.
	del := h.records("blog", "model=Post&ids=p-3")
	if len(del) != 1 || del[0]["title"] != "Three" || del[0].meta("deleted_at") == nil {
		t.Fatalf("deleted record: %v", del)
	}
	// modified_after of revision 2's time returns exactly its changes.
	mod := del[0].meta("last_modified_at").(string)
	check("modified_after", h.records("blog", "modified_after="+mod))

	// A sync that changes nothing still publishes a revision, and changes
	// no record.
	out, err = h.cli("sync", "blog", "content", "files", "--wait")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "revision 3") {
		t.Fatalf("unchanged sync printed:\n%s", out)
	}
	if got := h.records("blog", "cursor="+prev); len(got) != 4 {
		t.Fatalf("unchanged sync changed records: %v", got)
	}

	// The other read commands of the CLI.
	if out, err := h.cli("plugins"); err != nil || !strings.Contains(out, "files") || !strings.Contains(out, "generator") {
		t.Fatalf("plugins: %v\n%s", err, out)
	}
	if out, err := h.cli("events", "blog"); err != nil || !strings.Contains(out, "sync.completed") {
		t.Fatalf("events: %v\n%s", err, out)
	}
	if out, err := h.cli("revisions", "blog"); err != nil || strings.Count(out, "\n") != 4 {
		t.Fatalf("revisions (a header and 3 rows): %v\n%s", err, out)
	}

	// A restart with the same configuration keeps everything and starts no
	// run.
	h.stop()
	h.start()
	time.Sleep(300 * time.Millisecond)
	h.call("GET", "/v1/layers/blog/revisions", nil, 200, &revs)
	if len(revs.Revisions) != 3 {
		t.Fatalf("after restart: %d revisions, want 3", len(revs.Revisions))
	}
	if got := h.records("blog", ""); len(got) != 7 {
		t.Fatalf("after restart: %d records, want 7", len(got))
	}
}

// TestValidateReportsPosition checks that a broken layer file is reported
// with file:line:col and a non-zero exit.
func TestValidateReportsPosition(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "broken.hcl")
	writeFile(t, path, "layer \"x\" {\n  source \"s\" {\n    plugin = files\n  }\n}\n")
	out, err := exec.Command(bin("synclayer"), "validate", "--config", path).CombinedOutput()
	if err == nil {
		t.Fatalf("validate succeeded on a broken file:\n%s", out)
	}
	if !regexp.MustCompile(`broken\.hcl:3:\d+`).Match(out) {
		t.Fatalf("validate output has no broken.hcl:3:COL:\n%s", out)
	}

	// A config block that does not fit the connector's schema is caught too.
	writeFile(t, path, "layer \"x\" {\n  source \"s\" {\n    plugin = \"files\"\n    config {\n      dir = \"./d\"\n      nope = 1\n    }\n  }\n}\n")
	cmd := exec.Command(bin("synclayer"), "validate", "--config", path)
	cmd.Env = append(os.Environ(), "SYNCLAYER_PLUGIN_PATH="+binDir)
	out, err = cmd.CombinedOutput()
	if err == nil || !regexp.MustCompile(`broken\.hcl:6:\d+`).Match(out) {
		t.Fatalf("validate with an unknown config attribute: err=%v\n%s", err, out)
	}
}

// TestGeneratorRunThroughPlugin syncs generator records and checks counts,
// an incremental run and an unchanged full run.
func TestGeneratorRunThroughPlugin(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "layer.hcl"), `
layer "gen" {
  source "g" {
    plugin = "generator"
    config {
      records       = 5000
      payload_bytes = 300
      models        = ["Item", "Order"]
      change_ratio  = 0.01
    }
  }
}
`)
	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")
	h.waitRevision("gen", 1, 60*time.Second)
	var p recordsPage
	h.call("GET", "/v1/layers/gen/records?model=Order&limit=10000", nil, 200, &p)
	if len(p.Records) != 5000 || p.NextCursor != nil {
		t.Fatalf("Order records: %d (next %v)", len(p.Records), p.NextCursor)
	}
	last := p.Records[len(p.Records)-1].meta("cursor").(string)

	var run struct {
		Run string `json:"run"`
	}
	h.call("POST", "/v1/layers/gen/syncs", map[string]any{"source": "g"}, 202, &run)
	r := h.waitRun("gen", run.Run, time.Minute)
	if r.State != "completed" || r.Counts["g"]["Item"]["updated"] != 50 || r.Counts["g"]["Order"]["updated"] != 50 {
		t.Fatalf("incremental run: %+v", r)
	}
	changed := h.records("gen", "model=Order&cursor="+last)
	if len(changed) != 50 {
		t.Fatalf("%d Order records after the cursor, want 50", len(changed))
	}

	// A full run from scratch (reset) compares every record and changes none.
	h.call("POST", "/v1/layers/gen/syncs", map[string]any{"reset": true}, 202, &run)
	r = h.waitRun("gen", run.Run, time.Minute)
	if r.State != "completed" {
		t.Fatalf("reset run: %+v", r)
	}
	// A reset run starts from generation 0 again: the 50 changed records of
	// each model return to their first version, the rest are unchanged.
	if c := r.Counts["g"]["Item"]; c["updated"] != 50 || c["unchanged"] != 4950 || c["added"] != 0 {
		t.Fatalf("reset run counts: %+v", c)
	}
}
