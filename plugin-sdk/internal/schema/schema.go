// Package schema derives a connector's config schema from its Go config
// struct and decodes a JSON config object into that struct. The struct tags
// are the single source of truth:
//
//	type Config struct {
//		Dir     string `config:"dir,required" doc:"Folder to read."`
//		Token   string `config:"token,sensitive"`
//		IDField string `config:"id_field" doc:"Record id attribute."`
//	}
//
// Only fields with a config tag are part of the config (`config:"-"` skips
// one explicitly). Nested structs use config tags too; a nested struct type
// without any config tag is decoded with encoding/json instead.
package schema

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"
)

// Field is one top-level config attribute.
type Field struct {
	Name      string
	Type      cty.Type
	Required  bool
	Sensitive bool
	Doc       string
}

// Fields derives the top-level config attributes from config, which is nil
// (no config), a struct or a pointer to a struct (only its type is used, so
// a nil pointer of the right type works).
func Fields(config any) ([]Field, error) {
	if config == nil {
		return nil, nil
	}
	t := reflect.TypeOf(config)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("config schema: Description.Config must be a pointer to a struct, not %s", reflect.TypeOf(config))
	}
	info, err := structOf(t)
	if err != nil {
		return nil, err
	}
	out := make([]Field, 0, len(info.fields))
	for _, f := range info.fields {
		out = append(out, Field{
			Name:      f.name,
			Type:      CtyType(f.typ),
			Required:  f.required,
			Sensitive: f.sensitive,
			Doc:       f.doc,
		})
	}
	return out, nil
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// CtyType maps a Go type to the cty type constraint the host checks the
// attribute against: strings (and time.Duration, and types that decode from
// text) are String, bool is Bool, ints and floats are Number, slices and
// maps (string keys) of those are list and map types, and everything else
// (structs, maps of structs, interfaces) is DynamicPseudoType.
func CtyType(t reflect.Type) cty.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if p, ok := primitive(t); ok {
		return p
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return cty.DynamicPseudoType // []byte is base64 in JSON
		}
		if p, ok := primitive(t.Elem()); ok {
			return cty.List(p)
		}
	case reflect.Map:
		if t.Key().Kind() == reflect.String {
			if p, ok := primitive(t.Elem()); ok {
				return cty.Map(p)
			}
		}
	}
	return cty.DynamicPseudoType
}

func primitive(t reflect.Type) (cty.Type, bool) {
	if t == durationType {
		return cty.String, true
	}
	switch t.Kind() {
	case reflect.String:
		return cty.String, true
	case reflect.Bool:
		return cty.Bool, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return cty.Number, true
	case reflect.Struct:
		if reflect.PointerTo(t).Implements(textUnmarshaler) {
			return cty.String, true // time.Time and friends
		}
	}
	return cty.NilType, false
}

type fieldInfo struct {
	name      string
	index     []int
	typ       reflect.Type
	required  bool
	sensitive bool
	doc       string
}

type structInfo struct {
	fields []fieldInfo // in declaration order
	byName map[string]int
	tagged bool // at least one config tag
}

var cache sync.Map // reflect.Type -> *structInfo or error

func structOf(t reflect.Type) (*structInfo, error) {
	if v, ok := cache.Load(t); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*structInfo), nil
	}
	info, err := buildStruct(t)
	if err != nil {
		cache.Store(t, err)
		return nil, err
	}
	cache.Store(t, info)
	return info, nil
}

func buildStruct(t reflect.Type) (*structInfo, error) {
	info := &structInfo{byName: map[string]int{}}
	var walk func(t reflect.Type, index []int) error
	walk = func(t reflect.Type, index []int) error {
		for i := range t.NumField() {
			sf := t.Field(i)
			idx := append(append([]int(nil), index...), i)
			tag, hasTag := sf.Tag.Lookup("config")
			if !hasTag {
				if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
					if err := walk(sf.Type, idx); err != nil {
						return err
					}
				}
				continue
			}
			if tag == "-" {
				continue
			}
			info.tagged = true
			if !sf.IsExported() {
				return fmt.Errorf("config schema: %s.%s has a config tag but is not exported", t, sf.Name)
			}
			parts := strings.Split(tag, ",")
			f := fieldInfo{name: parts[0], index: idx, typ: sf.Type, doc: sf.Tag.Get("doc")}
			if f.name == "" {
				return fmt.Errorf("config schema: %s.%s: the config tag needs a name, as in `config:\"name\"`", t, sf.Name)
			}
			for _, opt := range parts[1:] {
				switch strings.TrimSpace(opt) {
				case "required":
					f.required = true
				case "sensitive":
					f.sensitive = true
				default:
					return fmt.Errorf("config schema: %s.%s: unknown config tag option %q (known: required, sensitive)", t, sf.Name, opt)
				}
			}
			if _, dup := info.byName[f.name]; dup {
				return fmt.Errorf("config schema: %s: two fields are named %q", t, f.name)
			}
			info.byName[f.name] = len(info.fields)
			info.fields = append(info.fields, f)
		}
		return nil
	}
	if err := walk(t, nil); err != nil {
		return nil, err
	}
	return info, nil
}

