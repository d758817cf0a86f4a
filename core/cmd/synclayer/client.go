package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// client talks to a running host.
type client struct {
	addr  string
	token string
	http  *http.Client
	// poll is how often sync --wait asks for the run; every how often it
	// prints a progress line when stderr is not a terminal.
	poll, every time.Duration
	// stdout and stderr are where sync --wait writes.
	stdout, stderr io.Writer
}

func addClientCommands(root *cobra.Command) {
	c := &client{http: &http.Client{Timeout: 5 * time.Minute}, poll: 200 * time.Millisecond, every: 5 * time.Second, stderr: os.Stderr, stdout: os.Stdout}
	def := defaultAddr()
	c.token = os.Getenv("SYNCLAYER_TOKEN")
	// --addr only on the commands that talk to a running host (and their
	// subcommands), and on backup (which asks a running host first); not on
	// serve, validate or restore.
	for _, cmd := range []*cobra.Command{c.syncCmd(), c.recordsCmd(), c.revisionsCmd(), c.eventsCmd(), c.pluginsCmd(), c.pinCmd(),
		c.unpinCmd(), c.webhooksCmd(), c.pauseCmd(true), c.pauseCmd(false), c.deliveriesCmd(), c.connectionsCmd()} {
		cmd.PersistentFlags().StringVar(&c.addr, "addr", def, "address of the running host (env SYNCLAYER_ADDR); the token comes from SYNCLAYER_TOKEN")
		root.AddCommand(cmd)
	}
}

// defaultAddr is --addr's default: $SYNCLAYER_ADDR, else the default
// listen address.
func defaultAddr() string {
	if a := os.Getenv("SYNCLAYER_ADDR"); a != "" {
		return a
	}
	return "http://127.0.0.1:8750"
}

// apiError is an error answer of the host.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.Status, e.Code) }

// do sends a request and decodes a JSON answer into out (unless nil).
func (c *client) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimRight(c.addr, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach synclayer at %s (is `synclayer serve` running? set --addr or SYNCLAYER_ADDR): %w", c.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if json.Unmarshal(b, &eb) == nil && eb.Error.Message != "" {
			return &apiError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
		}
		return &apiError{Status: resp.StatusCode, Code: "http", Message: strings.TrimSpace(string(b))}
	}
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	return dec.Decode(out)
}

type runView struct {
	Run        string                                 `json:"run"`
	State      string                                 `json:"state"`
	Trigger    string                                 `json:"trigger"`
	Revision   int64                                  `json:"revision"`
	Error      string                                 `json:"error"`
	Received   int64                                  `json:"received"`
	Counts     map[string]map[string]map[string]int64 `json:"counts"`
	StartedAt  *time.Time                             `json:"started_at"`
	FinishedAt *time.Time                             `json:"finished_at"`
	Syncs      []struct {
		Source string `json:"source"`
		Sync   string `json:"sync"`
	} `json:"syncs"`
	Progress []progressView `json:"progress"`
}

// progressView is a connector's progress report on a running sync.
type progressView struct {
	Source string `json:"source"`
	Sync   string `json:"sync"`
	Model  string `json:"model"`
	Done   int64  `json:"done"`
	Total  int64  `json:"total"`
}

