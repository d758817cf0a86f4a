package schema

import (
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
)

func TestFieldsErrors(t *testing.T) {
	cases := []struct {
		cfg  any
		want string
	}{
		{&struct {
			A string `config:"a,requird"`
		}{}, `unknown config tag option "requird"`},
		{&struct {
			A string `config:"a"`
			B string `config:"a"`
		}{}, `two fields are named "a"`},
		{&struct {
			A string `config:",required"`
		}{}, `the config tag needs a name`},
		{&struct {
			a string `config:"a"` //nolint:unused
		}{}, `has a config tag but is not exported`},
		{new(int), `must be a pointer to a struct`},
	}
	for _, tc := range cases {
		_, err := Fields(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

type Embedded struct {
	Inner string `config:"inner"`
}

func TestFieldsEmbeddedAndTypes(t *testing.T) {
	type cfg struct {
		Embedded
		At    time.Time      `config:"at"`
		Ints  []int          `config:"ints"`
		Raw   []byte         `config:"raw"`
		Nums  map[string]int `config:"nums"`
		Deep  [][]string     `config:"deep"`
		Every *time.Duration `config:"every"`
	}
	fs, err := Fields(cfg{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		typ  cty.Type
	}{
		{"inner", cty.String}, {"at", cty.String}, {"ints", cty.List(cty.Number)},
		{"raw", cty.DynamicPseudoType}, {"nums", cty.Map(cty.Number)},
		{"deep", cty.DynamicPseudoType}, {"every", cty.String},
	}
	if len(fs) != len(want) {
		t.Fatalf("%+v", fs)
	}
	for i, w := range want {
		if fs[i].Name != w.name || !fs[i].Type.Equals(w.typ) {
			t.Errorf("field %d: %s %#v, want %s %#v", i, fs[i].Name, fs[i].Type, w.name, w.typ)
		}
	}
	if fs, err := Fields(nil); err != nil || fs != nil {
		t.Errorf("nil config: %v %v", fs, err)
	}
}

func TestDecodeEmbeddedAndUntagged(t *testing.T) {
	type plain struct {
		X int `json:"x"`
	}
	type cfg struct {
		Embedded
		At    time.Time      `config:"at"`
		Plain plain          `config:"plain"`
		Every *time.Duration `config:"every"`
	}
	var c cfg
	err := Decode([]byte(`{"inner":"i","at":"2026-01-02T03:04:05Z","plain":{"x":3},"every":"2m"}`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Inner != "i" || c.At.Year() != 2026 || c.Plain.X != 3 || *c.Every != 2*time.Minute {
		t.Fatalf("%+v", c)
	}
	if err := Decode(nil, &c); err != nil {
		t.Fatalf("empty config: %v", err)
	}
	if err := Decode([]byte(`[]`), &c); err == nil || !strings.Contains(err.Error(), "expected an object, got a list") {
		t.Fatalf("got %v", err)
	}
	if err := Decode([]byte(`{}`), c); err == nil || !strings.Contains(err.Error(), "non-nil pointer") {
		t.Fatalf("got %v", err)
	}
}
