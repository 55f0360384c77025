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

	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/certs"
	"github.com/dotkv/dotkv/node"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

func serverCommand() *cli.Command {
	def := node.DefaultConfig()
	return &cli.Command{
		Name:  "server",
		Usage: "run a dotkv node",
		Description: "Every flag can also be set by an environment variable (DOTKV_ and the flag's name in upper case, '-' as '_': " +
			"DOTKV_MAX_SIBLINGS) and by a key of a --config file (the flag's name: max-siblings = 50). " +
			"A flag on the command line beats the environment, which beats the file, which beats the default.",
		Flags: withEnvVars([]cli.Flag{
			&cli.StringFlag{Name: configFlag, Usage: "read flag values from this TOML `FILE`, one key per flag (fsync = \"never\", n = 3, join = [\"10.0.0.1:7946\"]); relative paths in it are taken from the working directory"},
			&cli.StringFlag{Name: "id", Usage: "stable node ID (1..64 of A-Z a-z 0-9 _ -; required)"},
			&cli.StringFlag{Name: "data", Usage: "data directory (required)"},
			&cli.StringFlag{Name: "http", Usage: "client API listen address HOST:PORT", Value: def.HTTPAddr},
			&cli.StringFlag{Name: "advertise-http", Usage: "client API address HOST:PORT the cluster shows for this node (status, preference lists)", DefaultText: "--http, with the gossip host for a 0.0.0.0 or :: host"},
			&cli.StringFlag{Name: "gossip", Usage: "gossip listen address HOST:PORT (enables clustering; without it the node is a one-member cluster)"},
			&cli.StringFlag{Name: "rpc", Usage: "internode RPC address HOST:PORT", DefaultText: "the gossip host, gossip port + 1"},
			&cli.StringFlag{Name: "join", Usage: "seed gossip addresses HOST:PORT[,HOST:PORT...]"},
			&cli.BoolFlag{Name: "new-cluster", Usage: "form a new cluster if the data directory is empty and no --join address answers (ignored once the directory holds data)"},
			&cli.StringFlag{Name: "replace", Usage: "join taking over the partitions of the dead node `OLD_ID` (this node's data directory must be empty)"},
			&cli.IntFlag{Name: "transfer-limit", Usage: "partitions transferred in, and out, at once (0 pauses transfers)", Value: def.TransferLimit},
			&cli.StringFlag{Name: "transfer-rate", Usage: "most bytes per second of incoming partition transfers (0 = unlimited)", Value: storage.FormatSize(def.TransferRate)},
			&cli.IntFlag{Name: "n", Usage: fmt.Sprintf("replication factor N (1..%d)", node.MaxN), Value: def.N},
			&cli.StringFlag{Name: "r", Usage: "default read level: one, quorum, all or a number", Value: def.R.String()},
			&cli.StringFlag{Name: "w", Usage: "default write level: one, quorum, all or a number", Value: def.W.String()},
			&cli.StringFlag{Name: "fsync", Usage: "always (sync before acknowledging) or never", Value: def.Fsync.String()},
			&cli.Int64Flag{Name: "max-value", Usage: "largest value in bytes", Value: def.MaxValue, DefaultText: bytesText(def.MaxValue)},
			&cli.IntFlag{Name: "max-siblings", Usage: "most siblings a write may leave on a key; more is refused with 409 too_many_siblings (0 = no bound)", Value: def.MaxSiblings},
			&cli.IntFlag{Name: "warn-siblings", Usage: "log and count (dotkv_sibling_warnings_total) writes that leave a key with this many siblings (0 = never)",
				Value: storage.DefaultWarnSiblings, DefaultText: fmt.Sprintf("%d, or --max-siblings if lower", storage.DefaultWarnSiblings)},
			&cli.StringFlag{Name: "max-record", Usage: "largest encoded record (all siblings of a key) a write may leave; more is refused with 413 object_too_large",
				Value: storage.FormatSize(def.MaxRecordBytes)},
			&cli.StringFlag{Name: "cache-size", Usage: "pebble block cache, e.g. 512MiB, 1GiB or a byte count",
				DefaultText: storage.FormatSize(storage.DefaultCacheSize(1)) + " here: an eighth of memory, or of a lower cgroup limit, within 64MiB..1GiB"},
			&cli.StringFlag{Name: "memtable-size", Usage: "size of each pebble memtable (up to two in memory)", Value: storage.FormatSize(int64(def.MemTableSize))},
			&cli.BoolFlag{Name: "fault-injection", Usage: "enable /admin/fault to block traffic to chosen peers"},
			&cli.BoolFlag{Name: "hinted-handoff", Usage: "sloppy quorums: fallbacks hold copies for dead primaries as hints, delivered when they return", Value: !def.DisableHints},
			&cli.IntFlag{Name: "max-hints", Usage: "most hints kept per target node (0 = unbounded); overflow is counted in /metrics", Value: def.MaxHints},
			&cli.Int64Flag{Name: "max-hint-bytes", Usage: "most bytes of hints kept per target node (0 = unbounded)", Value: def.MaxHintBytes, DefaultText: bytesText(def.MaxHintBytes)},
			&cli.BoolFlag{Name: "aae", Usage: "active anti-entropy: compare Merkle trees with other replicas and sync differing keys", Value: !def.DisableAAE},
			&cli.DurationFlag{Name: "aae-interval", Usage: "time between anti-entropy exchanges", Value: def.AAEInterval, DefaultText: durationText(def.AAEInterval)},
			&cli.IntFlag{Name: "aae-keys-per-sec", Usage: "most keys anti-entropy lists or syncs per second", Value: def.AAEKeysPerSec},
			&cli.DurationFlag{Name: "tombstone-grace", Usage: "keep a delete's tombstone at least this long before collecting it", Value: def.TombstoneGrace, DefaultText: durationText(def.TombstoneGrace)},
			&cli.StringFlag{Name: "cluster-secret-file", Usage: "`FILE` holding the secret that signs context tokens, the same on every node: one line, or two (current, previous) during a rotation; without it the first node generates one and the others adopt it through gossip"},
			&cli.StringFlag{Name: "tls-cert", Usage: "`FILE` (PEM) of this node's certificate, signed by --tls-ca: the client API serves HTTPS and the internode RPC mutual TLS; reread on change and on SIGHUP"},
			&cli.StringFlag{Name: "tls-key", Usage: "`FILE` (PEM) of the private key of --tls-cert"},
			&cli.StringFlag{Name: "tls-ca", Usage: "`FILE` (PEM) of the cluster CA: RPC peers must present a certificate it signed"},
			&cli.StringFlag{Name: "gossip-key-file", Usage: "`FILE` of gossip encryption keys (base64, 16/24/32 bytes, one per line, the first encrypts; see dotkv keygen); nodes without them cannot join; reread on SIGHUP"},
			&cli.StringFlag{Name: "auth-token-file", Usage: "`FILE` of bearer tokens, one \"ROLE TOKEN\" per line (roles read, write, admin); turns access control on, reread on SIGHUP"},
			&cli.BoolFlag{Name: "metrics-auth", Usage: "/metrics needs a token too (of any role); without it /metrics is open"},
			&cli.StringFlag{Name: "admin-http", Usage: "serve /admin/ and /debug/ on this `HOST:PORT` instead of on the client API's address"},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info"},
		}),
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

// nodeConfigFrom returns the node configuration dotkv server's flags ask
// for, reading the --config file into the flags the command line and the
// environment left unset. Its errors name the flag at fault, or the file
// and key that gave its value.
func nodeConfigFrom(c *cli.Context) (node.Config, error) {
	s, err := loadSettings(c)
	if err != nil {
		return node.Config{}, err
	}
	for _, f := range []string{"id", "data"} {
		if s.String(f) == "" {
			return node.Config{}, fmt.Errorf("required flag %q not set: give --%s, %s or %s in a --config file", f, f, envVarOf(f), f)
		}
	}
	fsync, err := storage.ParseFsyncMode(s.String("fsync"))
	if err != nil {
		return node.Config{}, fmt.Errorf("%s: %w", s.name("fsync"), err)
	}
	if s.Int64("max-value") <= 0 {
		return node.Config{}, fmt.Errorf("%s %d: want a positive number of bytes", s.name("max-value"), s.Int64("max-value"))
	}
	cache, memtable, err := s.sizes()
	if err != nil {
		return node.Config{}, err
	}
	n := s.Int("n")
	if n < 1 || n > node.MaxN {
		return node.Config{}, fmt.Errorf("%s %d: want 1..%d", s.name("n"), n, node.MaxN)
	}
	r, err := replica.ParseLevel(s.String("r"), n)
	if err != nil {
		return node.Config{}, fmt.Errorf("%s: %w", s.name("r"), err)
	}
	w, err := replica.ParseLevel(s.String("w"), n)
	if err != nil {
		return node.Config{}, fmt.Errorf("%s: %w", s.name("w"), err)
	}
	for _, f := range []string{"max-hints", "max-hint-bytes"} {
		if v := s.Int64(f); v < 0 {
			return node.Config{}, fmt.Errorf("%s %d: must be ≥ 0 (0: unbounded)", s.name(f), v)
		}
	}
	for _, f := range []string{"aae-interval", "tombstone-grace"} {
		if d := s.Duration(f); d <= 0 {
			return node.Config{}, fmt.Errorf("%s %v: must be > 0", s.name(f), d)
		}
	}
	if v := s.Int("aae-keys-per-sec"); v <= 0 {
		return node.Config{}, fmt.Errorf("%s %d: must be > 0", s.name("aae-keys-per-sec"), v)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.String("log-level"))); err != nil {
		return node.Config{}, fmt.Errorf("%s: %w", s.name("log-level"), err)
	}
	if !storage.ValidNodeID(s.String("id")) {
		return node.Config{}, fmt.Errorf("%s %q: want 1..64 of A-Z a-z 0-9 _ -", s.name("id"), s.String("id"))
	}
	var join []string
	for _, j := range strings.Split(s.String("join"), ",") {
		if j = strings.TrimSpace(j); j != "" {
			join = append(join, j)
		}
	}
	if s.String("gossip") == "" && (len(join) > 0 || s.String("rpc") != "" || s.String("replace") != "") {
		return node.Config{}, fmt.Errorf("--join, --rpc and --replace need --gossip")
	}
	replace := s.String("replace")
	if replace != "" {
		switch {
		case !storage.ValidNodeID(replace):
			return node.Config{}, fmt.Errorf("%s %q: want a node ID (1..64 of A-Z a-z 0-9 _ -)", s.name("replace"), replace)
		case replace == s.String("id"):
			return node.Config{}, fmt.Errorf("%s %q: a node cannot replace itself (restart it under its ID with an empty data directory instead)", s.name("replace"), replace)
		case s.Bool("new-cluster"):
			return node.Config{}, fmt.Errorf("--replace and --new-cluster exclude each other: a replacement joins an existing cluster")
		case len(join) == 0:
			return node.Config{}, fmt.Errorf("--replace needs --join (a replacement joins an existing cluster)")
		}
	}
	transferLimit, transferRate, err := s.transfers()
	if err != nil {
		return node.Config{}, err
	}
	maxSiblings, warnSiblings, maxRecord, err := s.limits()
	if err != nil {
		return node.Config{}, err
	}
	secrets, err := s.secrets()
	if err != nil {
		return node.Config{}, err
	}
	if s.Bool("metrics-auth") && s.String("auth-token-file") == "" {
		return node.Config{}, fmt.Errorf("--metrics-auth needs --auth-token-file")
	}
	if s.String("gossip-key-file") != "" && s.String("gossip") == "" {
		return node.Config{}, fmt.Errorf("--gossip-key-file needs --gossip")
	}
	tlsFiles := certs.Files{Cert: s.String(certs.FlagCert), Key: s.String(certs.FlagKey), CA: s.String(certs.FlagCA)}
	if err := tlsFiles.Validate(); err != nil {
		return node.Config{}, err
	}
	cfg := node.Config{
		ClusterSecrets: secrets,
		TLS:            tlsFiles,
		GossipKeyFile:  s.String("gossip-key-file"),
		AuthTokenFile:  s.String("auth-token-file"),
		MetricsAuth:    s.Bool("metrics-auth"),
		AdminHTTPAddr:  s.String("admin-http"),
		ID:             s.String("id"),
		Version:        buildVersion(),
		DataDir:        s.String("data"),
		HTTPAddr:       s.String("http"),
		AdvertiseHTTP:  s.String("advertise-http"),
		GossipAddr:     s.String("gossip"),
		RPCAddr:        s.String("rpc"),
		Join:           join,
		NewCluster:     s.Bool("new-cluster"),
		Replace:        replace,
		TransferLimit:  transferLimit,
		TransferRate:   transferRate,
		N:              n,
		R:              r,
		W:              w,
		Fsync:          fsync,
		MaxValue:       s.Int64("max-value"),
		MaxSiblings:    maxSiblings,
		WarnSiblings:   warnSiblings,
		MaxRecordBytes: maxRecord,
		CacheSize:      cache,
		MemTableSize:   uint64(memtable),
		FaultInjection: s.Bool("fault-injection"),
		DisableHints:   !s.Bool("hinted-handoff"),
		MaxHints:       s.Int("max-hints"),
		MaxHintBytes:   s.Int64("max-hint-bytes"),
		DisableAAE:     !s.Bool("aae"),
		AAEInterval:    s.Duration("aae-interval"),
		AAEKeysPerSec:  s.Int("aae-keys-per-sec"),
		TombstoneGrace: s.Duration("tombstone-grace"),
		Logger:         slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	if err := cfg.Validate(); err != nil { // what the flags' own checks left
		return node.Config{}, err
	}
	return cfg, nil
}

// secrets reads --cluster-secret-file (nil without it).
func (s settings) secrets() ([][]byte, error) {
	f := s.String("cluster-secret-file")
	if f == "" {
		return nil, nil
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name("cluster-secret-file"), err)
	}
	secrets, err := versioning.ParseSecretFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", s.name("cluster-secret-file"), f, err)
	}
	return secrets, nil
}

