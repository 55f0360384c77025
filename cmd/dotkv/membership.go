package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/client"
)

func leaveCommand() *cli.Command {
	return &cli.Command{
		Name: "leave",
		Usage: "decommission the node at --addr: it hands its partitions to their new owners, " +
			"then leaves the cluster and its server exits",
		Flags:  clientFlags(),
		Before: configureClient,
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return cli.Exit("usage: dotkv leave [--addr URL]", exitError)
			}
			return membershipChange(c, func(cl *client.Client) (*client.Change, error) { return cl.Leave(c.Context) })
		},
	}
}

func removeCommand() *cli.Command {
	return &cli.Command{
		Name: "remove",
		Usage: "take node ID out of the cluster for good (asking the node at --addr); " +
			"the surviving owners re-create its copies. A node that is alive is refused unless --force",
		ArgsUsage: "ID",
		Before:    configureClient,
		Flags: append(clientFlags(),
			&cli.BoolFlag{Name: "force", Usage: "remove the node even though it is alive"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: dotkv remove [--force] [--addr URL] ID (flags go before ID)", exitError)
			}
			return membershipChange(c, func(cl *client.Client) (*client.Change, error) {
				return cl.Remove(c.Context, c.Args().First(), c.Bool("force"))
			})
		},
	}
}

// membershipChange asks the node at --addr for a membership change and
// prints which node is now leaving.
func membershipChange(c *cli.Context, change func(*client.Client) (*client.Change, error)) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	defer cl.CloseIdleConnections()
	ans, err := change(cl)
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintf(c.App.Writer, "%s: %s (its partitions are handed off; follow with dotkv status)\n", ans.Node, ans.Status)
	return nil
}
