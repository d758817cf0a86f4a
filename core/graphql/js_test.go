package graphql

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Every schema the tests query and every query they send that the server
// accepted are checked again with graphql-js, the reference
// implementation: the introspection result must build a valid client
// schema (buildClientSchema, assertValidSchema) and each query must
// validate against it. TestMain runs the check after the tests; node and
// npm are required (the check fails, never skips, without them).

const jsDir = "testdata/js"

var (
	introspectionQuery string
	jsMu               sync.Mutex
	jsGroups           = map[string]*jsGroup{} // by introspection text
	jsOrder            []string
)

type jsGroup struct {
	Introspection json.RawMessage `json:"introspection"`
	Queries       []string        `json:"queries"`
	seen          map[string]bool
}

const installHint = "the GraphQL tests check schemas with graphql-js and need Node.js and npm: apt-get install -y nodejs npm"

func TestMain(m *testing.M) {
	if err := prepareNode(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := checkWithGraphQLJS(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: graphql-js:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// prepareNode installs the pinned graphql-js when needed and reads its
// introspection query.
func prepareNode() error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("node not found: %s", installHint)
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "graphql", "package.json")); err != nil {
		if _, err := exec.LookPath("npm"); err != nil {
			return fmt.Errorf("npm not found: %s", installHint)
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = jsDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("npm ci in %s failed (it needs the npm registry): %v\n%s", jsDir, err, out)
		}
	}
	out, err := exec.Command("node", filepath.Join(jsDir, "check.js"), "--introspection-query").Output()
	if err != nil {
		return fmt.Errorf("node %s/check.js: %v", jsDir, err)
	}
	introspectionQuery = string(out)
	return nil
}

// recordForJS keeps a query the server accepted, with the introspection
// of the schema it ran against.
func (h *harness) recordForJS(rev int64, scope Scope, q string) {
	h.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": introspectionQuery})
	w := httptest.NewRecorder()
	h.svc.ServeHTTP(w, httptest.NewRequest("POST", "/graphql", bytes.NewReader(body)), Env{Config: h.cfg, Models: h.models, Store: h.layer}, rev, scope)
	var a struct {
		Data   json.RawMessage `json:"data"`
		Errors []any           `json:"errors"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || len(a.Errors) > 0 || w.Code != 200 {
		h.t.Fatalf("graphql-js's introspection query failed (%d): %s", w.Code, w.Body.String())
	}
	key := string(a.Data)
	jsMu.Lock()
	defer jsMu.Unlock()
	g := jsGroups[key]
	if g == nil {
		g = &jsGroup{Introspection: a.Data, seen: map[string]bool{}}
		jsGroups[key] = g
		jsOrder = append(jsOrder, key)
	}
	if !g.seen[q] {
		g.seen[q] = true
		g.Queries = append(g.Queries, q)
	}
}

func checkWithGraphQLJS() error {
	jsMu.Lock()
	groups := make([]*jsGroup, 0, len(jsOrder))
	for _, k := range jsOrder {
		groups = append(groups, jsGroups[k])
	}
	jsMu.Unlock()
	if len(groups) == 0 {
		return nil // a -run that sent no query
	}
	in, err := json.Marshal(groups)
	if err != nil {
		return err
	}
	cmd := exec.Command("node", filepath.Join(jsDir, "check.js"))
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	fmt.Print(strings.TrimSpace(string(out)) + "\n")
	return nil
}

// TestGraphQLJSSeesTheSchema checks one schema directly, so that a plain
// `go test -run GraphQLJS` exercises graphql-js too.
func TestGraphQLJSSeesTheSchema(t *testing.T) {
	h := newHarness(t, testLayerHCL, Options{})
	seed(h)
	h.ok(0, `query Posts($slug: String) { allPost(filter: {slug: {eq: $slug}}, sort: [{field: views, order: DESC}], limit: 10) { totalCount nodes { id title author { name posts { id } } editors { name } _metadata { cursor revision } } pageInfo { hasNextPage endCursor } } }`, map[string]any{"slug": "hello"})
	if err := checkWithGraphQLJS(); err != nil {
		t.Fatal(err)
	}
}
