package shopifytest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator"
)

// object is a JSON object that keeps its keys in insertion order, as a
// GraphQL answer keeps the order of the query's fields.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) set(k string, v any) {
	if o.vals == nil {
		o.vals = map[string]any{}
	}
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

// MarshalJSON implements json.Marshaler.
func (o *object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(o.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func itoa(n int) string { return strconv.Itoa(n) }

func firstCode(errs gqlerror.List) string {
	for _, e := range errs {
		if c, ok := e.Extensions["code"].(string); ok {
			return c
		}
	}
	return "GRAPHQL_ERROR"
}

// prepared is a validated operation with its coerced variables.
type prepared struct {
	doc  *ast.QueryDocument
	op   *ast.OperationDefinition
	vars map[string]any
}

func prepare(query string, vars map[string]any, opName string) (*prepared, gqlerror.List) {
	doc, errs := gqlparser.LoadQuery(schema, query)
	if len(errs) > 0 {
		for _, e := range errs {
			if e.Extensions == nil {
				e.Extensions = map[string]any{}
			}
			if e.Rule != "" {
				e.Extensions["code"] = "GRAPHQL_VALIDATION_FAILED"
			} else {
				e.Extensions["code"] = "GRAPHQL_PARSE_FAILED"
			}
		}
		return nil, errs
	}
	var op *ast.OperationDefinition
	switch {
	case opName != "":
		op = doc.Operations.ForName(opName)
	case len(doc.Operations) == 1:
		op = doc.Operations[0]
	}
	if op == nil {
		return nil, gqlerror.List{gqlerror.Errorf("An operation name is required when the document has several operations, and must name one of them")}
	}
	if op.Operation != ast.Query {
		return nil, gqlerror.List{gqlerror.Errorf("The fake serves queries only, not %s", op.Operation)}
	}
	coerced, err := validator.VariableValues(schema, op, vars)
	if err != nil {
		var ge *gqlerror.Error
		if e, ok := err.(*gqlerror.Error); ok {
			ge = e
		} else {
			ge = gqlerror.Errorf("%s", err.Error())
		}
		return nil, gqlerror.List{ge}
	}
	return &prepared{doc: doc, op: op, vars: coerced}, nil
}

// group is the fields of one response key, merged.
type group struct {
	key    string
	fields []*ast.Field
}

// collect flattens fragments and groups a selection set's fields by
// response key (GraphQL's CollectFields), leaving out @skip/@include'd ones.
func collect(sel ast.SelectionSet, typeName string, vars map[string]any, out []*group) []*group {
	for _, s := range sel {
		switch x := s.(type) {
		case *ast.Field:
			if !included(x.Directives, vars) {
				continue
			}
			key := x.Alias
			if key == "" {
				key = x.Name
			}
			found := false
			for _, g := range out {
				if g.key == key {
					g.fields = append(g.fields, x)
					found = true
					break
				}
			}
			if !found {
				out = append(out, &group{key: key, fields: []*ast.Field{x}})
			}
		case *ast.InlineFragment:
			if included(x.Directives, vars) && (x.TypeCondition == "" || x.TypeCondition == typeName) {
				out = collect(x.SelectionSet, typeName, vars, out)
			}
		case *ast.FragmentSpread:
			if included(x.Directives, vars) && x.Definition != nil && x.Definition.TypeCondition == typeName {
				out = collect(x.Definition.SelectionSet, typeName, vars, out)
			}
		}
	}
	return out
}

func included(ds ast.DirectiveList, vars map[string]any) bool {
	if d := ds.ForName("skip"); d != nil {
		if v, _ := d.ArgumentMap(vars)["if"].(bool); v {
			return false
		}
	}
	if d := ds.ForName("include"); d != nil {
		if v, _ := d.ArgumentMap(vars)["if"].(bool); !v {
			return false
		}
	}
	return true
}

func (g *group) selection() ast.SelectionSet {
	if len(g.fields) == 1 {
		return g.fields[0].SelectionSet
	}
	var s ast.SelectionSet
	for _, f := range g.fields {
		s = append(s, f.SelectionSet...)
	}
	return s
}

func intArg(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case float64:
		return int(x), x == math.Trunc(x)
	case json.Number:
		n, err := x.Int64()
		return int(n), err == nil
	}
	return 0, false
}

func isConnection(name string) bool { return strings.HasSuffix(name, "Connection") }
func isEdge(name string) bool       { return strings.HasSuffix(name, "Edge") }

// requestedCost is the query's cost as Shopify calculates it before
// running it: scalars and enums 0, objects 1, a connection 2 plus first
// (or last) times the cost of one node, a list of objects its first
// argument (or 1) times the cost of one.
func (p *prepared) requestedCost() int {
	return selCost(p.op.SelectionSet, "QueryRoot", p.vars)
}

func selCost(sel ast.SelectionSet, typeName string, vars map[string]any) int {
	total := 0
	for _, g := range collect(sel, typeName, vars, nil) {
		f := g.fields[0]
		if f.Definition == nil || f.Name == "__typename" {
			continue
		}
		t := f.Definition.Type
		def := schema.Types[t.Name()]
		if def == nil || def.Kind == ast.Scalar || def.Kind == ast.Enum {
			continue
		}
		args := f.ArgumentMap(vars)
		sub := g.selection()
		switch {
		case isConnection(def.Name):
			n, ok := intArg(args["first"])
			if !ok {
				n, _ = intArg(args["last"])
			}
			node := 0
			for _, cg := range collect(sub, def.Name, vars, nil) {
				cf := cg.fields[0]
				switch cf.Name {
				case "nodes":
					node = max(node, 1+selCost(cg.selection(), cf.Definition.Type.Name(), vars))
				case "edges":
					edgeType := cf.Definition.Type.Name()
					for _, eg := range collect(cg.selection(), edgeType, vars, nil) {
						if eg.fields[0].Name == "node" {
							node = max(node, 1+selCost(eg.selection(), eg.fields[0].Definition.Type.Name(), vars))
						}
					}
				}
			}
			total += 2 + n*node
		case t.Elem != nil:
			n, ok := intArg(args["first"])
			if !ok {
				n = 1
			}
			total += n * (1 + selCost(sub, def.Name, vars))
		default:
			total += 1 + selCost(sub, def.Name, vars)
		}
	}
	return total
}

// executor runs one operation against the shop's data; the server's lock
// is held.
type executor struct {
	s        *Server
	vars     map[string]any
	actual   int
	errs     gqlerror.List
	warnings []any
}

// execute runs the operation: its data, actual cost, errors and search
// warnings.
func (s *Server) execute(p *prepared) (*object, int, gqlerror.List, []any) {
	e := &executor{s: s, vars: p.vars}
	data := e.selectionSet(p.op.SelectionSet, "QueryRoot", nil, nil)
	return data, e.actual, e.errs, e.warnings
}

func (e *executor) selectionSet(sel ast.SelectionSet, typeName string, obj any, path ast.Path) *object {
	out := &object{}
	for _, g := range collect(sel, typeName, e.vars, nil) {
		f := g.fields[0]
		if f.Name == "__typename" {
			out.set(g.key, typeName)
			continue
		}
		fpath := append(slices.Clone(path), ast.PathName(g.key))
		v, err := e.resolve(typeName, obj, f, f.ArgumentMap(e.vars), fpath)
		if err != nil {
			ge := &gqlerror.Error{Message: err.Error(), Path: fpath, Locations: []gqlerror.Location{{Line: f.Position.Line, Column: f.Position.Column}}}
			if ce, ok := err.(codedError); ok {
				ge.Extensions = map[string]any{"code": ce.code}
			}
			e.errs = append(e.errs, ge)
			out.set(g.key, nil)
			continue
		}
		out.set(g.key, e.complete(v, f.Definition.Type, g.selection(), fpath))
	}
	return out
}

func (e *executor) complete(v any, t *ast.Type, sel ast.SelectionSet, path ast.Path) any {
	if v == nil {
		return nil
	}
	if t.Elem != nil {
		items := v.([]any)
		out := make([]any, len(items))
		for i, x := range items {
			out[i] = e.complete(x, t.Elem, sel, append(slices.Clone(path), ast.PathIndex(i)))
		}
		return out
	}
	def := schema.Types[t.Name()]
	if def.Kind == ast.Scalar || def.Kind == ast.Enum {
		return v
	}
	switch {
	case isConnection(def.Name):
		e.actual += 2
	case isEdge(def.Name), def.Name == "PageInfo":
	default:
		e.actual++
	}
	return e.selectionSet(sel, def.Name, v, path)
}

// codedError is an execution error with an extensions.code.
type codedError struct {
	code, msg string
}

func (c codedError) Error() string { return c.msg }

func datetime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func optTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return datetime(*t)
}

