package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// webhooks measures payload webhooks of the rest connector, one record
// each, 200 per second for 10 s: from the POST to the sync.completed event
// received by a loopback endpoint.
func webhooks(work string) {
	// The upstream API: empty, the records arrive by webhook.
	up, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	go http.Serve(up, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "[]")
	}))
	// The app that receives sync.completed.
	type arrival struct {
		revision int64
		added    int64
		at       time.Time
	}
	var mu sync.Mutex
	var arrivals []arrival
	app, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	go http.Serve(app, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		var ev struct {
			Trigger  string                      `json:"trigger"`
			Revision int64                       `json:"revision"`
			Results  map[string]map[string]int64 `json:"results"`
		}
		json.NewDecoder(r.Body).Decode(&ev)
		if ev.Trigger == "webhook" {
			mu.Lock()
			arrivals = append(arrivals, arrival{ev.Revision, ev.Results["Post"]["added"], at})
			mu.Unlock()
		}
		w.WriteHeader(204)
	}))
	var key [32]byte
	rand.Read(key[:])
	whsec := "whsec_" + base64.StdEncoding.EncodeToString(key[:])
	const secret = "bench-webhook-secret"

	dir := filepath.Join(work, "webhooks")
	must(os.MkdirAll(dir, 0o755))
	cfg := fmt.Sprintf(`
layer "wh" {
  source "api" {
    plugin = "rest"
    config {
      base_url       = "http://%s"
      webhook_secret = %q
      models = {
        Post = { path = "/posts", records = "", id = "id" }
      }
    }
  }
  notify "app" {
    url    = "http://%s/events"
    secret = %q
    events = ["sync.completed"]
  }
}
`, up.Addr(), secret, app.Addr(), whsec)
	must(os.WriteFile(filepath.Join(dir, "layer.hcl"), []byte(cfg), 0o644))
	h := &host{name: "wh", dir: dir, addr: freeAddr()}
	h.start()
	defer h.stop()
	h.firstRun()

	const rate, seconds = 200, 10
	total := rate * seconds
	sent := make([]time.Time, 0, total)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	tick := time.NewTicker(time.Second / rate)
	for i := 0; i < total; i++ {
		<-tick.C
		body := fmt.Sprintf(`{"model":"Post","action":"upsert","record":{"id":"w%06d","title":"pushed"}}`, i)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(body))
		req, _ := http.NewRequest("POST", h.url("/hooks/sources/wh/api"), strings.NewReader(body))
		req.Header.Set("X-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		t0 := time.Now()
		resp, err := client.Do(req)
		must(err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 202 {
			must(fmt.Errorf("webhook answered %d", resp.StatusCode))
		}
		sent = append(sent, t0)
	}
	tick.Stop()
	deadline := time.Now().Add(30 * time.Second)
	var got []arrival
	for {
		mu.Lock()
		got = append(got[:0], arrivals...)
		mu.Unlock()
		var n int64
		for _, a := range got {
			n += a.added
		}
		if n >= int64(total) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Webhooks publish in arrival order, each adding one record: the k-th
	// webhook is out once the cumulative added count reaches k.
	sort.Slice(got, func(i, j int) bool { return got[i].revision < got[j].revision })
	lat := make([]float64, 0, total)
	var cum int64
	k := 0
	for _, a := range got {
		cum += a.added
		for ; k < total && int64(k) < cum; k++ {
			lat = append(lat, float64(a.at.Sub(sent[k]).Microseconds())/1000)
		}
	}
	if len(lat) < total {
		must(fmt.Errorf("only %d of %d webhooks were announced", len(lat), total))
	}
	sort.Float64s(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	set("webhook_p50_ms", p50, "", "")
	set("webhook_p99_ms", p99, "≤ 50", verdict(p99 <= 50))
}
