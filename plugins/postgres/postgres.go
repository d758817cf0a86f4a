package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// Version is the connector's version.
const Version = "0.1.0"

// DefaultPageSize is how many rows one query reads.
const DefaultPageSize = 1000

// Postgres syncs PostgreSQL tables.
type Postgres struct {
	// PageSize is how many rows one query reads (default
	// DefaultPageSize); tests make it small.
	PageSize int
}

var (
	_ sdk.ConnectorWithConfiguredModels = (*Postgres)(nil)
	_ sdk.ConnectorWithCheck            = (*Postgres)(nil)
)

// Describe implements sdk.Connector. The models come from the
// configuration (see Configure).
func (p *Postgres) Describe() sdk.Description {
	return sdk.Description{Name: "postgres", Version: Version, Config: (*Config)(nil)}
}

func decodeConfig(decode func(any) error) (*Config, error) {
	cfg := &Config{}
	if err := decode(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Configure implements sdk.ConnectorWithConfiguredModels: one model per
// entry of tables, each its own sync, incremental when it has an
// updated_at column; it watches (see Watch) when listen is set. It does
// not connect: describing must work while the database is down.
func (p *Postgres) Configure(ctx context.Context, req *sdk.ConfigRequest) (*sdk.Description, error) {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return nil, err
	}
	d := &sdk.Description{Watches: cfg.Listen != ""}
	for _, name := range cfg.modelNames() {
		t := cfg.Tables[name]
		desc := "Rows of " + t.Table
		if cfg.Listen != "" {
			desc += fmt.Sprintf("; NOTIFY %s, '%s' asks for an incremental run", cfg.Listen, name)
		}
		fields := []sdk.ModelField{{Name: t.ID, Type: "id"}}
		if t.UpdatedAt != "" {
			fields = append(fields, sdk.ModelField{Name: t.UpdatedAt, Type: "timestamp"})
		}
		d.Models = append(d.Models, sdk.Model{Name: name, Description: desc, Fields: fields})
		d.Syncs = append(d.Syncs, sdk.SyncSpec{Name: name, Models: []string{name}, Incremental: t.UpdatedAt != ""})
	}
	return d, nil
}

// connect opens one connection with settings that make the text forms
// this connector reads stable: UTC, ISO dates.
func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors may quote the DSN, password included.
		return nil, fmt.Errorf("dsn is not a valid PostgreSQL connection string (postgres://user:password@host:5432/db or key=value pairs)")
	}
	cc.RuntimeParams["TimeZone"] = "UTC"
	cc.RuntimeParams["DateStyle"] = "ISO, YMD"
	cc.RuntimeParams["IntervalStyle"] = "postgres"
	cc.RuntimeParams["extra_float_digits"] = "1"
	cc.RuntimeParams["application_name"] = "synclayer-plugin-postgres"
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	return conn, nil
}

// Check implements sdk.ConnectorWithCheck: the database answers, every
// table and its id and updated_at columns exist, and LISTEN works.
func (p *Postgres) Check(ctx context.Context, req *sdk.CheckRequest) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	conn, err := connect(ctx, cfg.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, name := range cfg.modelNames() {
		if _, err := describeTable(ctx, conn, cfg.Tables[name].Table, cfg.Tables[name]); err != nil {
			return fmt.Errorf("tables.%s: %w", name, err)
		}
	}
	if cfg.Listen != "" {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{cfg.Listen}.Sanitize()); err != nil {
			return fmt.Errorf("listen %q: %w", cfg.Listen, err)
		}
	}
	return nil
}

// Phases of a full run, as its checkpoints record them.
const (
	phaseNulls = "nulls" // rows whose updated_at is NULL, by id
	phaseRows  = "rows"  // the others, by (updated_at, id)
)

// state is a sync's checkpoint. UpdatedAt and ID are the keyset position
// (PostgreSQL text forms) of the last row read. Phase is set while a full
// run is in progress, so that its retry resumes there; a completed run,
// and any incremental run, leave it empty: the next incremental run reads
// the rows after (updated_at, id).
type state struct {
	Phase     string `json:"phase,omitempty"`
	UpdatedAt string `json:"updated_at,omitempty"`
	ID        string `json:"id,omitempty"`
}

