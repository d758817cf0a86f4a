package graphql

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/graphql-go/graphql"
	"github.com/graphql-go/graphql/gqlerrors"

	"github.com/synclayer/synclayer/core/store"
)

// Error codes in extensions.code of GraphQL errors.
const (
	CodeQueryTooLarge     = "QUERY_TOO_LARGE"
	CodeParseFailed       = "GRAPHQL_PARSE_FAILED"
	CodeValidationFailed  = "GRAPHQL_VALIDATION_FAILED"
	CodeDepthLimit        = "DEPTH_LIMIT_EXCEEDED"
	CodeNodeLimit         = "NODE_LIMIT_EXCEEDED"
	CodeCostLimit         = "COST_LIMIT_EXCEEDED"
	CodeTimeout           = "TIMEOUT"
	CodeBadUserInput      = "BAD_USER_INPUT"
	CodeBadRequest        = "BAD_REQUEST"
	CodeNotFound          = "NOT_FOUND"
	CodeRevisionGone      = "REVISION_GONE"
	CodeInternal          = "INTERNAL_SERVER_ERROR"
	CodeOperationNotFound = "OPERATION_NOT_FOUND"
)

// codedError is an error GraphQL answers with extensions.code.
type codedError struct {
	code string
	msg  string
}

func (e *codedError) Error() string { return e.msg }

// Extensions implements gqlerrors.ExtendedError.
func (e *codedError) Extensions() map[string]any { return map[string]any{"code": e.code} }

func errorf(code, f string, a ...any) *codedError {
	return &codedError{code: code, msg: fmt.Sprintf(f, a...)}
}

// reqCtx is what one request's resolvers share.
type reqCtx struct {
	ctx   context.Context // the request's: ends when its client is gone
	until time.Time       // the time limit; zero: none
	snap  store.Snapshot  // nil: nothing published yet
	rev   int64
	// conns are the connections the reader may see, ascending; nil: every
	// record (an api_token without a connections list).
	conns    []string
	deadline time.Duration
	// internal records the first store error, for the log; the answer
	// carries a generic message.
	mu       sync.Mutex
	internal error
	// errs are the errors of fields the executor answered (exec.go).
	errs []*gqlerrors.Error
	// bufs are answer buffers to reuse once the answer is written.
	bufs [][]byte
}

type ctxKey struct{}

func reqOf(ctx context.Context) *reqCtx {
	rc, _ := ctx.Value(ctxKey{}).(*reqCtx)
	return rc
}

// check answers TIMEOUT once the request's time is up (or the request is
// gone).
func (rc *reqCtx) check() error {
	if (!rc.until.IsZero() && time.Now().After(rc.until)) || rc.ctx.Err() != nil {
		return errorf(CodeTimeout, "the query ran past its time limit of %s; ask for fewer nodes or use an indexed filter", rc.deadline)
	}
	return nil
}

// fail turns a store error into an answer error, keeping it for the log.
func (rc *reqCtx) fail(err error) error {
	var ce *codedError
	if errors.As(err, &ce) {
		return ce
	}
	rc.mu.Lock()
	if rc.internal == nil {
		rc.internal = err
	}
	rc.mu.Unlock()
	return errorf(CodeInternal, "reading the store failed; see the server log")
}

// node is one record being resolved. Its payload is scanned once for
// where its attributes are; values are decoded when a query uses them.
type node struct {
	t      *typeInfo
	rec    store.StoredRecord
	fields []rawField
	owned  bool // rec.Payload is the node's own copy
	// err is the first attribute value that did not decode.
	err   error
	small [8]rawField
}

// newNode scans a record's payload; the node refers to r.Payload until own
// is called (owned says it already is the caller's copy).
func newNode(t *typeInfo, r *store.StoredRecord, owned bool) (*node, error) {
	n := &node{}
	if err := n.init(t, r, owned); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *node) init(t *typeInfo, r *store.StoredRecord, owned bool) error {
	*n = node{t: t, rec: *r, owned: owned}
	fields, err := scanObject(r.Payload, n.small[:0])
	if err != nil {
		return fmt.Errorf("record %s/%s/%s: %w", r.Source, r.Model, r.ID, err)
	}
	n.fields = fields
	return nil
}

// nodeArena keeps the nodes of a page, and copies of their payloads, in a
// few large allocations rather than two per record.
type nodeArena struct {
	nodes []node
	bytes []byte
}

