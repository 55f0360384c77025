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
		Name:  "status",
		Usage: "print the cluster's members, liveness and ring, and optionally a key's preference list",
		Flags: []cli.Flag{
			addrFlag,
			&cli.StringFlag{Name: "key", Usage: "also print this key's partition and preference list"},
		},
		Action: func(c *cli.Context) error {
			base := c.String("addr")
			if !strings.Contains(base, "://") {
				base = "http://" + base
			}
			base = strings.TrimRight(base, "/")
			var st struct {
				Node    string `json:"node"`
				Members []struct {
					ID, HTTP, Liveness, Status string
					Partitions                 int
				} `json:"members"`
				Ring struct {
					Partitions, N int
				} `json:"ring"`
				HintsPending map[string]int `json:"hints_pending"`
			}
			if err := getJSON(base+"/cluster/status", &st); err != nil {
				return err
			}
			w := c.App.Writer
			fmt.Fprintf(w, "asked %s: ring of %d partitions, N=%d\n\n", st.Node, st.Ring.Partitions, st.Ring.N)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tHTTP\tLIVENESS\tSTATUS\tPARTITIONS\tHINTS")
			for _, m := range st.Members {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", m.ID, m.HTTP, m.Liveness, m.Status, m.Partitions, st.HintsPending[m.ID])
			}
			_ = tw.Flush()
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
	resp, err := httpClient.Get(u)
	if err != nil {
		return cli.Exit(err.Error(), exitError)
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
