package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/storage"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name: "backup",
		Usage: "take a consistent backup of the node at --addr while it serves (GET /admin/backup), into --out DIR: " +
			"a data directory; restore by starting the node (same --id) on a copy of it",
		Before: configureClient,
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "out", Usage: "new `DIR` to write the backup into (must not exist, or be empty)", Required: true},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return cli.Exit("usage: dotkv backup [--addr URL] --out DIR", exitError)
			}
			out := c.String("out")
			if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
				return cli.Exit(fmt.Sprintf("--out %s: the directory is not empty", out), exitError)
			}
			resp, err := do(http.MethodGet, nodeAddr(c.String("addr"))+"/admin/backup", nil, nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return serverError(resp)
			}
			// Extracted aside and renamed: a failed backup leaves no
			// directory that looks like a good one.
			partial := strings.TrimRight(out, "/") + ".partial"
			if err := os.RemoveAll(partial); err != nil {
				return cli.Exit(err.Error(), exitError)
			}
			files, size, err := storage.Restore(resp.Body, vfs.Default, partial)
			if err != nil {
				_ = os.RemoveAll(partial)
				return cli.Exit("backup: "+err.Error(), exitError)
			}
			_ = os.Remove(out) // an empty directory, if any
			if err := os.Rename(partial, out); err != nil {
				return cli.Exit("backup: "+err.Error(), exitError)
			}
			fmt.Fprintf(c.App.Writer, "backup of %s: %d files, %d bytes in %s\n", c.String("addr"), files, size, out)
			return nil
		},
	}
}
