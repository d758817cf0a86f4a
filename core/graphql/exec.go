package graphql

import (
	"context"
	"math"
	"strconv"
	"sync"

	"github.com/graphql-go/graphql"
	"github.com/graphql-go/graphql/language/ast"
)

// The record fields of a query are answered by a small executor of this
// package rather than by graphql-go's: graphql-go resolves every field of
// every node through reflection, a ResolveInfo, two deferred recovers and
// a map per object, and encoding/json then walks those maps again; for a
// page of 1,000 records that cost more than reading them.
//
// graphql-go still parses and validates every query, coerces variables
// and the root fields' arguments, and answers introspection. A query is
// executed against a second root type (fastQuery) whose allX and x fields
// have the same arguments and the same resolvers, but return the field's
// whole answer rendered as JSON by the executor below, which follows
// graphql-go's execution rules: fields collected by response key in
// selection order (aliases, fragments, type conditions, @skip and
// @include), arguments from literals or variables with their defaults,
// scalars serialized as graphql-go's do, and an error nulling the nearest
// nullable field up from where it happened, recorded once with its path
// and locations. Queries selecting __schema or __type run on graphql-go
// alone.

// rawJSON is an answer fragment rendered by the executor; it is written to
// the answer as it is.
type rawJSON []byte

// MarshalJSON returns the fragment.
func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// renderedScalar is the type of the root fields of fastQuery: the value is
// the field's answer, already rendered.
var renderedScalar = graphql.NewScalar(graphql.ScalarConfig{
	Name:         "_Rendered",
	Description:  "A field's answer rendered by the executor (internal; never in the served schema).",
	Serialize:    func(v any) any { return v },
	ParseValue:   func(v any) any { return v },
	ParseLiteral: func(ast.Value) any { return nil },
})

// nodeFieldKind is what a field of a record type reads.
type nodeFieldKind uint8

const (
	nfUnknown nodeFieldKind = iota
	nfTypename
	nfID
	nfMetadata
	nfAttr
	nfForward
	nfReverse
	// connection fields
	nfNodes
	nfTotal
	nfPageInfo
	// PageInfo fields
	nfHasNext
	nfEndCursor
	// RecordMetadata fields
	nfMeta
)

// nodeField is a field of a record type.
type nodeField struct {
	kind nodeFieldKind
	attr *fieldInfo
	ref  *refInfo
}

// objKind is the kind of object a selection set is collected on.
type objKind uint8

const (
	objNode objKind = iota
	objConn
	objPage
	objMeta
)

// sel is one response key of a selection set, with the fields merged
// under it (as graphql-go's collectFields groups them).
type sel struct {
	key    []byte // the response key as a JSON string, with its colon
	keyStr string // the response key
	name   string
	asts   []*ast.Field
	kind   nodeFieldKind
	attr   *fieldInfo
	ref    *refInfo
	args   map[string]any // coerced arguments (reverse references)
	meta   string         // the RecordMetadata field
	sub    []*sel         // the sub-selection (object-typed fields)
	subSet bool
}

// executor renders the answer of one root field.
type executor struct {
	rc    *reqCtx
	ctx   context.Context
	vars  map[string]any
	frags map[string]ast.Definition
	b     []byte
	base  []any      // the root field's path
	path  []pathElem // below it
}

// pathElem is a response key or, when idx >= 0, a list index.
type pathElem struct {
	key string
	idx int
}

// bufPool keeps answer buffers: small to start with (most answers are),
// grown ones are kept up to maxPooled.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxPooled bounds the buffers kept for reuse.
const maxPooled = 8 << 20

func newExecutor(p graphql.ResolveParams, rc *reqCtx) *executor {
	bp := bufPool.Get().(*[]byte)
	ex := &executor{rc: rc, ctx: p.Context, vars: p.Info.VariableValues, frags: p.Info.Fragments, b: (*bp)[:0]}
	if p.Info.Path != nil {
		ex.base = p.Info.Path.AsArray()
	}
	return ex
}

// done hands the rendered answer over; its buffer goes back to the pool
// once the response is written (reqCtx.release).
func (ex *executor) done() rawJSON {
	out := rawJSON(ex.b)
	ex.rc.mu.Lock()
	ex.rc.bufs = append(ex.rc.bufs, ex.b)
	ex.rc.mu.Unlock()
	return out
}

