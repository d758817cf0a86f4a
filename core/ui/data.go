package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/graphql"
	"github.com/synclayer/synclayer/core/store"
)

// Page sizes the records browser offers.
var recordLimits = []int{10, 25, 50, 100}

// recordRow is one record of the browser.
type recordRow struct {
	ID, Source, Model, Action string
	Connection                string
	Modified                  string
	JSON                      string
}

type recordsData struct {
	Models, Sources []string
	Model, Source   string
	// Connection keeps the records of one connection (SPEC §12).
	Connection    string
	Actions       map[string]bool
	ModifiedAfter string
	Limit         int
	Limits        []int
	Records       []recordRow
	Revision      int64
	// Next is the link to the next page ("" at the end); First the link
	// back to the first page (on later pages).
	Next, First string
}

// records is the records browser: the same query as GET
// /v1/layers/{layer}/records, a page at a time, each record with its JSON.
func (u *UI) records(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	e := u.eng()
	st, err := e.Layer(layer)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	db, err := e.Store(layer)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	v := r.URL.Query()
	d := recordsData{Model: v.Get("model"), Source: v.Get("source"), Actions: map[string]bool{}, Limit: 25, Limits: recordLimits,
		ModifiedAfter: strings.TrimSpace(v.Get("modified_after")), Connection: strings.TrimSpace(v.Get("connection"))}
	if len(d.Connection) > 128 {
		u.fail(w, r, http.StatusBadRequest, "A connection id is at most 128 characters.")
		return
	}
	for _, s := range st.Sources {
		d.Sources = append(d.Sources, s.Name)
		for _, y := range s.Syncs {
			for _, m := range y.Models {
				if !slices.Contains(d.Models, m) {
					d.Models = append(d.Models, m)
				}
			}
		}
	}
	sort.Strings(d.Models)
	q := store.Query{Model: d.Model, Source: d.Source, Connection: d.Connection}
	if n, err := strconv.Atoi(v.Get("limit")); err == nil && slices.Contains(recordLimits, n) {
		d.Limit = n
	}
	q.Limit = d.Limit
	for _, a := range v["action"] {
		switch a {
		case "added":
			q.Actions |= store.MaskAdded
		case "updated":
			q.Actions |= store.MaskUpdated
		case "deleted":
			q.Actions |= store.MaskDeleted
		default:
			u.fail(w, r, http.StatusBadRequest, "action is one of added, updated, deleted.")
			return
		}
		d.Actions[a] = true
	}
	if d.ModifiedAfter != "" {
		t, err := time.Parse(time.RFC3339Nano, d.ModifiedAfter)
		if err != nil {
			u.fail(w, r, http.StatusBadRequest, "Modified after must be an RFC 3339 time, like 2026-11-23T07:05:00Z.")
			return
		}
		q.ModifiedAfter = t
	}
	if c := v.Get("cursor"); c != "" {
		cur, rev, err := store.ParsePosition(c)
		if err != nil {
			u.fail(w, r, http.StatusBadRequest, "That page link is not one this server gave out; start from the first page.")
			return
		}
		q.After, q.Revision = &cur, rev
		first := url.Values{}
		for k, vs := range v {
			if k != "cursor" {
				first[k] = vs
			}
		}
		d.First = "?" + first.Encode()
	}
	page, err := db.Records(q, func(rec []byte) error {
		var meta struct {
			ID       any `json:"id"`
			Metadata struct {
				Source, Model  string
				Connection     string
				LastModifiedAt string `json:"last_modified_at"`
				LastAction     string `json:"last_action"`
			} `json:"_metadata"`
		}
		if err := json.Unmarshal(rec, &meta); err != nil {
			return err
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, rec, "", "  "); err != nil {
			return err
		}
		id, _ := json.Marshal(meta.ID)
		d.Records = append(d.Records, recordRow{ID: strings.Trim(string(id), `"`), Source: meta.Metadata.Source, Model: meta.Metadata.Model, Connection: meta.Metadata.Connection,
			Action: meta.Metadata.LastAction, Modified: meta.Metadata.LastModifiedAt, JSON: pretty.String()})
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrNoRevision) {
			err = nil // nothing published yet: an empty page
		} else {
			u.engineError(w, r, err)
			return
		}
	}
	d.Revision = page.Revision.Number
	if page.Next != "" {
		next := url.Values{}
		for k, vs := range v {
			next[k] = vs
		}
		next.Set("cursor", page.Next)
		d.Next = "?" + next.Encode()
	}
	view := u.baseView(r, "Records · "+layer, "records")
	view.Data = d
	u.render(w, r, http.StatusOK, "records", view)
}

