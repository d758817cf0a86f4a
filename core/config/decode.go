package config

import (
	"fmt"
	"math/big"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// decoder evaluates the attributes of one file's blocks and collects
// diagnostics. Its helpers treat an absent attribute and an attribute whose
// value is null alike: unset, the default applies.
type decoder struct {
	ctx   *hcl.EvalContext
	diags hcl.Diagnostics
}

// errorAt records an error diagnostic with the given subject.
func (d *decoder) errorAt(rng hcl.Range, summary, detail string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(detail, args...),
		Subject:  rng.Ptr(),
	})
}

// invalid records an "Invalid value for <name>" error at the attribute's
// expression.
func (d *decoder) invalid(attr *hcl.Attribute, detail string, args ...any) {
	d.errorAt(attr.Expr.Range(), fmt.Sprintf("Invalid value for %s", attr.Name), detail, args...)
}

// value evaluates attr and converts it to want. ok is false when the
// attribute is absent, null or wrong (then a diagnostic was recorded).
// Conversion messages name types only, never the value.
func (d *decoder) value(attr *hcl.Attribute, want cty.Type) (cty.Value, bool) {
	if attr == nil {
		return cty.NilVal, false
	}
	v, diags := attr.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return cty.NilVal, false
	}
	if !v.IsWhollyKnown() {
		d.invalid(attr, "The value of %s must be known when the configuration is loaded.", attr.Name)
		return cty.NilVal, false
	}
	v, _ = v.Unmark()
	c, err := convert.Convert(v, want)
	if err != nil {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Incorrect attribute value type",
			Detail:   fmt.Sprintf("Inappropriate value for attribute %q: %s.", attr.Name, err.Error()),
			Subject:  attr.Expr.Range().Ptr(),
			Context:  hcl.RangeBetween(attr.NameRange, attr.Expr.Range()).Ptr(),
		})
		return cty.NilVal, false
	}
	return c, true
}

// str returns attrs[name] as a string; ok is false when unset or wrong.
func (d *decoder) str(attrs hcl.Attributes, name string) (string, *hcl.Attribute, bool) {
	attr := attrs[name]
	v, ok := d.value(attr, cty.String)
	if !ok {
		return "", attr, false
	}
	return v.AsString(), attr, true
}

// strList returns attrs[name] as a list of strings; null elements are an
// error. ok is false when unset or wrong.
func (d *decoder) strList(attrs hcl.Attributes, name string) ([]string, *hcl.Attribute, bool) {
	attr := attrs[name]
	v, ok := d.value(attr, cty.List(cty.String))
	if !ok {
		return nil, attr, false
	}
	out := make([]string, 0, v.LengthInt())
	for i, e := range v.AsValueSlice() {
		if e.IsNull() {
			d.errorAt(elemRange(attr.Expr, i), fmt.Sprintf("Invalid value for %s", name),
				"Element %d of %q is null; every element must be a string.", i, name)
			return nil, attr, false
		}
		out = append(out, e.AsString())
	}
	return out, attr, true
}

// boolean returns attrs[name] as a bool; ok is false when unset or wrong.
func (d *decoder) boolean(attrs hcl.Attributes, name string) (bool, bool) {
	v, ok := d.value(attrs[name], cty.Bool)
	if !ok {
		return false, false
	}
	return v.True(), true
}

// integer returns attrs[name] as a whole number that fits an int; ok is
// false when unset or wrong.
func (d *decoder) integer(attrs hcl.Attributes, name string) (int, *hcl.Attribute, bool) {
	attr := attrs[name]
	v, ok := d.value(attr, cty.Number)
	if !ok {
		return 0, attr, false
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		d.invalid(attr, "%s must be a whole number.", name)
		return 0, attr, false
	}
	i, acc := bf.Int64()
	if acc != big.Exact || int64(int(i)) != i {
		d.invalid(attr, "%s is too large.", name)
		return 0, attr, false
	}
	return int(i), attr, true
}

// duration returns attrs[name] parsed with time.ParseDuration; ok is false
// when unset or wrong.
func (d *decoder) duration(attrs hcl.Attributes, name string) (time.Duration, *hcl.Attribute, bool) {
	s, attr, ok := d.str(attrs, name)
	if !ok {
		return 0, attr, false
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.invalid(attr, "%q is not a duration; write a number and a unit (ns, us, ms, s, m, h), like \"90s\", \"30m\" or \"1h30m\".", s)
		return 0, attr, false
	}
	return dur, attr, true
}

// positiveDuration is duration that must be greater than zero.
func (d *decoder) positiveDuration(attrs hcl.Attributes, name string) (time.Duration, *hcl.Attribute, bool) {
	dur, attr, ok := d.duration(attrs, name)
	if ok && dur <= 0 {
		d.invalid(attr, "%s must be a positive duration.", name)
		return 0, attr, false
	}
	return dur, attr, ok
}

// nonNegativeDuration is duration that must not be negative.
func (d *decoder) nonNegativeDuration(attrs hcl.Attributes, name string) (time.Duration, *hcl.Attribute, bool) {
	dur, attr, ok := d.duration(attrs, name)
	if ok && dur < 0 {
		d.invalid(attr, "%s must not be negative.", name)
		return 0, attr, false
	}
	return dur, attr, ok
}

// elemRange is the range of the i-th element of a list expression written
// as a tuple constructor, else the range of the whole expression.
func elemRange(expr hcl.Expression, i int) hcl.Range {
	elems, diags := hcl.ExprList(expr)
	if !diags.HasErrors() && i >= 0 && i < len(elems) {
		return elems[i].Range()
	}
	return expr.Range()
}

// isNull reports whether attr evaluates, without error, to null.
func (d *decoder) isNull(attr *hcl.Attribute) bool {
	v, diags := attr.Expr.Value(d.ctx)
	return !diags.HasErrors() && v.IsNull()
}