// Decode decodes the JSON object data into v, a non-nil pointer to a config
// struct. Attributes absent from data, or null, leave their field as it was,
// so defaults set before Decode stay. It fails on unknown attributes, on a
// missing required attribute and on a value of the wrong type, naming the
// attribute. When v has a method Validate() error, Decode calls it last.
func Decode(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("DecodeConfig needs a non-nil pointer to a struct, not %T", v)
	}
	if rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("DecodeConfig needs a pointer to a struct, not %T", v)
	}
	raw := json.RawMessage(trimSpace(data))
	if len(raw) == 0 || isNull(raw) {
		raw = json.RawMessage("{}") // no config: still check required attributes
	}
	if err := (decoder{}).value(raw, rv.Elem(), ""); err != nil {
		return err
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("invalid config: %w", err)
		}
	}
	return nil
}

type decoder struct{}

func (d decoder) errorf(path, format string, args ...any) error {
	if path == "" {
		return fmt.Errorf("invalid config: "+format, args...)
	}
	return fmt.Errorf("invalid config: attribute %q: "+format, append([]any{path}, args...)...)
}

func (d decoder) value(raw json.RawMessage, v reflect.Value, path string) error {
	raw = trimSpace(raw)
	if isNull(raw) {
		return nil
	}
	t := v.Type()
	if t == durationType {
		if raw[0] != '"' {
			return d.errorf(path, "expected a duration string such as \"90s\" or \"1h\", got %s", jsonKind(raw))
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return d.errorf(path, "%v", err)
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			return d.errorf(path, "expected a duration such as \"90s\" or \"1h\": %v", err)
		}
		v.SetInt(int64(dur))
		return nil
	}
	if t.Kind() != reflect.Pointer && (reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)) {
		if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
			return d.errorf(path, "%v", err)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return d.value(raw, v.Elem(), path)
	case reflect.Struct:
		info, err := structOf(t)
		if err != nil {
			return err
		}
		if !info.tagged {
			if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
				return d.errorf(path, "%v", err)
			}
			return nil
		}
		return d.object(raw, v, info, path)
	case reflect.Map:
		if raw[0] != '{' {
			return d.errorf(path, "expected an object, got %s", jsonKind(raw))
		}
		if t.Key().Kind() != reflect.String {
			if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
				return d.errorf(path, "%v", err)
			}
			return nil
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return d.errorf(path, "%v", err)
		}
		if v.IsNil() {
			v.Set(reflect.MakeMapWithSize(t, len(obj)))
		}
		for _, k := range sortedKeys(obj) {
			elem := reflect.New(t.Elem()).Elem()
			if old := v.MapIndex(reflect.ValueOf(k).Convert(t.Key())); old.IsValid() {
				elem.Set(old)
			}
			if err := d.value(obj[k], elem, join(path, k)); err != nil {
				return err
			}
			v.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), elem)
		}
		return nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			break // []byte: base64 string, as encoding/json does
		}
		if raw[0] != '[' {
			return d.errorf(path, "expected a list, got %s", jsonKind(raw))
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(raw, &arr); err != nil {
			return d.errorf(path, "%v", err)
		}
		s := reflect.MakeSlice(t, len(arr), len(arr))
		for i, item := range arr {
			if err := d.value(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.String:
		if raw[0] != '"' {
			return d.errorf(path, "expected a string, got %s", jsonKind(raw))
		}
	case reflect.Bool:
		if raw[0] != 't' && raw[0] != 'f' {
			return d.errorf(path, "expected a bool, got %s", jsonKind(raw))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if jsonKind(raw) != "a number" {
			return d.errorf(path, "expected a whole number, got %s", jsonKind(raw))
		}
		if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
			return d.errorf(path, "expected a whole number that fits %s, got %s", t, raw)
		}
		return nil
	case reflect.Float32, reflect.Float64:
		if jsonKind(raw) != "a number" {
			return d.errorf(path, "expected a number, got %s", jsonKind(raw))
		}
	}
	if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
		return d.errorf(path, "%v", err)
	}
	return nil
}

func (d decoder) object(raw json.RawMessage, v reflect.Value, info *structInfo, path string) error {
	if raw[0] != '{' {
		return d.errorf(path, "expected an object, got %s", jsonKind(raw))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return d.errorf(path, "%v", err)
	}
	for _, k := range sortedKeys(obj) {
		i, ok := info.byName[k]
		if !ok {
			known := make([]string, 0, len(info.fields))
			for _, f := range info.fields {
				known = append(known, f.name)
			}
			return d.errorf(join(path, k), "unknown attribute; known attributes: %s", strings.Join(known, ", "))
		}
		f := info.fields[i]
		if err := d.value(obj[k], v.FieldByIndex(f.index), join(path, k)); err != nil {
			return err
		}
	}
	for _, f := range info.fields {
		if !f.required {
			continue
		}
		if r, ok := obj[f.name]; !ok || isNull(trimSpace(r)) {
			return d.errorf(join(path, f.name), "required but not set")
		}
	}
	return nil
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func isNull(b []byte) bool { return string(b) == "null" }

func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a bool"
	case 'n':
		return "null"
	}
	return "a number"
}
