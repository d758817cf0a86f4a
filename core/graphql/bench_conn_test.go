package graphql

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"

	"github.com/synclayer/synclayer/core/store"
)

// BenchmarkGraphQLConnections measures reads of a source with many
// connections (GRAPHQL_BENCH_CONNECTIONS, default 2,000, of 10 contacts
// each, email indexed), through ServeHTTP: contact(id:, connection:),
// allContact(connection:, filter: {email: {eq}}), the first page of
// allContact over every connection, and a walk of every contact over
// every connection by pages of 1,000 (records/s reported).
//
//	go test -run '^$' -bench GraphQLConnections -benchtime 2x ./core/graphql/
func BenchmarkGraphQLConnections(b *testing.B) {
	conns := 2000
	if n, err := strconv.Atoi(os.Getenv("GRAPHQL_BENCH_CONNECTIONS")); err == nil && n > 0 {
		conns = n
	}
	const per = 10
	h := newHarness(b, connLayerHCL, Options{})
	h.models = map[string][]Model{"crm": {{Name: "Contact"}}}
	if err := h.layer.SetFieldIndexes(FieldIndexes(h.cfg, h.models)); err != nil {
		b.Fatal(err)
	}
	st, err := h.layer.BeginStaging("run_bench")
	if err != nil {
		b.Fatal(err)
	}
	for c := 0; c < conns; c++ {
		cs := make([]store.Change, 0, per)
		for i := 0; i < per; i++ {
			id := fmt.Sprintf("c%03d", i)
			cs = append(cs, store.Change{Model: "Contact", ID: id, Data: []byte(contact(id, "Name "+id, fmt.Sprintf("%d.%d@x", c, i)))})
		}
		if err := st.Writer(store.SourceKey("crm", fmt.Sprintf("conn-%05d", c)), store.WriterOptions{}).Apply(cs); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := st.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{"crm"}}); err != nil {
		b.Fatal(err)
	}
	env := Env{Config: h.cfg, Models: h.models, Store: h.layer}
	post := func(q string, vars map[string]any) []byte {
		body, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
		r := httptest.NewRequest("POST", "/graphql", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		rw := httptest.NewRecorder()
		h.svc.ServeHTTP(rw, r, env, 0, Scope{All: true})
		if rw.Code != 200 || bytes.Contains(rw.Body.Bytes(), []byte(`"errors"`)) {
			b.Fatalf("%d %s", rw.Code, rw.Body.String())
		}
		return rw.Body.Bytes()
	}
	post(`{ allContact(limit: 1) { totalCount } }`, nil) // builds the schema
	i := 0
	b.Run("id", func(b *testing.B) {
		for b.Loop() {
			c, id := fmt.Sprintf("conn-%05d", (i*7919)%conns), fmt.Sprintf("c%03d", i%per)
			out := post(`query($id: ID!, $c: String) { contact(id: $id, connection: $c) { id email } }`, map[string]any{"id": id, "c": c})
			if !bytes.Contains(out, []byte(id)) {
				b.Fatalf("%s/%s: %s", c, id, out)
			}
			i++
		}
	})
	b.Run("filter", func(b *testing.B) {
		for b.Loop() {
			c := (i * 7919) % conns
			email := fmt.Sprintf("%d.%d@x", c, i%per)
			out := post(`query($e: String, $c: String) { allContact(connection: $c, filter: {email: {eq: $e}}, limit: 10) { nodes { id email } } }`,
				map[string]any{"e": email, "c": fmt.Sprintf("conn-%05d", c)})
			if !bytes.Contains(out, []byte(email)) {
				b.Fatalf("%s: %s", email, out)
			}
			i++
		}
	})
	b.Run("first-page", func(b *testing.B) {
		for b.Loop() {
			post(`{ allContact(limit: 100) { nodes { id email _metadata { connection } } pageInfo { endCursor } } }`, nil)
		}
	})
	b.Run("walk", func(b *testing.B) {
		walked := 0
		for b.Loop() {
			var after any
			seen := 0
			for {
				out := post(`query($after: String) { allContact(limit: 1000, after: $after) { nodes { id email _metadata { connection } } pageInfo { hasNextPage endCursor } } }`,
					map[string]any{"after": after})
				var page struct {
					Data struct {
						AllContact struct {
							Nodes    []json.RawMessage
							PageInfo struct {
								HasNextPage bool
								EndCursor   string
							}
						}
					}
				}
				if err := json.Unmarshal(out, &page); err != nil {
					b.Fatal(err)
				}
				seen += len(page.Data.AllContact.Nodes)
				if !page.Data.AllContact.PageInfo.HasNextPage {
					break
				}
				after = page.Data.AllContact.PageInfo.EndCursor
			}
			if seen != conns*per {
				b.Fatalf("walk read %d contacts, want %d", seen, conns*per)
			}
			walked += seen
		}
		b.ReportMetric(float64(walked)/b.Elapsed().Seconds(), "records/s")
	})
}
