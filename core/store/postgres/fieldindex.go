package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

// Field indexes: which records of a (source, model) hold a value in a
// top-level field, for GraphQL's eq/in filters and references.
//
// Each declared field is a partial GIN index of synclayer_records over
// the field's value in the record's payload as jsonb
// (synclayer_payload_json, 0005_reads.sql), restricted to the layer, the
// model and the source (its own records and every connection's):
//
//	CREATE INDEX synclayer_fidx_<hash> ON synclayer_records
//	    USING gin ((synclayer_payload_json(payload) -> 'field') jsonb_path_ops)
//	    WHERE layer_id = 7 AND model = 'm' AND split_part(source_key, E'\x1f', 1) = 's'
//
// An expression index rather than a table the publish maintains: the
// database keeps it in the transaction that inserts each version, whoever
// publishes (any host, any publish path), it costs nothing for the models
// no index names, and since it indexes every version, one index serves
// every revision (a lookup selects the versions its revision sees).
// A lookup tests `value @> ANY(values)`: a scalar field equal to a value,
// or an array field holding it as an element, as the embedded driver
// matches. Its statement spells the index's predicate and expression with
// the same literals, so the planner uses the index.
//
// An index is built with CREATE INDEX CONCURRENTLY: other layers', and this
// layer's, publishes go on meanwhile; a build that failed halfway (its
// index left invalid) is dropped and built again by the next
// SetFieldIndexes.

// fieldIndexLock is the advisory lock key of SetFieldIndexes: one for the
// database, not one per layer, since two CREATE INDEX CONCURRENTLY on one
// table wait for each other's snapshots (a deadlock). Hosts starting at
// once build a layer's indexes once, one after the other.
const fieldIndexLock = 0x66696478 // "fidx"

// fieldIndexBuildTimeout bounds the build of one layer's new indexes.
const fieldIndexBuildTimeout = time.Hour

// fieldIndexName is the name of the index of one declared field of the
// layer.
func fieldIndexName(layer int64, d store.FieldIndex) string {
	h := sha256.Sum256([]byte(strconv.FormatInt(layer, 10) + "\x00" + d.Source + "\x00" + d.Model + "\x00" + d.Field))
	return "synclayer_fidx_" + hex.EncodeToString(h[:12])
}