// transfers parses --transfer-limit and --transfer-rate into node.Config's
// TransferLimit and TransferRate, where 0 selects the default: a flag's 0
// (paused, unlimited) is -1 there.
func (s settings) transfers() (limit int, rate int64, err error) {
	limit = s.Int("transfer-limit")
	if limit < 0 {
		return 0, 0, fmt.Errorf("%s %d: want 0 (paused) or more", s.name("transfer-limit"), limit)
	}
	if limit == 0 {
		limit = -1
	}
	rate, err = storage.ParseSize(s.String("transfer-rate"))
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", s.name("transfer-rate"), err)
	}
	if rate == 0 {
		rate = -1
	}
	return limit, rate, nil
}

// limits parses --max-siblings, --warn-siblings and --max-record into
// node.Config's MaxSiblings, WarnSiblings and MaxRecordBytes, where 0
// selects the default: a flag's 0 (no bound, never) is -1 there, and an
// unset --warn-siblings is 0 (25, or --max-siblings if lower).
func (s settings) limits() (maxSiblings, warnSiblings int, maxRecord int64, err error) {
	maxSiblings, warnSiblings = s.Int("max-siblings"), s.Int("warn-siblings")
	for _, f := range []string{"max-siblings", "warn-siblings"} {
		if s.Int(f) < 0 {
			return 0, 0, 0, fmt.Errorf("%s %d: must be ≥ 0 (0: no bound, never)", s.name(f), s.Int(f))
		}
	}
	switch {
	case !s.IsSet("warn-siblings"):
		warnSiblings = 0 // storage's default: 25, or --max-siblings if lower
	case maxSiblings > 0 && warnSiblings > maxSiblings:
		return 0, 0, 0, fmt.Errorf("%s %d is above %s %d", s.name("warn-siblings"), warnSiblings, s.name("max-siblings"), maxSiblings)
	case warnSiblings == 0:
		warnSiblings = -1
	}
	if maxSiblings == 0 {
		maxSiblings = -1
	}
	maxRecord, err = storage.ParseSize(s.String("max-record"))
	if err == nil && (maxRecord == 0 || maxRecord > node.MaxRecordLimit) {
		err = fmt.Errorf("%s: want more than 0 and at most %s (half an internode message)", s.String("max-record"), storage.FormatSize(node.MaxRecordLimit))
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%s: %w", s.name("max-record"), err)
	}
	return maxSiblings, warnSiblings, maxRecord, nil
}

// sizeFlags parses --cache-size and --memtable-size and checks them as
// storage.Open would; an unset flag is 0, which selects storage's default.
func sizeFlags(c *cli.Context) (cache, memtable int64, err error) {
	return settings{Context: c}.sizes()
}

// sizes is sizeFlags, naming the source of a bad value.
func (s settings) sizes() (cache, memtable int64, err error) {
	if cache, err = s.size("cache-size", func(o *storage.Options, v int64) { o.CacheSize = v }); err != nil {
		return 0, 0, err
	}
	memtable, err = s.size("memtable-size", func(o *storage.Options, v int64) { o.MemTableSize = uint64(v) })
	return cache, memtable, err
}

func (s settings) size(name string, set func(*storage.Options, int64)) (int64, error) {
	v := s.String(name)
	if v == "" {
		return 0, nil
	}
	size, err := storage.ParseSize(v)
	if err == nil && size == 0 {
		err = fmt.Errorf("size %q: want more than 0", v)
	}
	if err == nil {
		o := storage.Options{NodeID: "check"} // Validate wants one
		set(&o, size)
		err = o.Validate()
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", s.name(name), err)
	}
	return size, nil
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
