package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/storage"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a local dotkv on loopback, data under ./dotkv-data",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Usage: "number of nodes (clustering is not built yet: 1)", Value: 1},
			&cli.StringFlag{Name: "data", Usage: "data directory", Value: "dotkv-data"},
			&cli.StringFlag{Name: "http", Usage: "listen address", Value: "127.0.0.1:8080"},
			&cli.StringFlag{Name: "fsync", Usage: "always or never", Value: "always"},
		},
		Action: func(c *cli.Context) error {
			if n := c.Int("nodes"); n != 1 {
				return cli.Exit(fmt.Sprintf("--nodes %d: this build runs a single node; clustering is not built yet", n), exitError)
			}
			fsync, err := storage.ParseFsyncMode(c.String("fsync"))
			if err != nil {
				return cli.Exit("--fsync: "+err.Error(), exitError)
			}
			cfg := nodeConfig{
				id:       "n1",
				data:     filepath.Join(c.String("data"), "n1"),
				http:     c.String("http"),
				fsync:    fsync,
				maxValue: api.DefaultMaxValue,
				log:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := c.App.Writer
			err = runNode(ctx, cfg, func(addr string) {
				fmt.Fprintf(out, "dotkv dev: 1 node\n\n  NODE  HTTP                   DATA\n  n1    http://%-16s %s\n\n", addr, cfg.data)
				fmt.Fprintf(out, "Try:  curl -i -X PUT --data-binary hello http://%s/kv/greeting\n", addr)
				fmt.Fprintf(out, "      curl -i http://%s/kv/greeting\n", addr)
				fmt.Fprintln(out, "Stop with Ctrl-C (data stays in "+c.String("data")+").")
			})
			if err != nil {
				return cli.Exit(err.Error(), exitError)
			}
			fmt.Fprintln(out, "dotkv dev: stopped cleanly")
			return nil
		},
	}
}