// keep returns a copy of n that owns its payload.
func (a *nodeArena) keep(n *node) *node {
	if len(a.nodes) == cap(a.nodes) {
		a.nodes = make([]node, 0, 64)
	}
	a.nodes = append(a.nodes, *n)
	m := &a.nodes[len(a.nodes)-1]
	if len(n.fields) <= len(n.small) { // they are in n.small
		m.fields = m.small[:len(n.fields)]
	}
	if !m.owned {
		p := n.rec.Payload
		if cap(a.bytes)-len(a.bytes) < len(p) {
			a.bytes = make([]byte, 0, max(128<<10, len(p)))
		}
		start := len(a.bytes)
		a.bytes = append(a.bytes, p...)
		m.rec.Payload = a.bytes[start:len(a.bytes):len(a.bytes)]
		m.owned = true
	}
	return m
}

// own copies the payload a node refers to, so that the node outlives the
// buffer it was read into.
func (n *node) own() *node {
	if !n.owned {
		n.rec.Payload = append([]byte(nil), n.rec.Payload...)
		n.owned = true
	}
	return n
}

// raw returns an attribute's value as JSON text.
func (n *node) raw(attr string) ([]byte, bool) {
	return lookupRaw(n.rec.Payload, n.fields, attr)
}

// attr returns an attribute's value decoded (strings, json.Number, bools,
// nil, []any, map[string]any); present is false when the record does not
// have it. A value that does not decode is reported in n.err.
func (n *node) attr(attr string) (v any, present bool) {
	raw, ok := n.raw(attr)
	if !ok {
		return nil, false
	}
	v, err := decodeRaw(raw)
	if err != nil {
		n.valueError(attr, err)
		return nil, false
	}
	return v, true
}

// valueError records that attribute attr's value did not decode.
func (n *node) valueError(attr string, err error) error {
	if n.err == nil {
		n.err = fmt.Errorf("record %s/%s/%s: attribute %q: %w", n.rec.Source, n.rec.Model, n.rec.ID, attr, err)
	}
	return n.err
}

// value is attr without presence.
func (n *node) value(attr string) any {
	v, _ := n.attr(attr)
	return v
}

func resolveID(p graphql.ResolveParams) (any, error) { return p.Source.(*node).rec.ID, nil }

const timeFormat = "2006-01-02T15:04:05.000000Z07:00"

func resolveMetadata(p graphql.ResolveParams) (any, error) {
	r := p.Source.(*node).rec
	m := map[string]any{
		"source": r.Source, "model": r.Model, "connection": r.Connection,
		"first_seen_at":    r.FirstSeenAt.UTC().Format(timeFormat),
		"last_modified_at": r.LastModifiedAt.UTC().Format(timeFormat),
		"last_action":      r.Action.String(),
		"deleted_at":       nil,
		"cursor":           r.Cursor.String(),
		"revision":         r.Revision,
	}
	if r.Deleted() {
		m["deleted_at"] = m["last_modified_at"]
	}
	return m, nil
}

// resolve returns an attribute's value as the field's scalar.
func (f *fieldInfo) resolve(p graphql.ResolveParams) (any, error) {
	n := p.Source.(*node)
	v, ok := n.attr(f.Attr)
	if n.err != nil {
		return nil, reqOf(p.Context).fail(n.err)
	}
	if !ok || v == nil {
		return nil, nil
	}
	switch f.Scalar {
	case sString:
		s, _ := v.(string)
		if _, ok := v.(string); !ok {
			return nil, nil
		}
		return s, nil
	case sInt:
		if n, ok := v.(json.Number); ok {
			if i, err := n.Int64(); err == nil && i >= math.MinInt32 && i <= math.MaxInt32 {
				return int(i), nil
			}
		}
		return nil, nil
	case sFloat:
		if n, ok := v.(json.Number); ok {
			if x, err := n.Float64(); err == nil {
				return x, nil
			}
		}
		return nil, nil
	case sBoolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, nil
	}
	return v, nil
}

// position is where a page starts: after a record (id order: its
// connection and id) or after a number of matches (sorted order), on a
// revision. Records without a connection have no "c", so that cursors of
// sources without connections are those they always were.
type position struct {
	Rev    int64  `json:"r"`
	Conn   string `json:"c,omitempty"`
	After  string `json:"k,omitempty"`
	Offset int    `json:"o,omitempty"`
	Sorted bool   `json:"s,omitempty"`
}

