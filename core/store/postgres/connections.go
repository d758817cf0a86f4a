package postgres

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

// Connections of sources (synclayer_connections), in source and id order
// (bytes). DeleteConnection is the records half's (connections_delete.go):
// it deletes the row through systemState.deleteConnection.

// PutConnection stores a connection, with outbound events in the same
// commit. With create, it fails with store.ErrExists when the connection
// exists (on any host: the database's primary key decides).
func (l *Layer) PutConnection(c *store.Connection, create bool, announce ...store.Delivery) error {
	if l.sys.closed.Load() {
		return store.ErrClosed
	}
	doc, err := json.Marshal(c)
	if err != nil {
		return err
	}
	ctx, cancel := l.ctx()
	defer cancel()
	exists := false
	err = l.tx(ctx, func(tx pgx.Tx) error {
		q := `INSERT INTO synclayer_connections (layer_id, source, id, doc) VALUES ($1, $2, $3, $4)
			ON CONFLICT (layer_id, source, id) DO UPDATE SET doc = EXCLUDED.doc`
		if create {
			q = `INSERT INTO synclayer_connections (layer_id, source, id, doc) VALUES ($1, $2, $3, $4)
				ON CONFLICT (layer_id, source, id) DO NOTHING`
		}
		tag, err := tx.Exec(ctx, q, l.id, c.Source, c.ID, doc)
		if err != nil {
			return err
		}
		if create && tag.RowsAffected() == 0 {
			exists = true
			return store.ErrExists
		}
		if len(announce) == 0 {
			return nil
		}
		return putDeliveries(ctx, tx, l, announce)
	})
	if exists {
		return fmt.Errorf("connection %q of source %q: %w", c.ID, c.Source, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: save connection %q of source %q in layer %q: %w", c.ID, c.Source, l.name, err)
	}
	if len(announce) > 0 {
		l.sys.outbox.fire()
	}
	return nil
}

// GetConnection returns one connection, or store.ErrNotFound.
func (l *Layer) GetConnection(source, id string) (*store.Connection, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	ctx, cancel := l.ctx()
	defer cancel()
	var doc []byte
	err := l.s.pool.QueryRow(ctx, `SELECT doc FROM synclayer_connections WHERE layer_id = $1 AND source = $2 AND id = $3`,
		l.id, source, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: read connection %q of source %q in layer %q: %w", id, source, l.name, err)
	}
	var c store.Connection
	if err := json.Unmarshal(doc, &c); err != nil {
		return nil, fmt.Errorf("store: connection %s/%s: %w", source, id, err)
	}
	return &c, nil
}

// connectionsPage is how many connections one read of Connections takes:
// fn is called between reads, never while a query holds a connection.
const connectionsPage = 256

// Connections calls fn with the connections of a source (every source when
// source is "", after then being ignored), in source and id order,
// starting after the id after (of source); fn returns false to stop.
func (l *Layer) Connections(source, after string, fn func(c *store.Connection) bool) error {
	if l.sys.closed.Load() {
		return store.ErrClosed
	}
	// The position: the last (source, id) read.
	posSource, posID, started := source, after, after != ""
	for {
		q := `SELECT source, id, doc FROM synclayer_connections WHERE layer_id = $1`
		args := []any{l.id, connectionsPage}
		if source != "" {
			q += ` AND source = $3`
			args = append(args, source)
		}
		if started {
			q += fmt.Sprintf(` AND (source, id) > ($%d, $%d)`, len(args)+1, len(args)+2)
			args = append(args, posSource, posID)
		}
		q += ` ORDER BY source, id LIMIT $2`
		page, err := l.connectionsPage(q, args...)
		if err != nil {
			return err
		}
		for _, c := range page {
			if !fn(c) {
				return nil
			}
		}
		if len(page) < connectionsPage {
			return nil
		}
		last := page[len(page)-1]
		posSource, posID, started = last.Source, last.ID, true
	}
}

func (l *Layer) connectionsPage(q string, args ...any) ([]*store.Connection, error) {
	ctx, cancel := l.ctx()
	defer cancel()
	rows, err := l.s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list the connections of layer %q: %w", l.name, err)
	}
	defer rows.Close()
	var out []*store.Connection
	for rows.Next() {
		var source, id string
		var doc []byte
		if err := rows.Scan(&source, &id, &doc); err != nil {
			return nil, err
		}
		var c store.Connection
		if err := json.Unmarshal(doc, &c); err != nil {
			return nil, fmt.Errorf("store: connection %s/%s: %w", source, id, err)
		}
		// The key columns are the position: the document's fields are
		// the caller's and could disagree.
		c.Source, c.ID = source, id
		out = append(out, &c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list the connections of layer %q: %w", l.name, err)
	}
	return out, nil
}