func (ex *executor) drop() {
	if cap(ex.b) <= maxPooled {
		b := ex.b[:0]
		bufPool.Put(&b)
	}
	ex.b = nil
}

// release returns the request's answer buffers to the pool.
func (rc *reqCtx) release() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, b := range rc.bufs {
		if cap(b) <= maxPooled {
			b = b[:0]
			bufPool.Put(&b)
		}
	}
	rc.bufs = nil
}

// fail records err as the error of field s at the current path.
func (ex *executor) fail(err error, s *sel) {
	path := append([]any(nil), ex.base...)
	for _, e := range ex.path {
		if e.idx >= 0 {
			path = append(path, e.idx)
		} else {
			path = append(path, e.key)
		}
	}
	nodes := make([]ast.Node, len(s.asts))
	for i, a := range s.asts {
		nodes[i] = a
	}
	e := graphql.NewLocatedErrorWithPath(err, nodes, path)
	ex.rc.mu.Lock()
	ex.rc.errs = append(ex.rc.errs, e)
	ex.rc.mu.Unlock()
}

// rootFailure takes back the error that made a non-null root field fail,
// for the resolver to return (graphql-go keeps its path and locations).
func (ex *executor) rootFailure() error {
	ex.rc.mu.Lock()
	defer ex.rc.mu.Unlock()
	n := len(ex.rc.errs)
	e := ex.rc.errs[n-1]
	ex.rc.errs = ex.rc.errs[:n-1]
	return e
}

// include applies @skip and @include as graphql-go's shouldIncludeNode.
func (ex *executor) include(ds []*ast.Directive) bool {
	var skip, incl *ast.Directive
	for _, d := range ds {
		if d == nil || d.Name == nil {
			continue
		}
		switch d.Name.Value {
		case "skip":
			skip = d
		case "include":
			incl = d
		}
	}
	if skip != nil {
		if b, ok := ex.argValue(skip.Arguments, "if", graphql.Boolean).(bool); ok && b {
			return false
		}
	}
	if incl != nil {
		if b, ok := ex.argValue(incl.Arguments, "if", graphql.Boolean).(bool); ok && !b {
			return false
		}
	}
	return true
}

// argValue is an argument's value from its literal or variable (nil when
// it is not given), as graphql-go's valueFromAST for scalar arguments.
func (ex *executor) argValue(args []*ast.Argument, name string, t *graphql.Scalar) any {
	for _, a := range args {
		if a.Name == nil || a.Name.Value != name {
			continue
		}
		if v, ok := a.Value.(*ast.Variable); ok {
			if v.Name == nil || ex.vars == nil {
				return nil
			}
			return ex.vars[v.Name.Value]
		}
		if a.Value == nil {
			return nil
		}
		return t.ParseLiteral(a.Value)
	}
	return nil
}

func conditionHolds(cond *ast.Named, typeName string) bool {
	return cond == nil || cond.Name == nil || cond.Name.Value == typeName
}

// collect groups the sub-selections of asts on an object of type typeName
// by response key, in the order they first appear.
func (ex *executor) collect(asts []*ast.Field, typeName string) []*sel {
	var out []*sel
	byKey := map[string]*sel{}
	visited := map[string]bool{}
	var walk func(ss *ast.SelectionSet)
	walk = func(ss *ast.SelectionSet) {
		for _, s := range ss.Selections {
			switch x := s.(type) {
			case *ast.Field:
				if !ex.include(x.Directives) {
					continue
				}
				name := ""
				if x.Name != nil {
					name = x.Name.Value
				}
				key := name
				if x.Alias != nil && x.Alias.Value != "" {
					key = x.Alias.Value
				}
				if e := byKey[key]; e != nil {
					e.asts = append(e.asts, x)
					continue
				}
				e := &sel{key: append(appendString(nil, key), ':'), keyStr: key, name: name, asts: []*ast.Field{x}}
				byKey[key] = e
				out = append(out, e)
			case *ast.InlineFragment:
				if !ex.include(x.Directives) || !conditionHolds(x.TypeCondition, typeName) || x.SelectionSet == nil {
					continue
				}
				walk(x.SelectionSet)
			case *ast.FragmentSpread:
				if x.Name == nil {
					continue
				}
				name := x.Name.Value
				if visited[name] || !ex.include(x.Directives) {
					continue
				}
				visited[name] = true
				fd, ok := ex.frags[name].(*ast.FragmentDefinition)
				if !ok || !conditionHolds(fd.TypeCondition, typeName) || fd.SelectionSet == nil {
					continue
				}
				walk(fd.SelectionSet)
			}
		}
	}
	for _, a := range asts {
		if a != nil && a.SelectionSet != nil {
			walk(a.SelectionSet)
		}
	}
	return out
}

