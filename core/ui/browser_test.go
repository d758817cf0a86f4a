package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/core/ui"
)

// chromiumInstall is what to run when the browser is missing.
const chromiumInstall = "apt-get install -y chromium"

// ScreenshotEnv, when set to a file path, makes TestBrowser write a
// screenshot of the overview there (make screenshot).
const ScreenshotEnv = "SYNCLAYER_SCREENSHOT"

// chromiumPath finds Debian's chromium (or SYNCLAYER_CHROMIUM). A missing
// browser fails the test: the dashboard's tests never skip.
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("SYNCLAYER_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("chromium is not installed; the dashboard's browser tests need it: %s (or set SYNCLAYER_CHROMIUM to a Chromium binary)", chromiumInstall)
	return ""
}

// browser starts one headless Chromium for every flow of the suite.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTime()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v (is it installed? %s)", err, chromiumInstall)
	}
	return ctx
}

// page drives the browser through the dashboard.
type page struct {
	t   *testing.T
	ctx context.Context
	f   *fixture
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

func (p *page) open(path string) {
	p.t.Helper()
	p.do("open "+path, chromedp.Navigate(p.f.srv.URL+path), chromedp.WaitReady(chromedp.CSS("body")))
	// The page's script has wired its forms.
	p.waitJS("the page's script", `document.documentElement.dataset.js === "ready"`)
}

// click clicks and waits for the page it loads.
func (p *page) click(sel string) {
	p.t.Helper()
	if _, err := chromedp.RunResponse(p.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		p.t.Fatalf("click %s: %v", sel, err)
	}
}

func (p *page) text(sel string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func eval[T any](p *page, js string, opts ...chromedp.EvaluateOption) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](js, opts...))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is true in the page.
func (p *page) waitJS(what, js string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		body, _ := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS("main")))
		p.t.Fatalf("waiting for %s (%s): %v\npage: %s", what, js, err, body)
	}
}

func (p *page) location() string {
	p.t.Helper()
	l, err := chromedp.Run(p.ctx, chromedp.Location())
	if err != nil {
		p.t.Fatal(err)
	}
	return strings.TrimPrefix(l, p.f.srv.URL)
}

