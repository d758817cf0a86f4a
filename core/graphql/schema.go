package graphql

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/graphql-go/graphql"
	"github.com/graphql-go/graphql/language/ast"
	"github.com/graphql-go/graphql/language/kinds"

	"github.com/synclayer/synclayer/core/config"
)

// scalar is the GraphQL scalar of a record attribute.
type scalar uint8

const (
	sString scalar = iota
	sInt
	sFloat
	sBoolean
	sJSON
)

// fieldInfo is one record attribute as a GraphQL field.
type fieldInfo struct {
	Name   string // GraphQL name
	Attr   string // attribute name in the record
	Scalar scalar
	// List is set on attributes whose values are arrays (for references).
	List bool
}

// typeInfo is one model as a GraphQL type.
type typeInfo struct {
	Name   string
	Source string
	Model  string
	Fields []*fieldInfo // sorted by Name; id and _metadata apart
	byName map[string]*fieldInfo
	byAttr map[string]*fieldInfo
	Live   int64
	// Conns tells that the records belong to connections of the source
	// (SPEC §12): an id names a record within its connection only.
	Conns bool

	obj       *graphql.Object
	filter    *graphql.InputObject
	sortInput *graphql.InputObject
	conn      *graphql.Object
	refs      []*refInfo // forward references from this type
	reverses  []*refInfo // reverse lists on this type
	// nodeFields are the object's fields by name, for the executor.
	nodeFields map[string]nodeField
}

// refInfo is one reference block resolved against a revision's types.
type refInfo struct {
	cfg  *config.Reference
	from *typeInfo
	to   *typeInfo
	list bool // the field holds a list of keys
}

// builtSchema is a revision's schema with what resolvers need.
type builtSchema struct {
	schema   graphql.Schema
	types    map[string]*typeInfo
	warnings []string
	// fast is schema with the root fields answered by the executor
	// (exec.go); fastOK is false when it could not be made to accept
	// exactly the variables schema does.
	fast   graphql.Schema
	fastOK bool
}

// reserved are the names of the schema's own types.
var reserved = map[string]bool{
	"Query": true, "PageInfo": true, "RecordMetadata": true, "JSON": true, "SortOrder": true,
	"StringFilter": true, "IntFilter": true, "FloatFilter": true, "BooleanFilter": true, "JSONFilter": true,
	"String": true, "Int": true, "Float": true, "Boolean": true, "ID": true,
}

// scalarOf picks the GraphQL scalar for an attribute from the kinds its
// values have in the revision, or when none has a value, the type the
// connector declares.
func scalarOf(fs *fieldStat, declared string) (scalar, bool) {
	var kinds []kind
	if fs != nil {
		for k := kind(0); k < kNull; k++ {
			if fs[k] > 0 {
				kinds = append(kinds, k)
			}
		}
	}
	if len(kinds) == 0 {
		switch strings.ToLower(declared) {
		case "string", "timestamp", "date", "datetime", "time", "text", "id":
			return sString, false
		case "integer", "int":
			return sInt, false
		case "number", "float", "decimal":
			return sFloat, false
		case "bool", "boolean":
			return sBoolean, false
		}
		return sJSON, false
	}
	if len(kinds) == 1 {
		switch kinds[0] {
		case kString:
			return sString, false
		case kInt:
			return sInt, false
		case kFloat:
			return sFloat, false
		case kBool:
			return sBoolean, false
		case kArray:
			return sJSON, true
		}
		return sJSON, false
	}
	if len(kinds) == 2 && kinds[0] == kInt && kinds[1] == kFloat {
		return sFloat, false
	}
	return sJSON, fs[kArray] > 0
}

// buildInput is what a schema is built from.
type buildInput struct {
	cfg    *config.Layer
	models map[string][]Model
	stats  *revStats
	// visible tells whether a (source, model) is in the reader's scope.
	visible func(source, model string) bool
	// connScoped: the reader sees the records of some connections only,
	// so types whose records belong to no connection are left out.
	connScoped bool
}

