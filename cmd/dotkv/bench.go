package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/bench"
	"github.com/dotkv/dotkv/bench/render"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "run a workload against a cluster while injecting faults, check the history, and report",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "spawn", Usage: "start this many `dotkv server` processes (own loopback address each, temp data)"},
			&cli.StringFlag{Name: "targets", Usage: "or: base URLs of a running cluster, comma-separated"},
			&cli.BoolFlag{Name: "keep", Usage: "keep the spawned nodes' data directory"},
			&cli.BoolFlag{Name: "secure", Usage: "run the spawned nodes with TLS (client API and internode RPC, a throwaway CA), bearer tokens and gossip encryption"},
			&cli.StringFlag{Name: "data", Usage: "data directory of the spawned nodes (default: a temp dir, removed unless --keep)"},
			&cli.StringFlag{Name: "fsync", Usage: "spawned nodes' --fsync", Value: "always"},
			&cli.DurationFlag{Name: "aae-interval", Usage: "spawned nodes' --aae-interval", Value: time.Second},
			&cli.StringFlag{Name: "server-logs", Usage: "append the spawned nodes' logs (at info level) to this `FILE` (default: discarded)"},
			&cli.DurationFlag{Name: "duration", Usage: "length of the workload", Value: 60 * time.Second},
			&cli.Int64Flag{Name: "ops", Usage: "or: number of operations"},
			&cli.IntFlag{Name: "concurrency", Usage: "concurrent clients", Value: 16},
			&cli.IntFlag{Name: "keys", Usage: "key space", Value: 1000},
			&cli.StringFlag{Name: "dist", Usage: "key distribution: uniform or zipfian", Value: "uniform"},
			&cli.IntFlag{Name: "value-size", Usage: "value size in bytes", Value: 100},
			&cli.StringFlag{Name: "mix", Usage: "share of reads, writes (read-modify-write) and deletes", Value: "r:50,w:45,d:5"},
			&cli.StringFlag{Name: "r", Usage: "read level of every request"},
			&cli.StringFlag{Name: "w", Usage: "write level of every request"},
			&cli.StringFlag{Name: "pr", Usage: "primary read level"},
			&cli.StringFlag{Name: "pw", Usage: "primary write level"},
			&cli.DurationFlag{Name: "timeout", Usage: "each request's timeout", Value: time.Second},
			&cli.StringFlag{Name: "nemesis", Usage: "none or a comma-separated mix of " + strings.Join(bench.FaultNames, ", ") +
				" (membership, with --spawn 3 or more: join a new node, leave, join, kill and remove, kill and replace, each until complete, in a cycle)", Value: "none"},
			&cli.DurationFlag{Name: "nemesis-interval", Usage: "fault on for this long, then healed for this long, repeatedly (a membership change lasts until it completes)", Value: 10 * time.Second},
			&cli.IntFlag{Name: "nemesis-count", Usage: "end the run once the nemesis has injected this many faults, each then healed for --nemesis-interval (before --duration if need be; 0: no limit)"},
			&cli.DurationFlag{Name: "membership-timeout", Usage: "fail the run if a change of the membership nemesis takes longer", Value: bench.MembershipStepTimeout},
			&cli.StringFlag{Name: "nemesis-mode", Usage: "auto, filter (the nodes' fault filter) or iptables (root, Linux)", Value: "auto"},
			&cli.DurationFlag{Name: "convergence-timeout", Usage: "how long to wait for convergence after the final heal", Value: 2 * time.Minute},
			&cli.DurationFlag{Name: "max-convergence", Usage: "fail the run if convergence takes longer (0 = no limit)", Value: 30 * time.Second},
			&cli.StringFlag{Name: "out", Usage: "write report.json, history.jsonl and report.html here"},
			&cli.Uint64Flag{Name: "seed", Usage: "random seed (default: from the clock; printed)"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := benchConfigFrom(c)
			if err != nil {
				return cli.Exit(err.Error(), exitError)
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			nemesis := "none"
			if len(cfg.Nemesis) > 0 {
				nemesis = strings.Join(cfg.Nemesis, ",")
			}
			fmt.Fprintf(c.App.ErrWriter, "dotkv bench: seed %d, nemesis %s (%s mode)\n", cfg.Workload.Seed, nemesis, cfg.NemesisMode)
			if path := c.String("server-logs"); path != "" {
				f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				if err != nil {
					return cli.Exit(fmt.Sprintf("--server-logs: %v", err), exitError)
				}
				defer f.Close()
				cfg.Spawner.Logs = f
				cfg.Spawner.Args = append(cfg.Spawner.Args, "--log-level", "info")
			}
			rep, err := bench.Run(ctx, cfg)
			if err != nil {
				if errors.Is(err, ctx.Err()) && ctx.Err() != nil {
					return cli.Exit("interrupted; cluster stopped and faults healed", exitError)
				}
				return cli.Exit(err.Error(), exitError)
			}
			render.WriteSummary(c.App.Writer, rep)
			if cfg.Out != "" {
				fmt.Fprintf(c.App.Writer, "\nreport: %s/report.html\n", cfg.Out)
			}
			if !rep.Passed {
				return cli.Exit("", exitNotFound) // exit 1: a check failed
			}
			return nil
		},
	}
}

