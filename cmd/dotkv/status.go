package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:   "status",
		Usage:  "print the cluster's members, liveness and ring, and optionally a key's preference list",
		Before: configureClient,
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "key", Usage: "also print this key's partition and preference list"},
		),
		Action: func(c *cli.Context) error {
			base := baseURL(c.String("addr"))
			var st struct {
				Node    string `json:"node"`
				Members []struct {
					ID          string `json:"id"`
					HTTP        string `json:"http"`
					Liveness    string `json:"liveness"`
					Status      string `json:"status"`
					RingVersion uint64 `json:"ring_version"`
					Partitions  int    `json:"partitions"`
				} `json:"members"`
				Ring struct {
					Partitions int    `json:"partitions"`
					N          int    `json:"n"`
					Version    uint64 `json:"version"`
				} `json:"ring"`
				HintsPending map[string]int `json:"hints_pending"`
				Transfers    []struct {
					Partition uint32 `json:"partition"`
					From      string `json:"from"`
					To        string `json:"to"`
					State     string `json:"state"`
					Keys      int64  `json:"keys"`
					Bytes     int64  `json:"bytes"`
				} `json:"transfers"`
			}
			if err := getJSON(base+"/cluster/status", &st); err != nil {
				return err
			}
			w := c.App.Writer
			fmt.Fprintf(w, "asked %s: ring version %d, %d partitions, N=%d\n\n", st.Node, st.Ring.Version, st.Ring.Partitions, st.Ring.N)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tLIVENESS\tRING VERSION\tPARTITIONS\tHTTP\tHINTS")
			for _, m := range st.Members {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%d\n", m.ID, m.Status, m.Liveness, m.RingVersion, m.Partitions, m.HTTP, st.HintsPending[m.ID])
			}
			_ = tw.Flush()
			if len(st.Transfers) > 0 {
				fmt.Fprintln(w)
				tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PARTITION\tFROM\tTO\tSTATE\tKEYS\tBYTES")
				for _, x := range st.Transfers {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\n", x.Partition, x.From, x.To, x.State, x.Keys, x.Bytes)
				}
				_ = tw.Flush()
			}
			if key := c.String("key"); key != "" {
				var pl struct {
					Partition uint32   `json:"partition"`
					Primaries []string `json:"primaries"`
					Fallbacks []string `json:"fallbacks"`
				}
				if err := getJSON(base+"/cluster/preflist/"+url.PathEscape(key), &pl); err != nil {
					return err
				}
				fmt.Fprintf(w, "\nkey %q: partition %d\n  primaries: %s\n  fallbacks: %s\n", key, pl.Partition,
					strings.Join(pl.Primaries, " "), strings.Join(pl.Fallbacks, " "))
			}
			return nil
		},
	}
}

func getJSON(u string, v any) error {
	resp, err := do(http.MethodGet, u, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return serverError(resp)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return cli.Exit("read response: "+err.Error(), exitError)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return cli.Exit("decode response: "+err.Error(), exitError)
	}
	return nil
}
