package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/transport"
	"github.com/dotkv/dotkv/versioning"
)

var (
	errNotPrimary = errors.New("replica: not a primary of the key")
	// errTimeout wraps context.DeadlineExceeded so callers map it to 504.
	errTimeout = fmt.Errorf("replica: %w", context.DeadlineExceeded)
)

// ReadOptions are a read's consistency levels and repair mode.
type ReadOptions struct {
	R, PR Level
	// SyncRepair makes the read wait for every contacted replica and
	// repair the stale ones before answering (repair=sync).
	SyncRepair bool
}

// WriteOptions are a write's consistency levels.
type WriteOptions struct{ W, PW Level }

// Store is the local storage the coordinator needs (*storage.Store).
type Store interface {
	Get(partition uint32, key []byte) (versioning.State, bool, error)
	Write(partition uint32, key []byte, ctx versioning.VersionVector, sib versioning.Sibling) (versioning.State, versioning.Dot, error)
	Merge(partition uint32, key []byte, remote versioning.State) (versioning.State, error)
	// Hints: states kept for a target node that did not acknowledge.
	PutHint(target string, partition uint32, key []byte, st versioning.State) (versioning.State, error)
	GetHint(target string, partition uint32, key []byte) (versioning.State, bool, error)
	HintCounts() map[string]int
	// FallbackDot issues a dot for a write this node coordinates while it
	// is not a primary of the key (see versioning.State.UpdateExact).
	FallbackDot(ctx versioning.VersionVector) (versioning.Dot, error)
}

// Cluster is the membership view the coordinator needs (gossip in a
// cluster, a fixed one-member ring on a single node).
type Cluster interface {
	// Ring returns the current ring; it never changes under a caller.
	Ring() *ring.Ring
	// Dead reports whether a node is known to be down (not merely suspect).
	Dead(id string) bool
	// Suspect reports whether a node failed its latest probe but is not
	// declared dead (e.g. paused); it is still tried, but last.
	Suspect(id string) bool
	// Ready reports whether this node knows the cluster's ring yet.
	Ready() bool
}

// ErrNotReady is returned for client requests that reach a node still
// joining its cluster: its ring is not the cluster's yet.
var ErrNotReady = errors.New("node is joining the cluster and does not serve requests yet")

// Peer calls another node's RPC methods (*transport.Client).
type Peer interface {
	Call(ctx context.Context, node, method string, req []byte) ([]byte, error)
}