var metadataFields = map[string]bool{"source": true, "model": true, "connection": true, "first_seen_at": true,
	"last_modified_at": true, "last_action": true, "deleted_at": true, "cursor": true, "revision": true}

// selections collects and classifies the sub-selections of asts on an
// object of kind k (of record type t); fields the type does not have are
// left out, as graphql-go does.
func (ex *executor) selections(asts []*ast.Field, k objKind, t *typeInfo) []*sel {
	var typeName string
	switch k {
	case objNode:
		typeName = t.Name
	case objConn:
		typeName = t.Name + "Connection"
	case objPage:
		typeName = "PageInfo"
	case objMeta:
		typeName = "RecordMetadata"
	}
	all := ex.collect(asts, typeName)
	out := all[:0]
	for _, s := range all {
		if s.name == "__typename" {
			s.kind = nfTypename
			s.meta = typeName
			out = append(out, s)
			continue
		}
		switch k {
		case objNode:
			f, ok := t.nodeFields[s.name]
			if !ok {
				continue
			}
			s.kind, s.attr, s.ref = f.kind, f.attr, f.ref
			if f.kind == nfReverse {
				s.args = map[string]any{}
				if v := ex.argValue(s.asts[0].Arguments, "limit", graphql.Int); v != nil {
					s.args["limit"] = v
				} else {
					s.args["limit"] = defaultLimit
				}
				if v := ex.argValue(s.asts[0].Arguments, "skip", graphql.Int); v != nil {
					s.args["skip"] = v
				}
			}
		case objConn:
			switch s.name {
			case "nodes":
				s.kind = nfNodes
			case "totalCount":
				s.kind = nfTotal
			case "pageInfo":
				s.kind = nfPageInfo
			default:
				continue
			}
		case objPage:
			switch s.name {
			case "hasNextPage":
				s.kind = nfHasNext
			case "endCursor":
				s.kind = nfEndCursor
			default:
				continue
			}
		case objMeta:
			if !metadataFields[s.name] {
				continue
			}
			s.kind, s.meta = nfMeta, s.name
		}
		out = append(out, s)
	}
	return out
}

// subOf returns the sub-selection of s on an object of kind k of type t,
// collected once per request.
func (ex *executor) subOf(s *sel, k objKind, t *typeInfo) []*sel {
	if !s.subSet {
		s.sub = ex.selections(s.asts, k, t)
		s.subSet = true
	}
	return s.sub
}

func (ex *executor) null() { ex.b = append(ex.b, "null"...) }

// object renders an object; false means a non-null field in it failed
// (its error recorded) and the object is null.
func (ex *executor) object(k objKind, t *typeInfo, sels []*sel, v any) bool {
	mark := len(ex.b)
	ex.b = append(ex.b, '{')
	for i, s := range sels {
		if i > 0 {
			ex.b = append(ex.b, ',')
		}
		ex.b = append(ex.b, s.key...)
		ex.path = append(ex.path, pathElem{key: s.keyStr, idx: -1})
		var ok bool
		switch k {
		case objNode:
			ok = ex.nodeField(v.(*node), s)
		case objConn:
			ok = ex.connField(v.(*conn), s)
		case objPage:
			ok = ex.pageField(v.(*conn), s)
		case objMeta:
			ok = ex.metaField(v.(*node), s)
		}
		ex.path = ex.path[:len(ex.path)-1]
		if !ok {
			ex.b = ex.b[:mark]
			return false
		}
	}
	ex.b = append(ex.b, '}')
	return true
}

// nodeList renders a list of records; with nonNullItems a failed item
// fails the list, else it is null.
func (ex *executor) nodeList(ns []*node, t *typeInfo, sels []*sel, nonNullItems bool) bool {
	mark := len(ex.b)
	ex.b = append(ex.b, '[')
	for i, n := range ns {
		if i > 0 {
			ex.b = append(ex.b, ',')
		}
		ex.path = append(ex.path, pathElem{idx: i})
		ok := n != nil && ex.object(objNode, t, sels, n)
		ex.path = ex.path[:len(ex.path)-1]
		if !ok {
			if nonNullItems {
				ex.b = ex.b[:mark]
				return false
			}
			ex.null()
		}
	}
	ex.b = append(ex.b, ']')
	return true
}