// quoteLiteral quotes s as an SQL string literal (an escape string, read
// the same whatever standard_conforming_strings says). s holds no NUL.
func quoteLiteral(s string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// fieldIndexPredicate is the predicate of the indexes of (source, model)
// of the layer, and of the statements that use them.
func fieldIndexPredicate(layer int64, source, model string) string {
	return "layer_id = " + strconv.FormatInt(layer, 10) + " AND model = " + quoteLiteral(model) +
		" AND " + sourceOfSQL("source_key") + " = " + quoteLiteral(source)
}

// fieldIndexExpr is the indexed expression of a field.
func fieldIndexExpr(field string) string {
	return "(synclayer_payload_json(payload) -> " + quoteLiteral(field) + ")"
}

// SetFieldIndexes sets the field indexes the layer maintains. Indexes not
// in effect before are built at once (over every version of their model:
// one walk); dropped ones are deleted. Until an index is built, and in
// revisions older than its building, Indexed is false and readers scan.
func (l *Layer) SetFieldIndexes(defs []store.FieldIndex) error {
	if err := l.closedErr(); err != nil {
		return err
	}
	for _, d := range defs {
		if d.Source == "" || d.Model == "" || d.Field == "" || strings.ContainsRune(d.Source+d.Model+d.Field, 0) {
			return fmt.Errorf("store: invalid field index %+v", d)
		}
	}
	defs = append([]store.FieldIndex(nil), defs...)
	sort.Slice(defs, func(i, j int) bool {
		a, b := defs[i], defs[j]
		return a.Source+"\x00"+a.Model+"\x00"+a.Field < b.Source+"\x00"+b.Model+"\x00"+b.Field
	})
	uniq := defs[:0]
	for i, d := range defs {
		if i == 0 || d != defs[i-1] {
			uniq = append(uniq, d)
		}
	}
	defs = uniq
	ctx, cancel := context.WithTimeout(context.Background(), fieldIndexBuildTimeout)
	defer cancel()
	conn, err := l.s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("store: field indexes: %w", err)
	}
	defer conn.Release()
	c := conn.Conn()
	// A session lock, held across the builds (which cannot run in a
	// transaction). Taken by trying, not by waiting: a statement waiting
	// for it holds a snapshot, which CREATE INDEX CONCURRENTLY in the
	// holder's session waits for (a deadlock).
	for {
		var got bool
		if err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(fieldIndexLock)).Scan(&got); err != nil {
			return fmt.Errorf("store: field indexes: %w", err)
		}
		if got {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: field indexes: another host is still building field indexes: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	defer c.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(fieldIndexLock))

	rows, err := c.Query(ctx, `SELECT f.source, f.model, f.field, f.index_name, coalesce(i.indisvalid, false)
		FROM synclayer_field_indexes f
		LEFT JOIN pg_index i ON i.indexrelid = to_regclass(f.index_name)
		WHERE f.layer_id = $1`, l.id)
	if err != nil {
		return fmt.Errorf("store: field indexes: %w", err)
	}
	had := map[store.FieldIndex]bool{} // declared, and their index valid
	var before []store.FieldIndex
	for rows.Next() {
		var d store.FieldIndex
		var name string
		var valid bool
		if err := rows.Scan(&d.Source, &d.Model, &d.Field, &name, &valid); err != nil {
			rows.Close()
			return fmt.Errorf("store: field indexes: %w", err)
		}
		before = append(before, d)
		had[d] = valid
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: field indexes: %w", err)
	}
	want := map[store.FieldIndex]bool{}
	for _, d := range defs {
		want[d] = true
	}
	for _, d := range before {
		if want[d] {
			continue
		}
		if err := l.dropFieldIndex(ctx, c, d); err != nil {
			return fmt.Errorf("store: drop field index %s/%s.%s: %w", d.Source, d.Model, d.Field, err)
		}
	}
	built := false
	for _, d := range defs {
		if had[d] {
			continue
		}
		start := time.Now()
		if err := l.buildFieldIndex(ctx, c, d); err != nil {
			return fmt.Errorf("store: build field index %s/%s.%s: %w", d.Source, d.Model, d.Field, err)
		}
		l.log.Info("built a field index", "source", d.Source, "model", d.Model, "field", d.Field, "took", time.Since(start).Round(time.Millisecond))
		built = true
	}
	if built {
		// The planner picks a new index by the statistics of its
		// expression, which only ANALYZE gathers (autovacuum would, in
		// time): until then lookups would walk the model instead.
		if _, err := c.Exec(ctx, `ANALYZE synclayer_records`); err != nil {
			return fmt.Errorf("store: field indexes: analyze: %w", err)
		}
	}
	return nil
}

// dropFieldIndex forgets a declared field, then drops its index.
func (l *Layer) dropFieldIndex(ctx context.Context, c *pgx.Conn, d store.FieldIndex) error {
	if _, err := c.Exec(ctx, `DELETE FROM synclayer_field_indexes WHERE layer_id = $1 AND source = $2 AND model = $3 AND field = $4`,
		l.id, d.Source, d.Model, d.Field); err != nil {
		return err
	}
	_, err := c.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS `+pgx.Identifier{fieldIndexName(l.id, d)}.Sanitize())
	return err
}

// buildFieldIndex builds the index of a declared field (anew if a build
// left it invalid), then declares it, complete from the newest revision on.
func (l *Layer) buildFieldIndex(ctx context.Context, c *pgx.Conn, d store.FieldIndex) error {
	name := fieldIndexName(l.id, d)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := c.Exec(ctx, `DELETE FROM synclayer_field_indexes WHERE layer_id = $1 AND source = $2 AND model = $3 AND field = $4`,
		l.id, d.Source, d.Model, d.Field); err != nil {
		return err
	}
	if _, err := c.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS `+ident); err != nil {
		return err
	}
	_, err := c.Exec(ctx, `CREATE INDEX CONCURRENTLY `+ident+` ON synclayer_records USING gin (`+
		fieldIndexExpr(d.Field)+` jsonb_path_ops) WHERE `+fieldIndexPredicate(l.id, d.Source, d.Model))
	if err != nil {
		// Leave no invalid index behind when it can be helped.
		c.Exec(context.Background(), `DROP INDEX CONCURRENTLY IF EXISTS `+ident)
		return err
	}
	_, err = c.Exec(ctx, `INSERT INTO synclayer_field_indexes (layer_id, source, model, field, index_name, since_rev)
		VALUES ($1, $2, $3, $4, $5, (SELECT coalesce(max(rev), 0) FROM synclayer_revisions WHERE layer_id = $1))`,
		l.id, d.Source, d.Model, d.Field, name)
	return err
}