// Config configures a coordinator.
type Config struct {
	// N is the replication factor (default 3); R and W are the default
	// levels (default quorum).
	N    int
	R, W Level
	// ReplicaTimeout bounds replication to replicas that did not answer
	// before the client was answered (default 5 s).
	ReplicaTimeout time.Duration
	// DisableHints turns off sloppy quorums and hinted handoff: no
	// fallback takes a dead primary's copy, and no hint is kept for a
	// primary that did not acknowledge (--hinted-handoff=false).
	DisableHints bool
	// Now stamps writes with their wall-clock time; nil means time.Now.
	Now func() time.Time
	// Metrics, if not nil, counts repairs and hints.
	Metrics *Metrics
	// Logger receives replication failures; nil discards them.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.N == 0 {
		c.N = 3
	}
	if c.N < 1 {
		return fmt.Errorf("replication factor %d: want ≥ 1", c.N)
	}
	if c.R.IsDefault() {
		c.R = Quorum
	}
	if c.W.IsDefault() {
		c.W = Quorum
	}
	if c.ReplicaTimeout <= 0 {
		c.ReplicaTimeout = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Coordinator serves client reads and writes on one node: it forwards a
// write to a primary of the key unless it is one, applies it locally with
// a fresh dot, replicates the new state to the other primaries in
// parallel, and answers once the write level is met. Replication to
// replicas that have not answered by then continues in the background.
type Coordinator struct {
	self    string
	store   Store
	cluster Cluster
	peer    Peer
	cfg     Config
	log     *slog.Logger

	// Background replication is owned here and stopped by Close.
	bg     context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// NewCoordinator returns the request path of node self.
func NewCoordinator(self string, store Store, cluster Cluster, peer Peer, cfg Config) (*Coordinator, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	return &Coordinator{self: self, store: store, cluster: cluster, peer: peer, cfg: cfg, log: cfg.Logger, bg: bg, stop: stop}, nil
}

// NewLocal returns the request path of a single node that is the only
// member of its ring (no peers).
func NewLocal(self string, store Store, cfg Config) (*Coordinator, error) {
	r, err := ring.New([]string{self}, ring.DefaultPartitions, max(cfg.N, 1))
	if err != nil {
		return nil, err
	}
	return NewCoordinator(self, store, staticCluster{r}, nil, cfg)
}

type staticCluster struct{ r *ring.Ring }

func (s staticCluster) Ring() *ring.Ring  { return s.r }
func (staticCluster) Dead(string) bool    { return false }
func (staticCluster) Ready() bool         { return true }
func (staticCluster) Suspect(string) bool { return false }

// Close stops background replication and waits for it.
func (c *Coordinator) Close() {
	c.closed.Do(func() {
		c.stop()
		c.wg.Wait()
	})
}

// N returns the configured replication factor (the largest numeric level).
func (c *Coordinator) N() int { return c.cfg.N }

// Ready reports whether the node serves client requests.
func (c *Coordinator) Ready() bool { return c.cluster.Ready() }

// Ring returns the ring the coordinator currently routes by.
func (c *Coordinator) Ring() *ring.Ring { return c.cluster.Ring() }

// Register installs the coordinator's RPC handlers.
func (c *Coordinator) Register(srv interface {
	Handle(method string, fn transport.Handler)
}) {
	srv.Handle(methodRead, c.handleRead)
	srv.Handle(methodReplicate, c.handleReplicate)
	srv.Handle(methodHint, c.handleHint)
	srv.Handle(methodPut, c.handlePut)
}

// LocalState returns this node's own stored state of key, without quorum.
func (c *Coordinator) LocalState(key []byte) (versioning.State, bool, error) {
	return c.store.Get(c.cluster.Ring().PartitionOf(key), key)
}

// replicaSlot is one primary's copy of a key in one request, and the
// node that holds it: the primary itself, a fallback standing in for it
// (holding the copy as a hint naming the primary), or nobody.
type replicaSlot struct {
	primary string
	node    string
}

func (s replicaSlot) direct() bool { return s.node == s.primary }

// fallbackPool hands out a key's fallbacks in preference-list order, each
// at most once per request, skipping known-dead nodes and this node.
type fallbackPool struct {
	mu   sync.Mutex
	next []string
}

// newPool returns the key's live fallbacks; this node is among them only
// if includeSelf (a read may use this node's own hints; a fallback
// coordinating a write has already taken its own slot).
func (c *Coordinator) newPool(fallbacks []string, includeSelf bool) *fallbackPool {
	p := &fallbackPool{}
	if c.cfg.DisableHints {
		return p
	}
	for _, f := range fallbacks {
		if (f != c.self || includeSelf) && !c.cluster.Dead(f) {
			p.next = append(p.next, f)
		}
	}
	return p
}

func (p *fallbackPool) take() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.next) == 0 {
		return ""
	}
	f := p.next[0]
	p.next = p.next[1:]
	return f
}

// plan assigns each primary's copy to a node. standIn ≥ 0 makes this node
// hold that primary's copy (a fallback coordinating a write).
func (c *Coordinator) plan(prims []string, pool *fallbackPool, standIn int) []replicaSlot {
	slots := make([]replicaSlot, len(prims))
	for i, p := range prims {
		slots[i].primary = p
		switch {
		case i == standIn:
			slots[i].node = c.self
		case p == c.self || !c.cluster.Dead(p):
			slots[i].node = p
		default:
			slots[i].node = pool.take() // "" when hints are off or no fallback is left
		}
	}
	return slots
}

// levelsMet reports whether acks meet need (all acks) and needP (acks
// from primaries), and otherwise the UnavailableError to report.
func levelsMet(op string, acks, primaryAcks, need, needP int) *UnavailableError {
	if acks < need {
		return &UnavailableError{Op: op, Kind: "replicas", Acks: acks, Required: need}
	}
	if primaryAcks < needP {
		return &UnavailableError{Op: op, Kind: "primaries", Acks: primaryAcks, Required: needP}
	}
	return nil
}

