package replica

import (
	"context"
	"fmt"
	"time"

	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// ReadOptions are a read's consistency levels.
type ReadOptions struct{ R, PR Level }

// WriteOptions are a write's consistency levels.
type WriteOptions struct{ W, PW Level }

// Config configures a node's request path.
type Config struct {
	// N is the replication factor (default 3); R and W are the default
	// levels (default quorum).
	N    int
	R, W Level
	// Partitions is Q (default ring.DefaultPartitions).
	Partitions int
	// Now stamps writes with their wall-clock time; nil means time.Now.
	Now func() time.Time
}

// Local serves requests on a one-member ring: its store is the only
// replica of every key.
type Local struct {
	store *storage.Store
	parts ring.Partitioner
	cfg   Config
}

// NewLocal returns the single-node request path over store.
func NewLocal(store *storage.Store, cfg Config) (*Local, error) {
	if cfg.N == 0 {
		cfg.N = 3
	}
	if cfg.N < 1 {
		return nil, fmt.Errorf("replication factor %d: want ≥ 1", cfg.N)
	}
	if cfg.R.IsDefault() {
		cfg.R = Quorum
	}
	if cfg.W.IsDefault() {
		cfg.W = Quorum
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = ring.DefaultPartitions
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	parts, err := ring.NewPartitioner(cfg.Partitions)
	if err != nil {
		return nil, err
	}
	return &Local{store: store, parts: parts, cfg: cfg}, nil
}

// N returns the configured replication factor (the upper bound of a
// numeric level).
func (l *Local) N() int { return l.cfg.N }

// nEff is N capped at the number of ring members: here, one.
func (l *Local) nEff() int { return min(l.cfg.N, 1) }

// check fails with an UnavailableError if acks do not meet the levels.
func (l *Local) check(op string, acks, primaryAcks int, level, primary, def Level) error {
	if req := level.Required(l.nEff(), def); acks < req {
		return &UnavailableError{Op: op, Kind: "replicas", Acks: acks, Required: req}
	}
	if primary.IsDefault() {
		return nil
	}
	if req := primary.Required(l.nEff(), def); primaryAcks < req {
		return &UnavailableError{Op: op, Kind: "primaries", Acks: primaryAcks, Required: req}
	}
	return nil
}

// Get returns the merged state of key from R replicas.
func (l *Local) Get(ctx context.Context, key []byte, o ReadOptions) (versioning.State, error) {
	if err := ctx.Err(); err != nil {
		return versioning.State{}, err
	}
	st, _, err := l.store.Get(l.parts.OfKey(key), key)
	if err != nil {
		return versioning.State{}, fmt.Errorf("read %q: %w", key, err)
	}
	return st, l.check("read", 1, 1, o.R, o.PR, l.cfg.R)
}

// Put writes sib (a value or a tombstone) with the client's context vctx
// and returns the context of the new version: vctx plus the new dot, so
// that a client writing again with it replaces only what it has seen.
func (l *Local) Put(ctx context.Context, key []byte, vctx versioning.VersionVector, sib versioning.Sibling, o WriteOptions) (versioning.VersionVector, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sib.Modified = l.cfg.Now().UnixMilli()
	_, dot, err := l.store.Write(l.parts.OfKey(key), key, vctx, sib)
	if err != nil {
		return nil, fmt.Errorf("write %q: %w", key, err)
	}
	return vctx.AddDot(dot), l.check("write", 1, 1, o.W, o.PW, l.cfg.W)
}

// LocalState returns this node's own stored state of key, without quorum.
func (l *Local) LocalState(key []byte) (versioning.State, bool, error) {
	return l.store.Get(l.parts.OfKey(key), key)
}
