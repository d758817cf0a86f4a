package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// Version is the connector's version.
const Version = "0.1.0"

// SyncName is the connector's only sync.
const SyncName = "files"

// Config is the connector's configuration (SPEC §11 files).
type Config struct {
	Dir     string `config:"dir,required" doc:"Folder holding <Model>.json (an array of objects), <Model>.jsonl and <Model>.csv (header row) files. A relative path is relative to the layer file's directory."`
	IDField string `config:"id_field" doc:"Attribute holding each record's id (default \"id\"); string or number."`
}

func decodeConfig(decode func(any) error) (*Config, error) {
	cfg := &Config{IDField: "id"}
	if err := decode(cfg); err != nil {
		return nil, err
	}
	if cfg.IDField == "" {
		cfg.IDField = "id"
	}
	return cfg, nil
}

// Files reads records from files; every file is one model.
type Files struct{}

var (
	_ sdk.ConnectorWithConfiguredModels = (*Files)(nil)
	_ sdk.ConnectorWithCheck            = (*Files)(nil)
)

// Describe implements sdk.Connector. The models depend on the folder's
// content, so they come from Configure.
func (f *Files) Describe() sdk.Description {
	return sdk.Description{
		Name:    "files",
		Version: Version,
		Config:  (*Config)(nil),
		Syncs:   []sdk.SyncSpec{{Name: SyncName, Incremental: true}},
	}
}

// Configure implements sdk.ConnectorWithConfiguredModels: one model per
// data file in dir, one sync covering them all.
func (f *Files) Configure(ctx context.Context, req *sdk.ConfigRequest) (*sdk.Description, error) {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return nil, err
	}
	files, err := scan(cfg.Dir)
	if err != nil {
		return nil, err
	}
	d := &sdk.Description{Syncs: []sdk.SyncSpec{{Name: SyncName, Incremental: true}}}
	for _, df := range files {
		d.Models = append(d.Models, sdk.Model{Name: df.model, Description: "Records of " + df.name})
		d.Syncs[0].Models = append(d.Syncs[0].Models, df.model)
	}
	return d, nil
}

// Check implements sdk.ConnectorWithCheck: the folder is readable and holds
// at most one file per model.
func (f *Files) Check(ctx context.Context, req *sdk.CheckRequest) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	_, err = scan(cfg.Dir)
	return err
}

// dataFile is one <Model>.<ext> file of the folder.
type dataFile struct {
	name   string // base name, the checkpoint's key
	path   string
	model  string
	format string // "json", "jsonl" or "csv"
}

// scan lists the folder's data files, sorted by name. Two files for one
// model are an error.
func scan(dir string) ([]dataFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			abs, _ := filepath.Abs(dir)
			return nil, fmt.Errorf("dir %q does not exist (%s); a relative dir is relative to the layer file's directory", dir, abs)
		}
		return nil, fmt.Errorf("reading dir %q: %w", dir, err)
	}
	var out []dataFile
	byModel := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		ext := filepath.Ext(name)
		format := strings.TrimPrefix(strings.ToLower(ext), ".")
		if format != "json" && format != "jsonl" && format != "csv" {
			continue
		}
		model := strings.TrimSuffix(name, ext)
		if model == "" {
			continue
		}
		if other, dup := byModel[model]; dup {
			return nil, fmt.Errorf("model %q has two files in %s: %s and %s; keep one", model, dir, other, name)
		}
		byModel[model] = name
		out = append(out, dataFile{name: name, path: filepath.Join(dir, name), model: model, format: format})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// fileState is what the checkpoint keeps per file.
type fileState struct {
	Model  string   `json:"model"`
	SHA256 string   `json:"sha256"`
	IDs    []string `json:"ids"`
}

// state is the checkpoint: {"files": {"Post.json": {...}}}.
type state struct {
	Files map[string]*fileState `json:"files"`
}

func (s *state) checkpoint() sdk.Checkpoint { return sdk.Checkpoint{"files": s.Files} }

