package repair

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/transport"
	"github.com/dotkv/dotkv/versioning"
)

// MethodMergeStates is the RPC that carries a batch of key states for the
// receiver to merge into its records (delivered hints, anti-entropy
// pushes): count, then per key partition, key and state.
const MethodMergeStates = "merge_states"

// HintStore is the hint side of *storage.Store.
type HintStore interface {
	HintCounts() map[string]int
	ScanHints(target string, after *storage.Hint, limit int) ([]storage.Hint, error)
	DeleteHintIfUnchanged(h storage.Hint) (bool, error)
}

// RecordStore is what the receiving side needs (*storage.Store).
type RecordStore interface {
	Merge(partition uint32, key []byte, remote versioning.State) (versioning.State, error)
}

// Peer calls other nodes (*transport.Client).
type Peer interface {
	Call(ctx context.Context, node, method string, req []byte) ([]byte, error)
}

// DelivererConfig configures hint delivery.
type DelivererConfig struct {
	Store HintStore
	Peer  Peer
	// Dead reports whether gossip sees a node as dead; hints for it wait.
	Dead func(id string) bool
	// View, if not nil, returns the current ownership view. Hints for a
	// target that is no longer a member (removed, left or replaced) go to
	// the current write owners of each hint's partition instead. Nil: every
	// target gets its own hints.
	View func() *ring.View
	// Self is this node's ID, and Local its records: a re-targeted hint
	// whose partition this node owns is merged into Local rather than
	// sent. Without Local, it is sent to Self through Peer.
	Self  string
	Local RecordStore
	// Interval between delivery rounds (default 200 ms).
	Interval time.Duration
	// Batch is the most hints per RPC (default 256).
	Batch int
	// CallTimeout bounds one batch RPC (default 10 s).
	CallTimeout time.Duration
	Logger      *slog.Logger
}

// Deliverer sends pending hints to their targets.
type Deliverer struct {
	cfg       DelivererConfig
	delivered atomic.Uint64
	failures  atomic.Uint64
}

// DefaultDelivererConfig returns the defaults NewDeliverer uses for zero
// fields: hints offered every 200 ms, in batches of 256, 10 s per batch
// RPC.
func DefaultDelivererConfig() DelivererConfig {
	return DelivererConfig{Interval: 200 * time.Millisecond, Batch: 256, CallTimeout: 10 * time.Second}
}

// NewDeliverer returns a deliverer; Run drives it.
func NewDeliverer(cfg DelivererConfig) *Deliverer {
	def := DefaultDelivererConfig()
	if cfg.Interval <= 0 {
		cfg.Interval = def.Interval
	}
	if cfg.Batch <= 0 {
		cfg.Batch = def.Batch
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = def.CallTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Deliverer{cfg: cfg}
}

// Delivered returns how many hints were delivered and deleted.
func (d *Deliverer) Delivered() uint64 { return d.delivered.Load() }

// Failures returns how many batch deliveries failed.
func (d *Deliverer) Failures() uint64 { return d.failures.Load() }

// Run delivers hints every interval until ctx is done.
func (d *Deliverer) Run(ctx context.Context) {
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.round(ctx)
	}
}

// round offers every target that gossip does not see dead its hints, and
// hands the hints of targets that are no longer members to the owners of
// their partitions.
func (d *Deliverer) round(ctx context.Context) {
	var v *ring.View
	if d.cfg.View != nil {
		v = d.cfg.View()
	}
	for target, n := range d.cfg.Store.HintCounts() {
		if n == 0 {
			continue
		}
		if v != nil && !isMember(v, target) {
			if err := d.retarget(ctx, v, target); err != nil && ctx.Err() == nil {
				d.cfg.Logger.Debug("re-targeted hint delivery paused", "target", target, "err", err)
			}
			continue
		}
		if d.cfg.Dead(target) {
			continue
		}
		if err := d.DeliverTo(ctx, target); err != nil && ctx.Err() == nil {
			d.cfg.Logger.Debug("hint delivery paused", "target", target, "err", err)
		}
	}
}

// DeliverTo sends every hint pending for target, batch by batch, and
// returns at the first failure (the rest wait for the next round).
func (d *Deliverer) DeliverTo(ctx context.Context, target string) error {
	var after *storage.Hint
	for ctx.Err() == nil {
		hints, err := d.cfg.Store.ScanHints(target, after, d.cfg.Batch)
		if err != nil {
			return fmt.Errorf("scan hints for %s: %w", target, err)
		}
		if len(hints) == 0 {
			return nil
		}
		hints = hints[:batchPrefix(hints)]
		msg, err := encodeBatch(hints)
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
		_, err = d.cfg.Peer.Call(cctx, target, MethodMergeStates, msg)
		cancel()
		if err != nil {
			d.failures.Add(1)
			return fmt.Errorf("deliver %d hints to %s: %w", len(hints), target, err)
		}
		for _, h := range hints {
			deleted, err := d.cfg.Store.DeleteHintIfUnchanged(h)
			if err != nil {
				return fmt.Errorf("delete delivered hint: %w", err)
			}
			if deleted {
				d.delivered.Add(1)
			}
		}
		after = &hints[len(hints)-1]
	}
	return ctx.Err()
}

// isMember reports whether id is a member of v.
func isMember(v *ring.View, id string) bool {
	_, found := slices.BinarySearch(v.Members(), id)
	return found
}

