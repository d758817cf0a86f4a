package main

import (
	"strconv"
	"testing"
	"time"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
	"github.com/synclayer/synclayer/plugins/github/githubtest"
)

// BenchmarkFullIssueSync measures a full run of the issue sync over 2,000
// issues in pages of 100 against the fake GitHub, through the real
// protocol: go test -run '^$' -bench FullIssueSync ./plugins/github/
func BenchmarkFullIssueSync(b *testing.B) {
	const n = 2000
	s := githubtest.New(b)
	s.AddToken(token, githubtest.TokenOptions{Limit: 1 << 30})
	s.AddRepo(repoA)
	for i := 0; i < n; i++ {
		body := "An issue body of a realistic length, with a few words about what went wrong: #" + strconv.Itoa(i)
		s.CreateIssue(repoA, githubtest.IssueInput{Title: "Issue " + strconv.Itoa(i), Body: body, Labels: []string{"bug", "p2"}, Assignees: []string{"hubot"}})
	}
	g := &GitHub{HTTP: sdk.HTTPClientOptions{RetryWaitMin: time.Millisecond}}
	h := sdktest.New(b, g)
	cfg := map[string]any{"token": token, "repos": []string{repoA}, "base_url": s.URL}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := h.Sync(b.Context(), sdktest.SyncOptions{Config: cfg, Sync: SyncIssue, Full: true})
		if err != nil || len(res.Changes) != n {
			b.Fatalf("%v: %d records", err, len(res.Changes))
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}