// build makes the schema of one revision for one scope.
func build(in buildInput) (*builtSchema, error) {
	b := &builtSchema{types: map[string]*typeInfo{}}
	warn := func(f string, a ...any) { b.warnings = append(b.warnings, fmt.Sprintf(f, a...)) }
	declared := map[typeTarget]map[string]string{}
	for src, ms := range in.models {
		for _, m := range ms {
			d := map[string]string{}
			for _, f := range m.Fields {
				d[f.Name] = f.Type
			}
			declared[typeTarget{src, m.Name}] = d
		}
	}
	// Types: one per (source, model) with records in this revision, in
	// source order then model name, so that collisions resolve the same
	// way every time.
	queryNames := map[string]string{}
	used := map[string]string{}
	for _, s := range in.cfg.Sources {
		var models []string
		for k := range in.stats.models {
			if k.Source == s.Name {
				models = append(models, k.Model)
			}
		}
		sort.Strings(models)
		for _, m := range models {
			if in.visible != nil && !in.visible(s.Name, m) {
				continue
			}
			ms := in.stats.models[typeTarget{s.Name, m}]
			conns := s.Connections || ms.Connected > 0
			if in.connScoped && !conns {
				continue
			}
			name := TypeName(s.TypePrefix, m)
			what := fmt.Sprintf("model %q of source %q", m, s.Name)
			if reserved[name] {
				warn("%s: its type name %s is one of the schema's own; set type_prefix on source %q", what, name, s.Name)
				continue
			}
			if o, ok := used[name]; ok {
				warn("%s: type %s is already %s; set type_prefix on one of the sources", what, name, o)
				continue
			}
			helpers := []string{name + "Connection", name + "Filter", name + "Sort", name + "SortField"}
			clash := false
			for _, h := range helpers {
				if o, ok := used[h]; ok {
					warn("%s: its helper type %s clashes with %s", what, h, o)
					clash = true
				}
			}
			q := lowerFirst(name)
			if o, ok := queryNames[q]; ok {
				warn("%s: its query fields %s and all%s clash with those of %s", what, q, name, o)
				clash = true
			}
			if clash {
				continue
			}
			used[name] = what
			for _, h := range helpers {
				used[h] = what + " (helper type)"
			}
			queryNames[q] = what
			t := &typeInfo{Name: name, Source: s.Name, Model: m, Live: ms.Live, Conns: conns, byName: map[string]*fieldInfo{}, byAttr: map[string]*fieldInfo{}}
			dec := declared[typeTarget{s.Name, m}]
			attrs := map[string]bool{}
			for a := range ms.Fields {
				attrs[a] = true
			}
			for a := range dec {
				attrs[a] = true
			}
			sorted := make([]string, 0, len(attrs))
			for a := range attrs {
				sorted = append(sorted, a)
			}
			sort.Strings(sorted)
			for _, a := range sorted {
				if a == "id" || a == "_metadata" {
					continue
				}
				fn := SanitizeName(a)
				if fn == "id" || fn == "_metadata" {
					warn("type %s: attribute %q is named like the field %s; it is left out", name, a, fn)
					continue
				}
				if o, ok := t.byName[fn]; ok {
					warn("type %s: attributes %q and %q both become the field %s; %q is left out", name, o.Attr, a, fn, a)
					continue
				}
				sc, list := scalarOf(ms.Fields[a], dec[a])
				if fs := ms.Fields[a]; fs != nil && fs[kArray] > 0 {
					list = true
				}
				f := &fieldInfo{Name: fn, Attr: a, Scalar: sc, List: list}
				t.byName[fn] = f
				t.byAttr[a] = f
				t.Fields = append(t.Fields, f)
			}
			sort.Slice(t.Fields, func(i, j int) bool { return t.Fields[i].Name < t.Fields[j].Name })
			b.types[name] = t
		}
	}
	// References between types present in this revision.
	for _, rc := range in.cfg.References {
		from, to := b.types[rc.Type], b.types[rc.To]
		if from == nil || to == nil {
			continue // a type this revision (or scope) does not have
		}
		r := &refInfo{cfg: rc, from: from, to: to}
		if f := from.byAttr[rc.Field]; f != nil {
			r.list = f.List
		}
		if f, ok := from.byName[rc.Name]; ok {
			warn("type %s: the reference %s hides the attribute %q", from.Name, rc.Name, f.Attr)
			delete(from.byName, rc.Name)
			for i, x := range from.Fields {
				if x == f {
					from.Fields = append(from.Fields[:i], from.Fields[i+1:]...)
					break
				}
			}
		}
		from.refs = append(from.refs, r)
		if rc.Reverse != "" {
			if f, ok := to.byName[rc.Reverse]; ok {
				warn("type %s: the reverse reference %s hides the attribute %q", to.Name, rc.Reverse, f.Attr)
				delete(to.byName, rc.Reverse)
				for i, x := range to.Fields {
					if x == f {
						to.Fields = append(to.Fields[:i], to.Fields[i+1:]...)
						break
					}
				}
			}
			to.reverses = append(to.reverses, r)
		}
	}
	for _, t := range b.types {
		names := map[string]bool{"id": true, "_metadata": true}
		for _, f := range t.Fields {
			names[f.Name] = true
		}
		keep := t.refs[:0]
		for _, r := range t.refs {
			if names[r.cfg.Name] {
				warn("type %s: reference field %s is declared twice; the second is left out", t.Name, r.cfg.Name)
				continue
			}
			names[r.cfg.Name] = true
			keep = append(keep, r)
		}
		t.refs = keep
		keepRev := t.reverses[:0]
		for _, r := range t.reverses {
			if names[r.cfg.Reverse] {
				warn("type %s: reverse field %s clashes with another field; it is left out", t.Name, r.cfg.Reverse)
				continue
			}
			names[r.cfg.Reverse] = true
			keepRev = append(keepRev, r)
		}
		t.reverses = keepRev
	}
	sort.Strings(b.warnings)
	if err := b.makeSchema(); err != nil {
		return nil, err
	}
	return b, nil
}

