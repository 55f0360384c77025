package repair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// CleanerStore is the record side of *storage.Store that stranded-record
// cleanup needs.
type CleanerStore interface {
	// Partitions returns the partitions holding at least one record,
	// ascending.
	Partitions() ([]uint32, error)
	// ScanPartition calls fn for the records of partition p in key order,
	// from cursor after (nil: the first), at most maxKeys records and about
	// maxBytes bytes, and returns the cursor of the next call; done is true
	// when the partition has no more records. key and raw are valid only
	// during the call.
	ScanPartition(p uint32, after []byte, maxKeys, maxBytes int, fn func(key, raw []byte) error) (next []byte, done bool, err error)
	// DeleteIfUnchanged deletes a record if its stored encoding still is
	// raw, and reports whether it did.
	DeleteIfUnchanged(partition uint32, key, raw []byte) (bool, error)
}

// CleanerConfig configures stranded-record cleanup.
type CleanerConfig struct {
	// Self is this node's ID.
	Self  string
	Store CleanerStore
	Peer  Peer
	// View returns the current ownership view (nil: not known yet; the
	// round does nothing).
	View func() *ring.View
	// Dead reports whether gossip sees a node as dead; a partition with a
	// dead owner keeps its records until the owner is back or replaced.
	Dead func(id string) bool
	// Interval between rounds (default 5 s).
	Interval time.Duration
	// Batch is the most records per merge RPC (default 256).
	Batch int
	// CallTimeout bounds one batch RPC (default 10 s).
	CallTimeout time.Duration
	// Logger receives progress and failures; nil discards them.
	Logger *slog.Logger
}

// DefaultCleanerConfig returns the defaults NewCleaner uses for zero
// fields: a round every 5 s, batches of 256 records, and 10 s per batch
// RPC.
func DefaultCleanerConfig() CleanerConfig {
	return CleanerConfig{Interval: 5 * time.Second, Batch: 256, CallTimeout: 10 * time.Second}
}

// withDefaults fills c's zero fields from DefaultCleanerConfig.
func (c CleanerConfig) withDefaults() CleanerConfig {
	def := DefaultCleanerConfig()
	if c.Interval == 0 {
		c.Interval = def.Interval
	}
	if c.Batch == 0 {
		c.Batch = def.Batch
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = def.CallTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports a configuration the cleaner cannot work with; zero
// durations and batch select the defaults.
func (c CleanerConfig) Validate() error {
	switch {
	case c.Self == "":
		return errors.New("cleaner: no node id (Self)")
	case c.Store == nil || c.Peer == nil || c.View == nil || c.Dead == nil:
		return errors.New("cleaner: Store, Peer, View and Dead are required")
	case c.Interval < 0:
		return fmt.Errorf("cleaner: interval %v, want > 0", c.Interval)
	case c.Batch < 0:
		return fmt.Errorf("cleaner: batch %d, want > 0", c.Batch)
	case c.CallTimeout < 0:
		return fmt.Errorf("cleaner: call timeout %v, want > 0", c.CallTimeout)
	}
	return nil
}

// Cleaner hands records this node holds for partitions it is not a write
// owner of to the partitions' owners, and only then deletes them: records
// left behind by a ring change or a partition's switch to new owners,
// brought by a merge of two rings, or taken while the node was alone
// after its data directory was wiped. Nothing acknowledged to a client is
// stranded on a node that no request asks.
//
// Partitions whose owners are changing are left alone: their transfer
// reads from the current owners, and the cleaner waits for the switch.
type Cleaner struct {
	cfg   CleanerConfig
	moved atomic.Uint64
}

// NewCleaner returns a cleaner; Run drives it.
func NewCleaner(cfg CleanerConfig) (*Cleaner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Cleaner{cfg: cfg.withDefaults()}, nil
}

// Moved returns how many records were handed to their owners and deleted
// here.
func (c *Cleaner) Moved() uint64 { return c.moved.Load() }

// Run runs a round every interval until ctx is done.
func (c *Cleaner) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := c.Round(ctx)
		if n > 0 {
			c.cfg.Logger.Info("handed stranded records to their owners", "records", n)
		}
		if err != nil && ctx.Err() == nil {
			c.cfg.Logger.Debug("stranded-record cleanup paused", "err", err)
		}
	}
}

