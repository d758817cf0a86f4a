package main

import (
	"fmt"
	"net/url"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

type webhookView struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	URL     string `json:"url"`
	Created string `json:"created_at"`
}

func (c *client) webhooksCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Manage a layer's trigger webhooks (list, add, rm)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list LAYER",
		Short: "List the trigger webhooks of a layer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Webhooks []webhookView `json:"webhooks"`
			}
			if err := c.do("GET", "/v1/layers/"+url.PathEscape(args[0])+"/webhooks", nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tCREATED\tURL")
			for _, w := range out.Webhooks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", w.ID, w.Name, w.Created, w.URL)
			}
			return tw.Flush()
		},
	}, &cobra.Command{
		Use:   "add LAYER NAME",
		Short: "Add a trigger webhook; prints its URL (the default hook stops answering while any exists)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var w webhookView
			if err := c.do("POST", "/v1/layers/"+url.PathEscape(args[0])+"/webhooks", map[string]string{"name": args[1]}, &w); err != nil {
				return err
			}
			fmt.Printf("%s\t%s\n", w.ID, w.URL)
			return nil
		},
	}, &cobra.Command{
		Use:   "rm LAYER ID",
		Short: "Delete a trigger webhook",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.do("DELETE", "/v1/layers/"+url.PathEscape(args[0])+"/webhooks/"+url.PathEscape(args[1]), nil, nil); err != nil {
				return err
			}
			fmt.Printf("deleted webhook %s\n", args[1])
			return nil
		},
	})
	return cmd
}

func (c *client) pauseCmd(pause bool) *cobra.Command {
	use, verb, short := "resume", "resumed", "Restart a paused sync's schedule"
	if pause {
		use, verb, short = "pause", "paused", "Stop a sync's schedule (manual and webhook runs still go)"
	}
	return &cobra.Command{
		Use:   use + " LAYER SOURCE SYNC",
		Short: short,
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := fmt.Sprintf("/v1/layers/%s/sources/%s/syncs/%s/%s", url.PathEscape(args[0]), url.PathEscape(args[1]), url.PathEscape(args[2]), use)
			if err := c.do("POST", path, nil, nil); err != nil {
				return err
			}
			fmt.Printf("%s/%s/%s %s\n", args[0], args[1], args[2], verb)
			return nil
		},
	}
}