// Shared types.
var (
	jsonScalar = graphql.NewScalar(graphql.ScalarConfig{
		Name:         "JSON",
		Description:  "Any JSON value: objects, arrays and attributes whose values have mixed types.",
		Serialize:    func(v any) any { return v },
		ParseValue:   func(v any) any { return v },
		ParseLiteral: parseLiteral,
	})
	sortOrder = graphql.NewEnum(graphql.EnumConfig{
		Name: "SortOrder",
		Values: graphql.EnumValueConfigMap{
			"ASC":  &graphql.EnumValueConfig{Value: "ASC", Description: "ascending"},
			"DESC": &graphql.EnumValueConfig{Value: "DESC", Description: "descending"},
		},
	})
	pageInfo = graphql.NewObject(graphql.ObjectConfig{
		Name: "PageInfo",
		Fields: graphql.Fields{
			"hasNextPage": &graphql.Field{Type: graphql.NewNonNull(graphql.Boolean), Description: "Whether more nodes follow this page."},
			"endCursor":   &graphql.Field{Type: graphql.String, Description: "Pass as after to read the next page; null on an empty page."},
		},
	})
	metadataType = graphql.NewObject(graphql.ObjectConfig{
		Name:        "RecordMetadata",
		Description: "The record's change metadata, as the records endpoint's _metadata.",
		Fields: graphql.Fields{
			"source":           &graphql.Field{Type: graphql.NewNonNull(graphql.String)},
			"model":            &graphql.Field{Type: graphql.NewNonNull(graphql.String)},
			"connection":       &graphql.Field{Type: graphql.NewNonNull(graphql.String), Description: "The connection the record belongs to; empty for a source without connections."},
			"first_seen_at":    &graphql.Field{Type: graphql.NewNonNull(graphql.String)},
			"last_modified_at": &graphql.Field{Type: graphql.NewNonNull(graphql.String)},
			"last_action":      &graphql.Field{Type: graphql.NewNonNull(graphql.String)},
			"deleted_at":       &graphql.Field{Type: graphql.String},
			"cursor":           &graphql.Field{Type: graphql.NewNonNull(graphql.String)},
			"revision":         &graphql.Field{Type: graphql.NewNonNull(graphql.Int)},
		},
	})
	operatorFilters = map[scalar]*graphql.InputObject{}
)

