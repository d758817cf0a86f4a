// Package graphql serves a layer's records as a GraphQL API (SPEC §14): a
// schema per revision, built at run time from the models the connectors
// declare and the fields found in the revision's records, with filters,
// sorting, paging, cross-references between sources and field indexes. It
// reads through the store's snapshot API only and never imports core/api.
package graphql

import (
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/store"
)

// Model is a record type a connector declares, with its fields.
type Model struct {
	Name   string
	Fields []ModelField
}

// ModelField is one declared field: its record attribute name and the
// connector's free-form type ("string", "number", "integer", "bool",
// "timestamp", "object", "array").
type ModelField struct{ Name, Type string }

// SanitizeName turns s into a valid GraphQL name: characters outside
// [_0-9A-Za-z] become '_', a leading digit gets a '_' before it, and a
// leading "__" (reserved for introspection) becomes a single '_'.
func SanitizeName(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '_' || r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			if i == 0 && unicode.IsDigit(r) {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := b.String()
	if out == "" {
		return "_"
	}
	for strings.HasPrefix(out, "__") {
		out = out[1:]
	}
	return out
}

// TypeName is the GraphQL type name of a source's model.
func TypeName(prefix, model string) string { return SanitizeName(prefix + model) }

// lowerFirst is the query field name of a type: Post → post.
func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToLower(r[0])
	return string(r)
}

// typeTarget is one (source, model) a type name stands for.
type typeTarget struct{ Source, Model string }

// candidates lists the (source, model) pairs type name t may stand for,
// from the config and the declared models: a declared model whose type
// name is t, or t without the source's prefix.
func candidates(cfg *config.Layer, models map[string][]Model, t string) []typeTarget {
	var out []typeTarget
	seen := map[typeTarget]bool{}
	add := func(x typeTarget) {
		if !seen[x] && x.Model != "" {
			seen[x] = true
			out = append(out, x)
		}
	}
	for _, s := range cfg.Sources {
		for _, m := range models[s.Name] {
			if TypeName(s.TypePrefix, m.Name) == t {
				add(typeTarget{s.Name, m.Name})
			}
		}
		if strings.HasPrefix(t, s.TypePrefix) {
			add(typeTarget{s.Name, t[len(s.TypePrefix):]})
		}
	}
	return out
}

// FieldIndexes lists the field indexes a layer's GraphQL blocks ask the
// store to keep: every field of an index block, the by attribute of a
// reference that does not match by id, and the field of a reference with a
// reverse list (a reverse reference always has an index). models are the
// declared models by source; a model that is only found in records is
// covered by its raw name.
func FieldIndexes(cfg *config.Layer, models map[string][]Model) []store.FieldIndex {
	var out []store.FieldIndex
	add := func(typ, field string) {
		for _, c := range candidates(cfg, models, typ) {
			out = append(out, store.FieldIndex{Source: c.Source, Model: c.Model, Field: field})
		}
	}
	for _, x := range cfg.Indexes {
		for _, f := range x.Fields {
			add(x.Type, f)
		}
	}
	for _, r := range cfg.References {
		if r.By != "id" {
			add(r.To, r.By)
		}
		if r.Reverse != "" {
			add(r.Type, r.Field)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Source+"\x00"+a.Model+"\x00"+a.Field < b.Source+"\x00"+b.Model+"\x00"+b.Field
	})
	return out
}

// CheckTypeNames reports declared models of different sources that get
// one GraphQL type name: one of the sources needs a type_prefix.
func CheckTypeNames(cfg *config.Layer, models map[string][]Model) error {
	owner := map[string]string{}
	var msgs []string
	for _, s := range cfg.Sources {
		for _, m := range models[s.Name] {
			t := TypeName(s.TypePrefix, m.Name)
			if o, ok := owner[t]; ok && o != s.Name {
				msgs = append(msgs, fmt.Sprintf("%s: error: Duplicate GraphQL type; sources %q and %q of layer %q both have a model named %s: set type_prefix on one of them, like type_prefix = %q",
					rangeString(s.Range.Filename, s.Range.Start.Line, s.Range.Start.Column), o, s.Name, cfg.Name, t, SanitizeName(strings.ToUpper(s.Name[:1])+s.Name[1:])))
				continue
			}
			owner[t] = s.Name
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s", strings.Join(msgs, "\n"))
	}
	return nil
}

func rangeString(file string, line, col int) string { return fmt.Sprintf("%s:%d:%d", file, line, col) }