// TestBrowser drives the dashboard in a real headless Chromium: sign-in,
// the overview, Sync now followed live, pin and unpin, hooks, records
// paging, redelivery, CSRF refusal, connections (create, list, open, Sync
// now, pause, resume, delete after a confirmation, no secret in a page),
// the cookie's flags and the 375-pixel layout. One browser serves every
// flow.
func TestBrowser(t *testing.T) {
	f := newFixture(t, fixtureOpts{token: testToken})
	p := &page{t: t, ctx: browser(t), f: f}
	// Script errors and Content-Security-Policy violations, over the whole
	// suite. Network errors are expected: the tests get 401 and 403 on
	// purpose.
	var consoleMu sync.Mutex
	var problems []string
	console := chromedp.Console(p.ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || m.Source == "security" || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				consoleMu.Lock()
				problems = append(problems, fmt.Sprintf("%s %s: %s (%s:%d)", m.Type, m.Source, m.Text, m.URL, m.Line))
				consoleMu.Unlock()
			}
		}
	}()

	// The delivery of the first revision fails: the receiver is down.
	db := f.db("shop")
	waitUntil(t, "a failed delivery", func() bool {
		ds, err := db.Deliveries("", 10, false)
		return err == nil && len(ds) == 1 && ds[0].State == store.DeliveryFailed
	})

	t.Run("wrong token refused", func(t *testing.T) {
		p.t = t
		p.open("/ui/")
		if l := p.location(); !strings.HasPrefix(l, "/ui/signin") {
			t.Fatalf("signed out, /ui/ went to %s", l)
		}
		p.do("type a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-token"))
		p.click("form button[type=submit]")
		if msg := p.text(".error"); !strings.Contains(msg, "not the admin token") {
			t.Fatalf("wrong token: %q", msg)
		}
		if l := p.location(); !strings.HasPrefix(l, "/ui/signin") {
			t.Fatalf("a wrong token got to %s", l)
		}
	})

	t.Run("sign in", func(t *testing.T) {
		p.t = t
		p.do("type the token", chromedp.SendKeys(chromedp.ID("token"), testToken))
		p.click("form button[type=submit]")
		if l := p.location(); l != "/ui/" {
			t.Fatalf("signed in at %s", l)
		}
	})

	t.Run("cookie flags", func(t *testing.T) {
		p.t = t
		res, err := chromedp.Call(p.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{f.srv.URL + "/ui/"}})
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, c := range res.Cookies {
			if c.Name != ui.CookieName {
				continue
			}
			found = true
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Path != "/ui/" {
				t.Errorf("session cookie: httpOnly %v, sameSite %q, path %q", c.HTTPOnly, c.SameSite, c.Path)
			}
			exp := time.Unix(int64(c.Expires), 0)
			if left := time.Until(exp); left <= 11*time.Hour || left > 12*time.Hour+time.Minute {
				t.Errorf("session cookie expires in %s, want 12h", left)
			}
		}
		if !found {
			t.Fatalf("no %s cookie: %+v", ui.CookieName, res.Cookies)
		}
		// Script cannot read it.
		if c := eval[string](p, "document.cookie"); strings.Contains(c, ui.CookieName) {
			t.Errorf("document.cookie shows the session: %q", c)
		}
	})

	t.Run("overview lists the layers", func(t *testing.T) {
		p.t = t
		for _, layer := range []string{"shop", "blog"} {
			if h := p.text(fmt.Sprintf(`section[data-layer=%q] h2`, layer)); h != layer {
				t.Errorf("overview card %q: %q", layer, h)
			}
		}
		if s := p.text(`section[data-layer="shop"] tr[data-sync="catalog/files"]`); !strings.Contains(s, "idle") || !strings.Contains(s, "completed") {
			t.Errorf("shop's sync row: %q", s)
		}
		if path := os.Getenv(ScreenshotEnv); path != "" {
			shot, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", path)
		}
	})

	t.Run("sync now shows the run completed without a reload", func(t *testing.T) {
		p.t = t
		// A changed file: the run publishes revision 2.
		writeFile(t, filepath.Join(f.dir, "catalog", "Product.json"), productsJSON(products, `,{"id":"p99","title":"New"}`))
		p.open("/ui/layers/shop")
		runs := len(f.runsOf("shop", ""))
		p.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`))
		p.do("click Sync now", chromedp.Click(chromedp.CSS(`button[aria-label="Sync layer shop now"]`)))
		p.waitJS("the run to complete", `document.querySelector("#run-shop").dataset.done === "completed"`)
		if !eval[bool](p, `window.__sameDocument === true`) {
			t.Fatal("the page reloaded")
		}
		if s := p.text("#run-shop"); !strings.Contains(s, "completed") || !strings.Contains(s, "revision 2") {
			t.Errorf("run box: %q", s)
		}
		if got := len(f.runsOf("shop", "")); got != runs+1 {
			t.Errorf("one click started %d runs", got-runs)
		}
		// The live regions follow: the revision shown is 2.
		p.waitJS("the revision to update", `document.querySelector("[data-testid=revision]").textContent.trim() === "2"`)
		if !eval[bool](p, `window.__sameDocument === true`) {
			t.Fatal("the page reloaded")
		}
	})

	t.Run("layer page follows changes made elsewhere", func(t *testing.T) {
		p.t = t
		p.open("/ui/layers/blog")
		p.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`))
		row := `document.querySelector('tr[data-sync="posts/files"]').textContent`
		if err := f.eng.Pause("blog", "posts", "files"); err != nil {
			t.Fatal(err)
		}
		p.waitJS("the paused state", row+`.includes("paused")`)
		if err := f.eng.Resume("blog", "posts", "files"); err != nil {
			t.Fatal(err)
		}
		p.waitJS("the resumed state", `!`+row+`.includes("paused")`)
		if !eval[bool](p, `window.__sameDocument === true`) {
			t.Fatal("the page reloaded")
		}
	})

	t.Run("pin and unpin", func(t *testing.T) {
		p.t = t
		p.open("/ui/layers/shop/revisions")
		p.click(`button[aria-label="Pin revision 1"]`)
		if s := p.text(".flash"); !strings.Contains(s, "pinned") {
			t.Errorf("flash after pin: %q", s)
		}
		if got := db.Pinned(); got != 1 {
			t.Fatalf("pinned %d, want 1", got)
		}
		if s := p.text(`tr[data-revision="1"]`); !strings.Contains(s, "pinned") {
			t.Errorf("revision 1 row: %q", s)
		}
		p.click(`form[action$="/unpin"] button`)
		if got := db.Pinned(); got != 0 {
			t.Fatalf("pinned %d after unpin", got)
		}
		if s := p.text("main"); !strings.Contains(s, "Nothing is pinned") {
			t.Errorf("after unpin: %q", s)
		}
	})

	t.Run("add and delete a hook", func(t *testing.T) {
		p.t = t
		p.open("/ui/layers/shop/hooks")
		p.do("name the hook", chromedp.SendKeys(chromedp.ID("hook-name"), "cms"))
		p.click(`form[action$="/hooks"] button`)
		hookURL, err := chromedp.Run(p.ctx, chromedp.Value(chromedp.ID("new-url")))
		if err != nil {
			t.Fatal(err)
		}
		hooks, _ := f.eng.Webhooks("shop")
		if len(hooks) != 1 || hookURL != f.srv.URL+"/hooks/layers/shop/"+hooks[0].ID {
			t.Fatalf("hook URL %q, hooks %+v", hookURL, hooks)
		}
		// The URL works: it triggers a run.
		resp, err := http.Post(hookURL, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST to the hook: %d", resp.StatusCode)
		}
		// Shown once: the list does not carry it.
		p.open("/ui/layers/shop/hooks")
		if html := eval[string](p, "document.documentElement.outerHTML"); strings.Contains(html, hooks[0].ID) {
			t.Fatal("the hooks page shows the hook's id again")
		}
		p.do("accept the confirmation", chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`))
		p.click(`button[aria-label="Delete hook cms"]`)
		if s := p.text(".flash"); !strings.Contains(s, "deleted") {
			t.Errorf("flash after delete: %q", s)
		}
		if hooks, _ := f.eng.Webhooks("shop"); len(hooks) != 0 {
			t.Fatalf("hooks left: %+v", hooks)
		}
	})

	t.Run("page through records", func(t *testing.T) {
		p.t = t
		waitUntil(t, "the hook's run", func() bool { return len(f.runsOf("shop", store.RunCompleted)) >= 3 })
		p.open("/ui/layers/shop/records")
		p.do("choose a model", chromedp.SetValue(chromedp.ID("model"), "Product"), chromedp.SetValue(chromedp.ID("limit"), "10"))
		p.click(`form.filters button[type=submit]`)
		seen := map[string]bool{}
		for pageNo := 1; ; pageNo++ {
			ids := eval[[]string](p, `[...document.querySelectorAll("#records tr.record summary")].map(s => s.textContent.trim())`)
			if len(ids) == 0 || len(ids) > 10 {
				t.Fatalf("page %d has %d records", pageNo, len(ids))
			}
			for _, id := range ids {
				if seen[id] {
					t.Fatalf("record %s on two pages", id)
				}
				seen[id] = true
			}
			if !eval[bool](p, `!!document.querySelector("a[rel=next]")`) {
				break
			}
			p.click("a[rel=next]")
		}
		if len(seen) != products+1 || !seen["p00"] || !seen["p99"] {
			t.Fatalf("paged through %d records: %v", len(seen), seen)
		}
		// The JSON view.
		p.do("open a record", chromedp.Click(chromedp.CSS("#records tr.record summary")))
		if js := p.text("#records tr.record pre.json"); !strings.Contains(js, `"_metadata"`) || !strings.Contains(js, `"model": "Product"`) {
			t.Errorf("JSON view: %s", js)
		}
	})

	t.Run("redeliver a failed delivery", func(t *testing.T) {
		p.t = t
		p.open("/ui/layers/shop/deliveries?state=failed")
		first := eval[string](p, `document.querySelector("li.delivery").dataset.delivery`)
		if s := p.text(`li.delivery`); !strings.Contains(s, "failed") {
			t.Fatalf("failed delivery: %q", s)
		}
		f.receiverOK.Store(true)
		p.click(fmt.Sprintf(`li.delivery[data-delivery=%q] form button`, first))
		if s := p.text(".flash"); !strings.Contains(s, "due again") {
			t.Errorf("flash after redeliver: %q", s)
		}
		waitUntil(t, "the redelivery", func() bool {
			d, err := db.GetDelivery(first)
			return err == nil && d.State == store.DeliveryDelivered
		})
		p.open("/ui/layers/shop/deliveries?state=delivered")
		if s := p.text(fmt.Sprintf(`li.delivery[data-delivery=%q]`, first)); !strings.Contains(s, "delivered") || !strings.Contains(s, "2 attempt(s)") {
			t.Errorf("delivered: %q", s)
		}
		audit, _ := f.eng.Audit("shop", 100)
		if len(audit) == 0 || audit[len(audit)-1].Action != "delivery.retried" {
			t.Errorf("audit: %+v", audit)
		}
	})

	t.Run("CSRF refusal", func(t *testing.T) {
		p.t = t
		runs := len(f.runsOf("shop", ""))
		p.open("/ui/layers/shop")
		// A form whose token was taken out, sent without script.
		p.do("drop the token", chromedp.Evaluate[chromedp.Void](`
			const f = document.querySelector('form[action$="/sync"]');
			f.querySelector('input[name=csrf]').remove();
			f.removeAttribute("data-js");
			f.dataset.wired = "";
			const g = f.cloneNode(true); f.replaceWith(g); g.id = "forged";`))
		resp, err := chromedp.RunResponse(p.ctx, chromedp.Submit(chromedp.ID("forged")))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != http.StatusForbidden {
			t.Fatalf("POST without CSRF: %d", resp.Status)
		}
		if s := p.text(".error"); !strings.Contains(s, "CSRF") {
			t.Errorf("refusal page: %q", s)
		}
		// From script, with a forged header.
		status := eval[int](p, `(async () => (await fetch("/ui/layers/shop/sync", {method: "POST", headers: {"X-CSRF-Token": "forged"}})).status)()`, chromedp.EvalAwaitPromise)
		if status != http.StatusForbidden {
			t.Errorf("fetch with a forged token: %d", status)
		}
		if got := len(f.runsOf("shop", "")); got != runs {
			t.Errorf("a refused POST started a run (%d runs, was %d)", got, runs)
		}
	})

	t.Run("activity updates live", func(t *testing.T) {
		p.t = t
		p.open("/ui/layers/blog/activity")
		p.waitJS("the stream to open", `document.querySelector("#live-status").textContent.startsWith("Live")`)
		top := eval[int](p, `+document.querySelector("#events li").dataset.seq`)
		if _, err := f.eng.Trigger("blog", engineManual()); err != nil {
			t.Fatal(err)
		}
		p.waitJS("the run's events", fmt.Sprintf(`[...document.querySelectorAll("#events li")].some(li => +li.dataset.seq > %d && li.textContent.includes("sync.completed"))`, top))
	})

	t.Run("connections: create, list, open, sync now, pause, resume, delete", func(t *testing.T) {
		p.t = t
		const list = "/ui/layers/crm/connections/accounts"
		// noSecret: the page in the browser never holds the connection's
		// token (nor the admin token).
		noSecret := func() {
			t.Helper()
			html := eval[string](p, "document.documentElement.outerHTML")
			for _, secret := range []string{connToken, testToken} {
				if strings.Contains(html, secret) {
					t.Fatalf("%s shows a secret", p.location())
				}
			}
		}
		p.open("/ui/layers/crm")
		if s := p.text(`tr[data-connsource="accounts"]`); !strings.Contains(s, "accounts") || !strings.Contains(s, "none") {
			t.Errorf("the layer's connections: %q", s)
		}
		p.click(`tr[data-connsource="accounts"] a`)
		if l := p.location(); l != list {
			t.Fatalf("the source's link went to %s", l)
		}
		// The connector's check refuses: its message, without the token.
		p.do("fill the form", chromedp.SendKeys(chromedp.ID("conn-id"), "acme"),
			chromedp.SendKeys(chromedp.ID("config-key-0"), "mode"), chromedp.SendKeys(chromedp.ID("config-value-0"), "check_fail"),
			chromedp.SendKeys(chromedp.ID("config-key-1"), "token"), chromedp.SendKeys(chromedp.ID("config-value-1"), connToken),
			chromedp.SendKeys(chromedp.ID("conn-tags"), "plan=pro"))
		p.click(`#create form button[type=submit]`)
		if s := p.text("#create-error"); !strings.Contains(s, "check refused") || !strings.Contains(s, "upstream refused the token") {
			t.Fatalf("check refusal: %q", s)
		}
		noSecret()
		if v := eval[string](p, `document.getElementById("config-value-1").value`); v != "" {
			t.Errorf("the refused form kept a config value: %q", v)
		}
		// Again, as the connector wants it.
		p.do("correct the form", chromedp.SetValue(chromedp.ID("config-key-0"), "token"), chromedp.SetValue(chromedp.ID("config-value-0"), connToken),
			chromedp.SetValue(chromedp.ID("config-key-1"), "records"), chromedp.SetValue(chromedp.ID("config-value-1"), "3"))
		p.click(`#create form button[type=submit]`)
		if l := p.location(); l != list+"/acme?ok=conn-created" {
			t.Fatalf("after create: %s (%s)", l, p.text("main"))
		}
		noSecret()
		// The page follows the first run live.
		p.waitJS("the first run", `document.querySelector('tr[data-sync="items"]').textContent.includes("completed")`)
		if s := p.text(`tr[data-sync="items"]`); !strings.Contains(s, "Item 3") || !strings.Contains(s, "every 1h") {
			t.Errorf("the sync's row: %q", s)
		}
		if s := p.text("#tags"); !strings.Contains(s, "plan=pro") {
			t.Errorf("tags: %q", s)
		}

		// The list, its tag filter.
		p.open(list)
		if s := p.text(`tr[data-connection="acme"]`); !strings.Contains(s, "active") || !strings.Contains(s, "plan=pro") {
			t.Errorf("acme in the list: %q", s)
		}
		p.do("filter", chromedp.SetValue(chromedp.ID("tags-filter"), "plan=free"))
		p.click(`form.filters button[type=submit]`)
		if n := eval[int](p, `document.querySelectorAll("tr.connection").length`); n != 0 {
			t.Errorf("plan=free lists %d connections", n)
		}
		p.do("filter", chromedp.SetValue(chromedp.ID("tags-filter"), "plan=pro"))
		p.click(`form.filters button[type=submit]`)
		p.click(`tr[data-connection="acme"] a`)
		if l := p.location(); l != list+"/acme" {
			t.Fatalf("the connection's link went to %s", l)
		}
		noSecret()

		// Sync now, followed in place.
		runs := len(f.runsOf("crm", ""))
		p.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`))
		p.do("click Sync now", chromedp.Click(chromedp.CSS(`button[aria-label="Sync connection acme now"]`)))
		p.waitJS("the run to complete", `document.querySelector("#run-crm").dataset.done === "completed"`)
		if !eval[bool](p, `window.__sameDocument === true`) {
			t.Fatal("the page reloaded")
		}
		if got := f.runsOf("crm", ""); len(got) != runs+1 || got[0].Syncs[0].Connection != "acme" {
			t.Errorf("Sync now started %d runs (newest %+v)", len(got)-runs, got[0].Syncs)
		}

		// Pause and resume its sync.
		p.click(`button[aria-label="Pause the schedule of items"]`)
		if s := p.text(".flash"); !strings.Contains(s, "paused") {
			t.Errorf("flash after pause: %q", s)
		}
		if s := p.text(`tr[data-sync="items"]`); !strings.Contains(s, "paused") {
			t.Errorf("the paused row: %q", s)
		}
		if c, _ := f.eng.GetConnection("crm", "accounts", "acme"); c.Syncs[0].State != "paused" {
			t.Fatalf("after pause: %s", c.Syncs[0].State)
		}
		p.click(`button[aria-label="Resume the schedule of items"]`)
		if s := p.text(".flash"); !strings.Contains(s, "runs again") {
			t.Errorf("flash after resume: %q", s)
		}
		if c, _ := f.eng.GetConnection("crm", "accounts", "acme"); c.Syncs[0].State == "paused" {
			t.Fatal("still paused after resume")
		}

		// Delete: a second page names it and asks for its id.
		p.click(`a[aria-label="Delete connection acme"]`)
		if l := p.location(); l != list+"/acme/delete" {
			t.Fatalf("Delete went to %s", l)
		}
		if s := p.text("h1"); !strings.Contains(s, "acme") {
			t.Errorf("confirmation: %q", s)
		}
		// Without its CSRF token the form is refused.
		p.do("drop the token", chromedp.SendKeys(chromedp.ID("confirm"), "acme"), chromedp.Evaluate[chromedp.Void](`document.querySelector('form[action$="/delete"] input[name=csrf]').remove()`))
		resp, err := chromedp.RunResponse(p.ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Delete connection acme for good"]`)))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != http.StatusForbidden {
			t.Fatalf("delete without CSRF: %d", resp.Status)
		}
		if _, err := f.eng.GetConnection("crm", "accounts", "acme"); err != nil {
			t.Fatalf("a refused delete deleted: %v", err)
		}
		// A wrong id deletes nothing.
		p.open(list + "/acme/delete")
		p.do("type another id", chromedp.SendKeys(chromedp.ID("confirm"), "acm"))
		p.click(`button[aria-label="Delete connection acme for good"]`)
		if s := p.text(".error"); !strings.Contains(s, "nothing was deleted") {
			t.Errorf("a wrong id: %q", s)
		}
		if _, err := f.eng.GetConnection("crm", "accounts", "acme"); err != nil {
			t.Fatalf("deleted with a wrong id: %v", err)
		}
		p.do("type its id", chromedp.SendKeys(chromedp.ID("confirm"), "acme"))
		p.click(`button[aria-label="Delete connection acme for good"]`)
		if l := p.location(); l != list+"?ok=conn-deleted" {
			t.Fatalf("after delete: %s", l)
		}
		if s := p.text(".flash"); !strings.Contains(s, "deleted") {
			t.Errorf("flash after delete: %q", s)
		}
		if _, err := f.eng.GetConnection("crm", "accounts", "acme"); err == nil {
			t.Fatal("acme is still there")
		}
		noSecret()
		// One left in place for the layout check, created while the
		// activity page follows the log.
		p.open("/ui/layers/crm/activity")
		p.waitJS("the stream to open", `document.querySelector("#live-status").textContent.startsWith("Live")`)
		if _, err := f.eng.CreateConnection(p.ctx, "crm", "accounts", engine.ConnectionInput{ID: "beta", NoCheck: true,
			Config: []byte(`{"token":"` + connToken + `"}`), Tags: map[string]string{"plan": "free"}, Metadata: []byte(`{"customer":"Beta GmbH"}`)}); err != nil {
			t.Fatal(err)
		}
		p.waitJS("the connection's event", `[...document.querySelectorAll("#events li")].some(li => li.textContent.includes("connection.created") && li.querySelector('a[href="/ui/layers/crm/connections/accounts/beta"]'))`)
		f.waitConnRun("crm", "accounts", "beta")
	})

	t.Run("fits 375 pixels", func(t *testing.T) {
		p.t = t
		p.do("narrow the window", chromedp.EmulateViewport(375, 800))
		for _, path := range []string{"/ui/", "/ui/layers/shop", "/ui/layers/shop/activity", "/ui/layers/shop/revisions",
			"/ui/layers/shop/records?model=Product&limit=10", "/ui/layers/shop/hooks", "/ui/layers/shop/deliveries", "/ui/layers/shop/graphql",
			"/ui/layers/shop/runs/" + f.runsOf("shop", store.RunCompleted)[0].ID,
			"/ui/layers/crm", "/ui/layers/crm/connections", "/ui/layers/crm/connections/accounts", "/ui/layers/crm/connections/accounts/beta",
			"/ui/layers/crm/connections/accounts/beta/delete", "/ui/layers/crm/records?connection=beta"} {
			p.open(path)
			// Open every JSON view: the widest content there is.
			p.do("open details", chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("details").forEach(d => d.open = true)`))
			if w := eval[int](p, "document.documentElement.scrollWidth"); w > 375 {
				t.Errorf("%s is %d pixels wide at 375", path, w)
			}
		}
		p.do("widen the window", chromedp.EmulateViewport(1200, 900))
	})

	t.Run("graphql explorer", func(t *testing.T) {
		p.t = t
		p.open("/ui/layers/blog/graphql")
		p.do("write a query", chromedp.SetValue(chromedp.ID("query"), `{ allPost(limit: 5) { totalCount nodes { id title } } }`))
		p.click(`form[action$="/graphql"] button`)
		if s := p.text("#result"); !strings.Contains(s, `"totalCount": 2`) || !strings.Contains(s, `"title": "A"`) {
			t.Errorf("result: %s", s)
		}
	})

	t.Run("works without JavaScript", func(t *testing.T) {
		p.t = t
		setScript := func(off bool) {
			if _, err := chromedp.Call(p.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: off}); err != nil {
				t.Fatal(err)
			}
		}
		setScript(true)
		defer setScript(false)
		p.do("open the layer", chromedp.Navigate(f.srv.URL+"/ui/layers/blog"), chromedp.WaitReady(chromedp.CSS("body")))
		if eval[bool](p, `document.documentElement.dataset.js === "ready"`) {
			t.Fatal("the page's script ran")
		}
		runs := len(f.runsOf("blog", ""))
		p.click(`button[aria-label="Sync layer blog now"]`)
		if l := p.location(); !strings.HasPrefix(l, "/ui/layers/blog?run=run_") {
			t.Fatalf("after Sync now: %s", l)
		}
		if got := len(f.runsOf("blog", "")); got != runs+1 {
			t.Fatalf("Sync now started %d runs", got-runs)
		}
		run := strings.TrimPrefix(p.location(), "/ui/layers/blog?run=")
		if s := p.text("#run-blog"); !strings.Contains(s, run) {
			t.Errorf("run box: %q", s)
		}
		// Refreshing (the link, or the browser's) shows where it got to.
		waitUntil(t, "the run", func() bool {
			r, err := f.eng.Run("blog", run)
			return err == nil && r.State == store.RunCompleted
		})
		p.do("refresh", chromedp.Reload())
		if s := p.text("#run-blog"); !strings.Contains(s, "completed") {
			t.Errorf("run box after a refresh: %q", s)
		}
		// The activity page lists without a stream.
		p.do("open the activity", chromedp.Navigate(f.srv.URL+"/ui/layers/blog/activity"), chromedp.WaitReady(chromedp.CSS("body")))
		if s := p.text("#events"); !strings.Contains(s, run) {
			t.Errorf("activity without script lacks the run: %q", s)
		}
	})

	t.Run("no script errors or CSP violations", func(t *testing.T) {
		p.t = t
		// A violation now must show: inline script is refused by the policy.
		p.do("break the policy", chromedp.Evaluate[chromedp.Void](`
			const s = document.createElement("script"); s.textContent = "window.__inline = 1"; document.body.append(s);`))
		if eval[bool](p, `window.__inline === 1`) {
			t.Error("inline script ran: the Content-Security-Policy is not applied")
		}
		waitUntil(t, "the violation of the test to be reported", func() bool {
			consoleMu.Lock()
			defer consoleMu.Unlock()
			return len(problems) > 0
		})
		consoleMu.Lock()
		defer consoleMu.Unlock()
		if len(problems) != 1 || !strings.Contains(problems[0], "Content Security Policy") {
			t.Errorf("console problems:\n%s", strings.Join(problems, "\n"))
		}
	})

	t.Run("sign out", func(t *testing.T) {
		p.t = t
		p.open("/ui/")
		p.click(`form.signout button`)
		if l := p.location(); !strings.HasPrefix(l, "/ui/signin") {
			t.Fatalf("after sign-out: %s", l)
		}
		p.open("/ui/layers/shop")
		if l := p.location(); !strings.HasPrefix(l, "/ui/signin?next="+url.QueryEscape("/ui/layers/shop")) {
			t.Fatalf("signed out, a page went to %s", l)
		}
	})
}
