package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// connectionOut is a connection as the API answers it.
type connectionOut struct {
	ID        string            `json:"id"`
	Source    string            `json:"source"`
	Config    map[string]any    `json:"config"`
	Tags      map[string]string `json:"tags"`
	Every     map[string]string `json:"every"`
	State     string            `json:"state"`
	Error     string            `json:"error"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	Syncs     []struct {
		Name      string           `json:"name"`
		State     string           `json:"state"`
		Every     string           `json:"every"`
		NextRunAt *time.Time       `json:"next_run_at"`
		Records   map[string]int64 `json:"records"`
		LastRun   *struct {
			Run        string     `json:"run"`
			State      string     `json:"state"`
			FinishedAt *time.Time `json:"finished_at"`
			Error      string     `json:"error"`
		} `json:"last_run"`
	} `json:"syncs"`
}

// connectionsPath is the API path of a source's connections, or of one.
func connectionsPath(layer, source string, id ...string) string {
	p := "/v1/layers/" + url.PathEscape(layer) + "/sources/" + url.PathEscape(source) + "/connections"
	for _, s := range id {
		p += "/" + url.PathEscape(s)
	}
	return p
}

func (c *client) connectionsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "connections",
		Short: "Manage the connections of a source with connections = true (list, show, add, update, rm, sync, pause, resume)",
		Long: "Connections are instances of a source created at runtime, one per customer, each with its own\n" +
			"credentials, schedule and records (SPEC §12). The source's block needs `connections = true`.",
	}
	cmd.AddCommand(c.connectionsListCmd(), c.connectionsShowCmd(), c.connectionsAddCmd(), c.connectionsUpdateCmd(),
		c.connectionsRmCmd(), c.connectionsSyncCmd(), c.connectionsPauseCmd(true), c.connectionsPauseCmd(false))
	return cmd
}

func (c *client) connectionsListCmd() *cobra.Command {
	var tags []string
	var after string
	var limit int64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list LAYER SOURCE",
		Short: "List a source's connections in id order (all pages unless --limit)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return fmt.Errorf("--limit must not be negative, got %d", limit)
			}
			q := url.Values{}
			for _, t := range tags {
				k, v, ok := strings.Cut(t, "=")
				if !ok || k == "" {
					return fmt.Errorf("--tag takes KEY=VALUE, got %q", t)
				}
				q.Set("tag."+k, v)
			}
			var all []json.RawMessage
			next := after
			for {
				page := int64(1000)
				if limit > 0 {
					page = min(limit-int64(len(all)), 1000)
				}
				q.Set("limit", strconv.FormatInt(page, 10))
				if next != "" {
					q.Set("after", next)
				}
				var out struct {
					Connections []json.RawMessage `json:"connections"`
					Next        *string           `json:"next"`
				}
				if err := c.do("GET", connectionsPath(args[0], args[1])+"?"+q.Encode(), nil, &out); err != nil {
					return err
				}
				all = append(all, out.Connections...)
				if out.Next == nil || (limit > 0 && int64(len(all)) >= limit) {
					break
				}
				next = *out.Next
			}
			if asJSON {
				return printJSONLines(all)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tTAGS\tCREATED\tUPDATED")
			for _, raw := range all {
				var cn connectionOut
				if err := json.Unmarshal(raw, &cn); err != nil {
					return err
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cn.ID, cn.State, formatTags(cn.Tags),
					cn.CreatedAt.Local().Format(time.RFC3339), cn.UpdatedAt.Local().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&tags, "tag", nil, "only connections with this tag, KEY=VALUE (repeatable: all must match)")
	f.StringVar(&after, "after", "", "start after this connection id")
	f.Int64Var(&limit, "limit", 0, "at most this many connections (0: all)")
	f.BoolVar(&asJSON, "json", false, "print each connection as a JSON line")
	return cmd
}

func printJSONLines(items []json.RawMessage) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return err
		}
	}
	return nil
}

// formatTags writes tags as k=v,k=v in key order.
func formatTags(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + tags[k]
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

func (c *client) connectionsShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show LAYER SOURCE ID",
		Short: "Show a connection: its state, config (without sensitive fields), tags and each sync's state, runs and records",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := c.do("GET", connectionsPath(args[0], args[1], args[2]), nil, &raw); err != nil {
				return err
			}
			if asJSON {
				return printJSONLines([]json.RawMessage{raw})
			}
			var cn connectionOut
			if err := json.Unmarshal(raw, &cn); err != nil {
				return err
			}
			cfg, _ := json.Marshal(cn.Config)
			fmt.Printf("connection %s of %s/%s: %s\n", cn.ID, args[0], cn.Source, cn.State)
			if cn.Error != "" {
				fmt.Printf("error:   %s\n", cn.Error)
			}
			fmt.Printf("config:  %s\ntags:    %s\ncreated: %s\n", cfg, formatTags(cn.Tags), cn.CreatedAt.Local().Format(time.RFC3339))
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SYNC\tSTATE\tEVERY\tNEXT RUN\tLAST RUN\tRECORDS")
			for _, y := range cn.Syncs {
				next, last := "-", "-"
				if y.NextRunAt != nil {
					next = y.NextRunAt.Local().Format(time.RFC3339)
				}
				if r := y.LastRun; r != nil {
					last = r.Run + " " + r.State
					if r.FinishedAt != nil {
						last += " " + r.FinishedAt.Local().Format(time.RFC3339)
					}
				}
				var n int64
				for _, v := range y.Records {
					n += v
				}
				every := y.Every
				if every == "" {
					every = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", y.Name, y.State, every, next, last, humanInt(n))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the connection as JSON")
	return cmd
}

// connectionFlags are the flags add and update share.
type connectionFlags struct {
	config       []string
	configFile   string
	tags         []string
	metadataFile string
	every        []string
}

func (cf *connectionFlags) register(cmd *cobra.Command, update bool) {
	f := cmd.Flags()
	f.StringArrayVar(&cf.config, "config", nil, "a config field: KEY=VALUE (a string) or KEY:=JSON (a number, object, …); a dot in KEY nests (headers.Authorization=…); repeatable, over --config-file")
	f.StringVar(&cf.configFile, "config-file", "", "a JSON object of config fields (- reads stdin); keeps secrets out of the shell history")
	tagHelp := "a tag KEY=VALUE (repeatable)"
	everyHelp := "a sync's schedule SYNC=DURATION, like items=15m (repeatable)"
	if update {
		tagHelp += "; KEY= removes the tag"
		everyHelp += "; SYNC= drops the override"
	}
	f.StringArrayVar(&cf.tags, "tag", nil, tagHelp)
	f.StringVar(&cf.metadataFile, "metadata-file", "", "a JSON object kept with the connection (- reads stdin)")
	f.StringArrayVar(&cf.every, "every", nil, everyHelp)
}

// readJSONObject reads a file (or stdin for "-") holding one JSON object.
func readJSONObject(flag, path string) (map[string]any, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = readAllLimited(os.Stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%s: %s must hold one JSON object", flag, path)
	}
	return m, nil
}

// readAllLimited reads r whole, up to the API's 1 MiB body limit.
func readAllLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
	if err == nil && len(b) > 1<<20 {
		return nil, fmt.Errorf("more than 1 MiB")
	}
	return b, err
}

// setPath sets m[a][b]… = v for the dotted key a.b….
func setPath(m map[string]any, key string, v any) error {
	parts := strings.Split(key, ".")
	for i, p := range parts {
		if p == "" {
			return fmt.Errorf("--config %q: empty name in the key", key)
		}
		if i == len(parts)-1 {
			m[p] = v
			return nil
		}
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	return nil
}

// body builds the JSON body of add (update false) or update.
func (cf *connectionFlags) body(update bool) (map[string]any, error) {
	body := map[string]any{}
	var config map[string]any
	if cf.configFile != "" {
		m, err := readJSONObject("--config-file", cf.configFile)
		if err != nil {
			return nil, err
		}
		config = m
	}
	for _, kv := range cf.config {
		if config == nil {
			config = map[string]any{}
		}
		if k, raw, ok := strings.Cut(kv, ":="); ok && !strings.Contains(k, "=") {
			var v any
			if err := json.Unmarshal([]byte(raw), &v); err != nil {
				return nil, fmt.Errorf("--config %s:=…: the value is not JSON (use KEY=VALUE for a string)", k)
			}
			if err := setPath(config, k, v); err != nil {
				return nil, err
			}
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--config takes KEY=VALUE or KEY:=JSON, got a value without =")
		}
		if err := setPath(config, k, v); err != nil {
			return nil, err
		}
	}
	if config != nil {
		body["config"] = config
	}
	if cf.metadataFile != "" {
		m, err := readJSONObject("--metadata-file", cf.metadataFile)
		if err != nil {
			return nil, err
		}
		body["metadata"] = m
	}
	if len(cf.tags) > 0 {
		tags := map[string]any{}
		for _, t := range cf.tags {
			k, v, ok := strings.Cut(t, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("--tag takes KEY=VALUE, got %q", t)
			}
			tags[k] = v
			if update && v == "" {
				tags[k] = nil
			}
		}
		body["tags"] = tags
	}
	if len(cf.every) > 0 {
		every := map[string]any{}
		for _, e := range cf.every {
			k, v, ok := strings.Cut(e, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("--every takes SYNC=DURATION, got %q", e)
			}
			every[k] = v
		}
		body["every"] = every
	}
	return body, nil
}

func (c *client) connectionsAddCmd() *cobra.Command {
	var cf connectionFlags
	var noCheck, asJSON bool
	cmd := &cobra.Command{
		Use:   "add LAYER SOURCE ID",
		Short: "Create a connection: the connector checks its config first (unless --no-check), then its first full run is queued",
		Example: `  synclayer connections add crm api acme --config-file acme.json --tag plan=pro
  synclayer connections add crm api beta --config 'headers.Authorization=Bearer t0k' --config page_size:=50`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := cf.body(false)
			if err != nil {
				return err
			}
			body["id"] = args[2]
			if noCheck {
				body["check"] = false
			}
			var raw json.RawMessage
			if err := c.do("POST", connectionsPath(args[0], args[1]), body, &raw); err != nil {
				return err
			}
			if asJSON {
				return printJSONLines([]json.RawMessage{raw})
			}
			fmt.Printf("created connection %s of %s/%s; its first run is queued\n", args[2], args[0], args[1])
			return nil
		},
	}
	cf.register(cmd, false)
	cmd.Flags().BoolVar(&noCheck, "no-check", false, "store the connection without running the connector's Check")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the created connection as JSON")
	return cmd
}

func (c *client) connectionsUpdateCmd() *cobra.Command {
	var cf connectionFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "update LAYER SOURCE ID",
		Short: "Change a connection: config fields merge over its own (a changed config queues a full run), tags and metadata likewise",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := cf.body(true)
			if err != nil {
				return err
			}
			if len(body) == 0 {
				return fmt.Errorf("nothing to change: give --config, --config-file, --tag, --metadata-file or --every")
			}
			var raw json.RawMessage
			if err := c.do("PATCH", connectionsPath(args[0], args[1], args[2]), body, &raw); err != nil {
				return err
			}
			if asJSON {
				return printJSONLines([]json.RawMessage{raw})
			}
			fmt.Printf("updated connection %s of %s/%s\n", args[2], args[0], args[1])
			return nil
		},
	}
	cf.register(cmd, true)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the connection as JSON")
	return cmd
}

func (c *client) connectionsRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm LAYER SOURCE ID",
		Short: "Delete a connection: its records are soft-deleted in one revision, its checkpoints and schedule go",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Revision int64 `json:"revision"`
			}
			if err := c.do("DELETE", connectionsPath(args[0], args[1], args[2]), nil, &out); err != nil {
				return err
			}
			fmt.Printf("deleted connection %s of %s/%s; its records were deleted in revision %d\n", args[2], args[0], args[1], out.Revision)
			return nil
		},
	}
}

func (c *client) connectionsSyncCmd() *cobra.Command {
	var wait, reset bool
	cmd := &cobra.Command{
		Use:   "sync LAYER SOURCE ID [SYNC]",
		Short: "Start a run of a connection, or of one of its syncs",
		Args:  cobra.RangeArgs(3, 4),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			if len(args) > 3 {
				body["sync"] = args[3]
			}
			if reset {
				body["reset"] = true
			}
			var out struct {
				Run string `json:"run"`
			}
			if err := c.do("POST", connectionsPath(args[0], args[1], args[2])+"/syncs", body, &out); err != nil {
				return err
			}
			if !wait {
				fmt.Println(out.Run)
				return nil
			}
			return c.waitRun(url.PathEscape(args[0]), out.Run)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the run to end, showing its progress")
	cmd.Flags().BoolVar(&reset, "reset", false, "drop the checkpoints and sync from scratch")
	return cmd
}

func (c *client) connectionsPauseCmd(pause bool) *cobra.Command {
	use, verb, short := "resume", "resumed", "Restart a connection's paused schedule (every sync, or SYNC)"
	if pause {
		use, verb, short = "pause", "paused", "Stop a connection's schedule (every sync, or SYNC); manual runs still go"
	}
	return &cobra.Command{
		Use:   use + " LAYER SOURCE ID [SYNC]",
		Short: short,
		Args:  cobra.RangeArgs(3, 4),
		RunE: func(cmd *cobra.Command, args []string) error {
			syncs := args[3:]
			if len(syncs) == 0 {
				var cn connectionOut
				if err := c.do("GET", connectionsPath(args[0], args[1], args[2]), nil, &cn); err != nil {
					return err
				}
				for _, y := range cn.Syncs {
					syncs = append(syncs, y.Name)
				}
			}
			for _, y := range syncs {
				if err := c.do("POST", connectionsPath(args[0], args[1], args[2])+"/syncs/"+url.PathEscape(y)+"/"+use, nil, nil); err != nil {
					return err
				}
				fmt.Printf("%s/%s connection %s sync %s %s\n", args[0], args[1], args[2], y, verb)
			}
			return nil
		},
	}
}
