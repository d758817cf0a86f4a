package engine

import (
	"fmt"
	"testing"

	"github.com/synclayer/synclayer/core/store"
)

// TestRunShowsConnectorProgress: while a run runs, Engine.Run (and so the
// API's run answer) carries what the connector last reported; the
// finished run does not.
func TestRunShowsConnectorProgress(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(testConfig([2]string{"src", fmt.Sprintf("mode = \"block\"\ngate = %q\nrecords = 5", env.path("gate"))}))
	e := env.start()
	id := runs(t, e, "lay")[0].ID
	want := Progress{Source: "src", Sync: "items", Model: "Item", Done: 0, Total: 5}
	waitUntil(t, "the connector's progress report", func() bool {
		rs, err := e.Run("lay", id)
		if err != nil {
			t.Fatal(err)
		}
		return len(rs.Progress) == 1 && rs.Progress[0] == want
	})
	env.writeFile("gate", "")
	rs := waitRunEnd(t, e, "lay", id)
	if rs.State != store.RunCompleted || rs.Progress != nil {
		t.Fatalf("finished run %+v, progress %v", rs.Run, rs.Progress)
	}
}

func TestProgressTable(t *testing.T) {
	var pt progressTable
	if l := pt.list(); len(l) != 0 {
		t.Fatalf("empty table: %v", l)
	}
	pt.set("b", "s", "M", 1, 10)
	pt.set("a", "s", "", 2, 0)
	pt.set("b", "s", "M", 3, 10) // replaces
	got := fmt.Sprint(pt.list())
	if want := "[{a s  2 0} {b s M 3 10}]"; got != want {
		t.Fatalf("list %s, want %s", got, want)
	}
}