func optString(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// Nodes of the types that need their parent.
type optionNode struct {
	opt Option
	pos int
}

type variantNode struct {
	v   *Variant
	pos int
	p   *Product
}

type selectedOption struct{ name, value string }

func (e *executor) resolve(typeName string, obj any, f *ast.Field, args map[string]any, path ast.Path) (any, error) {
	s := e.s
	switch typeName {
	case "QueryRoot":
		switch f.Name {
		case "shop":
			return "shop", nil
		case "product", "collection":
			kind := "Product"
			if f.Name == "collection" {
				kind = "Collection"
			}
			id, err := parseGID(args["id"], kind)
			if err != nil {
				return nil, err
			}
			if kind == "Product" {
				if p, ok := s.products[id]; ok {
					return p, nil
				}
			} else if c, ok := s.collections[id]; ok {
				return c, nil
			}
			return nil, nil
		case "products":
			return e.products(args, path)
		case "collections":
			return e.collections(args, path)
		}
	case "Shop":
		switch f.Name {
		case "id":
			return GID("Shop", 1), nil
		case "name":
			return strings.TrimSuffix(s.Shop, ".myshopify.com"), nil
		case "email":
			return "owner@" + s.Shop, nil
		case "myshopifyDomain":
			return s.Shop, nil
		case "ianaTimezone":
			return "America/New_York", nil
		}
	case "Product":
		p := obj.(*Product)
		switch f.Name {
		case "id":
			return GID("Product", p.ID), nil
		case "legacyResourceId":
			return strconv.FormatInt(p.ID, 10), nil
		case "title":
			return p.Title, nil
		case "handle":
			return p.Handle, nil
		case "descriptionHtml":
			return p.DescriptionHTML, nil
		case "vendor":
			return p.Vendor, nil
		case "productType":
			return p.ProductType, nil
		case "status":
			return p.Status, nil
		case "tags":
			tags := make([]any, len(p.Tags))
			for i, t := range p.Tags {
				tags[i] = t
			}
			return tags, nil
		case "templateSuffix":
			return optString(p.TemplateSuffix), nil
		case "createdAt":
			return datetime(p.CreatedAt), nil
		case "updatedAt":
			return datetime(p.UpdatedAt), nil
		case "publishedAt":
			return optTime(p.PublishedAt), nil
		case "totalInventory":
			return p.totalInventory(), nil
		case "options":
			n := len(p.Options)
			if first, ok := intArg(args["first"]); ok && first < n {
				n = max(first, 0)
			}
			out := make([]any, n)
			for i := range n {
				out[i] = optionNode{p.Options[i], i + 1}
			}
			return out, nil
		case "variants":
			items := make([]item, len(p.Variants))
			for i := range p.Variants {
				items[i] = item{node: variantNode{&p.Variants[i], i + 1, p}, id: p.Variants[i].ID, key: fmt.Sprintf("%08d", i)}
			}
			return paginate(items, args)
		case "images":
			items := make([]item, len(p.Images))
			for i := range p.Images {
				items[i] = item{node: &p.Images[i], id: p.Images[i].ID, key: fmt.Sprintf("%08d", i)}
			}
			return paginate(items, args)
		}
	case "ProductOption":
		o := obj.(optionNode)
		switch f.Name {
		case "id":
			return GID("ProductOption", o.opt.ID), nil
		case "name":
			return o.opt.Name, nil
		case "position":
			return o.pos, nil
		case "values":
			vs := make([]any, len(o.opt.Values))
			for i, v := range o.opt.Values {
				vs[i] = v
			}
			return vs, nil
		}
	case "ProductVariant":
		vn := obj.(variantNode)
		v := vn.v
		switch f.Name {
		case "id":
			return GID("ProductVariant", v.ID), nil
		case "legacyResourceId":
			return strconv.FormatInt(v.ID, 10), nil
		case "title":
			return v.Title, nil
		case "sku":
			return v.SKU, nil
		case "barcode":
			return optString(v.Barcode), nil
		case "price":
			return v.Price, nil
		case "compareAtPrice":
			return optString(v.CompareAtPrice), nil
		case "position":
			return vn.pos, nil
		case "inventoryQuantity":
			return v.InventoryQuantity, nil
		case "taxable":
			return v.Taxable, nil
		case "createdAt":
			return datetime(v.CreatedAt), nil
		case "updatedAt":
			return datetime(v.UpdatedAt), nil
		case "selectedOptions":
			var out []any
			for i, val := range v.OptionValues {
				name := fmt.Sprintf("Option%d", i+1)
				if i < len(vn.p.Options) {
					name = vn.p.Options[i].Name
				}
				out = append(out, selectedOption{name, val})
			}
			return out, nil
		}
	case "SelectedOption":
		so := obj.(selectedOption)
		if f.Name == "name" {
			return so.name, nil
		}
		return so.value, nil
	case "Image":
		img := obj.(*Image)
		switch f.Name {
		case "id":
			return GID("ProductImage", img.ID), nil
		case "altText":
			return optString(img.AltText), nil
		case "url":
			return img.URL, nil
		case "width":
			return img.Width, nil
		case "height":
			return img.Height, nil
		}
	case "Collection":
		c := obj.(*Collection)
		switch f.Name {
		case "id":
			return GID("Collection", c.ID), nil
		case "legacyResourceId":
			return strconv.FormatInt(c.ID, 10), nil
		case "title":
			return c.Title, nil
		case "handle":
			return c.Handle, nil
		case "descriptionHtml":
			return c.DescriptionHTML, nil
		case "sortOrder":
			return c.SortOrder, nil
		case "templateSuffix":
			return optString(c.TemplateSuffix), nil
		case "updatedAt":
			return datetime(c.UpdatedAt), nil
		case "products":
			var items []item
			for i, id := range c.ProductIDs {
				if p, ok := s.products[id]; ok {
					items = append(items, item{node: p, id: id, key: fmt.Sprintf("%08d", i)})
				}
			}
			return paginate(items, args)
		}
	case "PageInfo":
		pi := obj.(*pageInfo)
		switch f.Name {
		case "hasNextPage":
			return pi.hasNext, nil
		case "hasPreviousPage":
			return pi.hasPrev, nil
		case "startCursor":
			return optString(pi.start), nil
		case "endCursor":
			return optString(pi.end), nil
		}
	default:
		if isConnection(typeName) {
			c := obj.(*connection)
			switch f.Name {
			case "edges":
				out := make([]any, len(c.edges))
				for i, ed := range c.edges {
					out[i] = ed
				}
				return out, nil
			case "nodes":
				out := make([]any, len(c.edges))
				for i, ed := range c.edges {
					out[i] = ed.node
				}
				return out, nil
			case "pageInfo":
				return &c.info, nil
			}
		}
		if isEdge(typeName) {
			ed := obj.(*edge)
			if f.Name == "cursor" {
				return ed.cursor, nil
			}
			return ed.node, nil
		}
	}
	return nil, fmt.Errorf("the fake does not resolve %s.%s", typeName, f.Name)
}

// parseGID reads a global id of kind.
func parseGID(v any, kind string) (int64, error) {
	s, _ := v.(string)
	rest, ok := strings.CutPrefix(s, "gid://shopify/"+kind+"/")
	id, err := strconv.ParseInt(rest, 10, 64)
	if !ok || err != nil || id <= 0 {
		return 0, codedError{"argumentLiteralsIncompatible", fmt.Sprintf("Invalid global id '%s'", s)}
	}
	return id, nil
}

// A connection's page.
type connection struct {
	edges []*edge
	info  pageInfo
}

type edge struct {
	cursor string
	node   any
}

type pageInfo struct {
	hasNext, hasPrev bool
	start, end       *string
}

// item is a node with its place in the sort order: key, then id.
type item struct {
	node any
	id   int64
	key  string
}

// cursorData is what a cursor encodes, as Shopify's do.
type cursorData struct {
	LastID    int64  `json:"last_id"`
	LastValue string `json:"last_value"`
}

func encodeCursor(it item) string {
	b, _ := json.Marshal(cursorData{LastID: it.id, LastValue: it.key})
	return base64.StdEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursorData, error) {
	var c cursorData
	b, err := base64.StdEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.LastID == 0 {
		return c, codedError{"BAD_REQUEST", fmt.Sprintf("Invalid cursor for current pagination sort: %q", s)}
	}
	return c, nil
}

// cmp orders it against a cursor in ascending (key, id) order.
func (it item) cmp(c cursorData) int {
	if it.key != c.LastValue {
		return strings.Compare(it.key, c.LastValue)
	}
	switch {
	case it.id < c.LastID:
		return -1
	case it.id > c.LastID:
		return 1
	}
	return 0
}

// paginate cuts a page out of items as a Relay connection does: sort
// (reversed with reverse), then after/before, then first/last.
func paginate(items []item, args map[string]any) (*connection, error) {
	first, hasFirst := intArg(args["first"])
	last, hasLast := intArg(args["last"])
	switch {
	case !hasFirst && !hasLast:
		return nil, codedError{"BAD_REQUEST", "you must provide one of first or last"}
	case hasFirst && hasLast:
		return nil, codedError{"BAD_REQUEST", "providing both first and last is not supported"}
	case hasFirst && (first < 0 || first > MaxPageSize), hasLast && (last < 0 || last > MaxPageSize):
		return nil, codedError{"BAD_REQUEST", fmt.Sprintf("The page size must be between 0 and %d", MaxPageSize)}
	}
	reverse, _ := args["reverse"].(bool)
	dir := 1
	if reverse {
		dir = -1
	}
	list := slices.Clone(items)
	slices.SortFunc(list, func(a, b item) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c * dir
		}
		switch {
		case a.id < b.id:
			return -dir
		case a.id > b.id:
			return dir
		}
		return 0
	})
	hasPrev, hasNext := false, false
	if s, _ := args["after"].(string); s != "" {
		c, err := decodeCursor(s)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(list, func(it item) bool { return it.cmp(c)*dir > 0 })
		if i < 0 {
			i = len(list)
		}
		hasPrev = i > 0
		list = list[i:]
	}
	if s, _ := args["before"].(string); s != "" {
		c, err := decodeCursor(s)
		if err != nil {
			return nil, err
		}
		if i := slices.IndexFunc(list, func(it item) bool { return it.cmp(c)*dir >= 0 }); i >= 0 {
			hasNext = true
			list = list[:i]
		}
	}
	if hasFirst && len(list) > first {
		list, hasNext = list[:first], true
	}
	if hasLast && len(list) > last {
		list, hasPrev = list[len(list)-last:], true
	}
	c := &connection{info: pageInfo{hasNext: hasNext, hasPrev: hasPrev}}
	for _, it := range list {
		c.edges = append(c.edges, &edge{cursor: encodeCursor(it), node: it.node})
	}
	if len(c.edges) > 0 {
		start, end := c.edges[0].cursor, c.edges[len(c.edges)-1].cursor
		c.info.start, c.info.end = &start, &end
	}
	return c, nil
}

