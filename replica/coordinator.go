package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/transport"
	"github.com/dotkv/dotkv/versioning"
)

var (
	errNotPrimary = errors.New("replica: not a primary of the key")
	// errTimeout wraps context.DeadlineExceeded so callers map it to 504.
	errTimeout = fmt.Errorf("replica: %w", context.DeadlineExceeded)
)

// ReadOptions are a read's consistency levels.
type ReadOptions struct{ R, PR Level }

// WriteOptions are a write's consistency levels.
type WriteOptions struct{ W, PW Level }

// Store is the local storage the coordinator needs (*storage.Store).
type Store interface {
	Get(partition uint32, key []byte) (versioning.State, bool, error)
	Write(partition uint32, key []byte, ctx versioning.VersionVector, sib versioning.Sibling) (versioning.State, versioning.Dot, error)
	Merge(partition uint32, key []byte, remote versioning.State) (versioning.State, error)
}

// Cluster is the membership view the coordinator needs (gossip in a
// cluster, a fixed one-member ring on a single node).
type Cluster interface {
	// Ring returns the current ring; it never changes under a caller.
	Ring() *ring.Ring
	// Dead reports whether a node is known to be down (not merely suspect).
	Dead(id string) bool
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
	// Now stamps writes with their wall-clock time; nil means time.Now.
	Now func() time.Time
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

func (s staticCluster) Ring() *ring.Ring { return s.r }
func (staticCluster) Dead(string) bool   { return false }
func (staticCluster) Ready() bool        { return true }

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
	srv.Handle(methodPut, c.handlePut)
}

// required returns how many acks a request needs with levels lvl and
// primary (primaries only count toward both: there are no fallbacks yet).
func required(nEff int, lvl, primary, def Level) int {
	need := lvl.Required(nEff, def)
	if !primary.IsDefault() {
		need = max(need, primary.Required(nEff, def))
	}
	return need
}

// reachable returns the nodes of list not known to be dead.
func (c *Coordinator) reachable(list []string) []string {
	out := make([]string, 0, len(list))
	for _, n := range list {
		if n == c.self || !c.cluster.Dead(n) {
			out = append(out, n)
		}
	}
	return out
}

// LocalState returns this node's own stored state of key, without quorum.
func (c *Coordinator) LocalState(key []byte) (versioning.State, bool, error) {
	return c.store.Get(c.cluster.Ring().PartitionOf(key), key)
}

type readResult struct {
	st  versioning.State
	err error
}

// Get asks the key's primaries in parallel and returns the merge of the
// first R answers.
func (c *Coordinator) Get(ctx context.Context, key []byte, o ReadOptions) (versioning.State, error) {
	if !c.cluster.Ready() {
		return versioning.State{}, ErrNotReady
	}
	r := c.cluster.Ring()
	p := r.PartitionOf(key)
	prims := r.Primaries(p)
	need := required(len(prims), o.R, o.PR, c.cfg.R)
	targets := c.reachable(prims)
	if len(targets) < need {
		return versioning.State{}, &UnavailableError{Op: "read", Kind: "replicas", Acks: len(targets), Required: need}
	}
	results := make(chan readResult, len(targets))
	req := wbuf(nil).u32(p).bytes(key)
	for _, node := range targets {
		c.wg.Go(func() { results <- c.readOne(ctx, node, p, key, req) })
	}
	var merged versioning.State
	replies, failed := 0, 0
	for replies < need {
		select {
		case res := <-results:
			if res.err != nil {
				failed++
				c.log.Debug("read from replica failed", "key", string(key), "err", res.err)
				if len(targets)-failed < need {
					return versioning.State{}, &UnavailableError{Op: "read", Kind: "replicas", Acks: replies, Required: need}
				}
				continue
			}
			merged = versioning.Sync(merged, res.st)
			replies++
		case <-ctx.Done():
			return versioning.State{}, fmt.Errorf("read %q: %d of %d replies: %w", key, replies, need, errTimeout)
		}
	}
	return merged, nil
}

func (c *Coordinator) readOne(ctx context.Context, node string, p uint32, key, req []byte) readResult {
	if node == c.self {
		st, _, err := c.store.Get(p, key)
		return readResult{st: st, err: err}
	}
	resp, err := c.peer.Call(ctx, node, methodRead, req)
	if err != nil {
		return readResult{err: err}
	}
	rb := rbuf{b: resp}
	st := rb.state()
	return readResult{st: st, err: rb.done()}
}

func (c *Coordinator) handleRead(_ context.Context, _ string, req []byte) ([]byte, error) {
	rb := rbuf{b: req}
	p, key := rb.u32(), rb.bytes()
	if err := rb.done(); err != nil {
		return nil, err
	}
	st, _, err := c.store.Get(p, key)
	if err != nil {
		return nil, err
	}
	return wbuf(nil).state(st)
}

func (c *Coordinator) handleReplicate(_ context.Context, _ string, req []byte) ([]byte, error) {
	rb := rbuf{b: req}
	p, key, st := rb.u32(), rb.bytes(), rb.state()
	if err := rb.done(); err != nil {
		return nil, err
	}
	if _, err := c.store.Merge(p, key, st); err != nil {
		return nil, err
	}
	return nil, nil
}