func (p position) String() string {
	b, _ := json.Marshal(p)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parsePosition(s string) (position, error) {
	var p position
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &p) != nil || p.Rev <= 0 || p.Offset < 0 {
		return p, errorf(CodeBadUserInput, "after is not an endCursor this server gave out")
	}
	return p, nil
}

// sortKey is one sort criterion.
type sortKey struct {
	attr string // "" for id
	desc bool
}

// conn is an allX field being resolved.
type conn struct {
	t      *typeInfo
	rc     *reqCtx
	filter map[string]any
	sort   []sortKey
	limit  int
	skip   int
	after  *position
	cn     *string // connection argument
	part   part    // the records the list reads

	once      sync.Once
	arena     nodeArena
	nodes     []*node
	hasNext   bool
	endCursor *string
	err       error
}

func intArg(args map[string]any, name string, def int) int {
	if v, ok := args[name].(int); ok {
		return v
	}
	return def
}

func (t *typeInfo) resolveAll(p graphql.ResolveParams) (any, error) {
	rc := reqOf(p.Context)
	if err := rc.check(); err != nil {
		return nil, err
	}
	c := &conn{t: t, rc: rc, limit: intArg(p.Args, "limit", defaultLimit), skip: intArg(p.Args, "skip", 0)}
	if c.limit < 0 || c.limit > MaxNodes {
		return nil, errorf(CodeNodeLimit, "limit must be from 0 to %d (a list returns at most %d nodes); page with after", MaxNodes, MaxNodes)
	}
	if c.skip < 0 {
		return nil, errorf(CodeBadUserInput, "skip must not be negative")
	}
	if f, ok := p.Args["filter"].(map[string]any); ok {
		c.filter = f
	}
	if s, ok := p.Args["connection"].(string); ok {
		c.cn = &s
		c.part = rc.only(s)
	} else {
		c.part = rc.whole(t)
	}
	if list, ok := p.Args["sort"].([]any); ok {
		for _, x := range list {
			m, _ := x.(map[string]any)
			name, _ := m["field"].(string)
			k := sortKey{desc: m["order"] == "DESC"}
			if name != "id" {
				f := t.byName[name]
				if f == nil {
					return nil, errorf(CodeBadUserInput, "cannot sort %s by %q", t.Name, name)
				}
				k.attr = f.Attr
			}
			c.sort = append(c.sort, k)
		}
	}
	if a, ok := p.Args["after"].(string); ok && a != "" {
		pos, err := parsePosition(a)
		if err != nil {
			return nil, err
		}
		if pos.Rev != rc.rev {
			return nil, errorf(CodeBadUserInput, "this endCursor belongs to revision %d and this answer reads revision %d; finish the walk at /revisions/%d/graphql", pos.Rev, rc.rev, pos.Rev)
		}
		if pos.Sorted != (len(c.sort) > 0) {
			return nil, errorf(CodeBadUserInput, "this endCursor was made for another sort order; pass the same sort as the page it came from")
		}
		if c.cn != nil && pos.After != "" && pos.Conn != *c.cn {
			return nil, errorf(CodeBadUserInput, "this endCursor was made for a list of another connection; pass the same connection as the page it came from")
		}
		c.after = &pos
	}
	return c, nil
}

func resolveNodes(p graphql.ResolveParams) (any, error) {
	c := p.Source.(*conn)
	c.once.Do(c.load)
	return c.nodes, c.err
}

func resolvePageInfo(p graphql.ResolveParams) (any, error) {
	c := p.Source.(*conn)
	c.once.Do(c.load)
	if c.err != nil {
		return nil, c.err
	}
	return map[string]any{"hasNextPage": c.hasNext, "endCursor": c.endCursor}, nil
}

func resolveTotal(p graphql.ResolveParams) (any, error) {
	c := p.Source.(*conn)
	if c.filter == nil && c.rc.conns == nil && (c.cn == nil || (*c.cn == "" && !c.t.Conns)) {
		return int(c.t.Live), nil // the revision's statistics know it
	}
	n := 0
	err := c.matches(func(*store.StoredRecord, *node) (bool, error) { n++; return true, nil }, "", "")
	if err != nil {
		return nil, c.rc.fail(err)
	}
	return n, nil
}

// part is which records of a type a read covers: with all, every record
// of its source whatever its connection; else those of the connections
// listed, ascending ("" : the records without a connection).
type part struct {
	all   bool
	conns []string
}

