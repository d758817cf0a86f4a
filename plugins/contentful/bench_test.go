package main

import (
	"fmt"
	"testing"

	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
	cf "github.com/synclayer/synclayer/plugins/contentful/contentfultest"
)

// BenchmarkFullSync measures a full run of 5,000 entries in two locales,
// 100 per page as Contentful serves them, against the fake over loopback
// HTTP and the in-process protocol:
//
//	go test -run '^$' -bench FullSync -benchtime 5x ./plugins/contentful/
func BenchmarkFullSync(b *testing.B) {
	const n = 5000
	api := cf.Start(b, cf.Options{Locales: []cf.Locale{{Code: "en-US", Default: true}, {Code: "de-DE", Fallback: "en-US"}}})
	api.AddContentType(cf.ContentType{ID: "blogPost", Fields: []cf.Field{
		{ID: "title", Type: "Symbol", Localized: true},
		{ID: "body", Type: "Text", Localized: true},
		{ID: "author", Type: "Link", LinkType: "Entry"},
	}})
	for i := range n {
		api.PutEntry(fmt.Sprintf("post-%d", i), "blogPost", cf.Fields{
			"title":  {"en-US": fmt.Sprintf("Post %d", i), "de-DE": fmt.Sprintf("Beitrag %d", i)},
			"body":   {"en-US": "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor."},
			"author": {"en-US": cf.Link("Entry", "ada")},
		})
	}
	h := sdktest.New(b, &Contentful{})
	for _, locale := range []string{"", "de-DE"} {
		b.Run("locale="+locale, func(b *testing.B) {
			cfg := config(api)
			cfg["locale"] = locale
			for b.Loop() {
				res, err := h.Sync(b.Context(), sdktest.SyncOptions{Config: cfg, Sync: SyncName, Full: true})
				if err != nil || len(res.Changes) != n {
					b.Fatalf("%v: %d changes", err, len(res.Changes))
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
