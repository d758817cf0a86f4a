package engine

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/synclayer/synclayer/core/store"
)

// TestDeleteByIDRemovesTheRecordFromItsModel: a connector's delete that
// names no model (sdk Writer.DeleteByID) deletes the record with that id in
// the model of the source that holds it, through a real plugin process and
// a real run; an id no model holds is harmless.
func TestDeleteByIDRemovesTheRecordFromItsModel(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeFile("src.mode", "notes")
	env.writeConfig(testConfig(modeSource(env, "src")))
	e := env.start()
	if rs := waitRunEnd(t, e, "lay", runs(t, e, "lay")[0].ID); rs.State != store.RunCompleted {
		t.Fatalf("startup run %+v", rs.Run)
	}
	db, _ := e.Store("lay")
	state := func() string {
		var out []string
		_, err := db.Records(store.Query{}, func(rec []byte) error {
			var r struct {
				ID   string `json:"id"`
				Meta struct {
					Model     string  `json:"model"`
					DeletedAt *string `json:"deleted_at"`
				} `json:"_metadata"`
			}
			if err := json.Unmarshal(rec, &r); err != nil {
				return err
			}
			s := r.Meta.Model + "/" + r.ID
			if r.Meta.DeletedAt != nil {
				s = "-" + s
			}
			out = append(out, s)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	if got := state(); got != "Item/1 Item/2 Note/n1 Note/n2" {
		t.Fatalf("records after the first run: %s", got)
	}

	env.writeFile("src.mode", "delete_by_id")
	id, err := e.Trigger("lay", TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rs := waitRunEnd(t, e, "lay", id)
	if rs.State != store.RunCompleted {
		t.Fatalf("run deleting by id: %+v", rs.Run)
	}
	if got, want := state(), "-Item/1 -Note/n1 Item/2 Note/n2"; got != want {
		t.Fatalf("records after deleting n1, 1 and zz by id:\n got %s\nwant %s", got, want)
	}
	c := rs.Counts["src"]
	if c["Item"].Deleted != 1 || c["Note"].Deleted != 1 || len(c) != 2 {
		t.Fatalf("run counts %+v, want one Item and one Note deleted", c)
	}
}
