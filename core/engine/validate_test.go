package engine

import (
	"strings"
	"testing"

	"github.com/synclayer/synclayer/core/plugin"
)

func TestValidate(t *testing.T) {
	allowed := map[string]bool{"Post": true}
	big := func(n int) []byte { // a JSON object of exactly n bytes
		return []byte(`{"x":"` + strings.Repeat("a", n-8) + `"}`)
	}
	for _, tc := range []struct {
		name    string
		in      plugin.Change
		wantErr string // empty: valid
	}{
		{"object", plugin.Change{Model: "Post", ID: "1", Data: []byte(`{"id":"1","a":[1,2]}`)}, ""},
		{"empty object", plugin.Change{Model: "Post", ID: "1", Data: []byte(`{}`)}, ""},
		{"padded object", plugin.Change{Model: "Post", ID: "1", Data: []byte(" \n{\"id\":\"1\"}\t ")}, ""},
		{"array", plugin.Change{Model: "Post", ID: "1", Data: []byte(`[{"id":"1"}]`)}, "not a JSON object"},
		{"string", plugin.Change{Model: "Post", ID: "1", Data: []byte(`"x"`)}, "not a JSON object"},
		{"number", plugin.Change{Model: "Post", ID: "1", Data: []byte(`17`)}, "not a JSON object"},
		{"null", plugin.Change{Model: "Post", ID: "1", Data: []byte(`null`)}, "not a JSON object"},
		{"nothing", plugin.Change{Model: "Post", ID: "1"}, "not a JSON object"},
		{"broken", plugin.Change{Model: "Post", ID: "1", Data: []byte(`{"id":`)}, "not a JSON object"},
		{"undeclared model", plugin.Change{Model: "Ghost", ID: "1", Data: []byte(`{}`)}, `model "Ghost", which this sync does not declare`},
		{"empty model", plugin.Change{Model: "", ID: "1", Data: []byte(`{}`)}, "does not declare"},
		{"no id", plugin.Change{Model: "Post", ID: "", Data: []byte(`{}`)}, "without an id"},
		{"id at the limit", plugin.Change{Model: "Post", ID: strings.Repeat("i", MaxIDBytes), Data: []byte(`{}`)}, ""},
		{"id over the limit", plugin.Change{Model: "Post", ID: strings.Repeat("i", MaxIDBytes+1), Data: []byte(`{}`)}, "longer than 1024 bytes"},
		{"record at the limit", plugin.Change{Model: "Post", ID: "1", Data: big(MaxRecordBytes)}, ""},
		{"record over the limit", plugin.Change{Model: "Post", ID: "1", Data: big(MaxRecordBytes + 1)}, "more than the limit"},
		{"delete", plugin.Change{Model: "Post", ID: "1", Delete: true}, ""},
		{"delete of an undeclared model", plugin.Change{Model: "Gone", ID: "1", Delete: true}, ""},
		{"delete by id alone (no model)", plugin.Change{Model: "", ID: "1", Delete: true}, ""},
		{"save without model", plugin.Change{Model: "", ID: "1", Data: []byte(`{"id":"1"}`)}, "does not declare"},
		{"delete without id", plugin.Change{Model: "Post", Delete: true}, "without an id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := validate([]plugin.Change{tc.in}, allowed)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				if len(out) != 1 || out[0].Model != tc.in.Model || out[0].ID != tc.in.ID || out[0].Delete != tc.in.Delete {
					t.Fatalf("validate = %+v", out)
				}
				if !tc.in.Delete && strings.TrimSpace(string(out[0].Data)) != string(out[0].Data) {
					t.Errorf("data %q not trimmed", out[0].Data)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("validate error = %v, want one containing %q", err, tc.wantErr)
			}
			if out != nil {
				t.Errorf("validate returned %d changes with an error", len(out))
			}
		})
	}

	// One bad change fails the whole batch, and the error names it.
	_, err := validate([]plugin.Change{
		{Model: "Post", ID: "1", Data: []byte(`{}`)},
		{Model: "Post", ID: "bad", Data: []byte(`[]`)},
	}, allowed)
	if err == nil || !strings.Contains(err.Error(), "Post/bad") {
		t.Errorf("batch with one bad change: %v, want an error naming Post/bad", err)
	}
}
