package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The body of connections add/update: --config-file, then --config
// KEY=VALUE (strings) and KEY:=JSON over it, dotted keys nesting; tags,
// metadata and schedules; update's KEY= removes a tag.
func TestConnectionFlagsBody(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "c.json")
	os.WriteFile(cfgFile, []byte(`{"base_url":"http://x","headers":{"X-A":"1"}}`), 0o600)
	metaFile := filepath.Join(dir, "m.json")
	os.WriteFile(metaFile, []byte(`{"name":"Acme"}`), 0o600)
	cf := connectionFlags{
		config:       []string{"headers.Authorization=Bearer a=b", "limit:=50", "flag:=true", "odd=x:=y"},
		configFile:   cfgFile,
		tags:         []string{"plan=pro", "gone="},
		metadataFile: metaFile,
		every:        []string{"items=15m"},
	}
	body, err := cf.body(true)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(body)
	want := `{"config":{"base_url":"http://x","flag":true,"headers":{"Authorization":"Bearer a=b","X-A":"1"},"limit":50,"odd":"x:=y"},` +
		`"every":{"items":"15m"},"metadata":{"name":"Acme"},"tags":{"gone":null,"plan":"pro"}}`
	if string(got) != want {
		t.Fatalf("body\n got %s\nwant %s", got, want)
	}
	// add keeps an empty tag value as a value.
	cf = connectionFlags{tags: []string{"empty="}}
	body, _ = cf.body(false)
	if got, _ := json.Marshal(body); string(got) != `{"tags":{"empty":""}}` {
		t.Fatalf("add tags: %s", got)
	}
	for _, bad := range []connectionFlags{
		{config: []string{"novalue"}},
		{config: []string{"n:=not json"}},
		{config: []string{"a..b=1"}},
		{tags: []string{"=v"}},
		{every: []string{"items"}},
		{configFile: filepath.Join(dir, "missing.json")},
		{metadataFile: cfgFile + "x"},
	} {
		if _, err := bad.body(false); err == nil || strings.Contains(err.Error(), "Bearer") {
			t.Errorf("%+v: error %v", bad, err)
		}
	}
	os.WriteFile(filepath.Join(dir, "arr.json"), []byte(`[1]`), 0o600)
	if _, err := (&connectionFlags{configFile: filepath.Join(dir, "arr.json")}).body(false); err == nil {
		t.Error("a config file holding an array was taken")
	}
}
