package main

import (
	"fmt"
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
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			defer cl.CloseIdleConnections()
			st, err := cl.Status(c.Context)
			if err != nil {
				return apiError(err)
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
				pl, err := cl.Preflist(c.Context, key)
				if err != nil {
					return apiError(err)
				}
				fmt.Fprintf(w, "\nkey %q: partition %d\n  primaries: %s\n  fallbacks: %s\n", key, pl.Partition,
					strings.Join(pl.Primaries, " "), strings.Join(pl.Fallbacks, " "))
			}
			return nil
		},
	}
}