// retarget delivers the hints pending for target, which is not a member
// of v, to the write owners of each hint's partition under v, and deletes
// each hint once all its owners acknowledged it. A hint with a dead owner,
// or an owner that failed a call in this pass, is kept for a later round;
// the pass goes on with the rest.
func (d *Deliverer) retarget(ctx context.Context, v *ring.View, target string) error {
	failed := map[string]bool{} // owners that failed a call in this pass
	var (
		after    *storage.Hint
		firstErr error
	)
	for ctx.Err() == nil {
		hints, err := d.cfg.Store.ScanHints(target, after, d.cfg.Batch)
		if err != nil {
			return fmt.Errorf("scan hints for %s: %w", target, err)
		}
		if len(hints) == 0 {
			return firstErr
		}
		hints = hints[:batchPrefix(hints)]
		after = &hints[len(hints)-1]

		// Each live owner's share of the batch, owners in first-seen order.
		keep := make([]bool, len(hints))
		var owners []string
		share := map[string][]int{}
		for i, h := range hints {
			ps := v.Primaries(h.Partition)
			keep[i] = len(ps) == 0
			for _, o := range ps {
				if failed[o] || d.cfg.Dead(o) {
					keep[i] = true
					continue
				}
				if _, ok := share[o]; !ok {
					owners = append(owners, o)
				}
				share[o] = append(share[o], i)
			}
		}
		var calls []mergeCall
		for _, o := range owners {
			sub := make([]storage.Hint, len(share[o]))
			for j, i := range share[o] {
				sub[j] = hints[i]
			}
			if o == d.cfg.Self && d.cfg.Local != nil {
				if err := mergeLocal(d.cfg.Local, sub); err != nil {
					keepFailed(share[o], keep, &firstErr, fmt.Errorf("merge %d hints for %s locally: %w", len(sub), target, err))
				}
				continue
			}
			msg, err := encodeBatch(sub)
			if err != nil {
				return err
			}
			calls = append(calls, mergeCall{node: o, req: msg})
		}
		for i, err := range callEach(ctx, d.cfg.Peer, d.cfg.CallTimeout, calls) {
			if err != nil {
				o := calls[i].node
				failed[o] = true
				d.failures.Add(1)
				keepFailed(share[o], keep, &firstErr, fmt.Errorf("deliver %d hints for %s to owner %s: %w", len(share[o]), target, o, err))
			}
		}
		for i, h := range hints {
			if keep[i] {
				continue
			}
			deleted, err := d.cfg.Store.DeleteHintIfUnchanged(h)
			if err != nil {
				return fmt.Errorf("delete delivered hint: %w", err)
			}
			if deleted {
				d.delivered.Add(1)
			}
		}
	}
	return ctx.Err()
}

// keepFailed keeps the hints at indexes and records err if it is the
// first.
func keepFailed(indexes []int, keep []bool, first *error, err error) {
	for _, i := range indexes {
		keep[i] = true
	}
	if *first == nil {
		*first = err
	}
}

// mergeLocal merges hints into this node's records.
func mergeLocal(store RecordStore, hints []storage.Hint) error {
	for _, h := range hints {
		if _, err := store.Merge(h.Partition, h.Key, h.State); err != nil {
			return err
		}
	}
	return nil
}

// batchPrefix returns how many of hints, from the first, one batch
// takes: about batchBytes of states at most (always at least one), so that
// a batch of large values stays far below the transport's message limit,
// which the target would refuse every time.
func batchPrefix(hints []storage.Hint) int {
	size := 0
	for i, h := range hints {
		enc, err := h.State.MarshalBinary()
		if err != nil {
			return i + 1 // encodeBatch reports it
		}
		if size += len(h.Key) + len(enc); i > 0 && size > batchBytes {
			return i
		}
	}
	return len(hints)
}

// encodeBatch encodes a merge_states request: the count, then per hint
// its partition, key and state. Targets are not sent.
func encodeBatch(hints []storage.Hint) ([]byte, error) {
	w := wire.Writer(nil).Uvarint(uint64(len(hints)))
	for _, h := range hints {
		enc, err := h.State.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode hint %q: %w", h.Key, err)
		}
		w = w.U32(h.Partition).Bytes(h.Key).Bytes(enc)
	}
	return w, nil
}

// decodeBatch decodes a request made by encodeBatch (keys alias req).
// Truncated or trailing input, and a state that does not decode, are
// wire.ErrMalformed.
func decodeBatch(req []byte) ([]storage.Hint, error) {
	r := wire.NewReader(req)
	// Each entry takes 6 bytes at least: the partition and two lengths.
	hints := make([]storage.Hint, r.Count(6))
	encs := make([][]byte, len(hints))
	for i := range hints {
		hints[i].Partition, hints[i].Key, encs[i] = r.U32(), r.Bytes(), r.Bytes()
	}
	if err := r.Done(); err != nil {
		return nil, err
	}
	for i, enc := range encs {
		st, err := versioning.DecodeState(enc)
		if err != nil {
			return nil, fmt.Errorf("%w: state of %q: %w", wire.ErrMalformed, hints[i].Key, err)
		}
		hints[i].State = st
	}
	return hints, nil
}

// HandleMergeStates returns the RPC handler that merges a batch of states
// into this node's records. A malformed batch, or one naming a partition
// its key does not hash to (partitionOf: the ring's PartitionOf; a record
// stored under another partition would be invisible to reads and to
// anti-entropy), is refused whole, before anything is merged.
func HandleMergeStates(store RecordStore, partitionOf func(key []byte) uint32) transport.Handler {
	return func(_ context.Context, _ string, req []byte) ([]byte, error) {
		hints, err := decodeBatch(req)
		if err != nil {
			return nil, err
		}
		for _, h := range hints {
			if p := partitionOf(h.Key); p != h.Partition {
				return nil, fmt.Errorf("%w: key %q is in partition %d, not %d", wire.ErrMalformed, h.Key, p, h.Partition)
			}
		}
		return nil, mergeLocal(store, hints)
	}
}
