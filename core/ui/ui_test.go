package ui_test

import (
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/ui"
)

// TestSignInAndSessions: pages need a session signed in with the admin
// token; a wrong token is refused; the cookie carries its flags; a session
// ends at sign-out, at expiry and when the admin token changes.
func TestSignInAndSessions(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFixture(t, fixtureOpts{token: testToken, now: clock})
	c := f.client()

	a := c.get("/ui/layers/shop/records?model=Product")
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/signin?next="+url.QueryEscape("/ui/layers/shop/records?model=Product") {
		t.Fatalf("signed out: %d %q", a.status, a.header.Get("Location"))
	}
	page := c.get("/ui/signin")
	token := csrf(t, page.body)

	// No CSRF token: 403, whatever the password.
	if a := c.post("/ui/signin", url.Values{"token": {testToken}}); a.status != http.StatusForbidden {
		t.Fatalf("sign-in without CSRF: %d", a.status)
	}
	a = c.post("/ui/signin", url.Values{"csrf": {token}, "token": {"wrong"}})
	if a.status != http.StatusUnauthorized || !strings.Contains(a.body, "not the admin token") {
		t.Fatalf("wrong token: %d %s", a.status, a.body)
	}
	if strings.Contains(a.body, testToken) {
		t.Fatal("the sign-in page shows the admin token")
	}
	a = c.post("/ui/signin", url.Values{"csrf": {token}, "token": {testToken}, "next": {"https://evil.example/"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/" {
		t.Fatalf("sign-in with a foreign next: %d %q", a.status, a.header.Get("Location"))
	}
	cookie := a.header.Get("Set-Cookie")
	for _, flag := range []string{"HttpOnly", "SameSite=Strict", "Path=/ui/", "Max-Age=43200"} {
		if !strings.Contains(cookie, flag) {
			t.Errorf("session cookie %q lacks %s", cookie, flag)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("session cookie %q is Secure over plain HTTP", cookie)
	}
	over := c.get("/ui/")
	if over.status != http.StatusOK || !strings.Contains(over.body, `href="/ui/layers/shop"`) || !strings.Contains(over.body, `href="/ui/layers/blog"`) {
		t.Fatalf("overview: %d", over.status)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"} {
		if over.header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}

	// Behind a TLS proxy the cookie is Secure.
	tls := f.client()
	a = tls.do("GET", "/ui/signin", nil, http.Header{"X-Forwarded-Proto": {"https"}})
	if c := a.header.Get("Set-Cookie"); !strings.Contains(c, "Secure") || !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Strict") {
		t.Errorf("cookie over TLS: %q", c)
	}

	// Expiry.
	mu.Lock()
	now = now.Add(ui.DefaultSessionLifetime + time.Minute)
	mu.Unlock()
	if a := c.get("/ui/"); a.status != http.StatusSeeOther {
		t.Fatalf("an expired session still works: %d", a.status)
	}

	// A new admin token ends the sessions of the old one.
	c.signIn(testToken)
	f.dash.SetAdminToken("another-token-entirely-0123")
	if a := c.get("/ui/"); a.status != http.StatusSeeOther {
		t.Fatalf("a session of the old token still works: %d", a.status)
	}
	f.dash.SetAdminToken(testToken)

	// Sign-out.
	tok := c.signIn(testToken)
	a = c.post("/ui/signout", url.Values{"csrf": {tok}})
	if a.status != http.StatusSeeOther || !strings.Contains(a.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("sign-out: %d %q", a.status, a.header.Get("Set-Cookie"))
	}
	if a := c.get("/ui/"); a.status != http.StatusSeeOther {
		t.Fatalf("signed out, still in: %d", a.status)
	}
}

// TestCSRF: every POST needs the session's CSRF token.
func TestCSRF(t *testing.T) {
	f := newFixture(t, fixtureOpts{token: testToken})
	c := f.client()
	tok := c.signIn(testToken)
	for _, path := range []string{"/ui/layers/shop/sync", "/ui/layers/shop/pin", "/ui/layers/shop/unpin", "/ui/layers/shop/hooks",
		"/ui/layers/shop/hooks/delete", "/ui/layers/shop/deliveries/retry", "/ui/layers/shop/graphql", "/ui/signout"} {
		for _, form := range []url.Values{{"revision": {"1"}}, {"csrf": {"forged"}}, {"csrf": {tok + "x"}}} {
			if a := c.post(path, form); a.status != http.StatusForbidden || !strings.Contains(a.body, "CSRF") {
				t.Errorf("POST %s with %v: %d, want 403", path, form, a.status)
			}
		}
	}
	// Another browser's token does not work either.
	other := f.client()
	otherTok := other.signIn(testToken)
	if a := c.post("/ui/layers/shop/sync", url.Values{"csrf": {otherTok}}); a.status != http.StatusForbidden {
		t.Errorf("another session's token: %d", a.status)
	}
	if a := c.post("/ui/layers/shop/unpin", url.Values{"csrf": {tok}}); a.status != http.StatusSeeOther {
		t.Errorf("with the token: %d %s", a.status, a.body)
	}
	if audit, _ := f.eng.Audit("shop", 100); len(audit) != 0 {
		t.Errorf("refused forms left audit entries: %+v", audit)
	}
}

// TestOpenDashboard: with no admin token the dashboard is open, as the
// API is, and forms still need their CSRF token.
func TestOpenDashboard(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client()
	a := c.get("/ui/layers/blog")
	if a.status != http.StatusOK {
		t.Fatalf("open dashboard: %d", a.status)
	}
	if strings.Contains(a.body, "Sign out") {
		t.Error("an open dashboard offers sign-out")
	}
	if a := c.post("/ui/layers/blog/sync", url.Values{}); a.status != http.StatusForbidden {
		t.Fatalf("POST without CSRF on an open dashboard: %d", a.status)
	}
	a = c.post("/ui/layers/blog/sync", url.Values{"csrf": {csrf(t, a.body)}})
	if a.status != http.StatusSeeOther || !strings.Contains(a.header.Get("Location"), "run=run_") {
		t.Fatalf("Sync now: %d %q", a.status, a.header.Get("Location"))
	}
	if a := c.get("/ui/signin"); a.status != http.StatusSeeOther {
		t.Errorf("sign-in page of an open dashboard: %d", a.status)
	}
}

// TestActionsAudited: the dashboard's actions are audited as the API's
// are, and no page shows a hook's id after the one that adds it.
func TestActionsAudited(t *testing.T) {
	f := newFixture(t, fixtureOpts{token: testToken})
	c := f.client()
	tok := c.signIn(testToken)
	form := func(kv ...string) url.Values {
		v := url.Values{"csrf": {tok}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	if a := c.post("/ui/layers/shop/sync", form()); a.status != http.StatusSeeOther {
		t.Fatalf("sync: %d", a.status)
	}
	if a := c.post("/ui/layers/shop/pin", form("revision", "1")); a.status != http.StatusSeeOther {
		t.Fatalf("pin: %d %s", a.status, a.body)
	}
	if a := c.post("/ui/layers/shop/unpin", form()); a.status != http.StatusSeeOther {
		t.Fatalf("unpin: %d", a.status)
	}
	if a := c.post("/ui/layers/shop/pause", form("source", "catalog", "sync", "files")); a.status != http.StatusSeeOther {
		t.Fatalf("pause: %d %s", a.status, a.body)
	}
	if a := c.post("/ui/layers/shop/resume", form("source", "catalog", "sync", "files")); a.status != http.StatusSeeOther {
		t.Fatalf("resume: %d", a.status)
	}
	a := c.post("/ui/layers/shop/hooks", form("name", "cms"))
	if a.status != http.StatusCreated {
		t.Fatalf("add hook: %d", a.status)
	}
	hooks, _ := f.eng.Webhooks("shop")
	if len(hooks) != 1 || !strings.Contains(a.body, "/hooks/layers/shop/"+hooks[0].ID) {
		t.Fatalf("the new hook's URL is not shown: %v", hooks)
	}
	list := c.get("/ui/layers/shop/hooks")
	if strings.Contains(list.body, hooks[0].ID) {
		t.Fatal("the hooks page shows a hook's id")
	}
	handle := regexpFind(t, list.body, `name="hook" value="([0-9a-f]+)"`)
	if a := c.post("/ui/layers/shop/hooks/delete", form("hook", handle)); a.status != http.StatusSeeOther {
		t.Fatalf("delete hook: %d %s", a.status, a.body)
	}
	var actions []string
	audit, err := f.eng.Audit("shop", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range audit {
		actions = append(actions, e.Action)
	}
	want := "sync.triggered revision.pinned revision.unpinned sync.paused sync.resumed webhook.added webhook.deleted"
	if got := strings.Join(actions, " "); got != want {
		t.Errorf("audit: %s\nwant:  %s", got, want)
	}
}

func regexpFind(t *testing.T, s, expr string) string {
	t.Helper()
	m := regexp.MustCompile(expr).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%s not found in:\n%s", expr, s)
	}
	return m[1]
}

// TestPages: every page renders for a signed-in browser, bad input gets
// a readable error with a fitting status, and no page shows a secret.
func TestPages(t *testing.T) {
	f := newFixture(t, fixtureOpts{token: testToken})
	c := f.client()
	tok := c.signIn(testToken)
	if a := c.post("/ui/layers/shop/hooks", url.Values{"csrf": {tok}, "name": {"cms"}}); a.status != http.StatusCreated {
		t.Fatalf("add hook: %d", a.status)
	}
	hooks, _ := f.eng.Webhooks("shop")
	db := f.db("shop")
	waitUntil(t, "a delivery", func() bool { ds, _ := db.Deliveries("", 1, false); return len(ds) == 1 })
	runs := f.runsOf("shop", "")
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/ui/", 200, "Sync now"},
		{"/ui/layers/shop", 200, "Records per model"},
		{"/ui/layers/shop/runs/" + runs[0].ID, 200, "Product"},
		{"/ui/layers/shop/runs/run_nope", 404, "unknown run"},
		{"/ui/layers/shop/activity", 200, "sync.completed"},
		{"/ui/layers/shop/activity?before=2", 200, "run.queued"},
		{"/ui/layers/shop/activity?before=x", 400, "before must be"},
		{"/ui/layers/shop/revisions", 200, "Pin revision 1"},
		{"/ui/layers/shop/records?model=Product&limit=10", 200, "Next page"},
		{"/ui/layers/shop/records?action=added&action=deleted", 200, "p00"},
		{"/ui/layers/shop/records?action=bogus", 400, "action is one of"},
		{"/ui/layers/shop/records?cursor=zzz", 400, "not one this server gave out"},
		{"/ui/layers/shop/records?modified_after=yesterday", 400, "RFC 3339"},
		{"/ui/layers/shop/hooks", 200, "cms"},
		{"/ui/layers/shop/deliveries", 200, "sync.completed"},
		{"/ui/layers/shop/deliveries?state=failed", 200, "Redeliver"},
		{"/ui/layers/shop/deliveries?state=bogus", 400, "state is one of"},
		{"/ui/layers/shop/graphql", 200, "Run query"},
		{"/ui/layers/nope", 404, "unknown layer"},
		{"/ui/layers/nope/records", 404, "unknown layer"},
		{"/ui/nothing/here", 404, "no page"},
		{"/ui", 301, ""},
	} {
		a := c.get(tc.path)
		if a.status != tc.status || !strings.Contains(a.body, tc.want) {
			t.Errorf("GET %s: %d, want %d with %q:\n%.2000s", tc.path, a.status, tc.status, tc.want, a.body)
		}
		for _, secret := range []string{testToken, notifySecret, hooks[0].ID} {
			if strings.Contains(a.body, secret) {
				t.Errorf("GET %s shows a secret", tc.path)
			}
		}
	}
	// The records pages join up.
	first := c.get("/ui/layers/shop/records?model=Product&limit=25")
	next := regexpFind(t, first.body, `href="(\?[^"]*cursor=[^"]+)" rel="next"`)
	second := c.get("/ui/layers/shop/records" + strings.ReplaceAll(next, "&amp;", "&"))
	if second.status != 200 || !strings.Contains(second.body, "p25") || strings.Contains(second.body, "p24<") || strings.Contains(second.body, `rel="next"`) {
		t.Errorf("second page: %d\n%s", second.status, second.body)
	}
	// The explorer: a query, bad variables.
	a := c.post("/ui/layers/shop/graphql", url.Values{"csrf": {tok}, "query": {`{ allProduct(limit: 1) { totalCount } }`}})
	if a.status != 200 || !strings.Contains(a.body, "&#34;totalCount&#34;: 31") {
		t.Errorf("explorer: %d\n%s", a.status, a.body)
	}
	a = c.post("/ui/layers/shop/graphql", url.Values{"csrf": {tok}, "query": {`{ allProduct { totalCount } }`}, "variables": {"{nope"}})
	if a.status != 200 || !strings.Contains(a.body, "variables are not JSON") {
		t.Errorf("explorer with bad variables: %d\n%s", a.status, a.body)
	}
	// Sync now from script gets JSON, errors too.
	js := c.do("POST", "/ui/layers/shop/sync", url.Values{"source": {"nope"}}, http.Header{"Accept": {"application/json"}, "X-Csrf-Token": {tok}})
	if js.status != 404 || !strings.Contains(js.body, `"error"`) {
		t.Errorf("sync now of an unknown source: %d %s", js.status, js.body)
	}
	js = c.do("POST", "/ui/layers/shop/sync", url.Values{}, http.Header{"Accept": {"application/json"}, "X-Csrf-Token": {tok}})
	if js.status != 202 || !strings.Contains(js.body, `"run":"run_`) || !strings.Contains(js.body, `"after":`) {
		t.Errorf("sync now: %d %s", js.status, js.body)
	}
	// Deleting a hook that is gone.
	if a := c.post("/ui/layers/shop/hooks/delete", url.Values{"csrf": {tok}, "hook": {"0123456789abcdef01234567"}}); a.status != 404 {
		t.Errorf("delete an unknown hook: %d", a.status)
	}
	if a := c.post("/ui/layers/shop/pin", url.Values{"csrf": {tok}, "revision": {"x"}}); a.status != 400 {
		t.Errorf("pin x: %d", a.status)
	}
	if a := c.post("/ui/layers/shop/pin", url.Values{"csrf": {tok}, "revision": {"99"}}); a.status != 404 {
		t.Errorf("pin 99: %d", a.status)
	}

	// The records chart counts each revision: the first by a walk, then
	// from the changes; a pin shows the pinned revision's counts.
	chart := func(want string) {
		t.Helper()
		if a := c.get("/ui/layers/shop"); !strings.Contains(a.body, want) {
			t.Errorf("layer page lacks %q", want)
		}
	}
	chart("Product (source catalog): 31 records")
	waitUntil(t, "the runs to end", func() bool { return len(f.runsOf("shop", "queued"))+len(f.runsOf("shop", "running")) == 0 })
	writeFile(t, filepath.Join(f.dir, "catalog", "Product.json"), productsJSON(products-2, `,{"id":"n1"},{"id":"n2"},{"id":"n3"}`))
	run, err := f.eng.Trigger("shop", engineManual())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the run", func() bool { r, err := f.eng.Run("shop", run); return err == nil && r.State == "completed" })
	chart("Product (source catalog): 32 records")
	if err := f.eng.Pin("shop", 1); err != nil {
		t.Fatal(err)
	}
	chart("Product (source catalog): 31 records")
}
