package graphql

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/graphql-go/graphql/language/ast"
)

// Limits of one request (SPEC §14).
const (
	// MaxQueryBytes bounds the query text.
	MaxQueryBytes = 64 << 10
	// MaxDepth bounds how deep selections nest.
	MaxDepth = 12
	// DefaultMaxCost is the estimated-cost ceiling: every field costs 1,
	// and a list's selections cost once per node it may return (its limit,
	// else 100; a list of references counts 10).
	DefaultMaxCost = 100000
)

// listFields names the fields that return lists, for the cost estimate.
type listFields struct {
	paged map[string]bool // fields with a limit argument (default 100)
	refs  map[string]bool // forward references holding lists
}

const refListEstimate = 10

// analysis is the static estimate of an operation.
type analysis struct {
	doc       *ast.Document
	op        *ast.OperationDefinition
	fragments map[string]*ast.FragmentDefinition
	vars      map[string]any
	lists     listFields
	depthMemo map[string]int
	costMemo  map[string]float64
	introMemo map[string]bool
	err       *codedError
}

// countFields counts the field selections written in a document, before
// validation: it bounds the work validation does.
func countFields(doc *ast.Document) int {
	n := 0
	var walk func(ss *ast.SelectionSet)
	walk = func(ss *ast.SelectionSet) {
		if ss == nil {
			return
		}
		for _, s := range ss.Selections {
			switch x := s.(type) {
			case *ast.Field:
				n++
				walk(x.SelectionSet)
			case *ast.InlineFragment:
				walk(x.SelectionSet)
			}
		}
	}
	for _, d := range doc.Definitions {
		switch x := d.(type) {
		case *ast.OperationDefinition:
			walk(x.SelectionSet)
		case *ast.FragmentDefinition:
			walk(x.SelectionSet)
		}
	}
	return n
}

// analyze estimates a validated document's depth and cost and checks list
// limits given as literals or variables.
func analyze(doc *ast.Document, opName string, vars map[string]any, lists listFields, maxCost int) *codedError {
	a := &analysis{doc: doc, fragments: map[string]*ast.FragmentDefinition{}, vars: vars, lists: lists,
		depthMemo: map[string]int{}, costMemo: map[string]float64{}, introMemo: map[string]bool{}}
	for _, d := range doc.Definitions {
		switch x := d.(type) {
		case *ast.OperationDefinition:
			if (opName == "" && a.op == nil) || (x.Name != nil && x.Name.Value == opName) {
				a.op = x
			}
		case *ast.FragmentDefinition:
			a.fragments[x.Name.Value] = x
		}
	}
	if a.op == nil {
		return nil // graphql-go reports the missing operation
	}
	if d := a.depth(a.op.SelectionSet, map[string]bool{}); d > MaxDepth {
		return errorf(CodeDepthLimit, "the query nests %d levels deep; at most %d are allowed", d, MaxDepth)
	}
	if err := a.introspection(a.op.SelectionSet, false, 0, 0, map[string]bool{}); err != nil {
		return err
	}
	cost := a.cost(a.op.SelectionSet, map[string]bool{})
	if a.err != nil {
		return a.err
	}
	if cost > float64(maxCost) {
		return errorf(CodeCostLimit, "the query's estimated cost is %.0f, above the ceiling of %d: ask for smaller pages (limit) or fewer nested lists", cost, maxCost)
	}
	return nil
}

func (a *analysis) depth(ss *ast.SelectionSet, visiting map[string]bool) int {
	if ss == nil {
		return 0
	}
	max := 0
	for _, s := range ss.Selections {
		d := 0
		switch x := s.(type) {
		case *ast.Field:
			if x.Name.Value == "__schema" || x.Name.Value == "__type" {
				d = 1 // introspection has its own bounds (see introspection)
			} else {
				d = 1 + a.depth(x.SelectionSet, visiting)
			}
		case *ast.InlineFragment:
			d = a.depth(x.SelectionSet, visiting)
		case *ast.FragmentSpread:
			name := x.Name.Value
			if v, ok := a.depthMemo[name]; ok {
				d = v
			} else if f := a.fragments[name]; f != nil && !visiting[name] {
				visiting[name] = true
				d = a.depth(f.SelectionSet, visiting)
				delete(visiting, name)
				a.depthMemo[name] = d
			}
		}
		if d > max {
			max = d
		}
	}
	return max
}

