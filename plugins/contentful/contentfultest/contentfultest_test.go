package contentfultest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func start(t *testing.T) *Server {
	t.Helper()
	s := Start(t, Options{PageSize: 2})
	s.AddContentType(ContentType{ID: "author", Fields: []Field{{ID: "name", Type: "Symbol"}}})
	s.AddContentType(ContentType{ID: "blogPost", Fields: []Field{
		{ID: "title", Type: "Symbol", Localized: true},
		{ID: "author", Type: "Link", LinkType: "Entry"},
		{ID: "images", Type: "Array", Items: &Items{Type: "Link", LinkType: "Asset"}},
	}})
	s.PutAsset("img-1", Fields{"title": {"en-US": "Cover"}})
	s.PutEntry("ada", "author", Fields{"name": {"en-US": "Ada"}})
	s.PutEntry("post-1", "blogPost", Fields{"title": {"en-US": "Hello"}, "author": {"en-US": Link("Entry", "ada")}})
	return s
}

// get sends an authorized GET and decodes the answer.
func get(t *testing.T, s *Server, path string, header ...string) (int, map[string]any, http.Header) {
	t.Helper()
	if strings.HasPrefix(path, s.URL) {
		path = strings.TrimPrefix(path, s.URL)
	}
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.AccessToken())
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("%s: %v: %s", path, err, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.contentful.delivery.v1+json" {
		t.Fatalf("%s: Content-Type %q", path, ct)
	}
	return resp.StatusCode, body, resp.Header
}