// Put writes sib (a value or a tombstone) with the client's context vctx
// and returns the context of the new version: vctx plus the new dot, so
// that a client writing again with it replaces only what it has seen.
func (c *Coordinator) Put(ctx context.Context, key []byte, vctx versioning.VersionVector, sib versioning.Sibling, o WriteOptions) (versioning.VersionVector, error) {
	if !c.cluster.Ready() {
		return nil, ErrNotReady
	}
	sib.Modified = c.cfg.Now().UnixMilli()
	r := c.cluster.Ring()
	p := r.PartitionOf(key)
	prims := r.Primaries(p)
	if slices.Contains(prims, c.self) {
		return c.coordinate(ctx, p, prims, key, vctx, sib, o)
	}
	return c.forward(ctx, prims, putRequest{key: key, vctx: vctx, sib: sib, w: o.W, pw: o.PW})
}

// forward sends the write to the first reachable primary, trying the next
// only when the request certainly never reached the previous one (so a
// write is never coordinated twice).
func (c *Coordinator) forward(ctx context.Context, prims []string, req putRequest) (versioning.VersionVector, error) {
	need := required(len(prims), req.w, req.pw, c.cfg.W)
	for _, node := range c.reachable(prims) {
		if dl, ok := ctx.Deadline(); ok {
			req.timeout = time.Until(dl)
		}
		msg, err := req.encode()
		if err != nil {
			return nil, err
		}
		resp, err := c.peer.Call(ctx, node, methodPut, msg)
		if err != nil {
			if transport.NotDelivered(err) {
				c.log.Debug("forward write: primary unreachable, trying next", "node", node, "err", err)
				continue
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("forward write to %s: %w", node, errTimeout)
			}
			return nil, fmt.Errorf("forward write to %s (outcome unknown): %w", node, err)
		}
		vctx, err := decodePutResult(resp)
		if errors.Is(err, errNotPrimary) {
			continue // rings disagree for a moment; the other side did nothing
		}
		return vctx, err
	}
	return nil, &UnavailableError{Op: "write", Kind: "replicas", Acks: 0, Required: need}
}

func (c *Coordinator) handlePut(ctx context.Context, _ string, msg []byte) ([]byte, error) {
	req, err := decodePut(msg, c.cfg.N)
	if err != nil {
		return nil, err
	}
	r := c.cluster.Ring()
	p := r.PartitionOf(req.key)
	prims := r.Primaries(p)
	if !c.cluster.Ready() || !slices.Contains(prims, c.self) {
		// Nothing was applied: the forwarder may safely try another primary.
		return encodePutResult(nil, errNotPrimary), nil
	}
	if req.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.timeout)
		defer cancel()
	}
	vctx, err := c.coordinate(ctx, p, prims, req.key, req.vctx, req.sib, WriteOptions{W: req.w, PW: req.pw})
	return encodePutResult(vctx, err), nil
}

// coordinate applies a write at this primary and replicates it.
func (c *Coordinator) coordinate(ctx context.Context, p uint32, prims []string, key []byte, vctx versioning.VersionVector, sib versioning.Sibling, o WriteOptions) (versioning.VersionVector, error) {
	need := required(len(prims), o.W, o.PW, c.cfg.W)
	targets := c.reachable(prims)
	if len(targets) < need { // fail fast, before writing anything
		return nil, &UnavailableError{Op: "write", Kind: "replicas", Acks: len(targets), Required: need}
	}
	st, dot, err := c.store.Write(p, key, vctx, sib)
	if err != nil {
		return nil, fmt.Errorf("write %q locally: %w", key, err)
	}
	newCtx := vctx.AddDot(dot)
	others := slices.DeleteFunc(slices.Clone(targets), func(n string) bool { return n == c.self })
	if len(others) == 0 {
		return newCtx, nil
	}
	msg, err := wbuf(nil).u32(p).bytes(key).state(st)
	if err != nil {
		return nil, fmt.Errorf("encode replication of %q: %w", key, err)
	}
	// Replication outlives the request: replicas that answer after the
	// client got its answer still get the write.
	rctx, cancel := context.WithTimeout(c.bg, c.cfg.ReplicaTimeout)
	acks := make(chan error, len(others))
	var pending sync.WaitGroup
	for _, node := range others {
		pending.Add(1)
		c.wg.Go(func() {
			defer pending.Done()
			_, err := c.peer.Call(rctx, node, methodReplicate, msg)
			if err != nil {
				c.log.Debug("replicate failed", "key", string(key), "node", node, "err", err)
			}
			acks <- err
		})
	}
	c.wg.Go(func() { pending.Wait(); cancel() })

	got, failed := 1, 0
	for got < need {
		select {
		case err := <-acks:
			if err != nil {
				failed++
				if len(targets)-failed < need {
					return nil, &UnavailableError{Op: "write", Kind: "replicas", Acks: got, Required: need}
				}
				continue
			}
			got++
		case <-ctx.Done():
			return nil, fmt.Errorf("write %q: %d of %d acks (outcome unknown): %w", key, got, need, errTimeout)
		}
	}
	return newCtx, nil
}