func (ex *executor) typename(s *sel) bool {
	ex.b = appendString(ex.b, s.meta)
	return true
}

func (ex *executor) connField(c *conn, s *sel) bool {
	switch s.kind {
	case nfTypename:
		return ex.typename(s)
	case nfNodes:
		c.once.Do(c.load)
		if c.err != nil {
			ex.fail(c.err, s)
			return false
		}
		return ex.nodeList(c.nodes, c.t, ex.subOf(s, objNode, c.t), true)
	case nfTotal:
		v, err := resolveTotal(graphql.ResolveParams{Source: c, Context: ex.ctx})
		if err != nil {
			ex.fail(err, s)
			return false
		}
		ex.b = strconv.AppendInt(ex.b, int64(v.(int)), 10)
		return true
	case nfPageInfo:
		c.once.Do(c.load)
		if c.err != nil {
			ex.fail(c.err, s)
			return false
		}
		return ex.object(objPage, nil, ex.subOf(s, objPage, nil), c)
	}
	return true
}

func (ex *executor) pageField(c *conn, s *sel) bool {
	switch s.kind {
	case nfTypename:
		return ex.typename(s)
	case nfHasNext:
		ex.b = strconv.AppendBool(ex.b, c.hasNext)
	case nfEndCursor:
		if c.endCursor == nil {
			ex.null()
		} else {
			ex.b = appendString(ex.b, *c.endCursor)
		}
	}
	return true
}

func (ex *executor) metaField(n *node, s *sel) bool {
	if s.kind == nfTypename {
		return ex.typename(s)
	}
	r := &n.rec
	switch s.meta {
	case "source":
		ex.b = appendString(ex.b, r.Source)
	case "model":
		ex.b = appendString(ex.b, r.Model)
	case "connection":
		ex.b = appendString(ex.b, r.Connection)
	case "first_seen_at":
		ex.b = appendString(ex.b, r.FirstSeenAt.UTC().Format(timeFormat))
	case "last_modified_at":
		ex.b = appendString(ex.b, r.LastModifiedAt.UTC().Format(timeFormat))
	case "last_action":
		ex.b = appendString(ex.b, r.Action.String())
	case "deleted_at":
		if r.Deleted() {
			ex.b = appendString(ex.b, r.LastModifiedAt.UTC().Format(timeFormat))
		} else {
			ex.null()
		}
	case "cursor":
		ex.b = appendString(ex.b, r.Cursor.String())
	case "revision":
		if r.Revision < math.MinInt32 || r.Revision > math.MaxInt32 {
			ex.fail(errorf(CodeInternal, "Cannot return null for non-nullable field RecordMetadata.revision."), s)
			return false
		}
		ex.b = strconv.AppendInt(ex.b, r.Revision, 10)
	}
	return true
}

func (ex *executor) nodeField(n *node, s *sel) bool {
	switch s.kind {
	case nfTypename:
		return ex.typename(s)
	case nfID:
		ex.b = appendString(ex.b, n.rec.ID)
	case nfMetadata:
		return ex.object(objMeta, nil, ex.subOf(s, objMeta, nil), n)
	case nfAttr:
		if err := ex.attr(n, s.attr); err != nil {
			ex.fail(ex.rc.fail(err), s)
			ex.null()
		}
	case nfForward:
		v, err := s.ref.resolveForward(graphql.ResolveParams{Source: n, Context: ex.ctx})
		if err != nil {
			ex.fail(err, s)
			ex.null()
			return true
		}
		to := s.ref.to
		switch x := v.(type) {
		case *node:
			if !ex.object(objNode, to, ex.subOf(s, objNode, to), x) {
				ex.null()
			}
		case []*node:
			ex.nodeList(x, to, ex.subOf(s, objNode, to), false)
		default:
			ex.null()
		}
	case nfReverse:
		v, err := s.ref.resolveReverse(graphql.ResolveParams{Source: n, Args: s.args, Context: ex.ctx})
		if err != nil {
			ex.fail(err, s)
			return false
		}
		from := s.ref.from
		return ex.nodeList(v.([]*node), from, ex.subOf(s, objNode, from), true)
	}
	return true
}