func items(body map[string]any) []map[string]any {
	var out []map[string]any
	for _, it := range body["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}

func sysOf(it map[string]any) map[string]any { return it["sys"].(map[string]any) }

func linkID(v any) any { return v.(map[string]any)["sys"].(map[string]any)["id"] }

// syncAll follows a sync from path to its nextSyncUrl and returns the
// items and that URL.
func syncAll(t *testing.T, s *Server, path string, between func(page int)) ([]map[string]any, string) {
	t.Helper()
	var all []map[string]any
	for page := 0; ; page++ {
		code, body, _ := get(t, s, path)
		if code != 200 {
			t.Fatalf("%s: %d %v", path, code, body)
		}
		all = append(all, items(body)...)
		if next, ok := body["nextSyncUrl"].(string); ok {
			if body["nextPageUrl"] != nil {
				t.Fatalf("a page with both nextPageUrl and nextSyncUrl: %v", body)
			}
			return all, next
		}
		path = body["nextPageUrl"].(string)
		if between != nil {
			between(page)
		}
	}
}

func TestSyncShapes(t *testing.T) {
	s := start(t)
	base := "/spaces/" + s.SpaceID() + "/environments/master"

	code, page, _ := get(t, s, base+"/sync?initial=true&limit=3")
	its := items(page)
	if code != 200 || len(its) != 3 || page["nextSyncUrl"] == nil || page["sys"].(map[string]any)["type"] != "Array" {
		t.Fatalf("initial sync: %d %v", code, page)
	}
	entry := its[2]
	sys := sysOf(entry)
	if sys["type"] != "Entry" || sys["id"] != "post-1" || sys["revision"].(float64) != 1 ||
		sys["createdAt"] != "2026-11-23T07:00:03.000Z" || sys["updatedAt"] != "2026-11-23T07:00:03.000Z" ||
		linkID(sys["contentType"]) != "blogPost" || linkID(sys["environment"]) != "master" || linkID(sys["space"]) != s.SpaceID() {
		t.Fatalf("entry sys: %v", sys)
	}
	fields := entry["fields"].(map[string]any)
	if fields["title"].(map[string]any)["en-US"] != "Hello" || linkID(fields["author"].(map[string]any)["en-US"]) != "ada" {
		t.Fatalf("entry fields (every locale, links as links): %v", fields)
	}
	if sysOf(its[0])["type"] != "Asset" || sysOf(its[0])["contentType"] != nil {
		t.Fatalf("asset: %v", its[0])
	}

	// Default page size 2: the first page links to the next with an
	// absolute URL.
	_, page, _ = get(t, s, base+"/sync?initial=true")
	next, _ := page["nextPageUrl"].(string)
	if len(items(page)) != 2 || !strings.HasPrefix(next, s.URL+base+"/sync?sync_token=") || page["nextSyncUrl"] != nil {
		t.Fatalf("first page: %v", page)
	}

	// A delta has updates and deletions, and no fields for a deletion.
	_, sync := syncAll(t, s, base+"/sync?initial=true", nil)
	s.PutEntry("post-1", "blogPost", Fields{"title": {"en-US": "Hello again"}})
	s.DeleteEntry("ada")
	s.DeleteAsset("img-1")
	delta, _ := syncAll(t, s, sync, nil)
	var got []string
	for _, it := range delta {
		sys := sysOf(it)
		got = append(got, fmt.Sprintf("%s:%s:%v", sys["type"], sys["id"], sys["revision"]))
		if strings.HasPrefix(sys["type"].(string), "Deleted") && (it["fields"] != nil || sys["deletedAt"] == nil) {
			t.Fatalf("deletion %v", it)
		}
	}
	if strings.Join(got, " ") != "Entry:post-1:2 DeletedEntry:ada:1 DeletedAsset:img-1:1" {
		t.Fatalf("delta: %v", got)
	}

	// An initial sync has no deletions; type filters it.
	for typ, want := range map[string]int{"Deletion": 0, "Asset": 0, "Entry": 1, "all": 1} {
		if all, _ := syncAll(t, s, base+"/sync?initial=true&type="+typ, nil); len(all) != want {
			t.Errorf("initial sync of type %s: %d items, want %d", typ, len(all), want)
		}
	}
	// Without /environments/{env}, master is meant.
	if code, _, _ := get(t, s, "/spaces/"+s.SpaceID()+"/sync?initial=true"); code != 200 {
		t.Fatalf("sync of the space: %d", code)
	}
}

// TestSyncDuringChanges: what changes while a sync is paged through is in
// the next delta, and nothing unchanged is missed.
func TestSyncDuringChanges(t *testing.T) {
	s := Start(t, Options{PageSize: 2})
	s.AddContentType(ContentType{ID: "page"})
	for i := range 9 {
		s.PutEntry(fmt.Sprintf("p%d", i), "page", Fields{"n": {"en-US": i}})
	}
	first, next := syncAll(t, s, "/spaces/"+s.SpaceID()+"/environments/master/sync?initial=true", func(page int) {
		if page == 0 {
			s.PutEntry("p5", "page", Fields{"n": {"en-US": 50}}) // not read yet
			s.PutEntry("p0", "page", Fields{"n": {"en-US": 0}})  // read already
			s.PutEntry("p9", "page", Fields{"n": {"en-US": 9}})  // new
			s.DeleteEntry("p7")
		}
	})
	seen := map[string]bool{}
	for _, it := range first {
		seen[sysOf(it)["id"].(string)] = true
	}
	for _, id := range []string{"p1", "p2", "p3", "p4", "p6", "p8"} {
		if !seen[id] {
			t.Errorf("the initial sync missed unchanged %s: %v", id, seen)
		}
	}
	delta, _ := syncAll(t, s, next, nil)
	var got []string
	for _, it := range delta {
		got = append(got, sysOf(it)["type"].(string)+":"+sysOf(it)["id"].(string))
	}
	if strings.Join(got, " ") != "Entry:p5 Entry:p0 Entry:p9 DeletedEntry:p7" {
		t.Fatalf("delta after changes during the sync: %v", got)
	}
}

func TestContentTypesAndLocales(t *testing.T) {
	s := start(t)
	base := "/spaces/" + s.SpaceID() + "/environments/master"
	code, body, _ := get(t, s, base+"/content_types?limit=1&skip=1")
	if code != 200 || body["total"].(float64) != 2 || body["skip"].(float64) != 1 || len(items(body)) != 1 {
		t.Fatalf("content types: %d %v", code, body)
	}
	ct := items(body)[0]
	if sysOf(ct)["id"] != "blogPost" || sysOf(ct)["type"] != "ContentType" {
		t.Fatalf("content type: %v", ct)
	}
	images := ct["fields"].([]any)[2].(map[string]any)
	if images["id"] != "images" || images["type"] != "Array" || images["items"].(map[string]any)["type"] != "Link" || images["items"].(map[string]any)["linkType"] != "Asset" {
		t.Fatalf("an array of links: %v", images)
	}
	author := ct["fields"].([]any)[1].(map[string]any)
	if author["type"] != "Link" || author["linkType"] != "Entry" || author["localized"] != false {
		t.Fatalf("a link: %v", author)
	}
	_, body, _ = get(t, s, base+"/locales")
	loc := items(body)[0]
	if loc["code"] != "en-US" || loc["default"] != true || loc["fallbackCode"] != nil {
		t.Fatalf("locales: %v", body)
	}
	if code, body, _ := get(t, s, "/spaces/"+s.SpaceID()); code != 200 || sysOf(body)["type"] != "Space" {
		t.Fatalf("space: %d %v", code, body)
	}
}

func TestErrors(t *testing.T) {
	s := start(t)
	base := "/spaces/" + s.SpaceID() + "/environments/master"
	errID := func(body map[string]any) any { return sysOf(body)["id"] }
	for _, tc := range []struct {
		path   string
		header []string
		code   int
		id     string
	}{
		{base + "/locales", []string{"Authorization", "Bearer wrong"}, 401, "AccessTokenInvalid"},
		{base + "/locales", []string{"Authorization", "Basic abc"}, 401, "AccessTokenInvalid"},
		{"/spaces/other/environments/master/sync?initial=true", nil, 404, "NotFound"},
		{"/spaces/" + s.SpaceID() + "/environments/qa/sync?initial=true", nil, 404, "NotFound"},
		{base + "/sync", nil, 400, "BadRequest"},
		{base + "/sync?sync_token=garbage", nil, 400, "BadRequest"},
		{base + "/sync?initial=true&limit=1001", nil, 400, "BadRequest"},
		{base + "/sync?initial=true&type=Everything", nil, 400, "BadRequest"},
		{base + "/entries", nil, 404, "NotFound"},
	} {
		code, body, _ := get(t, s, tc.path, tc.header...)
		if code != tc.code || errID(body) != tc.id || sysOf(body)["type"] != "Error" || body["message"] == "" || body["requestId"] == nil {
			t.Errorf("%s %v: %d %v, want %d %s", tc.path, tc.header, code, body, tc.code, tc.id)
		}
	}
	s.RateLimit(2, 3)
	for range 2 {
		code, body, header := get(t, s, base+"/locales")
		if code != 429 || header.Get("X-Contentful-RateLimit-Reset") != "3" || errID(body) != "RateLimitExceeded" {
			t.Fatalf("rate limit: %d %v %v", code, header, body)
		}
	}
	if code, _, _ := get(t, s, base+"/locales"); code != 200 {
		t.Fatalf("after the rate limit: %d", code)
	}
	// The token as a query parameter works too.
	resp, err := http.Get(s.URL + base + "/locales?access_token=" + s.AccessToken())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("access_token parameter: %d", resp.StatusCode)
	}
}

func TestWebhookCalls(t *testing.T) {
	s := start(t)
	wh := s.EntryWebhook("ContentManagement.Entry.publish", "post-1")
	var body map[string]any
	if err := json.Unmarshal(wh.Body, &body); err != nil || sysOf(body)["type"] != "Entry" || wh.Header.Get(HeaderTopic) != "ContentManagement.Entry.publish" {
		t.Fatalf("publish call: %v %s %v", err, wh.Body, wh.Header)
	}
	wh = s.AssetWebhook("ContentManagement.Asset.unpublish", "img-1")
	body = nil
	if err := json.Unmarshal(wh.Body, &body); err != nil || sysOf(body)["type"] != "DeletedAsset" || body["fields"] != nil {
		t.Fatalf("unpublish call: %v %s", err, wh.Body)
	}
	h := wh.Header.Clone()
	Sign("secret", "POST", "/hook", h, wh.Body, time.UnixMilli(1764316800000))
	if h.Get(HeaderTimestamp) != "1764316800000" || h.Get(HeaderSignedHeaders) != "x-contentful-signed-headers,x-contentful-timestamp,x-contentful-topic,x-contentful-webhook-name" || len(h.Get(HeaderSignature)) != 64 {
		t.Fatalf("signed headers: %v", h)
	}
}