// Sync implements sdk.Connector.
//
// With an updated_at column, rows are read in pages ordered by
// (updated_at, id), each page the rows after the last one's pair, so rows
// sharing an updated_at are never skipped, whatever the page size. An
// incremental run starts after the checkpoint's pair; rows changed since
// have a greater updated_at and come after it. A full run reads every row:
// first those whose updated_at is NULL (by id), then the others; the host's
// track_deletes deletes the rows it no longer sees. Without updated_at,
// every run is a full read by id.
func (p *Postgres) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	tc := cfg.Tables[req.Sync]
	if tc == nil {
		return fmt.Errorf("sync %q: no model of that name in the config's tables", req.Sync)
	}
	var prev state
	if req.Checkpoint != nil {
		if err := req.Checkpoint.Decode(&prev); err != nil {
			return fmt.Errorf("the checkpoint is not one of this connector's; reset the sync: %w", err)
		}
	}
	conn, err := connect(ctx, cfg.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	t, err := describeTable(ctx, conn, tc.Table, tc)
	if err != nil {
		return fmt.Errorf("tables.%s: %w", req.Sync, err)
	}
	r := &reader{conn: conn, w: w, t: t, model: req.Sync, pageSize: p.PageSize}
	if r.pageSize <= 0 {
		r.pageSize = DefaultPageSize
	}

	if t.updatedAt == nil {
		// No updated_at: a full read by id; a checkpoint with a phase is
		// an interrupted run to resume.
		after := ""
		if prev.Phase != "" {
			after = prev.ID
		}
		r.full = true
		if _, err := r.walk(ctx, phaseRows, "", after); err != nil {
			return err
		}
		return w.Checkpoint(ctx, sdk.Checkpoint{})
	}

	incremental := !req.Full && prev.UpdatedAt != "" && prev.Phase != phaseNulls
	var last state
	switch {
	case incremental:
		r.full = false
		last = state{UpdatedAt: prev.UpdatedAt, ID: prev.ID}
		req.Logger.Debug("incremental run", "after_updated_at", prev.UpdatedAt, "after_id", prev.ID)
	case prev.Phase == phaseRows:
		r.full = true
		last = state{UpdatedAt: prev.UpdatedAt, ID: prev.ID}
		req.Logger.Info("resuming an interrupted full run", "after_updated_at", prev.UpdatedAt, "after_id", prev.ID)
	default:
		r.full = true
		after := ""
		if prev.Phase == phaseNulls {
			after = prev.ID
			req.Logger.Info("resuming an interrupted full run", "phase", "null updated_at", "after_id", after)
		}
		if _, err := r.walk(ctx, phaseNulls, "", after); err != nil {
			return err
		}
	}
	end, err := r.walk(ctx, phaseRows, last.UpdatedAt, last.ID)
	if err != nil {
		return err
	}
	if end.UpdatedAt == "" {
		end = last // nothing new: keep the position
	}
	req.Logger.Info("synced", "model", req.Sync, "rows", r.rows, "full", r.full)
	return w.Checkpoint(ctx, sdk.Checkpoint{"updated_at": end.UpdatedAt, "id": end.ID})
}

// reader reads one table in keyset pages.
type reader struct {
	conn     *pgx.Conn
	w        *sdk.Writer
	t        *table
	model    string
	pageSize int
	full     bool
	rows     int64
	buf      []byte
}

