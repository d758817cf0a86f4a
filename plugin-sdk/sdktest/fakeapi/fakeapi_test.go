package fakeapi_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest/fakeapi"
)

func client(t *testing.T, header http.Header) *sdk.HTTPClient {
	c := sdk.NewHTTPClient(sdk.HTTPClientOptions{Header: header, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func seven(*http.Request) []any {
	out := make([]any, 7)
	for i := range out {
		out[i] = map[string]any{"id": i + 1}
	}
	return out
}

// walk pages through url with p and returns the ids, in order.
func walk(t *testing.T, c *sdk.HTTPClient, url string, p sdk.Paginator, records string) string {
	t.Helper()
	var ids []string
	err := c.Paginate(t.Context(), url, p, func(pg *sdk.Page) (int, error) {
		var body any
		if err := pg.JSON(&body); err != nil {
			return 0, err
		}
		list, ok := sdk.Lookup(body, records)
		if !ok {
			return 0, fmt.Errorf("no records at %q in %s", records, pg.Body)
		}
		for _, x := range list.([]any) {
			ids = append(ids, fmt.Sprint(x.(map[string]any)["id"]))
		}
		return len(list.([]any)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(ids, ",")
}

// TestPagingStyles: each paging style is walked by the SDK paginator made
// for it, page by page.
func TestPagingStyles(t *testing.T) {
	api := fakeapi.New(t)
	api.List("/cursor", fakeapi.List{Items: seven, Paging: fakeapi.Cursor, Param: "after", RecordsPath: "data", NextPath: "meta.next"})
	api.List("/cursor-url", fakeapi.List{Items: seven, Paging: fakeapi.Cursor, NextAsURL: true, NextEnd: "null", PageSize: 3})
	api.List("/cursor-absent", fakeapi.List{Items: seven, Paging: fakeapi.Cursor, NextEnd: "absent", PageSize: 4})
	api.List("/offset", fakeapi.List{Items: seven, Paging: fakeapi.Offset})
	api.List("/pages", fakeapi.List{Items: seven, Paging: fakeapi.PageNumber, RecordsPath: "result.items"})
	api.List("/link", fakeapi.List{Items: seven, Paging: fakeapi.Link, PageSize: 3})
	api.List("/all", fakeapi.List{Items: seven})
	c := client(t, nil)
	for _, tc := range []struct {
		path, records string
		p             sdk.Paginator
		want          string
	}{
		{"/cursor", "data", sdk.CursorPagination{Param: "after", NextPath: "meta.next"},
			"/cursor /cursor?after=2 /cursor?after=4 /cursor?after=6"},
		{"/cursor-url", "data", sdk.CursorPagination{Param: "cursor", NextPath: "next"},
			"/cursor-url /cursor-url?cursor=3 /cursor-url?cursor=6"},
		{"/cursor-absent", "data", sdk.CursorPagination{Param: "cursor", NextPath: "next"},
			"/cursor-absent /cursor-absent?cursor=4"},
		{"/offset", "", sdk.OffsetPagination{Param: "offset", LimitParam: "limit", Limit: 3},
			"/offset?limit=3&offset=0 /offset?limit=3&offset=3 /offset?limit=3&offset=6"},
		{"/pages", "result.items", sdk.PageNumberPagination{Param: "page"},
			"/pages?page=1 /pages?page=2 /pages?page=3 /pages?page=4 /pages?page=5"},
		{"/link", "", sdk.LinkPagination{}, "/link /link?page=2 /link?page=3"},
		{"/all", "", sdk.LinkPagination{}, "/all"},
	} {
		api.ResetRequests()
		if got := walk(t, c, api.URL+tc.path, tc.p, tc.records); got != "1,2,3,4,5,6,7" {
			t.Errorf("%s: ids %s", tc.path, got)
		}
		if got := strings.Join(api.URIs(), " "); got != tc.want {
			t.Errorf("%s: requests\n%s\nwant\n%s", tc.path, got, tc.want)
		}
	}
	_, err := c.GetJSON(t.Context(), api.URL+"/offset?offset=x", new(any))
	var he *sdk.HTTPError
	if !errors.As(err, &he) || he.StatusCode != http.StatusBadRequest || !strings.Contains(string(he.Body), `?offset=\"x\" is not a number`) {
		t.Errorf("bad offset: %v", err)
	}
}

func TestBearerFailuresAndRecording(t *testing.T) {
	api := fakeapi.New(t)
	api.RequireBearer("s3cret")
	api.List("/items", fakeapi.List{Items: seven})
	api.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{}`)) })

	var he *sdk.HTTPError
	if _, err := client(t, nil).GetJSON(t.Context(), api.URL+"/items", new(any)); !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v", err)
	}
	if _, err := client(t, http.Header{"Authorization": {"Bearer s3creT"}}).GetJSON(t.Context(), api.URL+"/items", new(any)); !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v", err)
	}

	c := client(t, http.Header{"Authorization": {"Bearer s3cret"}})
	api.ResetRequests()
	api.FailNext(fakeapi.Failure{Match: "offset=3", Status: 500}, fakeapi.TooManyRequests(time.Second), fakeapi.ServerError(0))
	start := time.Now()
	var list []any
	if _, err := c.GetJSON(t.Context(), api.URL+"/items", &list); err != nil || len(list) != 7 {
		t.Fatalf("after a 429 and a 503: %v %v", list, err)
	}
	reqs := api.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want the 429, the 503 and the answer", len(reqs))
	}
	// The client honoured Retry-After: 1 (the fake answered it).
	if gap := reqs[1].Time.Sub(reqs[0].Time); gap < 900*time.Millisecond || time.Since(start) < gap {
		t.Fatalf("retried after %s despite Retry-After: 1", gap)
	}
	// The failure that matches offset=3 is still queued.
	if _, err := c.GetJSON(t.Context(), api.URL+"/items?offset=3", new(any)); err != nil {
		t.Fatalf("the 500 is retried: %v", err)
	}
	if got := api.URIs(); got[len(got)-2] != "/items?offset=3" || got[len(got)-1] != "/items?offset=3" {
		t.Fatalf("requests %v", got)
	}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, api.URL+"/echo", strings.NewReader(`{"hello":1}`))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	last := api.Requests()[len(api.Requests())-1]
	if last.Method != "POST" || string(last.Body) != `{"hello":1}` || last.Header.Get("Authorization") != "Bearer s3cret" {
		t.Fatalf("recorded %+v", last)
	}
	resp, err = api.Client().Get(api.URL + "/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the token check comes first: %d", resp.StatusCode)
	}
}

func TestSignatures(t *testing.T) {
	body := []byte(`{"event":"post.updated"}`)
	hexSig := fakeapi.SignHex("whsec", body, "sha256=")
	if err := (sdk.HMACSignature{Secret: []byte("whsec"), Prefix: "sha256="}).Verify(body, hexSig); err != nil {
		t.Fatalf("hex: %v", err)
	}
	// The well-known HMAC-SHA256 of "" with key "" (RFC 4231 style check).
	if got := fakeapi.SignHex("", nil, ""); got != "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad" {
		t.Fatalf("HMAC of empty input: %s", got)
	}
	b64 := fakeapi.SignBase64("whsec", body, "")
	if err := (sdk.HMACSignature{Secret: []byte("whsec"), Encoding: sdk.Base64}).Verify(body, b64); err != nil {
		t.Fatalf("base64: %v", err)
	}
	h := fakeapi.SignedHeader("x-signature-256", "whsec", body, "sha256=")
	if err := (sdk.HMACSignature{Secret: []byte("whsec"), Prefix: "sha256="}).VerifyHeader(h, "X-Signature-256", body); err != nil {
		t.Fatalf("header: %v", err)
	}
}
