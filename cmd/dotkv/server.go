package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/storage"
)

func serverCommand() *cli.Command {
	return &cli.Command{
		Name:  "server",
		Usage: "run a dotkv node",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "id", Usage: "stable node ID (1..64 of A-Z a-z 0-9 _ -)", Required: true},
			&cli.StringFlag{Name: "data", Usage: "data directory", Required: true},
			&cli.StringFlag{Name: "http", Usage: "client API listen address HOST:PORT", Value: "127.0.0.1:8080"},
			&cli.StringFlag{Name: "fsync", Usage: "always (sync before acknowledging) or never", Value: "always"},
			&cli.Int64Flag{Name: "max-value", Usage: "largest value in bytes", Value: api.DefaultMaxValue},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := nodeConfigFrom(c)
			if err != nil {
				return cli.Exit(err.Error(), exitError)
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := runNode(ctx, cfg, nil); err != nil {
				return cli.Exit(err.Error(), exitError)
			}
			return nil
		},
	}
}

// nodeConfig is everything a node needs to start.
type nodeConfig struct {
	id       string
	data     string
	http     string
	fsync    storage.FsyncMode
	maxValue int64
	log      *slog.Logger
}

func nodeConfigFrom(c *cli.Context) (nodeConfig, error) {
	fsync, err := storage.ParseFsyncMode(c.String("fsync"))
	if err != nil {
		return nodeConfig{}, fmt.Errorf("--fsync: %w", err)
	}
	if c.Int64("max-value") <= 0 {
		return nodeConfig{}, fmt.Errorf("--max-value %d: want a positive number of bytes", c.Int64("max-value"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nodeConfig{}, fmt.Errorf("--log-level: %w", err)
	}
	return nodeConfig{
		id:       c.String("id"),
		data:     c.String("data"),
		http:     c.String("http"),
		fsync:    fsync,
		maxValue: c.Int64("max-value"),
		log:      slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}, nil
}

// runNode serves one node until ctx is done, then shuts down cleanly:
// in-flight requests finish, then the store syncs and closes. ready, if
// not nil, receives the bound HTTP address once the node serves.
func runNode(ctx context.Context, cfg nodeConfig, ready func(addr string)) error {
	log := cfg.log.With("node", cfg.id)
	if err := os.MkdirAll(cfg.data, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	store, err := storage.Open(cfg.data, storage.Options{NodeID: cfg.id, Fsync: cfg.fsync, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()
	backend, err := replica.NewLocal(store, replica.Config{})
	if err != nil {
		return err
	}
	handler := api.New(backend, api.Config{NodeID: cfg.id, MaxValue: cfg.maxValue, Logger: log})
	ln, err := net.Listen("tcp", cfg.http)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.http, err)
	}
	srv := api.NewHTTPServer(cfg.http, handler, log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving", "http", ln.Addr().String(), "data", cfg.data, "fsync", cfg.fsync.String(),
		"actor", store.Actor())
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http server", "err", err)
	}
	return nil
}