func benchConfigFrom(c *cli.Context) (bench.Config, error) {
	mix, err := bench.ParseMix(c.String("mix"))
	if err != nil {
		return bench.Config{}, err
	}
	var cfg bench.Config
	switch {
	case c.Int("spawn") > 0 && c.String("targets") != "":
		return cfg, errors.New("give --spawn or --targets, not both")
	case c.Int("spawn") > 0:
		cfg.Spawn = c.Int("spawn")
		if f := c.String("fsync"); f != "always" && f != "never" {
			return cfg, fmt.Errorf("--fsync %q: want always or never", f)
		}
		cfg.Spawner = bench.SpawnOptions{Keep: c.Bool("keep"), Dir: c.String("data"), Secure: c.Bool("secure"), Args: []string{
			"--fsync", c.String("fsync"), "--aae-interval", c.Duration("aae-interval").String(),
			"--tombstone-grace", "10m"}}
	case c.String("targets") != "":
		cfg.Targets = strings.Split(c.String("targets"), ",")
	default:
		return cfg, errors.New("give --spawn N or --targets URL,...")
	}
	if n := c.String("nemesis"); n != "none" && n != "" {
		for _, f := range strings.Split(n, ",") {
			cfg.Nemesis = append(cfg.Nemesis, strings.TrimSpace(f))
		}
	}
	switch mode := c.String("nemesis-mode"); mode {
	case "auto":
		cfg.NemesisMode = "filter"
		if bench.IptablesUsable() {
			cfg.NemesisMode = "iptables"
		}
	case "filter", "iptables":
		cfg.NemesisMode = mode
		if mode == "iptables" && !bench.IptablesUsable() {
			return cfg, errors.New("--nemesis-mode iptables needs root and a working iptables")
		}
	default:
		return cfg, fmt.Errorf("--nemesis-mode %q: want auto, filter or iptables", mode)
	}
	if c.Duration("nemesis-interval") <= 0 {
		return cfg, errors.New("--nemesis-interval must be > 0")
	}
	seed := c.Uint64("seed")
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	cfg.NemesisInterval = c.Duration("nemesis-interval")
	cfg.MembershipTimeout = c.Duration("membership-timeout")
	cfg.NemesisCount = c.Int("nemesis-count")
	if cfg.NemesisCount < 0 {
		return cfg, errors.New("--nemesis-count must be ≥ 0")
	}
	cfg.ConvergenceTimeout = c.Duration("convergence-timeout")
	cfg.MaxConvergence = c.Duration("max-convergence")
	cfg.Out = c.String("out")
	cfg.Progress = c.App.ErrWriter
	cfg.Strict = c.String("pr") != "" && c.String("pw") != ""
	cfg.Workload = bench.WorkloadConfig{
		Concurrency: c.Int("concurrency"), Duration: c.Duration("duration"), Ops: c.Int64("ops"),
		Keys: c.Int("keys"), Dist: c.String("dist"), ValueSize: c.Int("value-size"), Mix: mix,
		R: c.String("r"), W: c.String("w"), PR: c.String("pr"), PW: c.String("pw"),
		Timeout: c.Duration("timeout"), Seed: seed,
	}
	if c.Int64("ops") > 0 && !c.IsSet("duration") {
		cfg.Workload.Duration = 0
	}
	return cfg, nil
}