func init() {
	for _, x := range []struct {
		s        scalar
		name     string
		t        graphql.Input
		ordered  bool
		contains bool
	}{
		{sString, "StringFilter", graphql.String, true, true},
		{sInt, "IntFilter", graphql.Int, true, false},
		{sFloat, "FloatFilter", graphql.Float, true, false},
		{sBoolean, "BooleanFilter", graphql.Boolean, false, false},
		{sJSON, "JSONFilter", jsonScalar, true, true},
	} {
		f := graphql.InputObjectConfigFieldMap{
			"eq":     {Type: x.t, Description: "equal to"},
			"ne":     {Type: x.t, Description: "not equal to (records without the attribute match)"},
			"in":     {Type: graphql.NewList(graphql.NewNonNull(x.t)), Description: "equal to one of"},
			"nin":    {Type: graphql.NewList(graphql.NewNonNull(x.t)), Description: "equal to none of"},
			"exists": {Type: graphql.Boolean, Description: "true: the attribute is set and not null; false: it is not"},
		}
		if x.ordered {
			f["gt"] = &graphql.InputObjectFieldConfig{Type: x.t, Description: "greater than"}
			f["gte"] = &graphql.InputObjectFieldConfig{Type: x.t, Description: "greater than or equal to"}
			f["lt"] = &graphql.InputObjectFieldConfig{Type: x.t, Description: "less than"}
			f["lte"] = &graphql.InputObjectFieldConfig{Type: x.t, Description: "less than or equal to"}
		}
		if x.contains {
			f["contains"] = &graphql.InputObjectFieldConfig{Type: x.t, Description: "a string containing it, or an array with an element equal to it"}
		}
		operatorFilters[x.s] = graphql.NewInputObject(graphql.InputObjectConfig{Name: x.name, Fields: f})
	}
}

func outputType(s scalar) graphql.Output {
	switch s {
	case sString:
		return graphql.String
	case sInt:
		return graphql.Int
	case sFloat:
		return graphql.Float
	case sBoolean:
		return graphql.Boolean
	}
	return jsonScalar
}

// parseLiteral turns a GraphQL literal into a JSON value.
func parseLiteral(v ast.Value) any {
	switch v.GetKind() {
	case kinds.StringValue, kinds.EnumValue:
		return v.GetValue()
	case kinds.BooleanValue:
		return v.GetValue()
	case kinds.IntValue, kinds.FloatValue:
		return json.Number(fmt.Sprint(v.GetValue()))
	case kinds.ListValue:
		lv := v.(*ast.ListValue)
		out := make([]any, 0, len(lv.Values))
		for _, x := range lv.Values {
			out = append(out, parseLiteral(x))
		}
		return out
	case kinds.ObjectValue:
		ov := v.(*ast.ObjectValue)
		out := make(map[string]any, len(ov.Fields))
		for _, f := range ov.Fields {
			out[f.Name.Value] = parseLiteral(f.Value)
		}
		return out
	}
	return nil
}

const (
	defaultLimit = 100
	// MaxNodes is the most nodes one list may return.
	MaxNodes = 1000
)