func (e *executor) products(args map[string]any, path ast.Path) (*connection, error) {
	terms := e.search(args, path, productFields)
	sortKey, _ := args["sortKey"].(string)
	var items []item
	for _, p := range e.s.products {
		if !matchAll(terms, func(field string) []string { return productValues(p, field) }) {
			continue
		}
		items = append(items, item{node: p, id: p.ID, key: productKey(p, sortKey)})
	}
	return paginate(items, args)
}

func (e *executor) collections(args map[string]any, path ast.Path) (*connection, error) {
	terms := e.search(args, path, collectionFields)
	sortKey, _ := args["sortKey"].(string)
	var items []item
	for _, c := range e.s.collections {
		if !matchAll(terms, func(field string) []string { return collectionValues(c, field) }) {
			continue
		}
		key := fmt.Sprintf("%020d", c.ID)
		switch sortKey {
		case "UPDATED_AT":
			key = datetime(c.UpdatedAt)
		case "TITLE":
			key = strings.ToLower(c.Title)
		}
		items = append(items, item{node: c, id: c.ID, key: key})
	}
	return paginate(items, args)
}

func productKey(p *Product, sortKey string) string {
	switch sortKey {
	case "UPDATED_AT":
		return datetime(p.UpdatedAt)
	case "CREATED_AT":
		return datetime(p.CreatedAt)
	case "TITLE":
		return strings.ToLower(p.Title)
	case "VENDOR":
		return strings.ToLower(p.Vendor)
	case "PRODUCT_TYPE":
		return strings.ToLower(p.ProductType)
	case "PUBLISHED_AT":
		if p.PublishedAt == nil {
			return ""
		}
		return datetime(*p.PublishedAt)
	case "INVENTORY_TOTAL":
		return fmt.Sprintf("%020d", p.totalInventory()+1<<40)
	}
	return fmt.Sprintf("%020d", p.ID)
}

// search parses the query argument, recording warnings for what it
// ignores as Shopify does in extensions.search.
func (e *executor) search(args map[string]any, path ast.Path, fields map[string]string) []term {
	q, _ := args["query"].(string)
	if strings.TrimSpace(q) == "" {
		return nil
	}
	terms, warnings := parseSearch(q, fields)
	if len(warnings) > 0 {
		p := make([]any, len(path))
		for i, x := range path {
			p[i] = x
		}
		e.warnings = append(e.warnings, map[string]any{"path": p, "query": q, "warnings": warnings})
	}
	return terms
}