// Indexed tells whether (source, model, field) has a complete field index
// at the snapshot's revision. source may be a source key: a connection's
// records are indexed with their source's.
func (s *Snapshot) Indexed(source, model, field string) bool {
	ok, err := s.indexedErr(source, model, field)
	return err == nil && ok
}

func (s *Snapshot) indexedErr(source, model, field string) (bool, error) {
	src, _ := store.SplitSourceKey(source)
	k := store.FieldIndex{Source: src, Model: model, Field: field}
	s.mu.Lock()
	ok, cached := s.indexed[k]
	s.mu.Unlock()
	if cached {
		return ok, nil
	}
	ctx, cancel, err := s.enter()
	if err != nil {
		return false, err
	}
	defer cancel()
	err = s.l.s.pool.QueryRow(ctx, `SELECT since_rev <= $5 FROM synclayer_field_indexes
		WHERE layer_id = $1 AND source = $2 AND model = $3 AND field = $4`,
		s.l.id, src, model, field, s.rev.Number).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		ok, err = false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: field indexes: %w", err)
	}
	s.mu.Lock()
	if s.indexed == nil {
		s.indexed = map[store.FieldIndex]bool{}
	}
	s.indexed[k] = ok
	s.mu.Unlock()
	return ok, nil
}

// lookupValues turns lookup values into jsonb texts: strings, float64,
// json.Number, ints and bools; others (and NaN, infinities, numbers
// float64 cannot hold) match nothing.
func lookupValues(values []any) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		var f float64
		switch x := v.(type) {
		case string:
			b, _ := json.Marshal(x)
			// As synclayer_payload_json reads a payload: jsonb holds no
			// NUL, so \u0000 stands as U+FFFD on both sides (and the
			// candidates are checked: ambiguous).
			out = append(out, strings.ReplaceAll(string(b), `\u0000`, "\ufffd"))
			continue
		case bool:
			out = append(out, strconv.FormatBool(x))
			continue
		case json.Number:
			var err error
			if f, err = x.Float64(); err != nil {
				continue
			}
		case int:
			f = float64(x)
		case int64:
			f = float64(x)
		case float64:
			f = x
		default:
			continue
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		b, _ := json.Marshal(f)
		out = append(out, string(b))
	}
	return out
}

// lookup selects the keys of the records of (source, model) that are not
// deleted and whose field holds one of values, at the snapshot's revision,
// ordered by source key and id; sourceKey, when set, keeps one source
// key's.
func (s *Snapshot) lookup(source, model, field, sourceKey string, values []any, limit int) (keys []store.RecordKey, more bool, err error) {
	ok, err := s.indexedErr(source, model, field)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, store.ErrNotIndexed
	}
	vals := lookupValues(values)
	if len(vals) == 0 {
		return nil, false, nil
	}
	ctx, cancel, err := s.enter()
	if err != nil {
		return nil, false, err
	}
	defer cancel()
	args := sqlArgs{s.l.id, s.rev.Number}
	// A string with NUL or U+FFFD is looked up as its jsonb stand-in
	// (lookupValues), which two strings share: the candidates' fields
	// are then compared with the values as the payload holds them.
	check := ambiguousValues(values)
	cols := `source_key, id`
	if check {
		cols += `, payload`
	}
	sql := `SELECT ` + cols + ` FROM synclayer_records
		WHERE ` + fieldIndexPredicate(s.l.id, source, model) + `
			AND ` + fieldIndexExpr(field) + ` @> ANY(` + args.add(vals) + `::text[]::jsonb[])
			AND from_rev <= $2 AND (to_rev IS NULL OR to_rev > $2) AND action <> 3 AND ` + keptSQL
	if sourceKey != "" {
		sql += ` AND source_key = ` + args.add(sourceKey)
	}
	rows, err := s.l.s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: lookup %s/%s.%s: %w", source, model, field, err)
	}
	defer rows.Close()
	for rows.Next() {
		var sk, id string
		var payload []byte
		dest := []any{&sk, &id}
		if check {
			dest = append(dest, &payload)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, false, fmt.Errorf("store: lookup %s/%s.%s: %w", source, model, field, err)
		}
		if check && !fieldHolds(payload, field, values) {
			continue
		}
		_, conn := store.SplitSourceKey(sk)
		keys = append(keys, store.RecordKey{Connection: conn, ID: id})
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("store: lookup %s/%s.%s: %w", source, model, field, err)
	}
	if len(keys) == 0 {
		return nil, false, s.l.checkKept(ctx, s.rev.Number)
	}
	// Sorted here, not by the statement: an ORDER BY tempts the planner
	// into walking the primary key's order instead of using the index.
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })
	if limit > 0 && len(keys) > limit {
		return keys[:limit], true, nil
	}
	return keys, false, nil
}

