package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cf "github.com/synclayer/synclayer/plugins/contentful/contentfultest"
)

const contentfulSecret = "integration-signing-secret-0123456789abcdefghijklmnopqrstuvwxyzAB"

// withoutMetadata renders a record without its _metadata.
func withoutMetadata(t *testing.T, r record) string {
	t.Helper()
	c := map[string]any{}
	for k, v := range r {
		if k != "_metadata" {
			c[k] = v
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestContentfulSourceEndToEnd serves a layer with a contentful source
// through the real binaries, with the layer file of configs/, against the
// fake Delivery API: the first run
// is an initial sync over several pages, a triggered run brings an update
// and an unpublished entry from the sync token, and a signed Contentful
// webhook starts an incremental run whose record has the shape a full poll
// gives, while a forged or unsigned call is refused.
func TestContentfulSourceEndToEnd(t *testing.T) {
	api := cf.Start(t, cf.Options{PageSize: 2})
	api.AddContentType(cf.ContentType{ID: "blogPost", Name: "Blog post", Fields: []cf.Field{
		{ID: "title", Type: "Symbol", Localized: true},
		{ID: "author", Type: "Link", LinkType: "Entry"},
		{ID: "images", Type: "Array", Items: &cf.Items{Type: "Link", LinkType: "Asset"}},
	}})
	api.AddContentType(cf.ContentType{ID: "author", Name: "Author", Fields: []cf.Field{{ID: "name", Type: "Symbol"}}})
	api.PutAsset("img-1", cf.Fields{"title": {"en-US": "Cover"}, "file": {"en-US": map[string]any{"url": "//images.ctfassets.net/cover.png"}}})
	api.PutEntry("ada", "author", cf.Fields{"name": {"en-US": "Ada"}})
	for i := 1; i <= 3; i++ {
		api.PutEntry(fmt.Sprintf("post-%d", i), "blogPost", cf.Fields{
			"title":  {"en-US": fmt.Sprintf("Post %d", i)},
			"author": {"en-US": cf.Link("Entry", "ada")},
			"images": {"en-US": []any{cf.Link("Asset", "img-1")}},
		})
	}
	// The layer file is the one shipped in configs/, pointed at the fake.
	t.Setenv("CONTENTFUL_SPACE_ID", api.SpaceID())
	t.Setenv("CONTENTFUL_DELIVERY_TOKEN", api.AccessToken())
	t.Setenv("CONTENTFUL_BASE_URL", api.URL)
	t.Setenv("CONTENTFUL_LOCALE", "en-US")
	t.Setenv("CONTENTFUL_WEBHOOK_SECRET", contentfulSecret)
	h := startHost(t, filepath.Join("..", "configs", "contentful.hcl"), "")
	h.waitRevision("cms", 1, 30*time.Second)

	posts := h.records("cms", "model=BlogPost")
	if len(posts) != 3 {
		t.Fatalf("first run: %d posts: %v\n%s", len(posts), posts, h.logs())
	}
	p1 := h.records("cms", "model=BlogPost&ids=post-1")[0]
	if p1["title"] != "Post 1" || p1["author"] != "ada" || fmt.Sprint(p1["images"]) != "[img-1]" || p1["content_type"] != "blogPost" || p1["revision"] != 1.0 {
		t.Fatalf("post-1: %v", p1)
	}
	if got := h.records("cms", "model=Author"); len(got) != 1 || got[0]["name"] != "Ada" {
		t.Fatalf("authors: %v", got)
	}
	if got := h.records("cms", "model=Asset"); len(got) != 1 || got[0]["title"] != "Cover" {
		t.Fatalf("assets: %v", got)
	}
	var initial int
	for _, r := range api.Requests() {
		if strings.Contains(r, "sync?initial=true") {
			initial++
		}
	}
	if initial != 1 {
		t.Fatalf("the first run made %d initial syncs: %v", initial, api.Requests())
	}

	// An update and an unpublished entry: a triggered run brings both
	// from the sync token alone.
	api.ResetRequests()
	api.PutEntry("post-2", "blogPost", cf.Fields{"title": {"en-US": "Post 2, edited"}, "author": {"en-US": cf.Link("Entry", "ada")}})
	api.DeleteEntry("post-3")
	var started struct {
		Run string `json:"run"`
	}
	h.call("POST", "/v1/layers/cms/syncs", map[string]any{}, 202, &started)
	if r := h.waitRun("cms", started.Run, 30*time.Second); r.State != "completed" {
		t.Fatalf("incremental run: %+v\n%s", r, h.logs())
	}
	for _, r := range api.Requests() {
		if strings.Contains(r, "/sync") && (strings.Contains(r, "initial") || !strings.Contains(r, "sync_token=")) {
			t.Fatalf("the incremental run asked %s: want only the sync token", r)
		}
	}
	got := map[string]record{}
	for _, r := range h.records("cms", "model=BlogPost&ids=post-2,post-3") {
		got[r["id"].(string)] = r
	}
	if got["post-2"]["title"] != "Post 2, edited" || got["post-2"]["revision"] != 2.0 || got["post-3"].meta("last_action") != "DELETED" {
		t.Fatalf("after the incremental run: %v", got)
	}

	// A signed webhook starts an incremental run; forged and unsigned
	// calls are refused.
	api.PutEntry("post-1", "blogPost", cf.Fields{
		"title":  {"en-US": "Post 1, pushed"},
		"author": {"en-US": cf.Link("Entry", "ada")},
		"images": {"en-US": []any{cf.Link("Asset", "img-1")}},
	})
	wh := api.EntryWebhook("ContentManagement.Entry.publish", "post-1")
	url := h.url("/hooks/sources/cms/contentful")
	if code, body, err := wh.Send(t.Context(), url, "", time.Now()); err != nil || code != 401 {
		t.Fatalf("unsigned webhook: %d %s %v", code, body, err)
	}
	if code, body, err := wh.Send(t.Context(), url, strings.Repeat("f", 64), time.Now()); err != nil || code != 401 {
		t.Fatalf("forged webhook: %d %s %v", code, body, err)
	}
	if code, body, err := wh.Send(t.Context(), url, contentfulSecret, time.Now().Add(-time.Hour)); err != nil || code != 401 {
		t.Fatalf("stale webhook: %d %s %v", code, body, err)
	}
	if code, body, err := wh.Send(t.Context(), url, contentfulSecret, time.Now()); err != nil || code != 202 {
		t.Fatalf("signed webhook: %d %s %v", code, body, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var pushed record
	for {
		if rs := h.records("cms", "model=BlogPost&ids=post-1"); len(rs) == 1 && rs[0]["title"] == "Post 1, pushed" {
			pushed = rs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook's run did not bring post-1\n%s", h.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var revs struct {
		Revisions []struct {
			Trigger string `json:"trigger"`
		} `json:"revisions"`
	}
	h.call("GET", "/v1/layers/cms/revisions", nil, 200, &revs)
	if len(revs.Revisions) == 0 || revs.Revisions[0].Trigger != "webhook" {
		t.Fatalf("revisions %+v: want the latest triggered by the webhook", revs)
	}

	// The same entry from a full poll has the same shape.
	h.call("POST", "/v1/layers/cms/syncs", map[string]any{"reset": true}, 202, &started)
	if r := h.waitRun("cms", started.Run, 30*time.Second); r.State != "completed" {
		t.Fatalf("full run: %+v\n%s", r, h.logs())
	}
	polled := h.records("cms", "model=BlogPost&ids=post-1")[0]
	if a, b := withoutMetadata(t, pushed), withoutMetadata(t, polled); a != b {
		t.Fatalf("post-1 from the webhook's run and from a poll differ:\n%s\n%s", a, b)
	}
	if strings.Contains(h.logs(), api.AccessToken()) || strings.Contains(h.logs(), contentfulSecret) {
		t.Fatalf("a secret reached the host log:\n%s", h.logs())
	}
}
