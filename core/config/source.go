package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// redacted replaces sensitive values in diagnostic text.
const redacted = "(sensitive value)"

// DecodeSourceConfig evaluates the source's config block against the schema
// its connector declares and returns it as a JSON object. Each field is an
// attribute of that type (cty.DynamicPseudoType: any value); required
// fields must be set, attributes that are not fields are errors that list
// the valid names, and a missing required attribute is reported at the
// config block (at the source block when there is none). Attributes that are
// unset or null are left out of the JSON so the connector applies its own
// defaults.
//
// Diagnostics name types, never values: the text of no diagnostic holds the
// value of a field marked Sensitive, and their Expression and EvalContext
// are cleared so that HCL's own diagnostic printer cannot show values either.
func DecodeSourceConfig(src *Source, fields []Field) ([]byte, hcl.Diagnostics) {
	ctx := sourceEvalContext(src)
	spec := hcldec.ObjectSpec{}
	for _, f := range fields {
		if f.Name == "" {
			continue
		}
		spec[f.Name] = &hcldec.AttrSpec{Name: f.Name, Type: fieldType(f), Required: f.Required}
	}

	body := src.ConfigBody
	if body == nil {
		var diags hcl.Diagnostics
		for _, f := range fields {
			if f.Required && f.Name != "" {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Missing required argument",
					Detail: fmt.Sprintf("Source %q (plugin %q) needs a config block with the argument %q.",
						src.Name, src.Plugin, f.Name),
					Subject: src.Range.Ptr(),
				})
			}
		}
		if diags.HasErrors() {
			return nil, diags
		}
		return []byte("{}"), diags
	}

	val, diags := hcldec.Decode(body, spec, ctx)
	diags = sanitizeConfigDiags(src, fields, diags, sensitiveFromBody(src, fields, true))
	if diags.HasErrors() {
		return nil, diags
	}
	if !val.IsWhollyKnown() || val.IsNull() {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid config block",
			Detail:   "The config block could not be fully evaluated.",
			Subject:  src.ConfigRange.Ptr(),
		})
	}
	set := map[string]cty.Value{}
	for name, v := range val.AsValueMap() {
		if !v.IsNull() {
			set[name], _ = v.UnmarkDeep()
		}
	}
	obj := cty.EmptyObjectVal
	if len(set) > 0 {
		obj = cty.ObjectVal(set)
	}
	out, err := ctyjson.Marshal(obj, obj.Type())
	if err != nil {
		// err comes from cty and may not be trusted to keep values out.
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid config block",
			Detail:   "The config block's value cannot be represented as JSON.",
			Subject:  src.ConfigRange.Ptr(),
		})
	}
	return out, diags
}

// fieldType is f's type, "any" when unset.
func fieldType(f Field) cty.Type {
	if f.Type == cty.NilType {
		return cty.DynamicPseudoType
	}
	return f.Type
}

// sourceEvalContext is the source's context, or a fresh one for the
// directory of the file the source is in.
func sourceEvalContext(src *Source) *hcl.EvalContext {
	if src.EvalContext != nil {
		return src.EvalContext
	}
	return evalContext(filepath.Dir(src.Range.Filename))
}

// sanitizeConfigDiags makes hcldec's diagnostics fit for users: valid names
// listed for unsupported attributes, missing ones reported at the config
// block, no expression or context attached, sensitive strings replaced.
func sanitizeConfigDiags(src *Source, fields []Field, diags hcl.Diagnostics, secrets []string) hcl.Diagnostics {
	var names []string
	for _, f := range fields {
		if f.Name != "" {
			names = append(names, f.Name)
		}
	}
	sort.Strings(names)
	valid := fmt.Sprintf("Plugin %q takes no configuration attributes.", src.Plugin)
	if len(names) > 0 {
		valid = fmt.Sprintf("Valid attributes for plugin %q: %s.", src.Plugin, strings.Join(names, ", "))
	}
	out := make(hcl.Diagnostics, 0, len(diags))
	for _, d := range diags {
		c := *d
		c.Expression = nil
		c.EvalContext = nil
		c.Extra = nil
		switch c.Summary {
		case "Unsupported argument", "Unsupported block type":
			c.Detail = strings.TrimSpace(c.Detail + " " + valid)
		case "Missing required argument":
			c.Subject = src.ConfigRange.Ptr()
			c.Context = nil
		}
		c.Summary = redact(c.Summary, secrets)
		c.Detail = redact(c.Detail, secrets)
		out = append(out, &c)
	}
	return out
}

// minRedactLen is the length from which a sensitive string is redacted
// wherever it occurs in a diagnostic; shorter ones only where they stand
// quoted, so that a secret "a" does not garble "a number is required".
const minRedactLen = 6

// redact replaces every secret in s (longest first) with a placeholder.
func redact(s string, secrets []string) string {
	for _, x := range secrets {
		switch {
		case x == "":
		case len(x) >= minRedactLen:
			s = strings.ReplaceAll(s, x, redacted)
		default:
			s = strings.ReplaceAll(s, fmt.Sprintf("%q", x), `"`+redacted+`"`)
			s = strings.ReplaceAll(s, `"`+x+`"`, `"`+redacted+`"`)
		}
	}
	return s
}

