package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
)

func writeNames(t testing.TB, path, names string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(names), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHello runs one sync and looks at what it wrote.
func TestHello(t *testing.T) {
	file := filepath.Join(t.TempDir(), "names.txt")
	writeNames(t, file, "Ada\nGrace\n")
	h := sdktest.New(t, &Hello{})
	res, err := h.Sync(t.Context(), sdktest.SyncOptions{
		Config: map[string]any{"file": file, "greeting": "Hi"},
		Sync:   "greetings",
		Full:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 2 || string(res.Changes[0].Data) != `{"id":"Ada","text":"Hi, Ada!"}` {
		t.Fatalf("changes: %+v", res.Changes)
	}
}

// TestAcceptance checks what every connector owes the host: declared
// models only, stable ids, resumable checkpoints, incremental runs without
// repeats, no leaked goroutines.
func TestAcceptance(t *testing.T) {
	file := filepath.Join(t.TempDir(), "names.txt")
	writeNames(t, file, "Ada\nGrace\nAlan\n")
	sdktest.Acceptance{
		Config: map[string]any{"file": file},
		// Change the upstream between two incremental runs.
		Change: func(t testing.TB, sync string) { writeNames(t, file, "Ada\nAlan\nBarbara\n") },
	}.Run(t, &Hello{})
}
