package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/certs"
	"github.com/dotkv/dotkv/node"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

func serverCommand() *cli.Command {
	return &cli.Command{
		Name:  "server",
		Usage: "run a dotkv node",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "id", Usage: "stable node ID (1..64 of A-Z a-z 0-9 _ -)", Required: true},
			&cli.StringFlag{Name: "data", Usage: "data directory", Required: true},
			&cli.StringFlag{Name: "http", Usage: "client API listen address HOST:PORT", Value: "127.0.0.1:8080"},
			&cli.StringFlag{Name: "gossip", Usage: "gossip listen address HOST:PORT (enables clustering; without it the node is a one-member cluster)"},
			&cli.StringFlag{Name: "rpc", Usage: "internode RPC address HOST:PORT (default: the gossip host, gossip port + 1)"},
			&cli.StringFlag{Name: "join", Usage: "seed gossip addresses HOST:PORT[,HOST:PORT...]"},
			&cli.BoolFlag{Name: "new-cluster", Usage: "form a new cluster if the data directory is empty and no --join address answers (ignored once the directory holds data)"},
			&cli.StringFlag{Name: "replace", Usage: "join taking over the partitions of the dead node `OLD_ID` (this node's data directory must be empty)"},
			&cli.IntFlag{Name: "transfer-limit", Usage: "partitions transferred in, and out, at once (0 pauses transfers)", Value: 2},
			&cli.StringFlag{Name: "transfer-rate", Usage: "most bytes per second of incoming partition transfers, e.g. 64MiB (0 = unlimited)", Value: "64MiB"},
			&cli.IntFlag{Name: "n", Usage: "replication factor N", Value: 3},
			&cli.StringFlag{Name: "r", Usage: "default read level: one, quorum, all or a number", Value: "quorum"},
			&cli.StringFlag{Name: "w", Usage: "default write level: one, quorum, all or a number", Value: "quorum"},
			&cli.StringFlag{Name: "fsync", Usage: "always (sync before acknowledging) or never", Value: "always"},
			&cli.Int64Flag{Name: "max-value", Usage: "largest value in bytes", Value: api.DefaultMaxValue},
			&cli.IntFlag{Name: "max-siblings", Usage: "most siblings a write may leave on a key; more is refused with 409 too_many_siblings (0 = no bound)", Value: storage.DefaultMaxSiblings},
			&cli.IntFlag{Name: "warn-siblings", Usage: "log and count (dotkv_sibling_warnings_total) writes that leave a key with this many siblings (0 = never)", Value: storage.DefaultWarnSiblings},
			&cli.StringFlag{Name: "max-record", Usage: "largest encoded record (all siblings of a key) a write may leave, e.g. 16MiB; more is refused with 413 object_too_large",
				Value: storage.FormatSize(storage.DefaultMaxRecordBytes)},
			&cli.StringFlag{Name: "cache-size", Usage: "pebble block cache, e.g. 512MiB, 1GiB or a byte count; by default an eighth of memory (or of a lower cgroup limit) within 64MiB..1GiB",
				DefaultText: storage.FormatSize(storage.DefaultCacheSize(1))},
			&cli.StringFlag{Name: "memtable-size", Usage: "size of each pebble memtable (up to two in memory), e.g. 64MiB",
				DefaultText: storage.FormatSize(storage.DefaultMemTableSize)},
			&cli.BoolFlag{Name: "fault-injection", Usage: "enable /admin/fault to block traffic to chosen peers"},
			&cli.BoolFlag{Name: "hinted-handoff", Usage: "sloppy quorums: fallbacks hold copies for dead primaries as hints, delivered when they return", Value: true},
			&cli.IntFlag{Name: "max-hints", Usage: "most hints kept per target node (0 = unbounded); overflow is counted in /metrics", Value: 1_000_000},
			&cli.Int64Flag{Name: "max-hint-bytes", Usage: "most bytes of hints kept per target node (0 = unbounded)", Value: 1 << 30},
			&cli.BoolFlag{Name: "aae", Usage: "active anti-entropy: compare Merkle trees with other replicas and sync differing keys", Value: true},
			&cli.DurationFlag{Name: "aae-interval", Usage: "time between anti-entropy exchanges", Value: 10 * time.Second},
			&cli.IntFlag{Name: "aae-keys-per-sec", Usage: "most keys anti-entropy lists or syncs per second", Value: 50_000},
			&cli.DurationFlag{Name: "tombstone-grace", Usage: "keep a delete's tombstone at least this long before collecting it", Value: time.Hour},
			&cli.StringFlag{Name: "cluster-secret-file", Usage: "`FILE` holding the secret that signs context tokens, the same on every node: one line, or two (current, previous) during a rotation; without it the first node generates one and the others adopt it through gossip"},
			&cli.StringFlag{Name: "tls-cert", Usage: "`FILE` (PEM) of this node's certificate, signed by --tls-ca: the client API serves HTTPS and the internode RPC mutual TLS; reread on change and on SIGHUP"},
			&cli.StringFlag{Name: "tls-key", Usage: "`FILE` (PEM) of the private key of --tls-cert"},
			&cli.StringFlag{Name: "tls-ca", Usage: "`FILE` (PEM) of the cluster CA: RPC peers must present a certificate it signed"},
			&cli.StringFlag{Name: "gossip-key-file", Usage: "`FILE` of gossip encryption keys (base64, 16/24/32 bytes, one per line, the first encrypts; see dotkv keygen); nodes without them cannot join; reread on SIGHUP"},
			&cli.StringFlag{Name: "auth-token-file", Usage: "`FILE` of bearer tokens, one \"ROLE TOKEN\" per line (roles read, write, admin); turns access control on, reread on SIGHUP"},
			&cli.BoolFlag{Name: "metrics-auth", Usage: "/metrics needs a token too (of any role); without it /metrics is open"},
			&cli.StringFlag{Name: "admin-http", Usage: "serve /admin/ and /debug/ on this `HOST:PORT` instead of on the client API's address"},
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

func nodeConfigFrom(c *cli.Context) (node.Config, error) {
	fsync, err := storage.ParseFsyncMode(c.String("fsync"))
	if err != nil {
		return node.Config{}, fmt.Errorf("--fsync: %w", err)
	}
	if c.Int64("max-value") <= 0 {
		return node.Config{}, fmt.Errorf("--max-value %d: want a positive number of bytes", c.Int64("max-value"))
	}
	cache, memtable, err := sizeFlags(c)
	if err != nil {
		return node.Config{}, err
	}
	n := c.Int("n")
	if n < 1 || n > 16 {
		return node.Config{}, fmt.Errorf("--n %d: want 1..16", n)
	}
	r, err := replica.ParseLevel(c.String("r"), n)
	if err != nil {
		return node.Config{}, fmt.Errorf("--r: %w", err)
	}
	w, err := replica.ParseLevel(c.String("w"), n)
	if err != nil {
		return node.Config{}, fmt.Errorf("--w: %w", err)
	}
	if c.Int("max-hints") < 0 || c.Int64("max-hint-bytes") < 0 {
		return node.Config{}, fmt.Errorf("--max-hints and --max-hint-bytes must be ≥ 0")
	}
	if c.Duration("aae-interval") <= 0 || c.Int("aae-keys-per-sec") <= 0 || c.Duration("tombstone-grace") <= 0 {
		return node.Config{}, fmt.Errorf("--aae-interval, --aae-keys-per-sec and --tombstone-grace must be > 0")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return node.Config{}, fmt.Errorf("--log-level: %w", err)
	}
	if !storage.ValidNodeID(c.String("id")) {
		return node.Config{}, fmt.Errorf("--id %q: want 1..64 of A-Z a-z 0-9 _ -", c.String("id"))
	}
	var join []string
	for _, j := range strings.Split(c.String("join"), ",") {
		if j = strings.TrimSpace(j); j != "" {
			join = append(join, j)
		}
	}
	if c.String("gossip") == "" && (len(join) > 0 || c.String("rpc") != "" || c.String("replace") != "") {
		return node.Config{}, fmt.Errorf("--join, --rpc and --replace need --gossip")
	}
	replace := c.String("replace")
	if replace != "" {
		switch {
		case !storage.ValidNodeID(replace):
			return node.Config{}, fmt.Errorf("--replace %q: want a node ID (1..64 of A-Z a-z 0-9 _ -)", replace)
		case replace == c.String("id"):
			return node.Config{}, fmt.Errorf("--replace %q: a node cannot replace itself (restart it under its ID with an empty data directory instead)", replace)
		case c.Bool("new-cluster"):
			return node.Config{}, fmt.Errorf("--replace and --new-cluster exclude each other: a replacement joins an existing cluster")
		case len(join) == 0:
			return node.Config{}, fmt.Errorf("--replace needs --join (a replacement joins an existing cluster)")
		}
	}
	transferLimit, transferRate, err := transferFlags(c)
	if err != nil {
		return node.Config{}, err
	}
	maxSiblings, warnSiblings, maxRecord, err := limitFlags(c)
	if err != nil {
		return node.Config{}, err
	}
	secrets, err := secretFlag(c)
	if err != nil {
		return node.Config{}, err
	}
	if c.Bool("metrics-auth") && c.String("auth-token-file") == "" {
		return node.Config{}, fmt.Errorf("--metrics-auth needs --auth-token-file")
	}
	if c.String("gossip-key-file") != "" && c.String("gossip") == "" {
		return node.Config{}, fmt.Errorf("--gossip-key-file needs --gossip")
	}
	tlsFiles := certs.Files{Cert: c.String("tls-cert"), Key: c.String("tls-key"), CA: c.String("tls-ca")}
	if err := tlsFiles.Validate(); err != nil {
		return node.Config{}, err
	}
	return node.Config{
		ClusterSecrets: secrets,
		TLS:            tlsFiles,
		GossipKeyFile:  c.String("gossip-key-file"),
		AuthTokenFile:  c.String("auth-token-file"),
		MetricsAuth:    c.Bool("metrics-auth"),
		AdminHTTPAddr:  c.String("admin-http"),
		ID:             c.String("id"),
		DataDir:        c.String("data"),
		HTTPAddr:       c.String("http"),
		GossipAddr:     c.String("gossip"),
		RPCAddr:        c.String("rpc"),
		Join:           join,
		NewCluster:     c.Bool("new-cluster"),
		Replace:        replace,
		TransferLimit:  transferLimit,
		TransferRate:   transferRate,
		N:              n,
		R:              r,
		W:              w,
		Fsync:          fsync,
		MaxValue:       c.Int64("max-value"),
		MaxSiblings:    maxSiblings,
		WarnSiblings:   warnSiblings,
		MaxRecordBytes: maxRecord,
		CacheSize:      cache,
		MemTableSize:   uint64(memtable),
		FaultInjection: c.Bool("fault-injection"),
		DisableHints:   !c.Bool("hinted-handoff"),
		MaxHints:       c.Int("max-hints"),
		MaxHintBytes:   c.Int64("max-hint-bytes"),
		DisableAAE:     !c.Bool("aae"),
		AAEInterval:    c.Duration("aae-interval"),
		AAEKeysPerSec:  c.Int("aae-keys-per-sec"),
		TombstoneGrace: c.Duration("tombstone-grace"),
		Logger:         slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}, nil
}

// secretFlag reads --cluster-secret-file (nil without it).
func secretFlag(c *cli.Context) ([][]byte, error) {
	f := c.String("cluster-secret-file")
	if f == "" {
		return nil, nil
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("--cluster-secret-file: %w", err)
	}
	secrets, err := versioning.ParseSecretFile(data)
	if err != nil {
		return nil, fmt.Errorf("--cluster-secret-file %s: %w", f, err)
	}
	return secrets, nil
}

// transferFlags parses --transfer-limit and --transfer-rate into
// node.Config's TransferLimit and TransferRate, where 0 selects the
// default: a flag's 0 (paused, unlimited) is -1 there.
func transferFlags(c *cli.Context) (limit int, rate int64, err error) {
	limit = c.Int("transfer-limit")
	if limit < 0 {
		return 0, 0, fmt.Errorf("--transfer-limit %d: want 0 (paused) or more", limit)
	}
	if limit == 0 {
		limit = -1
	}
	rate, err = storage.ParseSize(c.String("transfer-rate"))
	if err != nil {
		return 0, 0, fmt.Errorf("--transfer-rate: %w", err)
	}
	if rate == 0 {
		rate = -1
	}
	return limit, rate, nil
}

// limitFlags parses --max-siblings, --warn-siblings and --max-record into
// node.Config's MaxSiblings, WarnSiblings and MaxRecordBytes, where 0
// selects the default: a flag's 0 (no bound, never) is -1 there, and an
// unset --warn-siblings is 0 (25, or --max-siblings if lower).
func limitFlags(c *cli.Context) (maxSiblings, warnSiblings int, maxRecord int64, err error) {
	maxSiblings, warnSiblings = c.Int("max-siblings"), c.Int("warn-siblings")
	if maxSiblings < 0 || warnSiblings < 0 {
		return 0, 0, 0, fmt.Errorf("--max-siblings and --warn-siblings must be ≥ 0 (0: no bound, never)")
	}
	switch {
	case !c.IsSet("warn-siblings"):
		warnSiblings = 0 // storage's default: 25, or --max-siblings if lower
	case maxSiblings > 0 && warnSiblings > maxSiblings:
		return 0, 0, 0, fmt.Errorf("--warn-siblings %d is above --max-siblings %d", warnSiblings, maxSiblings)
	case warnSiblings == 0:
		warnSiblings = -1
	}
	if maxSiblings == 0 {
		maxSiblings = -1
	}
	maxRecord, err = storage.ParseSize(c.String("max-record"))
	if err == nil && (maxRecord == 0 || maxRecord > node.MaxRecordLimit) {
		err = fmt.Errorf("%s: want more than 0 and at most %s (half an internode message)", c.String("max-record"), storage.FormatSize(node.MaxRecordLimit))
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("--max-record: %w", err)
	}
	return maxSiblings, warnSiblings, maxRecord, nil
}

// sizeFlags parses --cache-size and --memtable-size and checks them as
// storage.Open would; an unset flag is 0, which selects storage's default.
func sizeFlags(c *cli.Context) (cache, memtable int64, err error) {
	if cache, err = sizeFlag(c, "cache-size", func(o *storage.Options, v int64) { o.CacheSize = v }); err != nil {
		return 0, 0, err
	}
	memtable, err = sizeFlag(c, "memtable-size", func(o *storage.Options, v int64) { o.MemTableSize = uint64(v) })
	return cache, memtable, err
}

func sizeFlag(c *cli.Context, name string, set func(*storage.Options, int64)) (int64, error) {
	s := c.String(name)
	if s == "" {
		return 0, nil
	}
	v, err := storage.ParseSize(s)
	if err == nil && v == 0 {
		err = fmt.Errorf("size %q: want more than 0", s)
	}
	if err == nil {
		o := storage.Options{NodeID: "check"} // Validate wants one
		set(&o, v)
		err = o.Validate()
	}
	if err != nil {
		return 0, fmt.Errorf("--%s: %w", name, err)
	}
	return v, nil
}

// runNode serves one node until ctx is done or the node has left its
// cluster (a leave completed), then shuts it down cleanly. ready, if not
// nil, is called once the node serves.
func runNode(ctx context.Context, cfg node.Config, ready func(n *node.Node)) error {
	if cfg.NewCluster && holdsData(cfg.DataDir) {
		cfg.Logger.Info("--new-cluster ignored: the data directory holds data", "node", cfg.ID, "data", cfg.DataDir)
	}
	n, err := node.Start(cfg)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(n)
	}
	left := n.Left() // nil on a single node: never ready
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopReload := reloadOnHangup(wctx, n, cfg.Logger)
	defer stopReload()
	go func() {
		select {
		case <-left:
			cancel()
		case <-wctx.Done():
		}
	}()
	werr := n.Wait(wctx)
	select {
	case <-left:
		cfg.Logger.Info("left the cluster", "node", cfg.ID)
	default:
		cfg.Logger.Info("shutting down", "node", cfg.ID)
	}
	if err := n.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return werr
}

// reloadOnHangup rereads the node's security files (certificates, tokens,
// gossip keys) on every SIGHUP until ctx ends; the returned function stops
// it and waits for it.
func reloadOnHangup(ctx context.Context, n *node.Node, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hup:
				if err := n.Reload(); err != nil {
					log.Error("reload on SIGHUP: kept what was loaded before", "err", err)
				}
			case <-ctx.Done():
				return
			}
		}
	})
	return func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
	}
}

// holdsData reports whether dir exists and has entries.
func holdsData(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0
}
