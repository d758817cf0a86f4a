// Command receiver is a small app that takes synclayer's outbound events
// the recommended way:
//
//  1. verify every request's Standard Webhooks signature (401 otherwise);
//  2. answer at once (204), and on sync.completed wake a puller;
//  3. the puller reads GET /v1/layers/{layer}/records?cursor=<last> page by
//     page, hands each record to the app, and after each page writes the
//     cursor of its last record to disk (write, fsync, rename), so a crash
//     at any point resumes without losing or skipping a change.
//
// The event only says "there is something new"; the cursor on disk says
// where the app is. So a duplicate or a lost event does no harm: the next
// pull (or the one at start) catches up, and replays at most the page a
// crash interrupted — make applying a record idempotent (an upsert by
// source, model and id).
//
//	SYNCLAYER_WEBHOOK_SECRET=whsec_… receiver -listen 127.0.0.1:3000 -state ./state
//
// with, in the layer file:
//
//	notify "app" {
//	  url    = "http://127.0.0.1:3000/hooks/synclayer"
//	  secret = env("SYNCLAYER_WEBHOOK_SECRET")
//	  events = ["sync.completed"]
//	}
//
// This example prints each record as a JSON line on stdout; replace apply
// with your own.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3000", "address to listen on")
	path := flag.String("path", "/hooks/synclayer", "URL path of the webhook")
	state := flag.String("state", "./receiver-state", "folder for the cursor files (one per layer)")
	addr := flag.String("synclayer", envOr("SYNCLAYER_ADDR", "http://127.0.0.1:8750"), "address of synclayer (env SYNCLAYER_ADDR); a read token comes from SYNCLAYER_TOKEN")
	layers := flag.String("layers", "", "comma list of layers to pull at start (others are pulled on their first event)")
	flag.Parse()

	secret := os.Getenv("SYNCLAYER_WEBHOOK_SECRET")
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	r, err := New(Config{
		Secret:   secret,
		StateDir: *state,
		API:      *addr,
		Token:    os.Getenv("SYNCLAYER_TOKEN"),
		Apply:    func(layer string, rec json.RawMessage) error { return enc.Encode(rec) },
		Logf:     log.Printf,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go r.Run(ctx, splitList(*layers))

	mux := http.NewServeMux()
	mux.Handle("POST "+*path, r)
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	log.Printf("receiving synclayer events on http://%s%s", *listen, *path)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