// hookURL is a trigger hook's URL as callers reach this host.
func hookURL(r *http.Request, layer, id string) string {
	scheme := "http"
	if secure(r) {
		scheme = "https"
	}
	p := "/hooks/layers/" + url.PathEscape(layer)
	if id != "" {
		p += "/" + id
	}
	return scheme + "://" + r.Host + p
}

type hookRow struct {
	Name    string
	Created time.Time
	Handle  string
}

type hooksData struct {
	Hooks []hookRow
	// NewName and NewURL are the hook just added: its URL, shown once.
	NewName, NewURL string
	// DefaultURL is the layer's default hook, which answers while no hook
	// is added.
	DefaultURL string
}

func (u *UI) hooksData(r *http.Request, layer string) (*hooksData, error) {
	hooks, err := u.eng().Webhooks(layer)
	if err != nil {
		return nil, err
	}
	d := &hooksData{DefaultURL: hookURL(r, layer, "")}
	for _, h := range hooks {
		d.Hooks = append(d.Hooks, hookRow{Name: h.Name, Created: h.Created, Handle: u.hookHandle(h.ID)})
	}
	return d, nil
}

// hooks lists the layer's trigger hooks by name; their URLs (the id in
// them is the secret) show only once, when added.
func (u *UI) hooks(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	d, err := u.hooksData(r, layer)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	v := u.baseView(r, "Hooks · "+layer, "hooks")
	v.Data = d
	u.render(w, r, http.StatusOK, "hooks", v)
}

// addHook adds a trigger hook (audited by the engine) and shows its URL
// on the page it answers with, and never again.
func (u *UI) addHook(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if len(name) > 200 {
		u.fail(w, r, http.StatusBadRequest, "A hook's name is at most 200 characters.")
		return
	}
	h, err := u.eng().AddWebhook(layer, name)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	d, err := u.hooksData(r, layer)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	d.NewName, d.NewURL = h.Name, hookURL(r, layer, h.ID)
	v := u.baseView(r, "Hooks · "+layer, "hooks")
	v.Data = d
	u.render(w, r, http.StatusCreated, "hooks", v)
}

func (u *UI) deleteHook(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	hooks, err := u.eng().Webhooks(layer)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	handle := r.PostForm.Get("hook")
	for _, h := range hooks {
		if handle != "" && u.hookHandle(h.ID) == handle {
			if err := u.eng().DeleteWebhook(layer, h.ID); err != nil && !errors.Is(err, engine.ErrUnknownHook) {
				u.engineError(w, r, err)
				return
			}
			redirect(w, r, "/ui/layers/"+url.PathEscape(layer)+"/hooks?ok=deleted")
			return
		}
	}
	u.fail(w, r, http.StatusNotFound, "That hook does not exist any more (deleted, or the host restarted since the page was loaded). Reload the page.")
}

// deliveriesPage is how many deliveries a page lists.
const deliveriesPage = 50

var deliveryStates = []string{store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed, store.DeliveryStopped}

type deliveryRow struct {
	ID, Event, Endpoint, Type, State string
	Created                          time.Time
	NextAt                           *time.Time
	Attempts                         []store.Attempt
	Payload                          string
}

func (u *UI) deliveries(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	db, err := u.eng().Store(layer)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	state := r.URL.Query().Get("state")
	if state != "" && !slices.Contains(deliveryStates, state) {
		u.fail(w, r, http.StatusBadRequest, "state is one of "+strings.Join(deliveryStates, ", ")+".")
		return
	}
	after := r.URL.Query().Get("after")
	var rows []deliveryRow
	var next string
	for cursor := after; ; {
		page, err := db.Deliveries(cursor, deliveriesPage, state == store.DeliveryPending)
		if err != nil {
			u.engineError(w, r, err)
			return
		}
		for _, d := range page {
			cursor = d.ID()
			if state != "" && d.State != state {
				continue
			}
			row := deliveryRow{ID: d.ID(), Event: d.EventID, Endpoint: d.Endpoint, Type: d.Type, State: d.State, Created: d.Created, Attempts: d.Attempts}
			if d.State == store.DeliveryPending && !d.NextAt.IsZero() {
				t := d.NextAt
				row.NextAt = &t
			}
			var pretty bytes.Buffer
			if json.Indent(&pretty, d.Body, "", "  ") == nil {
				row.Payload = pretty.String()
			}
			rows = append(rows, row)
			if len(rows) == deliveriesPage {
				break
			}
		}
		if len(rows) == deliveriesPage {
			next = cursor
			break
		}
		if len(page) < deliveriesPage {
			break
		}
	}
	v := u.baseView(r, "Deliveries · "+layer, "deliveries")
	nextURL := ""
	if next != "" {
		q := url.Values{"after": {next}}
		if state != "" {
			q.Set("state", state)
		}
		nextURL = "?" + q.Encode()
	}
	v.Data = struct {
		Deliveries []deliveryRow
		State      string
		States     []string
		Next       string
		Paged      bool
	}{rows, state, deliveryStates, nextURL, after != ""}
	u.render(w, r, http.StatusOK, "deliveries", v)
}

