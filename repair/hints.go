package repair

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

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

// NewDeliverer returns a deliverer; Run drives it.
func NewDeliverer(cfg DelivererConfig) *Deliverer {
	if cfg.Interval <= 0 {
		cfg.Interval = 200 * time.Millisecond
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
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

// round offers every target that gossip does not see dead its hints.
func (d *Deliverer) round(ctx context.Context) {
	for target, n := range d.cfg.Store.HintCounts() {
		if n == 0 || d.cfg.Dead(target) {
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

func encodeBatch(hints []storage.Hint) ([]byte, error) {
	b := binary.AppendUvarint(nil, uint64(len(hints)))
	for _, h := range hints {
		enc, err := h.State.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode hint %q: %w", h.Key, err)
		}
		b = binary.BigEndian.AppendUint32(b, h.Partition)
		b = binary.AppendUvarint(b, uint64(len(h.Key)))
		b = append(b, h.Key...)
		b = binary.AppendUvarint(b, uint64(len(enc)))
		b = append(b, enc...)
	}
	return b, nil
}

var errBatch = errors.New("repair: malformed state batch")

// HandleMergeStates returns the RPC handler that merges a batch of states
// into this node's records.
func HandleMergeStates(store RecordStore) transport.Handler {
	return func(_ context.Context, _ string, req []byte) ([]byte, error) {
		n, k := binary.Uvarint(req)
		if k <= 0 || n > uint64(len(req)) {
			return nil, errBatch
		}
		req = req[k:]
		for range n {
			if len(req) < 4 {
				return nil, errBatch
			}
			p := binary.BigEndian.Uint32(req)
			req = req[4:]
			key, rest, ok := lenPrefixed(req)
			if !ok {
				return nil, errBatch
			}
			enc, rest, ok := lenPrefixed(rest)
			if !ok {
				return nil, errBatch
			}
			req = rest
			st, err := versioning.DecodeState(enc)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", errBatch, err)
			}
			if _, err := store.Merge(p, key, st); err != nil {
				return nil, err
			}
		}
		if len(req) != 0 {
			return nil, errBatch
		}
		return nil, nil
	}
}

func lenPrefixed(b []byte) (v, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}
