package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/urfave/cli/v2"
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
			return membershipChange(c, "/cluster/leave")
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
			path := "/cluster/remove/" + url.PathEscape(c.Args().First())
			if c.Bool("force") {
				path += "?force=true"
			}
			return membershipChange(c, path)
		},
	}
}

// membershipChange POSTs to path on the node at --addr and prints which
// node is now leaving.
func membershipChange(c *cli.Context, path string) error {
	resp, err := do(http.MethodPost, baseURL(c.String("addr"))+path, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return serverError(resp)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return cli.Exit("read response: "+err.Error(), exitError)
	}
	var ans struct {
		Node   string `json:"node"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return cli.Exit("decode response: "+err.Error(), exitError)
	}
	fmt.Fprintf(c.App.Writer, "%s: %s (its partitions are handed off; follow with dotkv status)\n", ans.Node, ans.Status)
	return nil
}

// baseURL turns an --addr (HOST:PORT or a URL) into a URL without a
// trailing slash.
func baseURL(addr string) string {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/")
}