// makeSchema builds the graphql-go schema of b's types.
func (b *builtSchema) makeSchema() error {
	names := make([]string, 0, len(b.types))
	for n := range b.types {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := b.types[n]
		t.makeObject()
	}
	query := graphql.Fields{}
	fast := graphql.Fields{}
	for _, n := range names {
		t := b.types[n]
		t.nodeFields = map[string]nodeField{"id": {kind: nfID}, "_metadata": {kind: nfMetadata}}
		for _, f := range t.Fields {
			t.nodeFields[f.Name] = nodeField{kind: nfAttr, attr: f}
		}
		for _, r := range t.refs {
			t.nodeFields[r.cfg.Name] = nodeField{kind: nfForward, ref: r}
		}
		for _, r := range t.reverses {
			t.nodeFields[r.cfg.Reverse] = nodeField{kind: nfReverse, ref: r}
		}
		query["all"+t.Name] = &graphql.Field{
			Type:        graphql.NewNonNull(t.conn),
			Description: fmt.Sprintf("Records of model %s of source %s that are not deleted.", t.Model, t.Source),
			Args: graphql.FieldConfigArgument{
				"filter":     {Type: t.filter},
				"sort":       {Type: graphql.NewList(graphql.NewNonNull(t.sortInput))},
				"limit":      {Type: graphql.Int, DefaultValue: defaultLimit, Description: fmt.Sprintf("At most %d.", MaxNodes)},
				"skip":       {Type: graphql.Int},
				"after":      {Type: graphql.String, Description: "The endCursor of the previous page."},
				"connection": {Type: graphql.String, Description: allConnDesc(t)},
			},
			Resolve: t.resolveAll,
		}
		query[lowerFirst(t.Name)] = &graphql.Field{
			Type:        t.obj,
			Description: fmt.Sprintf("One record of model %s of source %s by id; null when there is none or it is deleted.", t.Model, t.Source),
			Args: graphql.FieldConfigArgument{
				"id":         {Type: graphql.NewNonNull(graphql.ID)},
				"connection": {Type: graphql.String, Description: oneConnDesc(t)},
			},
			Resolve: t.resolveOne,
		}
		all, one := *query["all"+t.Name], *query[lowerFirst(t.Name)]
		all.Type, all.Resolve = graphql.NewNonNull(renderedScalar), t.fastAll
		one.Type, one.Resolve = renderedScalar, t.fastOne
		fast["all"+t.Name], fast[lowerFirst(t.Name)] = &all, &one
	}
	desc := "The records of one revision of the layer."
	if len(b.warnings) > 0 {
		desc += "\n\nLeft out of this schema:\n- " + strings.Join(b.warnings, "\n- ")
	}
	if len(query) == 0 {
		query["_empty"] = &graphql.Field{
			Type:        graphql.Boolean,
			Description: "This revision has no records yet; types appear with their first records.",
			Resolve:     func(graphql.ResolveParams) (any, error) { return nil, nil },
		}
		fast["_empty"] = query["_empty"]
	}
	s, err := graphql.NewSchema(graphql.SchemaConfig{
		Query: graphql.NewObject(graphql.ObjectConfig{Name: "Query", Description: desc, Fields: query}),
		Types: []graphql.Type{jsonScalar},
	})
	if err != nil {
		return fmt.Errorf("graphql: build schema: %w", err)
	}
	b.schema = s
	b.fast, err = graphql.NewSchema(graphql.SchemaConfig{
		Query: graphql.NewObject(graphql.ObjectConfig{Name: "Query", Fields: fast}),
		Types: []graphql.Type{jsonScalar},
	})
	// Variables are coerced by the types the executing schema knows: the
	// executor is used only when every input type of the served schema is
	// the same in fast.
	b.fastOK = err == nil
	if b.fastOK {
		ft := b.fast.TypeMap()
		for name, typ := range s.TypeMap() {
			switch typ.(type) {
			case *graphql.InputObject, *graphql.Scalar, *graphql.Enum:
				if ft[name] != typ {
					b.fastOK = false
				}
			}
		}
	}
	return nil
}

func allConnDesc(t *typeInfo) string {
	if t.Conns {
		return "Only the records of this connection. Without it, those of every connection the reader may see, in connection then id order."
	}
	return "Only the records of this connection: source " + t.Source + " has none, so \"\" matches every record and any other name none."
}

func oneConnDesc(t *typeInfo) string {
	if t.Conns {
		return "The connection the record belongs to: ids are unique within a connection only, so it is needed (unless the reader's token sees one connection only)."
	}
	return "The connection the record belongs to: source " + t.Source + " has none, so \"\" or nothing."
}

