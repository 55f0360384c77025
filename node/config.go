package node

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/handoff"
	"github.com/dotkv/dotkv/repair"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/storage"
)

// MaxN is the largest replication factor a node accepts.
const MaxN = 16

// ErrInvalidConfig is wrapped by the errors of Config.Validate, and so by
// Start's for a configuration it cannot work with.
var ErrInvalidConfig = errors.New("invalid node config")

// DefaultConfig returns the configuration a node runs with unless told
// otherwise (dotkv server's flag defaults are taken from it): the client
// API on 127.0.0.1:8080; N = 3 with quorum reads and writes; fsync always;
// values up to api.DefaultMaxValue; storage's record limits and memtable
// size, and a block cache sized from this machine's memory (CacheSize 0,
// see storage.DefaultCacheSize); hinted handoff with at most a million
// hints or 1 GiB of them per target node, offered every 200 ms;
// anti-entropy every 10 s at up to 50,000 keys a second, with tombstones
// kept for an hour; handoff's transfer limit and rate; stranded records
// handed on every 5 s. ID and DataDir have no default.
//
// Most of these are also what Start uses for a zero field; the
// exceptions are MaxHints and MaxHintBytes, where zero means unbounded,
// and HTTPAddr, where zero lets the system pick the port.
func DefaultConfig() Config {
	rep := replica.DefaultConfig()
	lim := storage.DefaultLimits()
	transfers := handoff.DefaultConfig()
	aae, hints := repair.DefaultEngineConfig(), repair.DefaultDelivererConfig()
	return Config{
		HTTPAddr:       "127.0.0.1:8080",
		N:              rep.N,
		R:              rep.R,
		W:              rep.W,
		Fsync:          storage.FsyncAlways,
		MaxValue:       api.DefaultMaxValue,
		MemTableSize:   storage.DefaultMemTableSize,
		MaxSiblings:    lim.MaxSiblings,
		MaxRecordBytes: lim.MaxRecordBytes,
		// WarnSiblings 0: storage's default, which follows MaxSiblings
		// when that is lower.
		MaxHints:        1_000_000,
		MaxHintBytes:    1 << 30,
		HintInterval:    hints.Interval,
		AAEInterval:     aae.Interval,
		AAEKeysPerSec:   aae.KeysPerSec,
		TombstoneGrace:  aae.TombstoneGrace,
		TransferLimit:   transfers.Limit,
		TransferRate:    transfers.Rate,
		CleanupInterval: repair.DefaultCleanerConfig().Interval,
	}
}

// withDefaults fills the zero fields that Start itself defaults (the
// others are defaulted by the parts they configure).
func (cfg Config) withDefaults() Config {
	cfg.N = cmp.Or(cfg.N, DefaultConfig().N)
	return cfg
}

// Validate reports a configuration Start cannot work with: an invalid
// node ID, N outside 1..MaxN, a numeric R or W above N, an unknown fsync
// mode, negative sizes, bounds or intervals, a block cache or memtable
// size storage refuses, contradictory sibling limits, a MaxRecordBytes
// above MaxRecordLimit, an AdvertiseHTTP that is not a reachable
// host:port, or an incomplete set of TLS files. Zero fields are
// valid: they select the defaults (see each field), as do negative ones
// where a field says so. Its errors wrap ErrInvalidConfig and name every
// problem found.
func (cfg Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if cfg.N < 0 || cfg.N > MaxN {
		add("replication factor N = %d: want 1..%d (0: %d)", cfg.N, MaxN, DefaultConfig().N)
	} else if err := (replica.Config{N: cfg.withDefaults().N, R: cfg.R, W: cfg.W}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.storageOptions().Validate(); err != nil {
		errs = append(errs, err)
	}
	if cfg.MaxValue < 0 {
		add("max value %d bytes: want more than 0 (0: %s)", cfg.MaxValue, storage.FormatSize(api.DefaultMaxValue))
	}
	if cfg.MaxRecordBytes < 0 || cfg.MaxRecordBytes > MaxRecordLimit {
		add("max record size %s: want at most %s (half an internode message)",
			storage.FormatSize(cfg.MaxRecordBytes), storage.FormatSize(MaxRecordLimit))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"hint interval", cfg.HintInterval},
		{"anti-entropy interval", cfg.AAEInterval},
		{"tombstone grace", cfg.TombstoneGrace},
		{"cleanup interval", cfg.CleanupInterval},
	} {
		if d.v < 0 {
			add("%s %v: want more than 0 (0: the default)", d.name, d.v)
		}
	}
	if cfg.AAEKeysPerSec < 0 {
		add("anti-entropy keys per second %d: want more than 0 (0: the default)", cfg.AAEKeysPerSec)
	}
	if cfg.AdvertiseHTTP != "" {
		if host, port, err := net.SplitHostPort(cfg.AdvertiseHTTP); err != nil || unspecified(host) || !validPort(port) {
			add("advertised HTTP address %q: want HOST:PORT with a host others can reach and a port 1..65535", cfg.AdvertiseHTTP)
		}
	}
	if err := cfg.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// validPort reports whether port is a decimal port number 1..65535.
func validPort(port string) bool {
	p, err := strconv.Atoi(port)
	return err == nil && p >= 1 && p <= 65535
}

// storageOptions returns the store's options cfg asks for, without its
// logger and observer.
func (cfg Config) storageOptions() storage.Options {
	return storage.Options{
		NodeID: cfg.ID, Fsync: cfg.Fsync, FS: cfg.FS,
		CacheSize: cfg.CacheSize, MemTableSize: cfg.MemTableSize,
		HintLimits: storage.HintLimits{MaxCount: cfg.MaxHints, MaxBytes: cfg.MaxHintBytes},
		Limits:     cfg.limits(),
	}
}