// Round makes one pass over the partitions this node holds records of
// and is not a write owner of, and returns how many records it handed
// off and deleted. A partition with a dead owner is skipped; a partition
// whose batch an owner did not acknowledge keeps its remaining records,
// and the round goes on with the next partition and reports the failures
// at the end.
func (c *Cleaner) Round(ctx context.Context) (moved int, err error) {
	parts, err := c.cfg.Store.Partitions()
	if err != nil {
		return 0, fmt.Errorf("cleanup: list partitions: %w", err)
	}
	var (
		failed   int
		firstErr error
	)
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return moved, err
		}
		n, err := c.cleanPartition(ctx, p)
		moved += n
		if err != nil {
			if ctx.Err() != nil {
				return moved, ctx.Err()
			}
			if failed++; firstErr == nil {
				firstErr = err
			}
		}
	}
	if failed > 0 {
		return moved, fmt.Errorf("cleanup: %d partitions kept records: %w", failed, firstErr)
	}
	return moved, nil
}

// handoffTo returns the owners partition p's records go to under the
// current view, or nil when they stay: the view is unknown, this node
// owns p, p is moving, p has no owners, or an owner is dead.
func (c *Cleaner) handoffTo(p uint32) []string {
	v := c.cfg.View()
	if v == nil || v.IsPrimary(p, c.cfg.Self) || v.Moving(p) {
		return nil
	}
	owners := v.Primaries(p)
	for _, o := range owners {
		if c.cfg.Dead(o) {
			return nil
		}
	}
	return owners
}

// cleanPartition hands partition p's records to its owners batch by
// batch, deleting each batch once every owner acknowledged it.
func (c *Cleaner) cleanPartition(ctx context.Context, p uint32) (moved int, err error) {
	var cursor []byte
	for {
		if err := ctx.Err(); err != nil {
			return moved, err
		}
		owners := c.handoffTo(p)
		if len(owners) == 0 {
			return moved, nil
		}
		var (
			batch []storage.Hint
			raws  [][]byte
		)
		next, done, err := c.cfg.Store.ScanPartition(p, cursor, c.cfg.Batch, batchBytes, func(key, raw []byte) error {
			st, err := versioning.DecodeState(raw)
			if err != nil { // kept: an owner would refuse the whole batch
				c.cfg.Logger.Warn("cleanup skips an undecodable record", "partition", p, "key", key, "err", err)
				return nil
			}
			batch = append(batch, storage.Hint{Partition: p, Key: bytes.Clone(key), State: st})
			raws = append(raws, bytes.Clone(raw))
			return nil
		})
		if err != nil {
			return moved, fmt.Errorf("cleanup: scan partition %d: %w", p, err)
		}
		if len(batch) > 0 {
			n, err := c.handOff(ctx, p, owners, batch, raws)
			moved += n
			if err != nil {
				return moved, err
			}
		}
		if done {
			return moved, nil
		}
		cursor = next
	}
}

// handOff sends one batch of partition p's records to every owner and,
// once all acknowledged and the view still names no other owner, deletes
// the records that did not change meanwhile.
func (c *Cleaner) handOff(ctx context.Context, p uint32, owners []string, batch []storage.Hint, raws [][]byte) (moved int, err error) {
	msg, err := encodeBatch(batch)
	if err != nil {
		return 0, fmt.Errorf("cleanup: partition %d: %w", p, err)
	}
	calls := make([]mergeCall, len(owners))
	for i, o := range owners {
		calls[i] = mergeCall{node: o, req: msg}
	}
	for i, err := range callEach(ctx, c.cfg.Peer, c.cfg.CallTimeout, calls) {
		if err != nil {
			return 0, fmt.Errorf("cleanup: hand %d records of partition %d to %s: %w", len(batch), p, owners[i], err)
		}
	}
	// The view may have changed while the batch was in flight: delete
	// only if the owners now are among those that acknowledged.
	if now := c.handoffTo(p); len(now) == 0 || slices.ContainsFunc(now, func(o string) bool { return !slices.Contains(owners, o) }) {
		return 0, nil
	}
	for i, h := range batch {
		deleted, err := c.cfg.Store.DeleteIfUnchanged(p, h.Key, raws[i])
		if err != nil {
			return moved, fmt.Errorf("cleanup: delete handed-off record of partition %d: %w", p, err)
		}
		if deleted {
			moved++
			c.moved.Add(1)
		}
	}
	return moved, nil
}

// mergeCall is one MethodMergeStates request to one node.
type mergeCall struct {
	node string
	req  []byte
}

// callEach makes the calls at once, each bounded by timeout, and returns
// their errors in order (nil: acknowledged).
func callEach(ctx context.Context, peer Peer, timeout time.Duration, calls []mergeCall) []error {
	errs := make([]error, len(calls))
	call := func(i int) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, errs[i] = peer.Call(cctx, calls[i].node, MethodMergeStates, calls[i].req)
	}
	if len(calls) == 1 {
		call(0)
		return errs
	}
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() { call(i) })
	}
	wg.Wait()
	return errs
}