// allowed tells whether the reader may see the records of connection cn
// ("" : those without a connection).
func (rc *reqCtx) allowed(cn string) bool {
	if rc.conns == nil {
		return true
	}
	_, found := slices.BinarySearch(rc.conns, cn)
	return found
}

// whole is the part of type t a reader sees without a connection
// argument: every record, or those of its token's connections.
func (rc *reqCtx) whole(t *typeInfo) part {
	switch {
	case rc.conns != nil:
		return part{conns: rc.conns}
	case !t.Conns:
		return part{conns: []string{""}} // one key: index lookups by id work
	}
	return part{all: true}
}

// only is the part of one connection ("" : the records without one),
// empty when the reader may not see it.
func (rc *reqCtx) only(cn string) part {
	if !rc.allowed(cn) {
		return part{}
	}
	return part{conns: []string{cn}}
}

// connectionOf is the connection a record of a type refers to records of
// type to within: its own when to's records belong to connections (ids
// are unique per connection only), none otherwise.
func connectionOf(n *node, to *typeInfo) string {
	if to.Conns {
		return n.rec.Connection
	}
	return ""
}

// walk calls fn with the records of t in p that are not deleted, in
// (connection, id) order, after the record (afterConn, afterID) (all when
// both are empty). The record passed to fn is only valid during the call.
func (rc *reqCtx) walk(t *typeInfo, p part, afterConn, afterID string, fn func(*store.StoredRecord) (bool, error)) error {
	if p.all {
		return rc.snap.ScanConnections(t.Source, t.Model, afterConn, afterID, fn)
	}
	for _, cn := range p.conns {
		if cn < afterConn {
			continue
		}
		after := ""
		if cn == afterConn {
			after = afterID
		}
		stop := false
		err := rc.snap.Scan(store.SourceKey(t.Source, cn), t.Model, after, func(r *store.StoredRecord) (bool, error) {
			more, err := fn(r)
			stop = !more
			return more, err
		})
		if err != nil || stop {
			return err
		}
	}
	return nil
}

// get reads one record of t by its key.
func (rc *reqCtx) get(t *typeInfo, k store.RecordKey) (store.StoredRecord, bool, error) {
	return rc.snap.Get(store.SourceKey(t.Source, k.Connection), t.Model, k.ID)
}

// lookup returns the keys of the records of t in p whose attribute attr
// holds one of values, by the field index, in (connection, id) order; it
// fails with store.ErrNotIndexed without an index at this revision.
func (rc *reqCtx) lookup(t *typeInfo, p part, attr string, values []any) ([]store.RecordKey, error) {
	if p.all {
		keys, _, err := rc.snap.LookupConnections(t.Source, t.Model, attr, values, 0)
		return keys, err
	}
	var out []store.RecordKey
	for _, cn := range p.conns {
		ids, _, err := rc.snap.Lookup(store.SourceKey(t.Source, cn), t.Model, attr, values, 0)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			out = append(out, store.RecordKey{Connection: cn, ID: id})
		}
	}
	return out, nil
}

// after tells whether key k comes after the record (conn, id) in
// (connection, id) order; nothing comes after an empty position.
func after(k store.RecordKey, conn, id string) bool {
	if conn == "" && id == "" {
		return true
	}
	return store.RecordKey{Connection: conn, ID: id}.Less(k)
}

// matches calls fn with every record of the type that is not deleted and
// matches the filter, of the list's connections, in (connection, id)
// order, starting after the record (afterConn, afterID); fn returns false
// to stop. The node passed to fn, and the buffer its payload is in, are
// reused after the call: fn keeps a node through c.arena. With an index
// usable for the filter, only its candidates are read.
func (c *conn) matches(fn func(*store.StoredRecord, *node) (bool, error), afterConn, afterID string) error {
	rc := c.rc
	if rc.snap == nil || (!c.part.all && len(c.part.conns) == 0) {
		return nil
	}
	t := c.t
	i := 0
	var scratch node // the node of the record being visited
	visit := func(r *store.StoredRecord, owned bool) (bool, error) {
		if i++; i%256 == 0 {
			if err := rc.check(); err != nil {
				return false, err
			}
		}
		if r.Deleted() {
			return true, nil
		}
		n := &scratch
		if err := n.init(t, r, owned); err != nil {
			return false, err
		}
		if c.filter != nil {
			ok := t.match(n, c.filter)
			if n.err != nil {
				return false, n.err
			}
			if !ok {
				return true, nil
			}
		}
		return fn(r, n)
	}
	if keys, ok, err := t.candidates(rc, c.part, c.filter); err != nil {
		return err
	} else if ok {
		for _, k := range keys {
			if !after(k, afterConn, afterID) {
				continue
			}
			r, found, err := rc.get(t, k)
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			more, err := visit(&r, true)
			if err != nil || !more {
				return err
			}
		}
		return nil
	}
	return rc.walk(t, c.part, afterConn, afterID, func(r *store.StoredRecord) (bool, error) { return visit(r, false) })
}

