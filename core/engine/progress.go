package engine

import (
	"sort"
	"sync"
)

// Progress is how far a running sync is on a model, as its connector last
// reported it (sdk Writer.Progress): Done records of Total (0: unknown).
// Model is empty for a report on the sync as a whole.
type Progress struct {
	Source string `json:"source"`
	Sync   string `json:"sync"`
	Model  string `json:"model,omitempty"`
	Done   int64  `json:"done"`
	Total  int64  `json:"total,omitempty"`
}

// progressTable holds a running run's last progress report per source,
// sync and model.
type progressTable struct {
	mu sync.Mutex
	m  map[[3]string]Progress
}

func (t *progressTable) set(source, syncName, model string, done, total int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[[3]string]Progress{}
	}
	t.m[[3]string{source, syncName, model}] = Progress{Source: source, Sync: syncName, Model: model, Done: done, Total: total}
}

// list returns the reports in source, sync, model order.
func (t *progressTable) list() []Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Progress, 0, len(t.m))
	for _, p := range t.m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Sync != b.Sync {
			return a.Sync < b.Sync
		}
		return a.Model < b.Model
	})
	return out
}
