package notify

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/synclayer/synclayer/core/store"
)

// event is what a Slack message needs of an outbound event's JSON body.
type event struct {
	Type       string          `json:"type"`
	ID         string          `json:"id"`
	Layer      string          `json:"layer"`
	Source     *string         `json:"source"`
	Sync       *string         `json:"sync"`
	Connection *string         `json:"connection"`
	Run        string          `json:"run"`
	Trigger    string          `json:"trigger"`
	SyncType   string          `json:"syncType"`
	Revision   int64           `json:"revision"`
	StartedAt  string          `json:"startedAt"`
	FinishedAt string          `json:"finishedAt"`
	Results    json.RawMessage `json:"results"`
	Error      string          `json:"error"`
}

type counts struct {
	Added   int64 `json:"added"`
	Updated int64 `json:"updated"`
	Deleted int64 `json:"deleted"`
}

// Slack limits: a section's text, and how many result lines to list.
const (
	slackTextMax  = 2900
	slackMaxLines = 20
)

// codeBlock is an error as a Slack code block, clipped to fit.
func codeBlock(msg string) string {
	return "```" + strings.ReplaceAll(esc(clip(msg, slackTextMax-6)), "```", "`\u200b``") + "```"
}

// slackMessage renders an event as a Slack incoming-webhook message: a
// plain "text" (what notifications show) and "blocks" for the channel.
func slackMessage(d *store.Delivery) []byte {
	var ev event
	if err := json.Unmarshal(d.Body, &ev); err != nil || ev.Type == "" {
		ev = event{Type: d.Type, ID: d.EventID}
	}
	scope := "layer " + ev.Layer
	if ev.Source != nil {
		scope += ", source " + *ev.Source
		if ev.Connection != nil {
			scope += ", connection " + *ev.Connection
		}
		if ev.Sync != nil {
			scope += ", sync " + *ev.Sync
		}
	}
	mscope := "layer " + code(ev.Layer)
	if ev.Source != nil {
		s := *ev.Source
		if ev.Connection != nil {
			s += " (" + *ev.Connection + ")"
		}
		if ev.Sync != nil {
			s += "/" + *ev.Sync
		}
		mscope += " · " + code(s)
	}
	var text, head string
	var fields []string
	var detail string
	runFields := func() {
		if ev.Run != "" {
			fields = append(fields, "*Run*\n"+code(ev.Run))
		}
		if ev.Trigger != "" {
			t := ev.Trigger
			if ev.SyncType != "" {
				t += " (" + strings.ToLower(ev.SyncType) + ")"
			}
			fields = append(fields, "*Trigger*\n"+esc(t))
		}
	}
	switch ev.Type {
	case "sync.failed":
		text = fmt.Sprintf("Sync failed in %s: %s", scope, oneLine(ev.Error))
		head = ":x: *Sync failed* in " + mscope
		runFields()
		if ev.StartedAt != "" {
			fields = append(fields, "*Started*\n"+esc(ev.StartedAt))
		}
		if ev.Error != "" {
			detail = codeBlock(ev.Error)
		}
	case "sync.completed":
		total, lines := summarize(ev.Results)
		text = fmt.Sprintf("Sync completed in %s: revision %d, %s", scope, ev.Revision, total)
		head = fmt.Sprintf(":white_check_mark: *Sync completed* in %s: revision %d", mscope, ev.Revision)
		runFields()
		fields = append(fields, "*Changes*\n"+esc(total))
		if len(lines) > 0 {
			detail = esc(clip(strings.Join(lines, "\n"), slackTextMax))
		}
	case "sync.started":
		text = "Sync started in " + scope
		head = ":arrows_counterclockwise: *Sync started* in " + mscope
		runFields()
	case "revision.pinned":
		text = fmt.Sprintf("Revision %d pinned in layer %s: readers see it until it is unpinned", ev.Revision, ev.Layer)
		head = fmt.Sprintf(":pushpin: *Revision %d pinned* in layer %s", ev.Revision, code(ev.Layer))
	case "revision.unpinned":
		text = fmt.Sprintf("Revision %d unpinned in layer %s: readers see the newest revision", ev.Revision, ev.Layer)
		head = fmt.Sprintf(":arrow_forward: *Revision %d unpinned* in layer %s", ev.Revision, code(ev.Layer))
	case "connection.created":
		text = "Connection created in " + scope
		head = ":link: *Connection created* in " + mscope
	case "connection.deleted":
		text = fmt.Sprintf("Connection deleted in %s: its records deleted in revision %d", scope, ev.Revision)
		head = fmt.Sprintf(":wastebasket: *Connection deleted* in %s: revision %d", mscope, ev.Revision)
	case "connection.needs_attention":
		text = fmt.Sprintf("Connection needs attention in %s: %s", scope, oneLine(ev.Error))
		head = ":warning: *Connection needs attention* in " + mscope
		runFields()
		if ev.Error != "" {
			detail = codeBlock(ev.Error)
		}
	case "connection.recovered":
		text = "Connection recovered in " + scope
		head = ":white_check_mark: *Connection recovered* in " + mscope
		runFields()
	default:
		text = "synclayer event " + ev.Type
		head = "synclayer event " + code(ev.Type)
	}
	blocks := []any{section(head)}
	if len(fields) > 0 {
		fs := make([]map[string]string, len(fields))
		for i, f := range fields {
			fs[i] = map[string]string{"type": "mrkdwn", "text": f}
		}
		blocks = append(blocks, map[string]any{"type": "section", "fields": fs})
	}
	if detail != "" {
		blocks = append(blocks, section(detail))
	}
	blocks = append(blocks, map[string]any{"type": "context", "elements": []map[string]string{
		{"type": "mrkdwn", "text": "synclayer · " + esc(ev.Type) + " · " + code(ev.ID)},
	}})
	b, _ := json.Marshal(map[string]any{"text": esc(clip(text, slackTextMax)), "blocks": blocks})
	return b
}

func section(text string) map[string]any {
	return map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": text}}
}

// summarize totals a sync.completed's results (per model, or per source
// and model) and lists them, one line per source and model.
func summarize(raw json.RawMessage) (string, []string) {
	var perModel map[string]counts
	var perSource map[string]map[string]counts
	type line struct {
		name string
		c    counts
	}
	var all []line
	// Counts are objects, not numbers, so results per model never decode
	// as results per source.
	if json.Unmarshal(raw, &perSource) == nil {
		for src, m := range perSource {
			for model, c := range m {
				all = append(all, line{src + "/" + model, c})
			}
		}
	} else if json.Unmarshal(raw, &perModel) == nil {
		for model, c := range perModel {
			all = append(all, line{model, c})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	var t counts
	var lines []string
	for _, x := range all {
		t.Added, t.Updated, t.Deleted = t.Added+x.c.Added, t.Updated+x.c.Updated, t.Deleted+x.c.Deleted
		if len(lines) < slackMaxLines {
			lines = append(lines, fmt.Sprintf("• %s: %s", x.name, describe(x.c)))
		} else if len(lines) == slackMaxLines {
			lines = append(lines, fmt.Sprintf("• … and %d more", len(all)-slackMaxLines))
		}
	}
	if t == (counts{}) {
		return "no changes", lines
	}
	return describe(t), lines
}

func describe(c counts) string {
	return fmt.Sprintf("%d added, %d updated, %d deleted", c.Added, c.Updated, c.Deleted)
}

// esc escapes the characters Slack's mrkdwn gives a meaning to.
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func code(s string) string {
	if s == "" {
		return "-"
	}
	return "`" + strings.ReplaceAll(esc(s), "`", "'") + "`"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
