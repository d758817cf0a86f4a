package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.uber.org/goleak"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const postsJSON = `[
  {"id": 1, "title": "Hello"},
  {
    "id": "p-2",
    "title": "World", "tags": ["a", "b"]
  }
]
`

const commentsJSONL = `{"id":"c1","post":1,"body":"first"}
{"id":"c2","post":1,"body":"second"}

{"id":"c3","post":"p-2","body":"third"}
`

const authorsCSV = "id,name,email\n" +
	"a1,Ada,ada@example.com\n" +
	"a2,\"Grace, H.\",grace@example.com\n"

func setup(t *testing.T) (string, *sdktest.Harness) {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "Post.json", postsJSON)
	write(t, dir, "Comment.jsonl", commentsJSONL)
	write(t, dir, "Author.csv", authorsCSV)
	write(t, dir, "README.md", "not data")
	return dir, sdktest.New(t, &Files{})
}

// summary renders changes as "Model/id" or "-Model/id" for deletes, sorted.
func summary(cs []sdktest.Change) string {
	var out []string
	for _, c := range cs {
		s := c.Model + "/" + c.ID
		if c.Delete {
			s = "-" + s
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func syncOpts(dir string, full bool, cp sdk.Checkpoint, models ...string) sdktest.SyncOptions {
	return sdktest.SyncOptions{Config: map[string]any{"dir": dir}, Sync: "files", Full: full, Checkpoint: cp, Models: models}
}

func TestDescribe(t *testing.T) {
	dir, h := setup(t)
	d, err := h.Describe(nil)
	if err != nil || d.Name != "files" || len(d.Models) != 0 {
		t.Fatalf("static: %v %+v", err, d)
	}
	if f := d.Field("dir"); f == nil || !f.Required {
		t.Fatalf("dir: %+v", d.Config)
	}
	if f := d.Field("id_field"); f == nil || f.Required {
		t.Fatalf("id_field: %+v", d.Config)
	}
	d, err = h.Describe(map[string]any{"dir": dir})
	if err != nil {
		t.Fatal(err)
	}
	var models []string
	for _, m := range d.Models {
		models = append(models, m.Name)
	}
	if strings.Join(models, ",") != "Author,Comment,Post" {
		t.Fatalf("models %v", models)
	}
	if len(d.Syncs) != 1 || d.Syncs[0].Name != "files" || !d.Syncs[0].Incremental || strings.Join(d.Syncs[0].Models, ",") != "Author,Comment,Post" {
		t.Fatalf("syncs %+v", d.Syncs)
	}
	if err := h.Check(t.Context(), map[string]any{"dir": filepath.Join(dir, "nope")}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("check: %v", err)
	}
}

func TestFullRun(t *testing.T) {
	dir, h := setup(t)
	res, err := h.Sync(t.Context(), syncOpts(dir, true, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(res.Changes); got != "Author/a1 Author/a2 Comment/c1 Comment/c2 Comment/c3 Post/1 Post/p-2" {
		t.Fatalf("changes %s", got)
	}
	data := map[string]string{}
	for _, c := range res.Changes {
		data[c.Model+"/"+c.ID] = string(c.Data)
	}
	if data["Author/a2"] != `{"id":"a2","name":"Grace, H.","email":"grace@example.com"}` {
		t.Errorf("csv record %s", data["Author/a2"])
	}
	var post map[string]any
	if err := json.Unmarshal([]byte(data["Post/p-2"]), &post); err != nil || post["title"] != "World" {
		t.Errorf("json record %s", data["Post/p-2"])
	}
	if data["Comment/c3"] != `{"id":"c3","post":"p-2","body":"third"}` {
		t.Errorf("jsonl record %s", data["Comment/c3"])
	}
	// A checkpoint after each file.
	if n := len(res.Checkpoints()); n != 3 {
		t.Errorf("%d checkpoints, want 3", n)
	}
	files := res.Checkpoint["files"].(map[string]any)
	post1 := files["Post.json"].(map[string]any)
	if fmt.Sprint(post1["ids"]) != "[1 p-2]" || len(post1["sha256"].(string)) != 64 {
		t.Errorf("checkpoint %v", post1)
	}
}

func TestIncrementalReadsOnlyChangedFiles(t *testing.T) {
	dir, h := setup(t)
	first, err := h.Sync(t.Context(), syncOpts(dir, true, nil))
	if err != nil {
		t.Fatal(err)
	}

	// Nothing changed: nothing emitted.
	res, err := h.Sync(t.Context(), syncOpts(dir, false, first.Checkpoint))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 0 {
		t.Fatalf("unchanged files produced changes: %s", summary(res.Changes))
	}

	// One file changes: c2 removed, c3 edited, c4 added.
	write(t, dir, "Comment.jsonl", `{"id":"c1","post":1,"body":"first"}
{"id":"c3","post":"p-2","body":"third, edited"}
{"id":"c4","post":1,"body":"fourth"}
`)
	res, err = h.Sync(t.Context(), syncOpts(dir, false, first.Checkpoint))
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(res.Changes); got != "-Comment/c2 Comment/c1 Comment/c3 Comment/c4" {
		t.Fatalf("changes %s", got)
	}
	// And the run after that sees nothing new.
	again, err := h.Sync(t.Context(), syncOpts(dir, false, res.Checkpoint))
	if err != nil || len(again.Changes) != 0 {
		t.Fatalf("%v %s", err, summary(again.Changes))
	}
}

func TestRemovedFileDeletesItsRecords(t *testing.T) {
	dir, h := setup(t)
	first, err := h.Sync(t.Context(), syncOpts(dir, true, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "Author.csv")); err != nil {
		t.Fatal(err)
	}
	// The host asks for the models it knew of, Author among them.
	res, err := h.Sync(t.Context(), syncOpts(dir, false, first.Checkpoint, "Author", "Comment", "Post"))
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(res.Changes); got != "-Author/a1 -Author/a2" {
		t.Fatalf("changes %s", got)
	}
	if _, ok := res.Checkpoint["files"].(map[string]any)["Author.csv"]; ok {
		t.Fatalf("the checkpoint still has the removed file: %v", res.Checkpoint)
	}
}

func TestRemovedFileWithoutModelsListed(t *testing.T) {
	dir, h := setup(t)
	first, err := h.Sync(t.Context(), syncOpts(dir, true, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "Comment.jsonl")); err != nil {
		t.Fatal(err)
	}
	// No models listed: the run covers the models there are now, and still
	// deletes the records of the model that went away.
	res, err := h.Sync(t.Context(), syncOpts(dir, false, first.Checkpoint))
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(res.Changes); got != "-Comment/c1 -Comment/c2 -Comment/c3" {
		t.Fatalf("changes %s", got)
	}
	// A run limited to one model leaves the others alone.
	write(t, dir, "Author.csv", "id,name\na9,New\n")
	res, err = h.Sync(t.Context(), syncOpts(dir, false, res.Checkpoint, "Post"))
	if err != nil || len(res.Changes) != 0 {
		t.Fatalf("%v %s", err, summary(res.Changes))
	}
	res, err = h.Sync(t.Context(), syncOpts(dir, false, res.Checkpoint, "Author"))
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(res.Changes); got != "-Author/a1 -Author/a2 Author/a9" {
		t.Fatalf("changes %s", got)
	}
}

func TestFullRunDeletesVanishedIDs(t *testing.T) {
	dir, h := setup(t)
	first, err := h.Sync(t.Context(), syncOpts(dir, true, nil))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "Post.json", `[{"id": 1, "title": "Hello"}]`)
	res, err := h.Sync(t.Context(), syncOpts(dir, true, first.Checkpoint))
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(res.Changes); got != "-Post/p-2 Author/a1 Author/a2 Comment/c1 Comment/c2 Comment/c3 Post/1" {
		t.Fatalf("changes %s", got)
	}
}

func TestFormatChangeKeepsIDs(t *testing.T) {
	dir, h := setup(t)
	first, err := h.Sync(t.Context(), syncOpts(dir, true, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "Author.csv")); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "Author.jsonl", `{"id":"a1","name":"Ada"}`+"\n")
	res, err := h.Sync(t.Context(), syncOpts(dir, false, first.Checkpoint, "Author", "Comment", "Post"))
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(res.Changes); got != "-Author/a2 Author/a1" {
		t.Fatalf("changes %s", got)
	}
}

func TestMissingIDNamesFileAndLine(t *testing.T) {
	cases := []struct{ name, content, want string }{
		{"Post.json", "[\n  {\"id\": 1},\n\n  {\"title\": \"no id\"}\n]", `Post.json line 4: record has no "id" attribute`},
		{"Post.json", "[{\"id\": 1}, {\"id\": null}]", `Post.json line 1: record has a null "id"`},
		{"Post.json", "[\n{\"id\": 1},\n{\"id\": true}]", `Post.json line 3: record's "id" (the id_field) must be a string or a number, not true`},
		{"Post.json", "[\n{\"id\": 1},\n 5]", `Post.json line 3: a record must be a JSON object`},
		{"Post.json", "[\n{\"id\": 1},\n{\"id\": }]", `Post.json line 3: invalid JSON`},
		{"Post.json", `{"id": 1}`, `Post.json line 1: expected a JSON array of objects`},
		{"Post.jsonl", "{\"id\":1}\n\n{\"title\":\"x\"}\n", `Post.jsonl line 3: record has no "id" attribute`},
		{"Post.jsonl", "{\"id\":1}\n{\"id\":\"\"}\n", `Post.jsonl line 2: record has an empty "id"`},
		{"Post.csv", "id,title\n1,a\n\"2\",\"multi\nline\"\n,c\n", `Post.csv line 5: record has an empty "id"`},
		{"Post.csv", "title\nx\n", `Post.csv line 1: the header has no "id" column`},
		{"Post.csv", "id,title\n1,a,extra\n", `Post.csv line 2: invalid CSV: wrong number of fields`},
		{"Post.jsonl", "{\"id\":1}\n{\"id\":1}\n", `Post.jsonl line 2: id "1" appears twice in the file`},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, tc.name, tc.content)
			h := sdktest.New(t, &Files{})
			_, err := h.Sync(t.Context(), syncOpts(dir, true, nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNumberIDsAndIDField(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "Item.json", `[{"slug": 17, "id": "x"}, {"slug": -2.5}, {"slug": "s"}]`)
	h := sdktest.New(t, &Files{})
	res, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: map[string]any{"dir": dir, "id_field": "slug"}, Sync: "files", Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(res.Changes); got != "Item/-2.5 Item/17 Item/s" {
		t.Fatalf("changes %s", got)
	}
	if string(res.Changes[0].Data) != `{"slug": 17, "id": "x"}` {
		t.Fatalf("data changed: %s", res.Changes[0].Data)
	}
}

func TestTwoFilesForOneModel(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "Post.json", `[]`)
	write(t, dir, "Post.csv", "id\n1\n")
	h := sdktest.New(t, &Files{})
	want := `model "Post" has two files in ` + dir + `: Post.csv and Post.json; keep one`
	if _, err := h.Describe(map[string]any{"dir": dir}); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("describe: %v", err)
	}
	if _, err := h.Sync(t.Context(), syncOpts(dir, true, nil)); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("sync: %v", err)
	}
}

func TestEmptyFilesAndDir(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "A.json", "")
	write(t, dir, "B.jsonl", "\n")
	write(t, dir, "C.csv", "")
	write(t, dir, "D.json", " [ ] ")
	h := sdktest.New(t, &Files{})
	res, err := h.Sync(t.Context(), syncOpts(dir, true, nil))
	if err != nil || len(res.Changes) != 0 || res.Checkpoint == nil {
		t.Fatalf("%v %+v", err, res)
	}
	empty := t.TempDir()
	res, err = h.Sync(t.Context(), syncOpts(empty, true, nil))
	if err != nil || len(res.Changes) != 0 || res.Checkpoint == nil {
		t.Fatalf("empty dir: %v %+v", err, res)
	}
}

func TestRelativeDir(t *testing.T) {
	dir, h := setup(t)
	t.Chdir(filepath.Dir(dir))
	res, err := h.Sync(t.Context(), syncOpts(filepath.Base(dir), true, nil))
	if err != nil || len(res.Changes) != 7 {
		t.Fatalf("%v %d", err, len(res.Changes))
	}
}