// walk reads the rows of a phase after the position (afterU, afterID; ""
// for the start) and returns the position of the last row read. It writes
// a checkpoint after each full page.
func (r *reader) walk(ctx context.Context, phase, afterU, afterID string) (state, error) {
	t := r.t
	// Output columns get names of their own (c0, c1, …) and input columns
	// are qualified (src."id"): ORDER BY a bare name would otherwise pick
	// an output column of that name (the text cast of the key), and sort
	// ids as text.
	id := "src." + pgx.Identifier{t.id.name}.Sanitize()
	cols := make([]string, 0, len(t.columns)+2)
	for _, c := range t.columns {
		cols = append(cols, c.expr)
	}
	cols = append(cols, id+"::text")
	var upd string
	if t.updatedAt != nil {
		upd = "src." + pgx.Identifier{t.updatedAt.name}.Sanitize()
		cols = append(cols, upd+"::text")
	}
	for i := range cols {
		cols[i] += fmt.Sprintf(" AS c%d", i)
	}
	base := "SELECT " + strings.Join(cols, ", ") + " FROM " + t.ref + " AS src"
	var pos state
	for {
		var q string
		var args []any
		switch {
		case t.updatedAt == nil || phase == phaseNulls:
			var conds []string
			if t.updatedAt != nil {
				conds = append(conds, upd+" IS NULL")
			}
			if afterID != "" {
				conds = append(conds, fmt.Sprintf("%s > $1::%s", id, t.id.typ))
				args = append(args, afterID)
			}
			q = base + where(conds) + " ORDER BY " + id
		case afterU == "":
			q = base + " WHERE " + upd + " IS NOT NULL ORDER BY " + upd + ", " + id
		default:
			q = base + fmt.Sprintf(" WHERE (%s, %s) > ($1::%s, $2::%s) ORDER BY %s, %s", upd, id, t.updatedAt.typ, t.id.typ, upd, id)
			args = append(args, afterU, afterID)
		}
		q += fmt.Sprintf(" LIMIT %d", r.pageSize)
		n, last, err := r.page(ctx, q, args)
		if err != nil {
			return pos, err
		}
		if n > 0 {
			pos = last
			afterU, afterID = last.UpdatedAt, last.ID
		}
		if n < r.pageSize {
			return pos, nil
		}
		cp := sdk.Checkpoint{"updated_at": afterU, "id": afterID}
		if r.full {
			cp["phase"] = phase
		}
		if phase == phaseNulls {
			cp = sdk.Checkpoint{"phase": phaseNulls, "id": afterID}
		}
		if err := r.w.Checkpoint(ctx, cp); err != nil {
			return pos, err
		}
		if err := r.w.Progress(ctx, r.model, r.rows, 0); err != nil {
			return pos, err
		}
	}
}

func where(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// page runs one page's query and saves its rows.
func (r *reader) page(ctx context.Context, q string, args []any) (int, state, error) {
	rows, err := r.conn.Query(ctx, q, args...)
	if err != nil {
		return 0, state{}, fmt.Errorf("reading %s: %w", r.t.ref, err)
	}
	defer rows.Close()
	t := r.t
	ncol := len(t.columns)
	n := 0
	var last state
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return n, last, fmt.Errorf("reading %s: %w", t.ref, err)
		}
		idText, _ := vals[ncol].(string)
		if idText == "" {
			return n, last, fmt.Errorf("%s: a row has a NULL or empty id in column %q; the id column must be unique and not null", t.ref, t.id.name)
		}
		last = state{ID: idText}
		if t.updatedAt != nil {
			last.UpdatedAt, _ = vals[ncol+1].(string)
		}
		b := append(r.buf[:0], '{')
		if t.id.name != "id" {
			b = append(b, `"id":`...)
			b = appendString(b, idText)
		}
		for i := range t.columns {
			c := &t.columns[i]
			if t.id.name != "id" && c.name == "id" {
				continue // the record's "id" is the id column's
			}
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = appendString(b, c.name)
			b = append(b, ':')
			if b, err = appendValue(b, c, vals[i]); err != nil {
				return n, last, fmt.Errorf("%s id %s: %w", t.ref, idText, err)
			}
		}
		b = append(b, '}')
		r.buf = b
		if err := r.w.SaveRaw(ctx, r.model, idText, b); err != nil {
			return n, last, err
		}
		n++
		r.rows++
	}
	if err := rows.Err(); err != nil {
		return n, last, fmt.Errorf("reading %s: %w", t.ref, err)
	}
	return n, last, nil
}
