// Package redact keeps secrets out of text: it replaces every registered
// secret value with a marker, in strings and in everything written through
// its Writer (the host's log output).
package redact

import (
	"bytes"
	"io"
	"sort"
	"strings"
	"sync"
)

// Marker replaces a secret.
const Marker = "[redacted]"

// minLen is the shortest value treated as a secret: shorter ones would
// mangle ordinary text and are no secret worth the name.
const minLen = 4

// Redactor holds a set of secrets. It is safe for concurrent use.
type Redactor struct {
	mu      sync.RWMutex
	secrets map[string]struct{}
	r       *strings.Replacer
}

// New returns an empty Redactor.
func New() *Redactor { return &Redactor{secrets: map[string]struct{}{}, r: strings.NewReplacer()} }

// Add registers secrets; empty and very short values are ignored.
func (x *Redactor) Add(secrets ...string) {
	if x == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	changed := false
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		if len(s) < minLen {
			continue
		}
		if _, ok := x.secrets[s]; !ok {
			x.secrets[s] = struct{}{}
			changed = true
		}
	}
	if !changed {
		return
	}
	all := make([]string, 0, len(x.secrets))
	for s := range x.secrets {
		all = append(all, s)
	}
	// Longest first, so a secret that contains another is replaced whole.
	sort.Slice(all, func(i, j int) bool { return len(all[i]) > len(all[j]) })
	pairs := make([]string, 0, 2*len(all))
	for _, s := range all {
		pairs = append(pairs, s, Marker)
	}
	x.r = strings.NewReplacer(pairs...)
}

// Replace returns s with every secret replaced by the marker.
func (x *Redactor) Replace(s string) string {
	if x == nil {
		return s
	}
	x.mu.RLock()
	r := x.r
	x.mu.RUnlock()
	return r.Replace(s)
}

// Writer returns an io.Writer that redacts each write before passing it to
// w. Log lines arrive whole in one write each, so secrets do not straddle
// writes.
func (x *Redactor) Writer(w io.Writer) io.Writer { return &writer{x: x, w: w} }

type writer struct {
	x *Redactor
	w io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	s := w.x.Replace(string(p))
	if len(s) == len(p) && bytes.Equal([]byte(s), p) {
		_, err := w.w.Write(p)
		return len(p), err
	}
	_, err := io.WriteString(w.w, s)
	return len(p), err
}
