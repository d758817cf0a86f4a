package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// kind is how a selected value becomes JSON.
type kind int

const (
	kindString kind = iota // text as a JSON string
	kindNumber             // text of an integer or float: a JSON number (NaN and infinities as strings)
	kindBool               // "true" / "false"
	kindJSON               // text that is already JSON (json, jsonb, to_json of arrays and times)
	kindBytes              // bytea, received as bytes: base64
)

// column is one column of a table and how it is read.
type column struct {
	name string
	typ  string // format_type, for casting keyset values back
	expr string // the select expression
	kind kind
}

// table is a model's table, described from the catalog.
type table struct {
	ref       string // the regclass, quoted as PostgreSQL prints it
	columns   []column
	id        *column
	updatedAt *column
}

// describeTable reads the table's columns and picks how to select each,
// so that PostgreSQL types map faithfully to JSON:
//
//	smallint, integer, bigint, oid, real, double  → number (NaN, ±Infinity as strings)
//	numeric                                       → string (exact)
//	boolean                                       → true / false
//	json, jsonb                                   → the JSON value itself
//	timestamptz                                   → RFC 3339 string in UTC ("2026-11-23T07:00:00.123456+00:00")
//	timestamp                                     → ISO 8601 string without offset (the column has none)
//	date, time, timetz                            → ISO 8601 strings
//	bytea                                         → base64 string
//	arrays                                        → JSON arrays of the element mapping (numeric and bytea elements as strings)
//	uuid, text, enums, interval, inet, money, …   → PostgreSQL's output text, as a string
//	composite types                               → objects
//
// Domains map as their base type.
func describeTable(ctx context.Context, conn *pgx.Conn, name string, cfg *TableConfig) (*table, error) {
	var ref *string
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1::text)::text", name).Scan(&ref); err != nil {
		return nil, fmt.Errorf("looking up table %q: %w", name, err)
	}
	if ref == nil {
		return nil, fmt.Errorf("table %q does not exist (or is not visible to this user and search_path)", name)
	}
	rows, err := conn.Query(ctx, `
SELECT a.attname, format_type(a.atttypid, a.atttypmod), bt.typname, bt.typcategory, coalesce(et.typname, '')
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_type et ON bt.typcategory = 'A' AND et.oid = bt.typelem
WHERE a.attrelid = to_regclass($1::text) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, name)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", *ref, err)
	}
	t := &table{ref: *ref}
	for rows.Next() {
		var c column
		var base, category, elem string
		if err := rows.Scan(&c.name, &c.typ, &base, &category, &elem); err != nil {
			rows.Close()
			return nil, err
		}
		q := "src." + pgx.Identifier{c.name}.Sanitize()
		c.expr, c.kind = selectExpr(q, base, category, elem)
		t.columns = append(t.columns, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", *ref, err)
	}
	find := func(col, attr string) (*column, error) {
		for i := range t.columns {
			if t.columns[i].name == col {
				return &t.columns[i], nil
			}
		}
		return nil, fmt.Errorf("%s: table %s has no column %q", attr, *ref, col)
	}
	if t.id, err = find(cfg.ID, "id"); err != nil {
		return nil, err
	}
	if cfg.UpdatedAt != "" {
		if t.updatedAt, err = find(cfg.UpdatedAt, "updated_at"); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func selectExpr(q, base, category, elem string) (string, kind) {
	switch base {
	case "int2", "int4", "int8", "oid", "float4", "float8":
		return q + "::text", kindNumber
	case "bool":
		return q + "::text", kindBool
	case "numeric":
		return q + "::text", kindString
	case "text", "varchar", "name":
		return q + "::text", kindString
	case "json", "jsonb":
		return q + "::text", kindJSON
	case "bytea":
		return q + "::bytea", kindBytes
	case "timestamptz", "timestamp", "date", "time", "timetz":
		return "to_json(" + q + ")::text", kindJSON
	}
	if category == "A" {
		switch elem {
		case "numeric", "bytea", "money":
			return "to_json(" + q + "::text[])::text", kindJSON
		}
		return "to_json(" + q + ")::text", kindJSON
	}
	// Anything else as PostgreSQL's to_json makes it: the type's output
	// text as a string (uuid, char(n) with its padding, enums, interval,
	// inet, ranges, …), composites as objects.
	return "to_json(" + q + ")::text", kindJSON
}

// appendValue appends v, as scanned for c, to a JSON object being built.
func appendValue(b []byte, c *column, v any) ([]byte, error) {
	if v == nil {
		return append(b, "null"...), nil
	}
	if c.kind == kindBytes {
		raw, ok := v.([]byte)
		if !ok {
			return nil, fmt.Errorf("column %q: expected bytes, got %T", c.name, v)
		}
		return strconv.AppendQuote(b, base64.StdEncoding.EncodeToString(raw)), nil
	}
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("column %q: expected text, got %T", c.name, v)
	}
	switch c.kind {
	case kindNumber:
		switch s {
		case "NaN", "Infinity", "-Infinity":
			return appendString(b, s), nil
		}
		return append(b, s...), nil
	case kindBool:
		return append(b, s...), nil
	case kindJSON:
		if !json.Valid([]byte(s)) {
			return nil, fmt.Errorf("column %q: PostgreSQL returned invalid JSON", c.name)
		}
		return append(b, s...), nil
	}
	return appendString(b, s), nil
}

func appendString(b []byte, s string) []byte {
	enc, _ := json.Marshal(s)
	return append(b, enc...)
}
