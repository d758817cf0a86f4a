package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
)

// sourceHashVersion starts the hashed document; change it when the encoding
// changes.
const sourceHashVersion = "synclayer source hash v1"

// SourceHash returns the hex SHA-256 of what a source fetches, so the host
// can tell when a source's configuration changed since its last run. In:
// the plugin name; the evaluated config (configJSON, canonicalised: keys
// sorted, insignificant white space removed, numbers kept as written; bytes
// that are not JSON go in as they are); and for each sync block, in order of
// name, its name, its models (sorted), track_deletes and merging (empty
// counts as "override"). Left out on purpose, as they change when and how
// runs happen but not what they fetch: every, cron, timeout, retry, and the
// source's memory_limit. The same inputs always give the same hash.
func SourceHash(pluginName string, configJSON []byte, syncs []*Sync) string {
	type syncDoc struct {
		Name         string   `json:"name"`
		Models       []string `json:"models"`
		TrackDeletes bool     `json:"track_deletes"`
		Merging      string   `json:"merging"`
	}
	doc := struct {
		Version string          `json:"v"`
		Plugin  string          `json:"plugin"`
		Config  json.RawMessage `json:"config,omitempty"`
		RawConf []byte          `json:"raw_config,omitempty"`
		Syncs   []syncDoc       `json:"syncs"`
	}{Version: sourceHashVersion, Plugin: pluginName, Syncs: []syncDoc{}}

	if c, ok := canonicalJSON(configJSON); ok {
		doc.Config = c
	} else {
		doc.RawConf = configJSON
	}
	for _, y := range syncs {
		if y == nil {
			continue
		}
		models := append([]string{}, y.Models...)
		sort.Strings(models)
		merging := y.Merging
		if merging == "" {
			merging = MergeOverride
		}
		doc.Syncs = append(doc.Syncs, syncDoc{Name: y.Name, Models: models, TrackDeletes: y.TrackDeletes, Merging: merging})
	}
	sort.SliceStable(doc.Syncs, func(i, j int) bool { return doc.Syncs[i].Name < doc.Syncs[j].Name })

	b, err := json.Marshal(doc)
	if err != nil { // cannot happen: every part is plain data
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// canonicalJSON re-encodes JSON with sorted object keys and no white space;
// ok is false for empty input or input that is not JSON.
func canonicalJSON(b []byte) (json.RawMessage, bool) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, false
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	return out, true
}