// needs resolves a request's levels against nEff primaries.
func needs(nEff int, lvl, primary, def Level) (need, needP int) {
	need = lvl.Required(nEff, def)
	if !primary.IsDefault() {
		needP = primary.Required(nEff, def)
		need = max(need, needP)
	}
	return need, needP
}

// detached returns a context that outlives the request (replication and
// repair continue after the client has its answer) but not the request's
// deadline, nor the coordinator.
func (c *Coordinator) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(c.bg, dl)
	}
	return context.WithTimeout(c.bg, c.cfg.ReplicaTimeout)
}

// storeHint keeps st here for target, which did not acknowledge it.
func (c *Coordinator) storeHint(target string, p uint32, key []byte, st versioning.State) {
	if c.cfg.DisableHints || target == c.self {
		return
	}
	if _, err := c.store.PutHint(target, p, key, st); err != nil {
		c.cfg.Metrics.hintRefused()
		c.log.Warn("keep hint", "target", target, "key", string(key), "err", err)
		return
	}
	c.cfg.Metrics.hintStored()
}

// sendCopy gives node the state of key: a primary merges it into its
// records, a fallback keeps it as a hint for primary.
func (c *Coordinator) sendCopy(ctx context.Context, node, primary string, p uint32, key []byte, st versioning.State) error {
	if node == c.self {
		var err error
		if node == primary {
			_, err = c.store.Merge(p, key, st)
		} else {
			_, err = c.store.PutHint(primary, p, key, st)
		}
		return err
	}
	var msg wire.Writer
	var err error
	method := methodReplicate
	if node == primary {
		msg, err = appendState(wire.Writer(nil).U32(p).Bytes(key), st)
	} else {
		method = methodHint
		msg, err = appendState(wire.Writer(nil).String(primary).U32(p).Bytes(key), st)
	}
	if err != nil {
		return err
	}
	_, err = c.peer.Call(ctx, node, method, msg)
	return err
}

// readLocal returns this node's copy of key: its records when it reads as
// a primary, else the merge of every hint it holds for the key, whichever
// primary each names (the writer's and the reader's plans may have given
// this fallback different primaries' slots).
func (c *Coordinator) readLocal(asPrimary bool, p uint32, key []byte) (versioning.State, error) {
	if asPrimary {
		st, _, err := c.store.Get(p, key)
		return st, err
	}
	var merged versioning.State
	for target := range c.store.HintCounts() {
		st, ok, err := c.store.GetHint(target, p, key)
		if err != nil {
			return versioning.State{}, err
		}
		if ok {
			merged = versioning.Sync(merged, st)
		}
	}
	return merged, nil
}

func (c *Coordinator) handleRead(_ context.Context, _ string, req []byte) ([]byte, error) {
	r := wire.NewReader(req)
	p, key, asFallback := r.U32(), r.Bytes(), r.Byte()
	if err := r.Done(); err != nil {
		return nil, err
	}
	st, err := c.readLocal(asFallback == 0, p, key)
	if err != nil {
		return nil, err
	}
	return appendState(nil, st)
}

func (c *Coordinator) handleReplicate(_ context.Context, _ string, req []byte) ([]byte, error) {
	r := wire.NewReader(req)
	p, key := r.U32(), r.Bytes()
	st, err := readState(r)
	if err != nil {
		return nil, err
	}
	if _, err := c.store.Merge(p, key, st); err != nil {
		return nil, err
	}
	return nil, nil
}

// handleHint keeps a copy for a primary this node stands in for. It never
// enters this node's records, so it is never served as primary data.
func (c *Coordinator) handleHint(_ context.Context, _ string, req []byte) ([]byte, error) {
	r := wire.NewReader(req)
	target, p, key := r.String(), r.U32(), r.Bytes()
	st, err := readState(r)
	if err != nil {
		return nil, err
	}
	if target == c.self {
		_, err = c.store.Merge(p, key, st)
	} else {
		_, err = c.store.PutHint(target, p, key, st)
	}
	return nil, err
}
