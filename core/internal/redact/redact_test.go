package redact

import (
	"bytes"
	"testing"
)

func TestRedactor(t *testing.T) {
	x := New()
	x.Add("", "abc", "tok-123", "tok-123-longer")
	if got := x.Replace("a tok-123 and tok-123-longer, abc"); got != "a [redacted] and [redacted], abc" {
		t.Fatalf("got %q", got)
	}
	var b bytes.Buffer
	w := x.Writer(&b)
	n, err := w.Write([]byte("line with tok-123\n"))
	if err != nil || n != 18 || b.String() != "line with [redacted]\n" {
		t.Fatalf("writer: %d %v %q", n, err, b.String())
	}
	var nilx *Redactor
	if nilx.Replace("x") != "x" {
		t.Fatal("nil redactor changed text")
	}
}