// redeliver makes a delivery due again, as POST …/deliveries/{id}/retry
// does (the engine audits it).
func (u *UI) redeliver(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	if _, err := u.eng().Redeliver(layer, r.PostForm.Get("delivery")); err != nil {
		u.engineError(w, r, err)
		return
	}
	redirect(w, r, "/ui/layers/"+url.PathEscape(layer)+"/deliveries?ok=redelivered")
}

// defaultQuery opens the GraphQL explorer: the query fields of the schema.
const defaultQuery = `# The layer's types and queries. Try, for a model Post:
# { allPost(limit: 5) { totalCount nodes { id } } }
{
  __type(name: "Query") {
    fields { name }
  }
}`

// graphqlPage is the GraphQL explorer: a form that runs a query on the
// layer's GraphQL (the revision readers see) and shows the answer.
func (u *UI) graphqlPage(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	d := struct {
		Query, Variables, Result string
		Status                   int
		Endpoint                 string
	}{Query: defaultQuery, Endpoint: "/v1/layers/" + url.PathEscape(layer) + "/graphql"}
	if _, err := u.eng().Layer(layer); err != nil {
		u.engineError(w, r, err)
		return
	}
	if r.Method == http.MethodPost {
		d.Query, d.Variables = r.PostForm.Get("query"), strings.TrimSpace(r.PostForm.Get("variables"))
		status, body, err := u.runGraphQL(r.Context(), layer, d.Query, d.Variables)
		if err != nil {
			u.engineError(w, r, err)
			return
		}
		d.Status = status
		var pretty bytes.Buffer
		if json.Indent(&pretty, body, "", "  ") == nil {
			d.Result = pretty.String()
		} else {
			d.Result = string(body)
		}
	}
	v := u.baseView(r, "GraphQL · "+layer, "graphql")
	v.Data = d
	u.render(w, r, http.StatusOK, "graphql", v)
}

// runGraphQL runs a query through the layer's GraphQL service, as POST
// /v1/layers/{layer}/graphql with the admin token does.
func (u *UI) runGraphQL(ctx context.Context, layer, query, variables string) (int, []byte, error) {
	e := u.eng()
	db, err := e.Store(layer)
	if err != nil {
		return 0, nil, err
	}
	cfg, err := e.LayerConfig(layer)
	if err != nil {
		return 0, nil, err
	}
	models, err := e.Models(layer)
	if err != nil {
		return 0, nil, err
	}
	body := map[string]any{"query": query}
	if variables != "" {
		body["variables"] = json.RawMessage(variables)
		if !json.Valid([]byte(variables)) {
			return http.StatusBadRequest, []byte(`{"errors":[{"message":"the variables are not JSON: write them as a JSON object, like {\"id\": \"p1\"}"}]}`), nil
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/v1/layers/"+url.PathEscape(layer)+"/graphql", bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	rec := &bufferWriter{header: http.Header{}, status: http.StatusOK}
	u.graphqlService(layer).ServeHTTP(rec, req, graphql.Env{Config: cfg, Models: models, Store: db}, 0, graphql.Scope{All: true})
	return rec.status, rec.body.Bytes(), nil
}

// bufferWriter keeps an answer in memory.
type bufferWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (b *bufferWriter) Header() http.Header { return b.header }
func (b *bufferWriter) WriteHeader(code int) {
	if !b.wrote {
		b.status, b.wrote = code, true
	}
}
func (b *bufferWriter) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}