// makeObject creates the type's object, connection, filter and sort
// inputs. Fields are thunks: references make cycles.
func (t *typeInfo) makeObject() {
	t.obj = graphql.NewObject(graphql.ObjectConfig{
		Name:        t.Name,
		Description: fmt.Sprintf("A record of model %s of source %s.", t.Model, t.Source),
		Fields: graphql.FieldsThunk(func() graphql.Fields {
			fs := graphql.Fields{
				"id":        &graphql.Field{Type: graphql.NewNonNull(graphql.ID), Resolve: resolveID},
				"_metadata": &graphql.Field{Type: graphql.NewNonNull(metadataType), Resolve: resolveMetadata},
			}
			for _, f := range t.Fields {
				fs[f.Name] = &graphql.Field{Type: outputType(f.Scalar), Resolve: f.resolve, Description: fmt.Sprintf("The record's attribute %q.", f.Attr)}
			}
			for _, r := range t.refs {
				var typ graphql.Output = r.to.obj
				if r.list {
					typ = graphql.NewList(r.to.obj)
				}
				fs[r.cfg.Name] = &graphql.Field{Type: typ, Resolve: r.resolveForward,
					Description: fmt.Sprintf("The %s whose %s is this record's %s.", r.to.Name, r.cfg.By, r.cfg.Field)}
			}
			for _, r := range t.reverses {
				fs[r.cfg.Reverse] = &graphql.Field{
					Type: graphql.NewNonNull(graphql.NewList(graphql.NewNonNull(r.from.obj))),
					Args: graphql.FieldConfigArgument{
						"limit": {Type: graphql.Int, DefaultValue: defaultLimit, Description: fmt.Sprintf("At most %d.", MaxNodes)},
						"skip":  {Type: graphql.Int},
					},
					Resolve:     r.resolveReverse,
					Description: fmt.Sprintf("The %s records whose %s holds this record's %s, by id.", r.from.Name, r.cfg.Field, r.cfg.By),
				}
			}
			return fs
		}),
	})
	t.conn = graphql.NewObject(graphql.ObjectConfig{
		Name: t.Name + "Connection",
		Fields: graphql.Fields{
			"nodes":      &graphql.Field{Type: graphql.NewNonNull(graphql.NewList(graphql.NewNonNull(t.obj))), Resolve: resolveNodes},
			"totalCount": &graphql.Field{Type: graphql.NewNonNull(graphql.Int), Resolve: resolveTotal, Description: "How many records match, over every page."},
			"pageInfo":   &graphql.Field{Type: graphql.NewNonNull(pageInfo), Resolve: resolvePageInfo},
		},
	})
	t.filter = graphql.NewInputObject(graphql.InputObjectConfig{
		Name: t.Name + "Filter",
		Fields: graphql.InputObjectConfigFieldMapThunk(func() graphql.InputObjectConfigFieldMap {
			fs := graphql.InputObjectConfigFieldMap{
				"id":  {Type: operatorFilters[sString]},
				"and": {Type: graphql.NewList(graphql.NewNonNull(t.filter)), Description: "every one of these matches"},
				"or":  {Type: graphql.NewList(graphql.NewNonNull(t.filter)), Description: "at least one of these matches"},
			}
			for _, f := range t.Fields {
				fs[f.Name] = &graphql.InputObjectFieldConfig{Type: operatorFilters[f.Scalar]}
			}
			return fs
		}),
	})
	values := graphql.EnumValueConfigMap{"id": &graphql.EnumValueConfig{Value: "id"}}
	for _, f := range t.Fields {
		if f.Name == "true" || f.Name == "false" || f.Name == "null" {
			continue // not valid enum values
		}
		values[f.Name] = &graphql.EnumValueConfig{Value: f.Name}
	}
	t.sortInput = graphql.NewInputObject(graphql.InputObjectConfig{
		Name: t.Name + "Sort",
		Fields: graphql.InputObjectConfigFieldMap{
			"field": {Type: graphql.NewNonNull(graphql.NewEnum(graphql.EnumConfig{Name: t.Name + "SortField", Values: values}))},
			"order": {Type: sortOrder, DefaultValue: "ASC"},
		},
	})
}