// Introspection bounds: the depth of an introspection selection, and how
// often the list fields that make cycles (fields, inputFields, interfaces,
// possibleTypes) nest in it, as graphql-js's MaxIntrospectionDepthRule
// does. graphql-js's own introspection query nests 15 deep and those
// lists 1 deep.
const (
	maxIntrospectionDepth = 20
	maxIntrospectionLists = 3
)

var introspectionLists = map[string]bool{"fields": true, "inputFields": true, "interfaces": true, "possibleTypes": true}

func (a *analysis) introspection(ss *ast.SelectionSet, in bool, depth, lists int, visiting map[string]bool) *codedError {
	if ss == nil {
		return nil
	}
	for _, s := range ss.Selections {
		var err *codedError
		switch x := s.(type) {
		case *ast.Field:
			name := x.Name.Value
			inside := in || name == "__schema" || name == "__type"
			d, l := depth, lists
			if inside {
				d++
				if introspectionLists[name] {
					l++
				}
				if d > maxIntrospectionDepth {
					return errorf(CodeDepthLimit, "the introspection query nests more than %d levels deep", maxIntrospectionDepth)
				}
				if l > maxIntrospectionLists {
					return errorf(CodeDepthLimit, "the introspection query nests fields, inputFields, interfaces or possibleTypes more than %d times", maxIntrospectionLists)
				}
			}
			err = a.introspection(x.SelectionSet, inside, d, l, visiting)
		case *ast.InlineFragment:
			err = a.introspection(x.SelectionSet, in, depth, lists, visiting)
		case *ast.FragmentSpread:
			name := x.Name.Value
			state := fmt.Sprintf("%s\x00%t\x00%d\x00%d", name, in, depth, lists)
			if f := a.fragments[name]; f != nil && !visiting[name] && !a.introMemo[state] {
				visiting[name] = true
				err = a.introspection(f.SelectionSet, in, depth, lists, visiting)
				delete(visiting, name)
				a.introMemo[state] = true
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *analysis) cost(ss *ast.SelectionSet, visiting map[string]bool) float64 {
	if ss == nil {
		return 0
	}
	total := 0.0
	for _, s := range ss.Selections {
		switch x := s.(type) {
		case *ast.Field:
			mult := 1.0
			name := x.Name.Value
			if a.lists.paged[name] {
				mult = float64(a.limitOf(x))
			} else if a.lists.refs[name] {
				mult = refListEstimate
			}
			total += 1 + mult*a.cost(x.SelectionSet, visiting)
		case *ast.InlineFragment:
			total += a.cost(x.SelectionSet, visiting)
		case *ast.FragmentSpread:
			name := x.Name.Value
			if v, ok := a.costMemo[name]; ok {
				total += v
			} else if f := a.fragments[name]; f != nil && !visiting[name] {
				visiting[name] = true
				v := a.cost(f.SelectionSet, visiting)
				delete(visiting, name)
				a.costMemo[name] = v
				total += v
			}
		}
		if total > math.MaxFloat64/4 {
			return total
		}
	}
	return total
}

// limitOf is a list field's limit argument (literal or variable), else the
// default; a limit above MaxNodes is reported.
func (a *analysis) limitOf(f *ast.Field) int {
	for _, arg := range f.Arguments {
		if arg.Name.Value != "limit" {
			continue
		}
		var v any
		switch x := arg.Value.(type) {
		case *ast.IntValue:
			v = x.Value
		case *ast.Variable:
			var ok bool
			if v, ok = a.vars[x.Name.Value]; !ok {
				v = a.variableDefault(x.Name.Value)
			}
		}
		n, ok := toInt(v)
		if !ok {
			return defaultLimit
		}
		if n > MaxNodes {
			if a.err == nil {
				a.err = errorf(CodeNodeLimit, "limit %d on %s is above %d: a list returns at most %d nodes; page with after", n, f.Name.Value, MaxNodes, MaxNodes)
			}
			return MaxNodes
		}
		if n < 0 {
			return 0
		}
		return n
	}
	return defaultLimit
}

func (a *analysis) variableDefault(name string) any {
	for _, vd := range a.op.VariableDefinitions {
		if vd.Variable != nil && vd.Variable.Name.Value == name {
			if iv, ok := vd.DefaultValue.(*ast.IntValue); ok {
				return iv.Value
			}
		}
	}
	return nil
}

func toInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case float64:
		if x > math.MaxInt32 {
			return math.MaxInt32, true
		}
		return int(x), x == math.Trunc(x)
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			return 0, false
		}
		return int(min(n, math.MaxInt32)), true
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, false
		}
		return int(min(n, math.MaxInt32)), true
	}
	return 0, false
}
