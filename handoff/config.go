package handoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/versioning"
)

// Store is the node's record store as transfers use it; *storage.Store
// satisfies it.
type Store interface {
	// ScanPartition passes the records of partition p after cursor after,
	// in stored order, in a batch bounded by maxKeys and maxBytes; it
	// returns the cursor of the last record and whether p holds no more.
	ScanPartition(p uint32, after []byte, maxKeys, maxBytes int, fn func(key, raw []byte) error) (next []byte, done bool, err error)
	// Partitions returns the partitions holding at least one record,
	// ascending (a source answers MethodEmpty with it).
	Partitions() ([]uint32, error)
	// Merge syncs a state received from another replica into the local one.
	Merge(p uint32, key []byte, st versioning.State) (versioning.State, error)
	// GetMeta and SetMeta read and durably write a metadata value.
	GetMeta(name string) ([]byte, bool, error)
	SetMeta(name string, value []byte) error
	// DeleteMetaRange durably deletes the metadata values whose names
	// fall in [from, to).
	DeleteMetaRange(from, to string) error
}

// Peer calls another node's RPC methods (*transport.Client, or a memnet
// endpoint in tests).
type Peer interface {
	Call(ctx context.Context, node, method string, req []byte) ([]byte, error)
}

// Config configures an Engine. Start from DefaultConfig and set the
// node's parts (Self, Store, Peer, View, Live, MarkReceived).
type Config struct {
	// Self is this node's ID.
	Self string
	// Store holds the records transferred in and served out.
	Store Store
	// Peer calls other nodes' handoff RPCs.
	Peer Peer
	// View returns the current ownership view.
	View func() *ring.View
	// Live reports whether gossip does not see node id as dead.
	Live func(id string) bool
	// MarkReceived reports to gossip that this node holds partition p for
	// the named change. Calling it again for the same partition must be
	// harmless (a restarted node repeats it).
	MarkReceived func(change string, p uint32)
	// Confirm, if not nil, compares a transferred partition with a peer
	// and syncs any difference (repair.Engine.ExchangePartitions). It
	// runs once a partition's scan is done, before MarkReceived: with the
	// source (which must succeed), then with every other live reader
	// (best effort), which may hold writes the source missed.
	Confirm func(ctx context.Context, peer string, parts []uint32) error
	// Limit is how many partitions this node transfers in at once, and
	// how many it serves out at once (a source over it answers "busy");
	// 0 pauses every transfer. SetLimit changes it at run time.
	Limit int
	// Rate bounds the bytes per second of records received, over all
	// incoming transfers (0: unlimited).
	Rate int64
	// BatchKeys and BatchBytes bound one pulled batch: a receiver
	// persists its progress after each.
	BatchKeys  int
	BatchBytes int
	// Interval is how often Run re-plans transfers.
	Interval time.Duration
	// CallTimeout bounds the pull of one batch; a source forgets a
	// transfer it has not heard of for this long.
	CallTimeout time.Duration
	// Logger receives transfer events; nil discards them.
	Logger *slog.Logger
	// Registerer, if not nil, receives the engine's metrics.
	Registerer prometheus.Registerer
}

// DefaultConfig returns the defaults: two partitions in and two out at
// once, 64 MiB/s in, batches of 500 keys or 1 MiB, re-planning every
// 200 ms and 30 s per batch.
func DefaultConfig() Config {
	return Config{
		Limit:       2,
		Rate:        64 << 20,
		BatchKeys:   500,
		BatchBytes:  1 << 20,
		Interval:    200 * time.Millisecond,
		CallTimeout: 30 * time.Second,
	}
}

// Bounds of a batch the engine asks for and serves: far below
// transport.MaxMessage.
const (
	maxBatchKeys  = 100_000
	maxBatchBytes = 16 << 20
)

// Validate reports a configuration the engine cannot work with.
func (c Config) Validate() error {
	var errs []error
	if c.Self == "" {
		errs = append(errs, errors.New("no Self"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("no Store"))
	}
	if c.Peer == nil {
		errs = append(errs, errors.New("no Peer"))
	}
	if c.View == nil || c.Live == nil || c.MarkReceived == nil {
		errs = append(errs, errors.New("View, Live and MarkReceived are required"))
	}
	if c.Limit < 0 {
		errs = append(errs, fmt.Errorf("limit %d: want ≥ 0", c.Limit))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate %d B/s: want ≥ 0 (0: unlimited)", c.Rate))
	}
	if c.BatchKeys < 1 || c.BatchKeys > maxBatchKeys {
		errs = append(errs, fmt.Errorf("batch keys %d: want 1..%d", c.BatchKeys, maxBatchKeys))
	}
	if c.BatchBytes < 1 || c.BatchBytes > maxBatchBytes {
		errs = append(errs, fmt.Errorf("batch bytes %d: want 1..%d", c.BatchBytes, maxBatchBytes))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval %v: want > 0", c.Interval))
	}
	if c.CallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("call timeout %v: want > 0", c.CallTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("handoff config: %w", err)
	}
	return nil
}