func (c *client) syncCmd() *cobra.Command {
	var wait, reset bool
	cmd := &cobra.Command{
		Use:   "sync LAYER [SOURCE [SYNC]]",
		Short: "Start a run of a layer, a source or one sync",
		Args:  cobra.RangeArgs(1, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			if len(args) > 1 {
				body["source"] = args[1]
			}
			if len(args) > 2 {
				body["sync"] = args[2]
			}
			if reset {
				body["reset"] = true
			}
			var out struct {
				Run string `json:"run"`
			}
			layer := url.PathEscape(args[0])
			if err := c.do("POST", "/v1/layers/"+layer+"/syncs", body, &out); err != nil {
				return err
			}
			if !wait {
				fmt.Println(out.Run)
				return nil
			}
			return c.waitRun(layer, out.Run)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the run to end, showing its progress")
	cmd.Flags().BoolVar(&reset, "reset", false, "drop the checkpoints and sync from scratch")
	return cmd
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func humanInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func (c *client) recordsCmd() *cobra.Command {
	var model, source, cursor, modifiedAfter, filter, ids string
	var limit, revision int64
	cmd := &cobra.Command{
		Use:   "records LAYER",
		Short: "Print records as JSON lines, in cursor order (all pages unless --limit)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"model": model, "source": source, "modified_after": modifiedAfter, "filter": filter, "ids": ids} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if revision > 0 {
				q.Set("revision", strconv.FormatInt(revision, 10))
			}
			out := json.NewEncoder(os.Stdout)
			out.SetEscapeHTML(false)
			printed := int64(0)
			next := cursor
			for {
				page := int64(10000)
				if limit > 0 && limit-printed < page {
					page = limit - printed
				}
				q.Set("limit", strconv.FormatInt(page, 10))
				if next != "" {
					q.Set("cursor", next)
				}
				var resp struct {
					Records    []json.RawMessage `json:"records"`
					NextCursor *string           `json:"next_cursor"`
					Revision   int64             `json:"revision"`
				}
				if err := c.do("GET", "/v1/layers/"+url.PathEscape(args[0])+"/records?"+q.Encode(), nil, &resp); err != nil {
					return err
				}
				for _, r := range resp.Records {
					if err := out.Encode(r); err != nil {
						return err
					}
				}
				printed += int64(len(resp.Records))
				if resp.NextCursor == nil || (limit > 0 && printed >= limit) {
					return nil
				}
				// Stay on the revision of the first page across the walk.
				q.Set("revision", strconv.FormatInt(resp.Revision, 10))
				next = *resp.NextCursor
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "only this model")
	f.StringVar(&source, "source", "", "only this source")
	f.StringVar(&cursor, "cursor", "", "start after this cursor")
	f.StringVar(&modifiedAfter, "modified-after", "", "only records modified at or after this RFC 3339 time")
	f.StringVar(&filter, "filter", "", "comma list of added,updated,deleted")
	f.StringVar(&ids, "ids", "", "comma list of ids (with --model)")
	f.Int64Var(&limit, "limit", 0, "print at most this many records (0: all)")
	f.Int64Var(&revision, "revision", 0, "read this revision (default: current)")
	return cmd
}

func (c *client) revisionsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revisions LAYER",
		Short: "List a layer's revisions, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Revisions []struct {
					Revision  int64                                  `json:"revision"`
					CreatedAt time.Time                              `json:"created_at"`
					Trigger   string                                 `json:"trigger"`
					Sources   []string                               `json:"sources"`
					Counts    map[string]map[string]map[string]int64 `json:"counts"`
					Pinned    bool                                   `json:"pinned"`
				} `json:"revisions"`
			}
			if err := c.do("GET", "/v1/layers/"+url.PathEscape(args[0])+"/revisions", nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "REVISION\tCREATED\tTRIGGER\tSOURCES\tADDED\tUPDATED\tDELETED\tPINNED")
			for _, r := range out.Revisions {
				var a, u, d int64
				for _, models := range r.Counts {
					for _, n := range models {
						a, u, d = a+n["added"], u+n["updated"], d+n["deleted"]
					}
				}
				pin := ""
				if r.Pinned {
					pin = "pinned"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", r.Revision, r.CreatedAt.Format(time.RFC3339), r.Trigger, strings.Join(r.Sources, ","), a, u, d, pin)
			}
			return tw.Flush()
		},
	}
}

func (c *client) eventsCmd() *cobra.Command {
	var after, limit int64
	cmd := &cobra.Command{
		Use:   "events LAYER",
		Short: "Print a layer's sync event log",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Events []struct {
					Seq     uint64            `json:"seq"`
					Time    time.Time         `json:"time"`
					Type    string            `json:"type"`
					Run     string            `json:"run"`
					Source  string            `json:"source"`
					Sync    string            `json:"sync"`
					Message string            `json:"message"`
					Fields  map[string]string `json:"fields"`
				} `json:"events"`
			}
			path := fmt.Sprintf("/v1/layers/%s/events?after=%d&limit=%d", url.PathEscape(args[0]), after, limit)
			if err := c.do("GET", path, nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tRUN\tSOURCE\tMESSAGE")
			for _, e := range out.Events {
				src := e.Source
				if e.Sync != "" {
					src += "/" + e.Sync
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format(time.RFC3339), e.Type, e.Run, src, e.Message)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().Int64Var(&after, "after", 0, "only events after this sequence number")
	cmd.Flags().Int64Var(&limit, "limit", 100, "at most this many events")
	return cmd
}

func (c *client) pluginsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "plugins",
		Short: "List the connector plugins the host finds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Plugins []struct{ Name, Path string } `json:"plugins"`
			}
			if err := c.do("GET", "/v1/plugins", nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPATH")
			for _, p := range out.Plugins {
				fmt.Fprintf(tw, "%s\t%s\n", p.Name, p.Path)
			}
			return tw.Flush()
		},
	}
}