// sensitiveFromBody evaluates the sensitive attributes of the source's
// config block, ignoring errors, and returns their string values and the
// results of the functions they call. With literals, the string literals
// written in those attributes are added too (for scrubbing diagnostics:
// an expression that fails as a whole still holds them).
func sensitiveFromBody(src *Source, fields []Field, literals bool) []string {
	if src == nil || src.ConfigBody == nil {
		return nil
	}
	schema := &hcl.BodySchema{}
	for _, f := range fields {
		if f.Sensitive && f.Name != "" {
			schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: f.Name})
		}
	}
	if len(schema.Attributes) == 0 {
		return nil
	}
	content, _, _ := src.ConfigBody.PartialContent(schema)
	if content == nil {
		return nil
	}
	c := newStringCollector()
	// Function results count too: a call inside a sensitive attribute that
	// fails as a whole (env("TOKEN") used as a map key, say) would otherwise
	// leave the secret unknown and unredacted.
	ctx := recordingContext(sourceEvalContext(src), c.cty)
	for _, attr := range content.Attributes {
		v, _ := attr.Expr.Value(ctx)
		c.cty(v)
		if e, ok := attr.Expr.(hclsyntax.Expression); ok && literals {
			names := nameLiterals(e)
			hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
				if lit, ok := n.(*hclsyntax.LiteralValueExpr); ok && !names[lit] {
					c.cty(lit.Val)
				}
				return nil
			})
		}
	}
	return c.list()
}

// nameLiterals returns the literals that name what env() and file() read
// (their first argument): the name of a variable or a file is not secret,
// and an error that it is unset or missing must say which.
func nameLiterals(e hclsyntax.Expression) map[*hclsyntax.LiteralValueExpr]bool {
	names := map[*hclsyntax.LiteralValueExpr]bool{}
	hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
		call, ok := n.(*hclsyntax.FunctionCallExpr)
		if !ok || (call.Name != "env" && call.Name != "file") || len(call.Args) == 0 {
			return nil
		}
		hclsyntax.VisitAll(call.Args[0], func(n hclsyntax.Node) hcl.Diagnostics {
			if lit, ok := n.(*hclsyntax.LiteralValueExpr); ok {
				names[lit] = true
			}
			return nil
		})
		return nil
	})
	return names
}

// recordingContext is a child of ctx whose functions (ctx's and its
// parents') pass every result they return to rec.
func recordingContext(ctx *hcl.EvalContext, rec func(cty.Value)) *hcl.EvalContext {
	funcs := map[string]function.Function{}
	for c := ctx; c != nil; c = c.Parent() {
		for name, f := range c.Functions {
			if _, shadowed := funcs[name]; !shadowed {
				funcs[name] = recordingFunc(f, rec)
			}
		}
	}
	child := ctx.NewChild()
	child.Functions = funcs
	return child
}

// recordingFunc wraps f so that its results are passed to rec.
func recordingFunc(f function.Function, rec func(cty.Value)) function.Function {
	return function.New(&function.Spec{
		Description: f.Description(),
		Params:      f.Params(),
		VarParam:    f.VarParam(),
		Type:        f.ReturnTypeForValues,
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v, err := f.Call(args)
			if err == nil {
				rec(v)
			}
			return v, err
		},
	})
}

// SensitiveValues returns the non-empty string values of the fields marked
// Sensitive in a decoded config (configJSON, as DecodeSourceConfig returned
// it), looking into maps, lists and objects, so the host can redact them
// from logs and answers. The list has no duplicates, longest first. When
// configJSON is empty or not a JSON object, the values are evaluated from
// the source's config block instead.
func SensitiveValues(src *Source, fields []Field, configJSON []byte) []string {
	if out, ok := sensitiveJSON(fields, configJSON); ok {
		return out
	}
	return sensitiveFromBody(src, fields, false)
}

// stringCollector gathers distinct non-empty strings.
type stringCollector map[string]struct{}

func newStringCollector() stringCollector { return stringCollector{} }

func (c stringCollector) add(s string) {
	if s != "" {
		c[s] = struct{}{}
	}
}

// json adds the strings of a value decoded by encoding/json.
func (c stringCollector) json(v any) {
	switch v := v.(type) {
	case string:
		c.add(v)
	case []any:
		for _, e := range v {
			c.json(e)
		}
	case map[string]any:
		for _, e := range v {
			c.json(e)
		}
	}
}

// cty adds the known strings of a cty value.
func (c stringCollector) cty(v cty.Value) {
	if v == cty.NilVal {
		return
	}
	v, _ = v.UnmarkDeep()
	_ = cty.Walk(v, func(_ cty.Path, e cty.Value) (bool, error) {
		if e.IsKnown() && !e.IsNull() && e.Type() == cty.String {
			c.add(e.AsString())
		}
		return true, nil
	})
}

// list is the strings, longest first, then in lexical order.
func (c stringCollector) list() []string {
	if len(c) == 0 {
		return nil
	}
	out := make([]string, 0, len(c))
	for s := range c {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return out[i] < out[j]
	})
	return out
}

// Secrets returns the service's non-empty sensitive settings (admin token,
// encryption key, the store's dsn and its password), for redaction from
// logs.
func (s Service) Secrets() []string {
	var out []string
	for _, v := range []string{s.AdminToken, s.EncryptionKey, s.Store.DSN, dsnPassword(s.Store.DSN)} {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Secrets returns the notify block's non-empty sensitive settings, for
// redaction from logs: the signing secret, and for format "slack" the URL
// too, since a Slack incoming-webhook URL is itself a credential.
func (n Notify) Secrets() []string {
	var out []string
	if n.Secret != "" {
		out = append(out, n.Secret)
	}
	if n.Format == "slack" && n.URL != "" {
		out = append(out, n.URL)
	}
	return out
}

// dsnPassword is the password in a URL-form dsn ("" if none or not a URL):
// a driver's error may quote it alone.
func dsnPassword(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}
