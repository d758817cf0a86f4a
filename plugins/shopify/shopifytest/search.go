package shopifytest

import (
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Kinds of searchable fields.
const (
	kindTime  = "time"
	kindText  = "text" // case-insensitive prefix of a word
	kindID    = "id"
	kindExact = "exact" // case-insensitive equality
)

var productFields = map[string]string{
	"updated_at": kindTime, "created_at": kindTime, "published_at": kindTime,
	"id": kindID, "title": kindText, "handle": kindExact, "status": kindExact,
	"vendor": kindExact, "product_type": kindExact, "tag": kindExact,
}

var collectionFields = map[string]string{
	"updated_at": kindTime, "id": kindID, "title": kindText, "handle": kindExact,
}

// term is one condition of a search query: field, comparator (":" for
// equality, ">", ">=", "<", "<=") and value. A term without a field
// matches the title.
type term struct {
	field, op, value, kind string
	negate                 bool
}

// parseSearch reads Shopify's search syntax as far as the fake needs:
// space-separated terms, all of which must hold (AND is implied and may
// be written), each `field:value`, `field:>value` (>, >=, <, <=), with the
// value bare or quoted with ' or ", `-field:value` negated. A field the
// resource does not search is ignored with a warning, as Shopify does.
func parseSearch(q string, fields map[string]string) ([]term, []any) {
	var terms []term
	var warnings []any
	for _, tok := range tokenize(q) {
		if tok == "AND" {
			continue
		}
		if tok == "OR" {
			warnings = append(warnings, map[string]any{"field": nil, "message": "The fake does not support OR; it was ignored."})
			continue
		}
		t := term{}
		if strings.HasPrefix(tok, "-") && len(tok) > 1 {
			t.negate, tok = true, tok[1:]
		}
		field, value, hasField := strings.Cut(tok, ":")
		if !hasField || strings.HasPrefix(tok, "'") || strings.HasPrefix(tok, `"`) {
			t.field, t.kind, t.op, t.value = "title", kindText, ":", unquote(tok)
			terms = append(terms, t)
			continue
		}
		kind, ok := fields[field]
		if !ok {
			warnings = append(warnings, map[string]any{"field": field, "message": "Invalid search field for this query."})
			continue
		}
		t.field, t.kind, t.op = field, kind, ":"
		for _, op := range []string{">=", "<=", ">", "<"} {
			if rest, ok := strings.CutPrefix(value, op); ok {
				t.op, value = op, rest
				break
			}
		}
		t.value = unquote(value)
		if kind == kindTime {
			if _, ok := parseTime(t.value); !ok {
				warnings = append(warnings, map[string]any{"field": field, "message": "Invalid date value; the term was ignored."})
				continue
			}
		}
		terms = append(terms, t)
	}
	return terms, warnings
}

// tokenize splits on spaces outside quotes.
func tokenize(q string) []string {
	var out []string
	var b strings.Builder
	var quote rune
	for _, r := range q {
		switch {
		case quote != 0:
			b.WriteRune(r)
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
			b.WriteRune(r)
		case unicode.IsSpace(r):
			if b.Len() > 0 {
				out = append(out, b.String())
				b.Reset()
			}
		default:
			b.WriteRune(r)
		}
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// parseTime reads a search date: RFC 3339, or a date alone (midnight UTC).
func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func matchAll(terms []term, values func(field string) []string) bool {
	for _, t := range terms {
		if t.match(values(t.field)) == t.negate {
			return false
		}
	}
	return true
}

func (t term) match(vals []string) bool {
	for _, v := range vals {
		if t.matchOne(v) {
			return true
		}
	}
	return false
}

func (t term) matchOne(v string) bool {
	var c int
	switch t.kind {
	case kindTime:
		want, _ := parseTime(t.value)
		got, ok := parseTime(v)
		if !ok {
			return false
		}
		// Shopify compares at second precision.
		c = got.Truncate(time.Second).Compare(want.Truncate(time.Second))
	case kindID:
		a, err1 := strconv.ParseInt(v, 10, 64)
		b, err2 := strconv.ParseInt(t.value, 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		c = compareInt(a, b)
	case kindText:
		if t.op == ":" {
			want := strings.ToLower(strings.TrimSuffix(t.value, "*"))
			for _, w := range strings.Fields(strings.ToLower(v)) {
				if strings.HasPrefix(w, want) {
					return true
				}
			}
			return strings.HasPrefix(strings.ToLower(v), want)
		}
		c = strings.Compare(strings.ToLower(v), strings.ToLower(t.value))
	default:
		c = strings.Compare(strings.ToLower(v), strings.ToLower(t.value))
	}
	switch t.op {
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	}
	return c == 0
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func productValues(p *Product, field string) []string {
	switch field {
	case "updated_at":
		return []string{datetime(p.UpdatedAt)}
	case "created_at":
		return []string{datetime(p.CreatedAt)}
	case "published_at":
		if p.PublishedAt == nil {
			return nil
		}
		return []string{datetime(*p.PublishedAt)}
	case "id":
		return []string{strconv.FormatInt(p.ID, 10)}
	case "title":
		return []string{p.Title}
	case "handle":
		return []string{p.Handle}
	case "status":
		return []string{p.Status}
	case "vendor":
		return []string{p.Vendor}
	case "product_type":
		return []string{p.ProductType}
	case "tag":
		return p.Tags
	}
	return nil
}

func collectionValues(c *Collection, field string) []string {
	switch field {
	case "updated_at":
		return []string{datetime(c.UpdatedAt)}
	case "id":
		return []string{strconv.FormatInt(c.ID, 10)}
	case "title":
		return []string{c.Title}
	case "handle":
		return []string{c.Handle}
	}
	return nil
}
