package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// MergeConnectionConfig merges a connection's config (a JSON object) over
// its source's evaluated config block (configJSON) and checks the result
// against the connector's schema: every field known, of its type, the
// required ones present. The error names the field and how to fix it and
// never quotes a value. The result is JSON with the fields in the
// schema's types.
func MergeConnectionConfig(fields []Field, configJSON, connection []byte) ([]byte, error) {
	base := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(configJSON)) > 0 {
		if err := json.Unmarshal(configJSON, &base); err != nil {
			return nil, fmt.Errorf("the source's config is not a JSON object: %w", err)
		}
	}
	over := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(connection)) > 0 && string(bytes.TrimSpace(connection)) != "null" {
		if err := json.Unmarshal(connection, &over); err != nil {
			return nil, fmt.Errorf("config must be a JSON object of the connector's fields")
		}
	}
	byName := map[string]Field{}
	var names []string
	for _, f := range fields {
		if f.Name != "" {
			byName[f.Name] = f
			names = append(names, f.Name)
		}
	}
	sort.Strings(names)
	keys := make([]string, 0, len(over))
	for k := range over {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := byName[k]
		if !ok {
			return nil, fmt.Errorf("config field %q is unknown to the connector; its fields are: %s.%s", k, strings.Join(names, ", "), DidYouMean(k, names))
		}
		v := over[k]
		if string(bytes.TrimSpace(v)) == "null" {
			delete(base, k) // null unsets a field of the source's block
			continue
		}
		if _, err := ctyjson.Unmarshal(v, fieldType(f)); err != nil {
			return nil, fmt.Errorf("config field %q must be %s", k, typeName(fieldType(f)))
		}
		base[k] = v
	}
	for _, n := range names {
		if f := byName[n]; f.Required {
			if v, ok := base[n]; !ok || string(bytes.TrimSpace(v)) == "null" {
				return nil, fmt.Errorf("config field %q is required by the connector", n)
			}
		}
	}
	return json.Marshal(base)
}

// SensitiveFields lists the names of a schema's sensitive fields.
func SensitiveFields(fields []Field) map[string]bool {
	out := map[string]bool{}
	for _, f := range fields {
		if f.Sensitive && f.Name != "" {
			out[f.Name] = true
		}
	}
	return out
}

// SensitiveJSONValues returns the strings found in the sensitive fields of
// a config given as JSON (for redaction).
func SensitiveJSONValues(fields []Field, configJSON []byte) []string {
	out, _ := sensitiveJSON(fields, configJSON)
	return out
}

// sensitiveJSON collects the strings of the sensitive fields of a JSON
// object; ok is false when configJSON is no JSON object.
func sensitiveJSON(fields []Field, configJSON []byte) (out []string, ok bool) {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(configJSON))
	dec.UseNumber()
	if len(bytes.TrimSpace(configJSON)) == 0 || dec.Decode(&obj) != nil || obj == nil {
		return nil, false
	}
	c := newStringCollector()
	for _, f := range fields {
		if f.Sensitive {
			if v, ok := obj[f.Name]; ok {
				c.json(v)
			}
		}
	}
	return c.list(), true
}

func typeName(t cty.Type) string {
	switch {
	case t == cty.String:
		return "a string"
	case t == cty.Number:
		return "a number"
	case t == cty.Bool:
		return "true or false"
	case t.IsListType(), t.IsSetType(), t.IsTupleType():
		return "a list"
	case t.IsMapType(), t.IsObjectType():
		return "an object"
	}
	return "a value of type " + t.FriendlyName()
}