// Sync implements sdk.Connector.
//
// A run reads every file of a requested model, except that an incremental
// run (not Full, with a checkpoint) skips files whose content is unchanged
// since the checkpoint. A file that was read deletes the ids it held before
// and no longer holds; a file that disappeared deletes all its ids (but those
// now held by the model's new file, when it changed format), whether or not
// the host still lists its model. The checkpoint is written after each file.
func (f *Files) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	files, err := scan(cfg.Dir)
	if err != nil {
		return err
	}
	prev := state{Files: map[string]*fileState{}}
	if req.Checkpoint != nil {
		if err := req.Checkpoint.Decode(&prev); err != nil {
			return fmt.Errorf("the checkpoint is not one of this connector's; reset the sync: %w", err)
		}
		if prev.Files == nil {
			prev.Files = map[string]*fileState{}
		}
	}
	incremental := !req.Full && req.Checkpoint != nil
	requested := map[string]bool{}
	for _, m := range req.Models {
		requested[m] = true
	}

	// The new state starts as the old one: entries of skipped files stay.
	cur := state{Files: make(map[string]*fileState, len(prev.Files))}
	for k, v := range prev.Files {
		cur.Files[k] = v
	}
	present := map[string]bool{}
	modelFile := map[string]string{} // model -> its current file
	wrote := false

	for _, df := range files {
		present[df.name] = true
		modelFile[df.model] = df.name
		if !requested[df.model] {
			req.Logger.Debug("skipping a file whose model this run does not fetch", "file", df.name)
			continue
		}
		old := prev.Files[df.name]
		if incremental && old != nil {
			sum, err := hashFile(df.path)
			if err != nil {
				return err
			}
			if sum == old.SHA256 && old.Model == df.model {
				req.Logger.Debug("unchanged", "file", df.name)
				continue
			}
		}
		st, err := readFile(ctx, w, df, cfg.IDField)
		if err != nil {
			return err
		}
		deleted := 0
		if old != nil {
			now := setOf(st.IDs)
			var gone []string
			for _, id := range old.IDs {
				if !now[id] {
					gone = append(gone, id)
				}
			}
			if err := w.Delete(ctx, df.model, gone...); err != nil {
				return err
			}
			deleted = len(gone)
		}
		cur.Files[df.name] = st
		req.Logger.Info("read file", "file", df.name, "model", df.model, "records", len(st.IDs), "deleted", deleted)
		if err := w.Progress(ctx, df.model, int64(len(st.IDs)), int64(len(st.IDs))); err != nil {
			return err
		}
		if err := w.Checkpoint(ctx, cur.checkpoint()); err != nil {
			return err
		}
		wrote = true
	}

	// Files that disappeared.
	var vanished []string
	for name := range prev.Files {
		if !present[name] {
			vanished = append(vanished, name)
		}
	}
	sort.Strings(vanished)
	for _, name := range vanished {
		old := prev.Files[name]
		_, modelStays := modelFile[old.Model]
		if !requested[old.Model] && modelStays {
			// Another file holds the model now, and this run does not
			// fetch it: leave both to a run that does.
			req.Logger.Warn("a file disappeared but its model is not part of this run; its records stay until a run that fetches it", "file", name, "model", old.Model)
			continue
		}
		keep := map[string]bool{}
		if other, ok := modelFile[old.Model]; ok && cur.Files[other] != nil {
			keep = setOf(cur.Files[other].IDs)
		}
		var gone []string
		for _, id := range old.IDs {
			if !keep[id] {
				gone = append(gone, id)
			}
		}
		if err := w.Delete(ctx, old.Model, gone...); err != nil {
			return err
		}
		delete(cur.Files, name)
		req.Logger.Info("file disappeared", "file", name, "model", old.Model, "deleted", len(gone))
		if err := w.Checkpoint(ctx, cur.checkpoint()); err != nil {
			return err
		}
		wrote = true
	}
	if !wrote { // every run ends with its state, even when nothing changed
		return w.Checkpoint(ctx, cur.checkpoint())
	}
	return nil
}

func setOf(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readFile streams the file's records to w and returns its new state. The
// hash is of the bytes actually parsed, so a file rewritten during the run is
// simply read again by the next incremental run.
func readFile(ctx context.Context, w *sdk.Writer, df dataFile, idField string) (*fileState, error) {
	fh, err := os.Open(df.path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	h := sha256.New()
	r := io.TeeReader(fh, h)
	st := &fileState{Model: df.model, IDs: []string{}}
	seen := map[string]bool{}
	emit := func(line int, id string, data []byte) error {
		if seen[id] {
			return fmt.Errorf("%s line %d: id %q appears twice in the file", df.path, line, id)
		}
		seen[id] = true
		st.IDs = append(st.IDs, id)
		return w.SaveRaw(ctx, df.model, id, data)
	}
	switch df.format {
	case "json":
		err = readJSON(r, df.path, idField, emit)
	case "jsonl":
		err = readJSONL(r, df.path, idField, emit)
	case "csv":
		err = readCSV(r, df.path, idField, emit)
	}
	if err != nil {
		return nil, err
	}
	// Hash whatever the parser left unread (it normally reads to EOF).
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, fmt.Errorf("reading %s: %w", df.path, err)
	}
	st.SHA256 = hex.EncodeToString(h.Sum(nil))
	return st, nil
}