// attr writes an attribute's value as its field's scalar serializes it
// (fieldInfo.resolve and graphql-go's scalars): null when the record does
// not have it or it is of another kind.
func (ex *executor) attr(n *node, f *fieldInfo) error {
	raw, ok := n.raw(f.Attr)
	if !ok || len(raw) == 0 || raw[0] == 'n' {
		ex.null()
		return nil
	}
	switch f.Scalar {
	case sString:
		if raw[0] != '"' {
			ex.null()
			return nil
		}
		var ok bool
		if ex.b, ok = appendRawString(ex.b, raw); !ok {
			_, err := decodeRaw(raw)
			return n.valueError(f.Attr, err)
		}
	case sInt:
		if !isNumber(raw) {
			ex.null()
			return nil
		}
		i, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || i < math.MinInt32 || i > math.MaxInt32 {
			ex.null()
			return nil
		}
		ex.b = strconv.AppendInt(ex.b, i, 10)
	case sFloat:
		if !isNumber(raw) {
			ex.null()
			return nil
		}
		x, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			ex.null()
			return nil
		}
		ex.b = appendFloat(ex.b, x)
	case sBoolean:
		switch raw[0] {
		case 't':
			ex.b = append(ex.b, "true"...)
		case 'f':
			ex.b = append(ex.b, "false"...)
		default:
			ex.null()
		}
	default:
		v, err := decodeRaw(raw)
		if err != nil {
			return n.valueError(f.Attr, err)
		}
		mark := len(ex.b)
		if ex.b, err = appendJSON(ex.b, v); err != nil {
			ex.b = ex.b[:mark]
			return n.valueError(f.Attr, err)
		}
	}
	return nil
}

func isNumber(raw []byte) bool { return raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9') }

// Root fields of fastQuery.

func (t *typeInfo) fastAll(p graphql.ResolveParams) (any, error) {
	v, err := t.resolveAll(p)
	if err != nil {
		return nil, err
	}
	rc := reqOf(p.Context)
	ex := newExecutor(p, rc)
	if !ex.object(objConn, t, ex.selections(p.Info.FieldASTs, objConn, t), v) {
		ex.drop()
		return nil, ex.rootFailure() // allX is non-null: the answer has no data
	}
	return ex.done(), nil
}

func (t *typeInfo) fastOne(p graphql.ResolveParams) (any, error) {
	v, err := t.resolveOne(p)
	if err != nil {
		return nil, err
	}
	n, _ := v.(*node)
	if n == nil {
		return nil, nil
	}
	rc := reqOf(p.Context)
	ex := newExecutor(p, rc)
	if !ex.object(objNode, t, ex.selections(p.Info.FieldASTs, objNode, t), n) {
		ex.drop()
		return nil, nil // x is nullable: null, the error recorded
	}
	return ex.done(), nil
}

// usesIntrospection tells whether the operation selects __schema or
// __type (on the query root, where they are allowed).
func usesIntrospection(doc *ast.Document, opName string) bool {
	var op *ast.OperationDefinition
	frags := map[string]*ast.FragmentDefinition{}
	for _, d := range doc.Definitions {
		switch x := d.(type) {
		case *ast.OperationDefinition:
			if op == nil && (opName == "" || (x.Name != nil && x.Name.Value == opName)) {
				op = x
			}
		case *ast.FragmentDefinition:
			if x.Name != nil {
				frags[x.Name.Value] = x
			}
		}
	}
	if op == nil {
		return true // graphql-go answers the error
	}
	seen := map[string]bool{}
	var walk func(ss *ast.SelectionSet) bool
	walk = func(ss *ast.SelectionSet) bool {
		if ss == nil {
			return false
		}
		for _, s := range ss.Selections {
			switch x := s.(type) {
			case *ast.Field:
				if x.Name != nil && (x.Name.Value == "__schema" || x.Name.Value == "__type") {
					return true
				}
			case *ast.InlineFragment:
				if walk(x.SelectionSet) {
					return true
				}
			case *ast.FragmentSpread:
				if x.Name == nil || seen[x.Name.Value] {
					continue
				}
				seen[x.Name.Value] = true
				if f := frags[x.Name.Value]; f != nil && walk(f.SelectionSet) {
					return true
				}
			}
		}
		return false
	}
	return walk(op.SelectionSet)
}
