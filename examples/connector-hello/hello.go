package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// Config is what a layer file's config block holds:
//
//	config {
//	  file     = "./names.txt"
//	  greeting = "Hi"
//	}
type Config struct {
	File     string `config:"file,required" doc:"Text file with one name per line."`
	Greeting string `config:"greeting" doc:"How to greet (default \"Hello\")."`
}

// Hello greets everyone in the file.
type Hello struct{}

// Describe tells the host who we are: name, config schema, models, syncs.
func (h *Hello) Describe() sdk.Description {
	return sdk.Description{
		Name:    "hello",
		Version: "0.1.0",
		Config:  (*Config)(nil),
		Models: []sdk.Model{{
			Name:        "Greeting",
			Description: "A greeting for one person",
			Fields:      []sdk.ModelField{{Name: "id", Type: "string"}, {Name: "text", Type: "string"}},
		}},
		Syncs: []sdk.SyncSpec{{Name: "greetings", Models: []string{"Greeting"}, Every: time.Hour, Incremental: true}},
	}
}

// greeting is one record.
type greeting struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// Sync writes a Greeting per name. The checkpoint maps each name to a hash
// of its greeting, so an incremental run writes only new or changed
// greetings and deletes those of names that left the file.
func (h *Hello) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
	cfg := Config{Greeting: "Hello"}               // defaults first ...
	if err := req.DecodeConfig(&cfg); err != nil { // ... then what the user set
		return err
	}
	names, err := readNames(cfg.File)
	if err != nil {
		return err
	}
	var prev struct {
		Seen map[string]string `json:"seen"`
	}
	if !req.Full && req.Checkpoint != nil {
		if err := req.Checkpoint.Decode(&prev); err != nil {
			return fmt.Errorf("unreadable checkpoint; reset the sync: %w", err)
		}
	}
	seen := map[string]string{}
	for _, name := range names {
		g := greeting{ID: name, Text: fmt.Sprintf("%s, %s!", cfg.Greeting, name)}
		seen[name] = hash(g.Text)
		if prev.Seen[name] == seen[name] {
			continue // unchanged since the last run: nothing to send
		}
		if err := w.Save(ctx, "Greeting", g); err != nil {
			return err
		}
	}
	var gone []string
	for name := range prev.Seen {
		if _, ok := seen[name]; !ok {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	if err := w.Delete(ctx, "Greeting", gone...); err != nil {
		return err
	}
	req.Logger.Info("greeted", "names", len(names), "gone", len(gone))
	return w.Checkpoint(ctx, sdk.Checkpoint{"seen": seen})
}

func readNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the names: %w", err)
	}
	defer f.Close()
	var names []string
	dup := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name := strings.TrimSpace(sc.Text()); name != "" && !dup[name] {
			dup[name] = true
			names = append(names, name)
		}
	}
	return names, sc.Err()
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}
