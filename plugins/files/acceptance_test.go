package main

import (
	"testing"

	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
)

func TestAcceptance(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "Post.json", postsJSON)
	write(t, dir, "Comment.jsonl", commentsJSONL)
	write(t, dir, "Author.csv", authorsCSV)
	sdktest.Acceptance{
		Config: map[string]any{"dir": dir},
		Change: func(tb testing.TB, sync string) {
			write(t, dir, "Post.json", `[{"id": 1, "title": "Hello, edited"}, {"id": "p-3", "title": "New"}]`)
			write(t, dir, "Tag.jsonl", `{"id":"t1"}`+"\n")
		},
	}.Run(t, &Files{})
}
