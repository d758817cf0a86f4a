package graphql

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graphql-go/graphql/language/parser"
	"github.com/graphql-go/graphql/language/source"
)

// The executor follows graphql-go's execution rules: every query here is
// also answered by graphql-go alone and the answers compared (queryAs),
// data and errors alike.
func TestExecutorMatchesGraphQLGo(t *testing.T) {
	h := newHarness(t, testLayerHCL, Options{})
	seed(h)
	h.publish(map[string]map[string]string{"blog": {
		"Post/p4": "",
		"Post/p5": `{"id":"p5","title":"Caf\u00e9 \"quoted\" \\ back\u2028line \ud83d\ude00 <b>&","slug":"x\ty","views":2147483648,"score":1e-7,"published":null,"tags":[],"meta":{"b":[1,2.50,{"z":null}],"a":"\u0001"},"author_id":"a2","editor_emails":["ada@example.com","nobody@example.com"],"dup":1,"dup":"two"}`,
		"Post/p6": `{"id":"p6","title":12,"views":"7","score":"x","published":"yes","meta":-0,"author_id":["a1","a2"],"big":12345678901234567890,"neg":-2147483648,"exp":1E+2}`,
	}})
	queries := []struct {
		q    string
		vars map[string]any
	}{
		{`{ allPost { totalCount nodes { id title slug views score published tags meta author_id __typename } pageInfo { hasNextPage endCursor __typename } __typename } }`, nil},
		{`{ allPost(limit: 2) { nodes { id } pageInfo { hasNextPage endCursor } } }`, nil},
		{`{ allPost(limit: 0) { nodes { id } pageInfo { hasNextPage endCursor } } }`, nil},
		{`{ p: post(id: "p5") { t: title title id i: id _metadata { source model connection first_seen_at last_modified_at last_action deleted_at cursor revision __typename } } q: post(id: "nope") { id } }`, nil},
		{`{ post(id: "p6") { title views score published meta author { id } editors { id } } }`, nil},
		{`{ post(id: "p5") { author { name posts { id title author { name } } } editors { email } } }`, nil},
		{`{ allAuthor(sort: [{field: name, order: DESC}]) { nodes { name posts(limit: 1, skip: 1) { id } all: posts { id } } } }`, nil},
		{`query($n: Int, $s: Int, $skipT: Boolean!, $inc: Boolean!) { allAuthor { nodes { posts(limit: $n, skip: $s) { id title @skip(if: $skipT) slug @include(if: $inc) } } } }`,
			map[string]any{"n": 1, "s": 0, "skipT": true, "inc": false}},
		{`query($n: Int, $skipT: Boolean!, $inc: Boolean!) { allAuthor { nodes { posts(limit: $n) { id title @skip(if: $skipT) slug @include(if: $inc) } } } }`,
			map[string]any{"skipT": false, "inc": true}},
		{`{ allPost { nodes { id ... on Post { title } ...F ... @include(if: false) { slug } ... @skip(if: false) { views } } } } fragment F on Post { id author { ...A } title } fragment A on Author { name }`, nil},
		{`{ allPost(filter: {slug: {eq: "hello"}}) { nodes { author { name } author { id posts { id } } } } }`, nil},
		{`query Q($f: PostFilter, $after: String) { allPost(filter: $f, after: $after, limit: 1) { nodes { id } totalCount } } query R { __typename }`,
			map[string]any{"f": map[string]any{"views": map[string]any{"gte": 3}}}},
		{`{ __typename allPost(connection: "") { totalCount } allAuthor { totalCount } }`, nil},
		{`{ allPost(sort: [{field: score, order: DESC}], limit: 3) { nodes { id score } pageInfo { endCursor } } }`, nil},
		{`{ allPost(filter: {meta: {exists: true}}) { nodes { id meta } } }`, nil},
	}
	for _, c := range queries {
		a := h.query(0, c.q, c.vars) // compared with graphql-go's answer
		if a.Status != 200 {
			t.Fatalf("%d %s", a.Status, a.Raw)
		}
	}
	// The answer follows the selection's order (graphql-go's maps are
	// written in key order).
	a := h.query(0, `{ post(id: "p1") { title id _metadata { revision model } } }`, nil)
	if !strings.Contains(a.Raw, `{"post":{"title":"Hello","id":"p1","_metadata":{"revision":`) || !strings.Contains(a.Raw, `,"model":"Post"}`) {
		t.Fatalf("answer not in selection order: %s", a.Raw)
	}
	// A JSON value and a non-ASCII string are written as encoding/json
	// writes them.
	a = h.query(0, `{ post(id: "p5") { title meta } }`, nil)
	if !strings.Contains(a.Raw, `"title":"Café \"quoted\" \\ back\u2028line 😀 <b>&"`) || !strings.Contains(a.Raw, `"meta":{"a":"\u0001","b":[1,2.50,{"z":null}]}`) {
		t.Fatalf("values: %s", a.Raw)
	}
}

// countdown is a context whose Err reports the deadline after n calls:
// the resolvers' time checks (reqCtx.check) pass n times, then fail.
type countdown struct {
	context.Context
	n atomic.Int64
}

func (c *countdown) Err() error {
	if c.n.Add(-1) < 0 {
		return context.DeadlineExceeded
	}
	return nil
}

// An error inside a record nulls the nearest nullable field up from it
// and is recorded once with its path, as graphql-go does: compared with
// graphql-go on queries whose time runs out after the root resolvers.
func TestExecutorErrorsAsGraphQLGo(t *testing.T) {
	h := newHarness(t, testLayerHCL, Options{})
	seed(h)
	snap, _, err := h.layer.OpenSnapshot(0)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	cs, err := h.svc.schema(Env{Config: h.cfg, Models: h.models, Store: h.layer}, snap, Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		q      string
		checks int64 // time checks that pass
		want   string
	}{
		// author is nullable: null, one error per node
		{`{ allPost { nodes { id author { name } } } }`, 2, `"path":["allPost","nodes",0,"author"]`},
		// posts is non-null, so are nodes and allAuthor: no data
		{`{ allAuthor { nodes { id posts { id } } } }`, 2, `"path":["allAuthor","nodes",0,"posts"]`},
		// author(id:) is nullable: null
		{`{ author(id: "a1") { name posts { id } } }`, 1, `"path":["author","posts"]`},
		{`{ a: post(id: "p1") { title editors { name } } }`, 1, `"path":["a","editors"]`},
		{`{ post(id: "p1") { id } }`, 0, `"code":"TIMEOUT"`},
	}
	for _, c := range cases {
		doc, err := parser.Parse(parser.ParseParams{Source: source.NewSource(&source.Source{Body: []byte(c.q)})})
		if err != nil {
			t.Fatal(err)
		}
		answer := func(fast bool) string {
			ctx := &countdown{Context: context.Background()}
			ctx.n.Store(c.checks)
			rc := &reqCtx{ctx: ctx, snap: snap, rev: snap.Revision().Number, deadline: time.Second}
			schema := cs.built.schema
			if fast {
				schema = cs.built.fast
			}
			w := httptest.NewRecorder()
			writeResponse(w, 200, run(context.Background(), schema, doc, "", nil, rc))
			rc.release()
			return w.Body.String()
		}
		got := answer(true)
		ref := httptest.NewRecorder()
		ref.Body.WriteString(answer(false))
		if err := sameAnswer(ref, 200, "", []byte(got), c.q); err != nil {
			t.Errorf("%s: %v", c.q, err)
		}
		if !strings.Contains(got, c.want) || !strings.Contains(got, `"code":"TIMEOUT"`) {
			t.Errorf("%s: %s", c.q, got)
		}
	}
}