// maxSorted bounds the matches a sorted query orders in memory.
const maxSorted = 200000

// load computes the page.
func (c *conn) load() {
	rc := c.rc
	if err := rc.check(); err != nil {
		c.err = err
		return
	}
	c.nodes = make([]*node, 0, c.limit)
	if len(c.sort) == 0 {
		afterConn, afterID := "", ""
		if c.after != nil {
			afterConn, afterID = c.after.Conn, c.after.After
		}
		skip := c.skip
		err := c.matches(func(_ *store.StoredRecord, n *node) (bool, error) {
			if skip > 0 {
				skip--
				return true, nil
			}
			if len(c.nodes) == c.limit {
				c.hasNext = true
				return false, nil
			}
			c.nodes = append(c.nodes, c.arena.keep(n))
			return true, nil
		}, afterConn, afterID)
		if err != nil {
			c.err = rc.fail(err)
			return
		}
		if len(c.nodes) > 0 {
			last := &c.nodes[len(c.nodes)-1].rec
			s := position{Rev: rc.rev, Conn: last.Connection, After: last.ID}.String()
			c.endCursor = &s
		} else if c.after != nil {
			s := c.after.String()
			c.endCursor = &s
		}
		return
	}
	// Sorted: order the keys of every match, then read the page.
	type entry struct {
		key  store.RecordKey
		keys []any
	}
	var all []entry
	err := c.matches(func(r *store.StoredRecord, n *node) (bool, error) {
		if len(all) == maxSorted {
			return false, errorf(CodeCostLimit, "more than %d records match this sorted query; narrow it with a filter", maxSorted)
		}
		e := entry{key: store.RecordKey{Connection: r.Connection, ID: r.ID}, keys: make([]any, len(c.sort))}
		for i, k := range c.sort {
			if k.attr == "" {
				e.keys[i] = r.ID
			} else {
				e.keys[i] = normalize(n.value(k.attr))
			}
		}
		if n.err != nil {
			return false, n.err
		}
		all = append(all, e)
		return true, nil
	}, "", "")
	if err != nil {
		c.err = rc.fail(err)
		return
	}
	sort.SliceStable(all, func(i, j int) bool {
		for k, s := range c.sort {
			d := compareSort(all[i].keys[k], all[j].keys[k])
			if d != 0 {
				if s.desc {
					return d > 0
				}
				return d < 0
			}
		}
		return all[i].key.Less(all[j].key)
	})
	start := c.skip
	if c.after != nil {
		start += c.after.Offset
	}
	if start > len(all) {
		start = len(all)
	}
	end := min(start+c.limit, len(all))
	c.hasNext = end < len(all)
	for _, e := range all[start:end] {
		if err := rc.check(); err != nil {
			c.err = err
			return
		}
		r, found, err := rc.get(c.t, e.key)
		if err != nil {
			c.err = rc.fail(err)
			return
		}
		if !found {
			continue
		}
		n, err := newNode(c.t, &r, true)
		if err != nil {
			c.err = rc.fail(err)
			return
		}
		c.nodes = append(c.nodes, n)
	}
	s := position{Rev: rc.rev, Offset: end, Sorted: true}.String()
	c.endCursor = &s
}

func (t *typeInfo) resolveOne(p graphql.ResolveParams) (any, error) {
	rc := reqOf(p.Context)
	if err := rc.check(); err != nil {
		return nil, err
	}
	if rc.snap == nil {
		return nil, nil
	}
	id, _ := p.Args["id"].(string)
	cn, given := p.Args["connection"].(string)
	if !given && t.Conns {
		// Ids are unique per connection only. A token limited to one
		// connection leaves no doubt.
		if len(rc.conns) != 1 {
			return nil, errorf(CodeBadUserInput, "the records of %s belong to connections of source %q and an id is unique within its connection only: pass the connection, like %s(id: %q, connection: \"…\")", t.Name, t.Source, lowerFirst(t.Name), id)
		}
		cn = rc.conns[0]
	}
	if !rc.allowed(cn) {
		return nil, nil
	}
	r, found, err := rc.get(t, store.RecordKey{Connection: cn, ID: id})
	if err != nil {
		return nil, rc.fail(err)
	}
	if !found || r.Deleted() {
		return nil, nil
	}
	n, err := newNode(t, &r, true)
	if err != nil {
		return nil, rc.fail(err)
	}
	return n, nil
}

