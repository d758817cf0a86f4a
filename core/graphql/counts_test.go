package graphql

import (
	"testing"
)

// TestModelCounts: live and deleted records per (source, model), for the
// revision readers see and for an older one, kept right across revisions.
func TestModelCounts(t *testing.T) {
	h := newHarness(t, testLayerHCL, Options{})
	if rev, counts, err := h.svc.ModelCounts(h.layer, 0); err != nil || rev != 0 || len(counts) != 0 {
		t.Fatalf("before any revision: %d %v %v", rev, counts, err)
	}
	r1 := h.publish(map[string]map[string]string{
		"blog":   {"Post/p1": `{"title":"a"}`, "Post/p2": `{"title":"b"}`, "Post/p3": `{"title":"c"}`},
		"people": {"Author/a1": `{"name":"Ada"}`},
	})
	r2 := h.publish(map[string]map[string]string{"blog": {"Post/p2": "", "Post/p4": `{"title":"d"}`, "Post/p5": `{"title":"e"}`}})
	for _, tc := range []struct {
		rev  int64
		want []ModelCount
	}{
		{0, []ModelCount{{"blog", "Post", 4, 1}, {"people", "Author", 1, 0}}},
		{r1, []ModelCount{{"blog", "Post", 3, 0}, {"people", "Author", 1, 0}}},
		{r2, []ModelCount{{"blog", "Post", 4, 1}, {"people", "Author", 1, 0}}},
	} {
		rev, counts, err := h.svc.ModelCounts(h.layer, tc.rev)
		if err != nil {
			t.Fatal(err)
		}
		if tc.rev != 0 && rev != tc.rev || tc.rev == 0 && rev != r2 {
			t.Errorf("revision %d read as %d", tc.rev, rev)
		}
		if len(counts) != len(tc.want) {
			t.Fatalf("revision %d: %+v, want %+v", tc.rev, counts, tc.want)
		}
		for i := range counts {
			if counts[i] != tc.want[i] {
				t.Errorf("revision %d: %+v, want %+v", tc.rev, counts, tc.want)
			}
		}
	}
}