// Lookup returns the ids of the records of (source key, model) that are
// not deleted and whose field equals one of values (a value that is a
// JSON array matches each of its elements), in ascending order without
// repeats. Values are strings, float64, json.Number, ints or bools (numbers
// compare by value); others match nothing. It fails with
// store.ErrNotIndexed when the field has no complete index at this
// revision. At most limit ids are returned (0: no limit); more tells
// whether there were more.
func (s *Snapshot) Lookup(source, model, field string, values []any, limit int) (ids []string, more bool, err error) {
	src, _ := store.SplitSourceKey(source)
	keys, more, err := s.lookup(src, model, field, source, values, limit)
	if err != nil {
		return nil, false, err
	}
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return ids, more, nil
}

// LookupConnections is Lookup over every record of one model of a source,
// whatever connection it belongs to: the keys of the matching records in
// (connection, id) order without repeats, the source's own records
// (connection "") first.
func (s *Snapshot) LookupConnections(source, model, field string, values []any, limit int) (keys []store.RecordKey, more bool, err error) {
	return s.lookup(source, model, field, "", values, limit)
}

// ambiguousValues tells whether a string value has a NUL or U+FFFD, whose
// jsonb stand-in it shares with another string.
func ambiguousValues(values []any) bool {
	for _, v := range values {
		if x, ok := v.(string); ok && strings.ContainsAny(x, "\x00\ufffd") {
			return true
		}
	}
	return false
}

// fieldHolds tells whether the payload's field is, or is an array holding,
// one of the string values exactly (a candidate of an ambiguous lookup;
// the index already matched its other values).
func fieldHolds(payload []byte, field string, values []any) bool {
	var doc map[string]json.RawMessage
	if json.Unmarshal(payload, &doc) != nil {
		return false
	}
	raw, ok := doc[field]
	if !ok {
		return false
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		items = []json.RawMessage{raw}
	}
	for _, it := range items {
		var got any
		d := json.NewDecoder(bytes.NewReader(it))
		d.UseNumber()
		if d.Decode(&got) != nil {
			continue
		}
		for _, v := range values {
			switch x := v.(type) {
			case string:
				if g, ok := got.(string); ok && g == x {
					return true
				}
			default:
				// Non-string values are not ambiguous: the index's
				// match stands.
				if _, isStr := got.(string); !isStr && lookupValues([]any{v}) != nil && matchesScalar(got, v) {
					return true
				}
			}
		}
	}
	return false
}

// matchesScalar compares a decoded JSON scalar with a lookup value that is
// not a string, as lookupValues renders both.
func matchesScalar(got, v any) bool {
	a := lookupValues([]any{v})
	if len(a) == 0 {
		return false
	}
	switch g := got.(type) {
	case bool:
		return strconv.FormatBool(g) == a[0]
	case json.Number:
		f, err := g.Float64()
		if err != nil {
			return false
		}
		b := lookupValues([]any{f})
		return len(b) == 1 && b[0] == a[0]
	}
	return false
}
