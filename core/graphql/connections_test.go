package graphql

import (
	"encoding/base64"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// connLayerHCL: source crm makes connections (one per customer) with
// contacts and deals; source catalog has none and holds products that
// every customer's deals point at.
const connLayerHCL = `
layer "saas" {
  source "crm" {
    plugin      = "files"
    connections = true
  }
  source "catalog" { plugin = "files" }
  reference "Deal.contact" {
    field   = "contact_id"
    to      = "Contact"
    reverse = "deals"
  }
  reference "Deal.product" {
    field   = "sku"
    to      = "Product"
    by      = "sku"
    reverse = "deals"
  }
  index "Contact" { fields = ["email"] }
}
`

func newConnHarness(t *testing.T) *harness {
	h := newHarness(t, connLayerHCL, Options{})
	h.models = map[string][]Model{
		"crm":     {{Name: "Contact", Fields: []ModelField{{Name: "name", Type: "string"}, {Name: "email", Type: "string"}}}, {Name: "Deal"}},
		"catalog": {{Name: "Product", Fields: []ModelField{{Name: "sku", Type: "string"}}}},
	}
	if err := h.layer.SetFieldIndexes(FieldIndexes(h.cfg, h.models)); err != nil {
		t.Fatal(err)
	}
	return h
}

// publishConns publishes one run writing records under source keys, as
// the engine writes a connection's run: changes[store.SourceKey("crm",
// "acme")] = {"Contact/c1": `{...}`} ("" deletes).
func (h *harness) publishConns(changes map[string]map[string]string) int64 {
	h.t.Helper()
	st, err := h.layer.BeginStaging(fmt.Sprintf("run_%d", time.Now().UnixNano()))
	if err != nil {
		h.t.Fatal(err)
	}
	sources := map[string]bool{}
	for key, recs := range changes {
		src, _ := store.SplitSourceKey(key)
		sources[src] = true
		var cs []store.Change
		for k, body := range recs {
			model, id, _ := strings.Cut(k, "/")
			cs = append(cs, store.Change{Model: model, ID: id, Data: []byte(body), Delete: body == ""})
		}
		if err := st.Writer(key, store.WriterOptions{}).Apply(cs); err != nil {
			h.t.Fatal(err)
		}
	}
	var names []string
	for s := range sources {
		names = append(names, s)
	}
	rev, err := st.Publish(store.PublishInfo{Trigger: "manual", Sources: names})
	if err != nil {
		h.t.Fatal(err)
	}
	return rev.Number
}

func contact(id, name, email string) string {
	return fmt.Sprintf(`{"id":%q,"name":%q,"email":%q}`, id, name, email)
}

// seedConns writes three named connections, ten more with two contacts
// each, and the catalog. acme and beta both have a contact c1 with one
// email, and a deal d1.
func seedConns(h *harness) (want []string) {
	changes := map[string]map[string]string{
		store.SourceKey("crm", "acme"): {
			"Contact/c1": contact("c1", "Ann", "a@x"), "Contact/c2": contact("c2", "Bob", "b@x"), "Contact/c3": contact("c3", "Cid", "c@x"),
			"Deal/d1": `{"id":"d1","contact_id":"c1","sku":"S1"}`, "Deal/d2": `{"id":"d2","contact_id":"c2","sku":"S2"}`,
		},
		store.SourceKey("crm", "beta"): {
			"Contact/c1": contact("c1", "Bea", "a@x"), "Contact/c4": contact("c4", "Dan", "d@x"),
			"Deal/d1": `{"id":"d1","contact_id":"c1","sku":"S1"}`,
		},
		store.SourceKey("crm", "gamma"): {"Contact/c0": contact("c0", "Eve", "e@x"), "Contact/c9": contact("c9", "Fay", "f@x")},
		"catalog":                       {"Product/p1": `{"id":"p1","sku":"S1"}`, "Product/p2": `{"id":"p2","sku":"S2"}`},
	}
	want = []string{"acme/c1", "acme/c2", "acme/c3", "beta/c1", "beta/c4", "gamma/c0", "gamma/c9"}
	for i := 0; i < 10; i++ {
		cn := fmt.Sprintf("z%02d", i)
		changes[store.SourceKey("crm", cn)] = map[string]string{
			"Contact/c1": contact("c1", "Z", fmt.Sprintf("z%d@x", i)), "Contact/c2": contact("c2", "Y", "a@x"),
		}
		want = append(want, cn+"/c1", cn+"/c2")
	}
	h.publishConns(changes)
	return want
}

// keysOf lists "connection/id" of a list's nodes.
func keysOf(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	for _, n := range v.(map[string]any)["nodes"].([]any) {
		n := n.(map[string]any)
		out = append(out, n["_metadata"].(map[string]any)["connection"].(string)+"/"+n["id"].(string))
	}
	return out
}

// walkPages reads a list to its end, limit nodes a page, and returns its
// nodes and the totalCount of its first page.
func walkPages(t *testing.T, h *harness, scope Scope, args string, limit int) ([]string, int) {
	t.Helper()
	var all []string
	after := ""
	total := -1
	for page := 0; ; page++ {
		if page > 50 {
			t.Fatal("the walk does not end")
		}
		q := fmt.Sprintf(`query($after: String) { allContact(%s limit: %d, after: $after) { totalCount nodes { id _metadata { connection } } pageInfo { hasNextPage endCursor } } }`, args, limit)
		a := h.queryAs(0, scope, q, map[string]any{"after": after})
		if len(a.Errors) > 0 {
			t.Fatalf("page %d: %s", page, a.Raw)
		}
		l := a.Data["allContact"].(map[string]any)
		if total < 0 {
			total = int(l["totalCount"].(float64))
		}
		got := keysOf(t, l)
		if len(got) > limit {
			t.Fatalf("page of %d nodes, limit %d", len(got), limit)
		}
		all = append(all, got...)
		pi := l["pageInfo"].(map[string]any)
		if pi["hasNextPage"] != true {
			return all, total
		}
		after = pi["endCursor"].(string)
	}
}

// One type per model whatever the number of connections; lists over
// every connection in (connection, id) order, paged across connection
// boundaries, sorted, filtered; lists of one connection.
func TestConnectionsListing(t *testing.T) {
	h := newConnHarness(t)
	want := seedConns(h)
	d := h.ok(0, `{ __schema { queryType { fields { name } } types { name } } }`, nil)
	var fields, types []string
	for _, f := range d["__schema"].(map[string]any)["queryType"].(map[string]any)["fields"].([]any) {
		fields = append(fields, f.(map[string]any)["name"].(string))
	}
	for _, ty := range d["__schema"].(map[string]any)["types"].([]any) {
		if n := ty.(map[string]any)["name"].(string); strings.Contains(n, "Contact") {
			types = append(types, n)
		}
	}
	if got := strings.Join(sorted(fields), ","); got != "allContact,allDeal,allProduct,contact,deal,product" {
		t.Errorf("query fields: %s", got)
	}
	if got := strings.Join(sorted(types), ","); got != "Contact,ContactConnection,ContactFilter,ContactSort,ContactSortField" {
		t.Errorf("types: %s", got)
	}

	for _, limit := range []int{1, 3, 4, 100} {
		got, total := walkPages(t, h, Scope{All: true}, "", limit)
		if !reflect.DeepEqual(got, want) || total != len(want) {
			t.Fatalf("every connection, %d a page: %v (total %d), want %v", limit, got, total, want)
		}
	}
	// A filter no index serves, paged: the walk resumes in the right
	// connection.
	got, total := walkPages(t, h, Scope{All: true}, `filter: {name: {ne: "Z"}}`, 2)
	if w := []string{"acme/c1", "acme/c2", "acme/c3", "beta/c1", "beta/c4", "gamma/c0", "gamma/c9", "z00/c2", "z01/c2", "z02/c2", "z03/c2", "z04/c2", "z05/c2", "z06/c2", "z07/c2", "z08/c2", "z09/c2"}; !reflect.DeepEqual(got, w) || total != len(w) {
		t.Errorf("filtered: %v (total %d)", got, total)
	}
	// Index-backed, over every connection and in one.
	got, total = walkPages(t, h, Scope{All: true}, `filter: {email: {eq: "a@x"}}`, 3)
	if w := []string{"acme/c1", "beta/c1", "z00/c2", "z01/c2", "z02/c2", "z03/c2", "z04/c2", "z05/c2", "z06/c2", "z07/c2", "z08/c2", "z09/c2"}; !reflect.DeepEqual(got, w) || total != len(w) {
		t.Errorf("by the index: %v (total %d)", got, total)
	}
	got, total = walkPages(t, h, Scope{All: true}, `connection: "beta", filter: {email: {in: ["a@x", "d@x", "b@x"]}}`, 1)
	if w := []string{"beta/c1", "beta/c4"}; !reflect.DeepEqual(got, w) || total != 2 {
		t.Errorf("by the index in beta: %v (total %d)", got, total)
	}
	got, total = walkPages(t, h, Scope{All: true}, `connection: "acme", filter: {id: {in: ["c3", "c1", "c4"]}}`, 1)
	if w := []string{"acme/c1", "acme/c3"}; !reflect.DeepEqual(got, w) || total != 2 {
		t.Errorf("by id in acme: %v (total %d)", got, total)
	}
	got, _ = walkPages(t, h, Scope{All: true}, `filter: {id: {eq: "c4"}}`, 5)
	if w := []string{"beta/c4"}; !reflect.DeepEqual(got, w) {
		t.Errorf("by id over every connection: %v", got)
	}
	// One connection, paged.
	got, total = walkPages(t, h, Scope{All: true}, `connection: "acme"`, 2)
	if w := want[:3]; !reflect.DeepEqual(got, w) || total != 3 {
		t.Errorf("acme: %v (total %d)", got, total)
	}
	for _, cn := range []string{"nope", ""} {
		got, total = walkPages(t, h, Scope{All: true}, fmt.Sprintf(`connection: %q`, cn), 5)
		if len(got) != 0 || total != 0 {
			t.Errorf("connection %q: %v (total %d)", cn, got, total)
		}
	}
	// Sorted over every connection: ties in connection then id order.
	got = nil
	after := ""
	for i := 0; i < 20; i++ {
		d := h.ok(0, `query($a: String) { allContact(sort: [{field: email, order: DESC}], limit: 5, after: $a) { nodes { id _metadata { connection } } pageInfo { hasNextPage endCursor } } }`, map[string]any{"a": after})
		got = append(got, keysOf(t, d["allContact"])...)
		pi := d["allContact"].(map[string]any)["pageInfo"].(map[string]any)
		if pi["hasNextPage"] != true {
			break
		}
		after = pi["endCursor"].(string)
	}
	if len(got) != len(want) || got[0] != "z09/c1" || got[10] != "gamma/c9" || got[11] != "gamma/c0" || strings.Join(got[len(got)-12:], ",") != "acme/c1,beta/c1,z00/c2,z01/c2,z02/c2,z03/c2,z04/c2,z05/c2,z06/c2,z07/c2,z08/c2,z09/c2" {
		t.Errorf("sorted: %v", got)
	}
	// A cursor of one connection's list does not continue another's.
	d = h.ok(0, `{ allContact(connection: "acme", limit: 1) { pageInfo { endCursor } } }`, nil)
	cur := d["allContact"].(map[string]any)["pageInfo"].(map[string]any)["endCursor"].(string)
	if a := h.query(0, `query($a: String) { allContact(connection: "beta", after: $a) { nodes { id } } }`, map[string]any{"a": cur}); a.code() != CodeBadUserInput {
		t.Errorf("cursor of acme on beta: %s", a.Raw)
	}
	// ... but goes on over every connection from where it was.
	d = h.ok(0, `query($a: String) { allContact(after: $a, limit: 2) { nodes { id _metadata { connection } } } }`, map[string]any{"a": cur})
	if got := keysOf(t, d["allContact"]); !reflect.DeepEqual(got, want[1:3]) {
		t.Errorf("acme's cursor over every connection: %v", got)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// Get by id: the connection is needed on a source with connections;
// references resolve within their record's connection; the statistics
// follow changes of connections' records.
func TestConnectionsGetAndReferences(t *testing.T) {
	h := newConnHarness(t)
	seedConns(h)
	a := h.query(0, `{ contact(id: "c1") { id } }`, nil)
	if a.code() != CodeBadUserInput || !strings.Contains(a.Errors[0].Message, "connection") {
		t.Fatalf("get without a connection: %s", a.Raw)
	}
	d := h.ok(0, `{ a: contact(id: "c1", connection: "acme") { name } b: contact(id: "c1", connection: "beta") { name } n: contact(id: "c1", connection: "nope") { name } e: contact(id: "c1", connection: "") { name } p: product(id: "p1") { sku } q: product(id: "p1", connection: "") { sku } r: product(id: "p1", connection: "acme") { sku } }`, nil)
	if got := js(d); got != `{"a":{"name":"Ann"},"b":{"name":"Bea"},"e":null,"n":null,"p":{"sku":"S1"},"q":{"sku":"S1"},"r":null}` {
		t.Errorf("gets: %s", got)
	}
	// Deal.contact within the deal's connection; Deal.product in the
	// catalog, which has no connections.
	d = h.ok(0, `{ allDeal { nodes { id _metadata { connection } contact { name _metadata { connection } } product { id } } } }`, nil)
	if got := js(d["allDeal"]); got != `{"nodes":[{"_metadata":{"connection":"acme"},"contact":{"_metadata":{"connection":"acme"},"name":"Ann"},"id":"d1","product":{"id":"p1"}},{"_metadata":{"connection":"acme"},"contact":{"_metadata":{"connection":"acme"},"name":"Bob"},"id":"d2","product":{"id":"p2"}},{"_metadata":{"connection":"beta"},"contact":{"_metadata":{"connection":"beta"},"name":"Bea"},"id":"d1","product":{"id":"p1"}}]}` {
		t.Errorf("forward references: %s", got)
	}
	// Reverse: a contact's deals are its connection's; a product's are
	// every connection's.
	d = h.ok(0, `{ c: contact(id: "c1", connection: "beta") { deals { id _metadata { connection } } } p: product(id: "p1") { deals { id _metadata { connection } } } }`, nil)
	if got := js(d); got != `{"c":{"deals":[{"_metadata":{"connection":"beta"},"id":"d1"}]},"p":{"deals":[{"_metadata":{"connection":"acme"},"id":"d1"},{"_metadata":{"connection":"beta"},"id":"d1"}]}}` {
		t.Errorf("reverse references: %s", got)
	}

	// Changes of connections' records: the counts the statistics keep
	// (totalCount without a filter) match a walk.
	h.publishConns(map[string]map[string]string{
		store.SourceKey("crm", "acme"): {"Contact/c3": "", "Contact/c1": contact("c1", "Ann B", "a@x")},
		store.SourceKey("crm", "new"):  {"Contact/c1": contact("c1", "New", "n@x")},
	})
	d = h.ok(0, `{ allContact(limit: 1000) { totalCount nodes { id } } f: allContact(filter: {id: {exists: true}}) { totalCount } }`, nil)
	l := d["allContact"].(map[string]any)
	if n := len(l["nodes"].([]any)); int(l["totalCount"].(float64)) != n || n != 27 || d["f"].(map[string]any)["totalCount"].(float64) != 27 {
		t.Errorf("after changes: totalCount %v, %d nodes, filtered %v", l["totalCount"], n, d["f"])
	}
	d = h.ok(0, `{ contact(id: "c1", connection: "acme") { name } }`, nil)
	if got := js(d); got != `{"contact":{"name":"Ann B"}}` {
		t.Errorf("updated: %s", got)
	}
}

// Cursors of sources without connections are what they always were.
func TestPlainSourceCursorUnchanged(t *testing.T) {
	h := newHarness(t, testLayerHCL, Options{})
	rev := seed(h)
	d := h.ok(0, `{ allPost(limit: 1) { pageInfo { endCursor } } }`, nil)
	cur := d["allPost"].(map[string]any)["pageInfo"].(map[string]any)["endCursor"].(string)
	b, err := base64.RawURLEncoding.DecodeString(cur)
	if want := fmt.Sprintf(`{"r":%d,"k":"p1"}`, rev); err != nil || string(b) != want {
		t.Fatalf("cursor %s = %s, want %s", cur, b, want)
	}
}

// A token limited to connections sees their records only, and no type of
// a source without connections.
func TestConnectionsTokenScope(t *testing.T) {
	h := newConnHarness(t)
	seedConns(h)
	scope := Scope{Connections: []string{"gamma", "beta", "beta"}}
	got, total := walkPages(t, h, scope, "", 2)
	if w := []string{"beta/c1", "beta/c4", "gamma/c0", "gamma/c9"}; !reflect.DeepEqual(got, w) || total != 4 {
		t.Errorf("scoped list: %v (total %d)", got, total)
	}
	got, total = walkPages(t, h, scope, `filter: {email: {eq: "a@x"}}`, 2)
	if w := []string{"beta/c1"}; !reflect.DeepEqual(got, w) || total != 1 {
		t.Errorf("scoped index filter: %v (total %d)", got, total)
	}
	got, total = walkPages(t, h, scope, `filter: {id: {in: ["c1", "c9"]}}`, 2)
	if w := []string{"beta/c1", "gamma/c9"}; !reflect.DeepEqual(got, w) || total != 2 {
		t.Errorf("scoped id filter: %v (total %d)", got, total)
	}
	for _, cn := range []string{"acme", ""} {
		got, total = walkPages(t, h, scope, fmt.Sprintf(`connection: %q`, cn), 2)
		if len(got) != 0 || total != 0 {
			t.Errorf("scoped, connection %q: %v (total %d)", cn, got, total)
		}
	}
	a := h.queryAs(0, scope, `{ a: contact(id: "c1", connection: "acme") { name } b: contact(id: "c1", connection: "beta") { name deals { id } } }`, nil)
	if len(a.Errors) > 0 || js(a.Data) != `{"a":null,"b":{"deals":[{"id":"d1"}],"name":"Bea"}}` {
		t.Errorf("scoped gets: %s", a.Raw)
	}
	if a := h.queryAs(0, scope, `{ contact(id: "c1") { name } }`, nil); a.code() != CodeBadUserInput {
		t.Errorf("scoped to two connections, get without one: %s", a.Raw)
	}
	// One connection: it is the one meant.
	one := Scope{Connections: []string{"acme"}}
	if a := h.queryAs(0, one, `{ contact(id: "c1") { name } deal(id: "d1") { contact { name } } }`, nil); len(a.Errors) > 0 || js(a.Data) != `{"contact":{"name":"Ann"},"deal":{"contact":{"name":"Ann"}}}` {
		t.Errorf("scoped to acme: %s", a.Raw)
	}
	// The catalog has no connections: out of the scope's schema, with the
	// references to it.
	if a := h.queryAs(0, scope, `{ allProduct { totalCount } }`, nil); a.code() != CodeValidationFailed {
		t.Errorf("catalog under a connection scope: %s", a.Raw)
	}
	if a := h.queryAs(0, scope, `{ allDeal { nodes { product { id } } } }`, nil); a.code() != CodeValidationFailed {
		t.Errorf("reference to the catalog under a connection scope: %s", a.Raw)
	}
	// The same query answers per scope, with its own ETag.
	q := `{ allContact { totalCount } }`
	all, scoped := h.query(0, q, nil), h.queryAs(0, scope, q, nil)
	if js(all.Data) == js(scoped.Data) || all.ETag == scoped.ETag {
		t.Errorf("scopes share an answer: %s %s (%s %s)", all.Raw, scoped.Raw, all.ETag, scoped.ETag)
	}
}

// Index lookups serve eq/in filters per connection and over every
// connection (a read of their candidates only).
func TestConnectionsFilterUsesIndex(t *testing.T) {
	h := newConnHarness(t)
	seedConns(h)
	snap, _, err := h.layer.OpenSnapshot(0)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	env := Env{Config: h.cfg, Models: h.models, Store: h.layer}
	cs, err := h.svc.schema(env, snap, Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	ty := cs.built.types["Contact"]
	if ty == nil || !ty.Conns {
		t.Fatalf("Contact: %+v", ty)
	}
	rc := &reqCtx{snap: snap}
	filter := map[string]any{"email": map[string]any{"eq": "a@x"}}
	for _, tc := range []struct {
		p    part
		want string
	}{
		{rc.only("beta"), "[{beta c1}]"},
		{rc.only("gamma"), "[]"},
		{rc.whole(ty), "[{acme c1} {beta c1} {z00 c2} {z01 c2} {z02 c2} {z03 c2} {z04 c2} {z05 c2} {z06 c2} {z07 c2} {z08 c2} {z09 c2}]"},
		{part{conns: []string{"acme", "z03"}}, "[{acme c1} {z03 c2}]"},
	} {
		keys, ok, err := ty.candidates(rc, tc.p, filter)
		if err != nil || !ok || fmt.Sprint(keys) != tc.want {
			t.Errorf("candidates in %+v: %v %v %v, want %s", tc.p, keys, ok, err, tc.want)
		}
	}
}
