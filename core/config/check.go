package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Checks that need no plugin process: which plugins exist, and whether the
// functions in config blocks (env(), file()) can be evaluated. The host
// runs them before anything starts; `validate --no-plugins` runs only
// these.

// Suggest returns the option closest to name when it is close enough to
// be a likely misspelling ("flies" for "files"), else "".
func Suggest(name string, options []string) string {
	best, bestDist := "", 0
	for _, o := range options {
		d := levenshtein(strings.ToLower(name), strings.ToLower(o))
		limit := 1 // how many edits still read as a misspelling
		switch {
		case len(o) > 8:
			limit = 3
		case len(o) > 3:
			limit = 2
		}
		if d <= limit && (best == "" || d < bestDist) {
			best, bestDist = o, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// DidYouMean is " Did you mean "x"?" for the option Suggest finds, or "".
func DidYouMean(name string, options []string) string {
	if s := Suggest(name, options); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}

// CheckPlugins reports every source whose plugin cannot be found, at its
// plugin attribute. find locates a plugin's binary and explains where it
// looked when it fails; available names the plugins that can be found,
// for a "did you mean".
func CheckPlugins(cfg *Config, find func(name string) error, available []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	missing := map[string]error{}
	for _, l := range cfg.Layers {
		for _, s := range l.Sources {
			if s.Plugin == "" {
				continue
			}
			err, seen := missing[s.Plugin]
			if !seen {
				err = find(s.Plugin)
				missing[s.Plugin] = err
			}
			if err == nil {
				continue
			}
			subject := s.PluginRange
			if subject.Filename == "" {
				subject = s.Range
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Plugin not found",
				Detail: fmt.Sprintf("Source %q of layer %q: %v.%s", s.Name, l.Name,
					strings.TrimSuffix(err.Error(), "."), DidYouMean(s.Plugin, available)),
				Subject: subject.Ptr(),
			})
		}
	}
	return diags
}

// CheckConfigFunctions evaluates, without the connector's schema, every
// attribute of the source's config block, and reports the calls of env()
// and file() that fail: an unset variable, a missing file. Other errors
// need the schema and are left to DecodeSourceConfig. No value appears in
// the diagnostics: a failed call names only its variable or file.
func CheckConfigFunctions(src *Source) hcl.Diagnostics {
	body, ok := src.ConfigBody.(*hclsyntax.Body)
	if !ok || body == nil {
		return nil
	}
	ctx := sourceEvalContext(src)
	var diags hcl.Diagnostics
	var walk func(b *hclsyntax.Body)
	walk = func(b *hclsyntax.Body) {
		names := make([]string, 0, len(b.Attributes))
		for name := range b.Attributes {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			_, ds := b.Attributes[name].Expr.Value(ctx)
			for _, d := range ds {
				if d.Severity != hcl.DiagError || d.Summary != "Error in function call" {
					continue
				}
				c := *d
				c.Expression, c.EvalContext, c.Extra = nil, nil, nil
				diags = append(diags, &c)
			}
		}
		for _, blk := range b.Blocks {
			walk(blk.Body)
		}
	}
	walk(body)
	return diags
}

// SourceDiagnostic is an error about a source's config block as a whole
// (a connector refused it), at the block, so that it reads like every
// other configuration error: "file:line:col: error: Summary; Detail".
func SourceDiagnostic(src *Source, summary, detail string) *hcl.Diagnostic {
	subject := src.ConfigRange
	if subject.Filename == "" {
		subject = src.Range
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: subject.Ptr()}
}
