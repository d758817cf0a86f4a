package config

import (
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// GraphQL blocks of a layer (SPEC §14):
//
//	reference "Post.author" {   # adds the field author to the type Post
//	  field   = "author_id"     # Post's attribute holding an id, or a list of ids
//	  to      = "Author"        # target type
//	  by      = "id"            # target attribute matched; default id
//	  reverse = "posts"         # optional: Author.posts lists the Posts pointing at it
//	}
//	index "Post" { fields = ["slug"] }
//
// and a source's type_prefix attribute.

// Reference is a reference block: a field of one GraphQL type that points
// at records of another.
type Reference struct {
	// Type and Name are the two parts of the label "Type.name": the type
	// that gets the field, and the field's name.
	Type string
	Name string
	// Field is the record attribute holding the target's key (or a list).
	Field string
	// To is the target type; By the target attribute matched (default "id").
	To string
	By string
	// Reverse, when set, adds a list field of that name to the target type.
	Reverse string
	Range   hcl.Range
}

// Index is an index block: record attributes of a type kept in a field
// index, for eq/in filters and references.
type Index struct {
	Type   string
	Fields []string
	Range  hcl.Range
}

// graphqlName is a GraphQL name (types, fields).
var graphqlName = regexp.MustCompile(`^[_A-Za-z][_0-9A-Za-z]*$`)

var (
	referenceSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "field", Required: true},
			{Name: "to", Required: true},
			{Name: "by"},
			{Name: "reverse"},
		},
	}
	indexSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "fields", Required: true},
		},
	}
)

// graphqlBlock decodes a reference or index block into l; false for other
// blocks.
func (d *decoder) graphqlBlock(l *Layer, blk *hcl.Block) bool {
	switch blk.Type {
	case "reference":
		if r := d.reference(blk); r != nil {
			for _, o := range l.References {
				if o.Type == r.Type && o.Name == r.Name {
					d.duplicate(blk, "reference", o.Range)
					return true
				}
				if r.Reverse != "" && o.To == r.To && o.Reverse == r.Reverse {
					d.errorAt(blk.DefRange, "Duplicate reverse field",
						"The reference at %s already adds %s.%s; pick another reverse name.", rangeString(o.Range), r.To, r.Reverse)
					return true
				}
			}
			l.References = append(l.References, r)
		}
		return true
	case "index":
		if x := d.index(blk); x != nil {
			for _, o := range l.Indexes {
				if o.Type == x.Type {
					d.duplicate(blk, "index", o.Range)
					return true
				}
			}
			l.Indexes = append(l.Indexes, x)
		}
		return true
	}
	return false
}

func labelRange(b *hcl.Block) hcl.Range {
	if len(b.LabelRanges) > 0 {
		return b.LabelRanges[0]
	}
	return b.DefRange
}

func (d *decoder) reference(b *hcl.Block) *Reference {
	typ, name, ok := strings.Cut(b.Labels[0], ".")
	if !ok || !graphqlName.MatchString(typ) || !graphqlName.MatchString(name) {
		d.errorAt(labelRange(b), "Invalid reference name",
			"%q is not a reference name: write the type and the new field as \"Type.field\", like \"Post.author\" (letters, digits and underscores, not starting with a digit).", b.Labels[0])
		return nil
	}
	r := &Reference{Type: typ, Name: name, By: "id", Range: b.DefRange}
	content, diags := b.Body.Content(referenceSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	valid := true
	if v, attr, ok := d.str(a, "field"); ok {
		if v == "" || strings.ContainsRune(v, 0) {
			d.invalid(attr, "field must name the attribute of %s that holds the id (or a list of ids) of a %s, like \"author_id\".", typ, "target")
			valid = false
		}
		r.Field = v
	}
	if v, attr, ok := d.str(a, "to"); ok {
		if !graphqlName.MatchString(v) {
			d.invalid(attr, "%q is not a type name; to names the target type, like \"Author\".", v)
			valid = false
		}
		r.To = v
	}
	if v, attr, ok := d.str(a, "by"); ok {
		if v == "" || strings.ContainsRune(v, 0) {
			d.invalid(attr, "by names the attribute of %s that the field's value is matched with; omit it for \"id\".", r.To)
			valid = false
		} else {
			r.By = v
		}
	}
	if v, attr, ok := d.str(a, "reverse"); ok {
		if !graphqlName.MatchString(v) {
			d.invalid(attr, "%q is not a field name; reverse names the list field added to %s, like \"posts\".", v, r.To)
			valid = false
		}
		r.Reverse = v
	}
	if !valid || r.Field == "" || r.To == "" {
		return nil
	}
	return r
}

func (d *decoder) index(b *hcl.Block) *Index {
	if !graphqlName.MatchString(b.Labels[0]) {
		d.errorAt(labelRange(b), "Invalid index name",
			"%q is not a type name; label the index with the GraphQL type whose fields it indexes, like index \"Post\".", b.Labels[0])
		return nil
	}
	x := &Index{Type: b.Labels[0], Range: b.DefRange}
	content, diags := b.Body.Content(indexSchema)
	d.diags = append(d.diags, diags...)
	v, attr, ok := d.strList(content.Attributes, "fields")
	if !ok {
		return nil
	}
	if len(v) == 0 {
		d.invalid(attr, "fields lists the attributes to index, like [\"slug\"]; it must not be empty.")
		return nil
	}
	for i, f := range v {
		if f == "" || strings.ContainsRune(f, 0) {
			d.errorAt(elemRange(attr.Expr, i), "Invalid value for fields", "A field name must not be empty.")
			return nil
		}
	}
	x.Fields = v
	return x
}

// typePrefix decodes a source's type_prefix attribute.
func (d *decoder) typePrefix(a hcl.Attributes, s *Source) {
	v, attr, ok := d.str(a, "type_prefix")
	if !ok {
		return
	}
	if !graphqlName.MatchString(v) {
		d.invalid(attr, "%q is not a valid type prefix: use letters, digits and underscores, starting with a letter, like \"Blog\".", v)
		return
	}
	s.TypePrefix = v
}