// keyString is the id a reference value names: strings as they are,
// numbers in their JSON form.
func keyString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// lookupBy returns the records of t in p whose attribute attr (or id)
// equals v, in (connection, id) order: by the record index for id, a
// field index when the revision has one, else a scan of t.
func (rc *reqCtx) lookupBy(t *typeInfo, p part, attr string, v any, limit, skip int) ([]*node, error) {
	var out []*node
	if !p.all && len(p.conns) == 0 {
		return nil, nil
	}
	get := func(k store.RecordKey) error {
		r, found, err := rc.get(t, k)
		if err != nil || !found || r.Deleted() {
			return err
		}
		n, err := newNode(t, &r, true)
		if err != nil {
			return err
		}
		if attr != "id" && !holds(n.value(attr), v) {
			return n.err // a hashed long value that only looked equal
		}
		if skip > 0 {
			skip--
			return nil
		}
		out = append(out, n)
		return nil
	}
	if attr == "id" && !p.all {
		id, ok := keyString(v)
		if !ok {
			return nil, nil
		}
		for _, cn := range p.conns {
			if len(out) == limit {
				break
			}
			if err := get(store.RecordKey{Connection: cn, ID: id}); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	var keys []store.RecordKey
	err := store.ErrNotIndexed
	if attr != "id" && indexable(v) { // Lookup fails with ErrNotIndexed without an index
		keys, err = rc.lookup(t, p, attr, []any{v})
	}
	if err != nil && !errors.Is(err, store.ErrNotIndexed) {
		return nil, err
	}
	if err == nil {
		for i, k := range keys {
			if i%256 == 255 {
				if err := rc.check(); err != nil {
					return nil, err
				}
			}
			if len(out) == limit {
				break
			}
			if err := get(k); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	// No index at this revision (one built later, or an attribute holding
	// objects), or an id in every connection: scan.
	i := 0
	idKey, _ := keyString(v)
	err = rc.walk(t, p, "", "", func(r *store.StoredRecord) (bool, error) {
		if i++; i%256 == 0 {
			if err := rc.check(); err != nil {
				return false, err
			}
		}
		if attr == "id" {
			if r.ID != idKey {
				return true, nil
			}
		}
		n, err := newNode(t, r, false)
		if err != nil {
			return false, err
		}
		if attr == "id" || holds(n.value(attr), v) {
			if skip > 0 {
				skip--
			} else {
				out = append(out, n.own())
			}
		}
		if n.err != nil {
			return false, n.err
		}
		return len(out) < limit, nil
	})
	return out, err
}

// holds tells whether an attribute value equals v or is an array with an
// element equal to v.
func holds(attr, v any) bool {
	if arr, ok := attr.([]any); ok {
		for _, x := range arr {
			if equal(x, v) {
				return true
			}
		}
		return false
	}
	return equal(attr, v)
}

func (r *refInfo) resolveForward(p graphql.ResolveParams) (any, error) {
	rc := reqOf(p.Context)
	if err := rc.check(); err != nil {
		return nil, err
	}
	n := p.Source.(*node)
	v := n.value(r.cfg.Field)
	if n.err != nil {
		return nil, rc.fail(n.err)
	}
	if v == nil {
		return nil, nil
	}
	one := func(key any) (*node, error) {
		ns, err := rc.lookupBy(r.to, rc.only(connectionOf(n, r.to)), r.cfg.By, key, 1, 0)
		if err != nil || len(ns) == 0 {
			return nil, err
		}
		return ns[0], nil
	}
	if arr, ok := v.([]any); ok {
		if len(arr) > MaxNodes {
			arr = arr[:MaxNodes]
		}
		out := []*node{}
		for _, key := range arr {
			x, err := one(key)
			if err != nil {
				return nil, rc.fail(err)
			}
			if x != nil {
				out = append(out, x)
			}
		}
		if !r.list {
			if len(out) == 0 {
				return nil, nil
			}
			return out[0], nil
		}
		return out, nil
	}
	x, err := one(v)
	if err != nil {
		return nil, rc.fail(err)
	}
	if x == nil {
		return nil, nil
	}
	if r.list {
		return []*node{x}, nil
	}
	return x, nil
}

func (r *refInfo) resolveReverse(p graphql.ResolveParams) (any, error) {
	rc := reqOf(p.Context)
	if err := rc.check(); err != nil {
		return nil, err
	}
	limit, skip := intArg(p.Args, "limit", defaultLimit), intArg(p.Args, "skip", 0)
	if limit < 0 || limit > MaxNodes {
		return nil, errorf(CodeNodeLimit, "limit must be from 0 to %d (a list returns at most %d nodes)", MaxNodes, MaxNodes)
	}
	if skip < 0 {
		return nil, errorf(CodeBadUserInput, "skip must not be negative")
	}
	n := p.Source.(*node)
	var key any = n.rec.ID
	if r.cfg.By != "id" {
		key = n.value(r.cfg.By)
		if n.err != nil {
			return nil, rc.fail(n.err)
		}
	}
	if key == nil || limit == 0 {
		return []*node{}, nil
	}
	// The records pointing at n: of n's connection when the records of
	// n's type belong to connections (a reference resolves within its
	// record's connection), else of every connection the reader sees.
	p2 := rc.whole(r.from)
	if r.to.Conns {
		p2 = rc.only(n.rec.Connection)
	}
	ns, err := rc.lookupBy(r.from, p2, r.cfg.Field, key, limit, skip)
	if err != nil {
		return nil, rc.fail(err)
	}
	if ns == nil {
		ns = []*node{}
	}
	return ns, nil
}

// Filters.

// normalize turns JSON numbers and ints into float64, recursively, so that
// values compare by what they mean.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		return f
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	}
	return v
}

func equal(a, b any) bool { return reflect.DeepEqual(normalize(a), normalize(b)) }

// compareSort orders values for sorting: missing first, then booleans,
// numbers, strings, and other JSON by its text.
func compareSort(a, b any) int {
	rank := func(v any) int {
		switch v.(type) {
		case nil:
			return 0
		case bool:
			return 1
		case float64:
			return 2
		case string:
			return 3
		}
		return 4
	}
	ra, rb := rank(a), rank(b)
	if ra != rb {
		return ra - rb
	}
	switch x := a.(type) {
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case float64:
		y := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case string:
		return strings.Compare(x, b.(string))
	case nil:
		return 0
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Compare(ja, jb)
}

// order compares a record value with a filter value: ok is false when they
// are not both numbers or both strings.
func order(v, x any) (int, bool) {
	a, b := normalize(v), normalize(x)
	switch y := a.(type) {
	case float64:
		if z, ok := b.(float64); ok {
			return compareSort(y, z), true
		}
	case string:
		if z, ok := b.(string); ok {
			return strings.Compare(y, z), true
		}
	}
	return 0, false
}

// match tells whether a node satisfies a filter object.
func (t *typeInfo) match(n *node, filter map[string]any) bool {
	for key, v := range filter {
		switch key {
		case "and":
			list, _ := v.([]any)
			for _, sub := range list {
				m, _ := sub.(map[string]any)
				if !t.match(n, m) {
					return false
				}
			}
		case "or":
			list, _ := v.([]any)
			if list == nil {
				continue
			}
			anyOK := false
			for _, sub := range list {
				m, _ := sub.(map[string]any)
				if t.match(n, m) {
					anyOK = true
					break
				}
			}
			if !anyOK {
				return false
			}
		case "id":
			ops, _ := v.(map[string]any)
			if !matchOps(n.rec.ID, true, ops) {
				return false
			}
		default:
			f := t.byName[key]
			if f == nil {
				return false
			}
			ops, _ := v.(map[string]any)
			val, present := n.attr(f.Attr)
			if !matchOps(val, present && val != nil, ops) {
				return false
			}
		}
	}
	return true
}

// matchOps applies one field's operators to a record value.
func matchOps(val any, present bool, ops map[string]any) bool {
	for op, x := range ops {
		if x == nil && op != "exists" {
			continue // an operator given as null constrains nothing
		}
		switch op {
		case "eq":
			if !present || !equal(val, x) {
				return false
			}
		case "ne":
			if present && equal(val, x) {
				return false
			}
		case "in", "nin":
			list, _ := x.([]any)
			found := false
			if present {
				for _, e := range list {
					if equal(val, e) {
						found = true
						break
					}
				}
			}
			if found != (op == "in") {
				return false
			}
		case "gt", "gte", "lt", "lte":
			if !present {
				return false
			}
			d, ok := order(val, x)
			if !ok {
				return false
			}
			switch {
			case op == "gt" && d <= 0, op == "gte" && d < 0, op == "lt" && d >= 0, op == "lte" && d > 0:
				return false
			}
		case "contains":
			if !present {
				return false
			}
			switch y := val.(type) {
			case string:
				s, ok := x.(string)
				if !ok || !strings.Contains(y, s) {
					return false
				}
			case []any:
				if !holds(y, x) {
					return false
				}
			default:
				return false
			}
		case "exists":
			want, _ := x.(bool)
			if x == nil {
				continue
			}
			if present != want {
				return false
			}
		}
	}
	return true
}

// indexable tells whether an index can look v up.
func indexable(v any) bool {
	switch x := v.(type) {
	case string, bool, int, int64, json.Number:
		return true
	case float64:
		return !math.IsNaN(x) && !math.IsInf(x, 0)
	}
	return false
}

// candidates returns, when the filter has an eq or in on id or on an
// indexed attribute (at top level or under and, or under or when every
// branch has one), a superset of the keys of the matching records of p in
// (connection, id) order. An id names a record in each connection: it
// narrows a read of listed connections, not one of every connection.
func (t *typeInfo) candidates(rc *reqCtx, p part, filter map[string]any) ([]store.RecordKey, bool, error) {
	if filter == nil {
		return nil, false, nil
	}
	var sets [][]store.RecordKey
	for key, v := range filter {
		switch key {
		case "and":
			list, _ := v.([]any)
			for _, sub := range list {
				m, _ := sub.(map[string]any)
				keys, ok, err := t.candidates(rc, p, m)
				if err != nil {
					return nil, false, err
				}
				if ok {
					sets = append(sets, keys)
				}
			}
		case "or":
			list, _ := v.([]any)
			if len(list) == 0 {
				continue
			}
			union := map[store.RecordKey]bool{}
			all := true
			for _, sub := range list {
				m, _ := sub.(map[string]any)
				keys, ok, err := t.candidates(rc, p, m)
				if err != nil {
					return nil, false, err
				}
				if !ok {
					all = false
					break
				}
				for _, k := range keys {
					union[k] = true
				}
			}
			if all {
				keys := make([]store.RecordKey, 0, len(union))
				for k := range union {
					keys = append(keys, k)
				}
				sortKeys(keys)
				sets = append(sets, keys)
			}
		default:
			ops, _ := v.(map[string]any)
			var values []any
			if x, ok := ops["eq"]; ok && x != nil {
				values = []any{x}
			} else if x, ok := ops["in"].([]any); ok {
				values = x
			} else {
				continue
			}
			usable := true
			for _, x := range values {
				usable = usable && indexable(x)
			}
			if !usable {
				continue
			}
			if key == "id" {
				if p.all {
					continue
				}
				var keys []store.RecordKey
				for _, cn := range p.conns {
					for _, x := range values {
						if s, ok := x.(string); ok {
							keys = append(keys, store.RecordKey{Connection: cn, ID: s})
						}
					}
				}
				sortKeys(keys)
				sets = append(sets, slices.Compact(keys))
				continue
			}
			f := t.byName[key]
			if f == nil {
				continue
			}
			keys, err := rc.lookup(t, p, f.Attr, values)
			if errors.Is(err, store.ErrNotIndexed) {
				continue
			}
			if err != nil {
				return nil, false, err
			}
			sets = append(sets, keys)
		}
	}
	if len(sets) == 0 {
		return nil, false, nil
	}
	out := sets[0]
	for _, s := range sets[1:] {
		out = intersectSorted(out, s)
	}
	return out, true, nil
}

func sortKeys(keys []store.RecordKey) {
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })
}

// intersectSorted intersects two key lists in (connection, id) order.
func intersectSorted(a, b []store.RecordKey) []store.RecordKey {
	var out []store.RecordKey
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			if len(out) == 0 || out[len(out)-1] != a[i] {
				out = append(out, a[i])
			}
			i++
			j++
		case a[i].Less(b[j]):
			i++
		default:
			j++
		}
	}
	return out
}
