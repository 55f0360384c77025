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
	// errNotOwner answers a copy or a read sent by a node whose view is
	// older than the receiver's, for a key the receiver does not own (or
	// is still receiving): never an ack, never a not-found.
	errNotOwner = errors.New("replica: not an owner of the key at this ring version")
	// errStaleView answers a copy sent by a node whose view is older than
	// the receiver's and misses one of the key's write owners: the sender
	// did not send the write to every node it must reach, so this copy is
	// not an acknowledgement.
	errStaleView = errors.New("replica: the sender's ring version misses an owner of the key")
	// errNoHint is a fallback's read of a key it holds no hint for.
	errNoHint = errors.New("replica: the fallback holds no hint for the key")
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
	// WriteDeferSync applies a client write with a fresh dot of this node;
	// sync waits until it is durable (see storage.Store.WriteDeferSync).
	WriteDeferSync(partition uint32, key []byte, ctx versioning.VersionVector, sib versioning.Sibling) (versioning.State, versioning.Dot, func() error, error)
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
	// View returns the current ownership view; it never changes under a
	// caller.
	View() *ring.View
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
	// ReadRepairChance is the probability that a read asks every replica
	// of the key rather than only as many as its levels need, so that
	// read repair reaches them all (default 0.1; negative: never). A read
	// with SyncRepair always asks every replica.
	ReadRepairChance float64
	// SpeculativeRetry is how long a read waits for the replicas it asked
	// before it asks one more (default 10 ms: well above a healthy read
	// RPC, and a hundredth of the default request timeout; negative:
	// never).
	SpeculativeRetry time.Duration
	// Now stamps writes with their wall-clock time; nil means time.Now.
	Now func() time.Time
	// Metrics, if not nil, counts repairs and hints.
	Metrics *Metrics
	// Logger receives replication failures; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the coordinator's defaults: N = 3, quorum reads
// and writes, replication for at most 5 s past a request without deadline,
// one read in ten asking every replica, and a read asking one more replica
// after 10 ms.
func DefaultConfig() Config {
	return Config{N: 3, R: Quorum, W: Quorum, ReplicaTimeout: 5 * time.Second,
		ReadRepairChance: 0.1, SpeculativeRetry: 10 * time.Millisecond}
}

// withDefaults fills c's zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	def := DefaultConfig()
	if c.N == 0 {
		c.N = def.N
	}
	if c.R.IsDefault() {
		c.R = def.R
	}
	if c.W.IsDefault() {
		c.W = def.W
	}
	if c.ReplicaTimeout == 0 {
		c.ReplicaTimeout = def.ReplicaTimeout
	}
	if c.ReadRepairChance == 0 {
		c.ReadRepairChance = def.ReadRepairChance
	}
	if c.SpeculativeRetry == 0 {
		c.SpeculativeRetry = def.SpeculativeRetry
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports a configuration the coordinator cannot work with.
func (c Config) Validate() error {
	if c.N < 1 {
		return fmt.Errorf("replication factor %d: want ≥ 1", c.N)
	}
	for _, l := range []struct {
		name string
		lvl  Level
	}{{"r", c.R}, {"w", c.W}} {
		if l.lvl.kind == levelNumber && (l.lvl.n < 1 || l.lvl.n > c.N) {
			return fmt.Errorf("default %s = %d: want 1..%d (N)", l.name, l.lvl.n, c.N)
		}
	}
	if c.ReplicaTimeout < 0 {
		return fmt.Errorf("replica timeout %v: want > 0", c.ReplicaTimeout)
	}
	if !(c.ReadRepairChance <= 1) { // NaN too
		return fmt.Errorf("read repair chance %v: want 0..1 (negative: never)", c.ReadRepairChance)
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

	// Requests in flight (client requests and peers' RPCs), counted so
	// that Close refuses new ones and waits for these.
	gate struct {
		sync.RWMutex
		closed bool
		reqs   sync.WaitGroup
	}
	// Background replication and read repair, started only by requests in
	// flight, are owned here: Close waits for them, then cancels them.
	bg     context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// NewCoordinator returns the request path of node self.
func NewCoordinator(self string, store Store, cluster Cluster, peer Peer, cfg Config) (*Coordinator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
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
	return NewCoordinator(self, store, staticCluster{ring.Stable(r, 1)}, nil, cfg)
}

type staticCluster struct{ v *ring.View }

func (s staticCluster) View() *ring.View  { return s.v }
func (staticCluster) Dead(string) bool    { return false }
func (staticCluster) Ready() bool         { return true }
func (staticCluster) Suspect(string) bool { return false }

// ErrClosed is returned for requests that reach a coordinator that is
// closing or closed: nothing was read or written.
var ErrClosed = errors.New("replica: the node is shutting down")

// enter admits a request (a client's or a peer's) unless the coordinator
// is closed; an admitted request must call leave when it is done. Every
// goroutine the coordinator starts is started by an admitted request, so
// once Shutdown has waited for them all, none can start.
func (c *Coordinator) enter() error {
	c.gate.RLock()
	defer c.gate.RUnlock()
	if c.gate.closed {
		return ErrClosed
	}
	c.gate.reqs.Add(1)
	return nil
}

func (c *Coordinator) leave() { c.gate.reqs.Done() }

// Close is Shutdown without a bound: in-flight requests and their
// replication end at their deadlines.
func (c *Coordinator) Close() { c.Shutdown(context.Background()) }

// Shutdown stops the coordinator: it refuses new requests with ErrClosed
// (a peer's forwarded write is answered "not a primary", so the peer may
// try another), waits for the requests in flight, then for the
// replication and read repair they started to end by themselves (each is
// bounded by its request's deadline, or ReplicaTimeout), until ctx is
// done; then it cancels what is left (a copy that was not acknowledged
// becomes a hint, as at a deadline) and waits for it. Once Shutdown
// returns, the coordinator touches its store no more. Calling it twice is
// safe.
func (c *Coordinator) Shutdown(ctx context.Context) {
	c.closed.Do(func() {
		c.gate.Lock()
		c.gate.closed = true
		c.gate.Unlock()
		done := make(chan struct{})
		go func() {
			c.gate.reqs.Wait() // no request left: nothing adds to wg
			c.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			c.log.Warn("shutdown: replication still in flight; cancelling it")
		}
		c.stop()
		<-done
	})
}

// N returns the configured replication factor (the largest numeric level).
func (c *Coordinator) N() int { return c.cfg.N }

// Ready reports whether the node serves client requests.
func (c *Coordinator) Ready() bool { return c.cluster.Ready() }

// View returns the ownership view the coordinator currently routes by.
func (c *Coordinator) View() *ring.View { return c.cluster.View() }

// Register installs the coordinator's RPC handlers.
func (c *Coordinator) Register(srv interface {
	Handle(method string, fn transport.Handler)
}) {
	// A point read is short and never blocks: where the server can, it
	// runs on the connection's read loop, with no goroutine handoff.
	if in, ok := srv.(interface {
		HandleInline(method string, fn transport.Handler)
	}); ok {
		in.HandleInline(methodRead, c.handleRead)
	} else {
		srv.Handle(methodRead, c.handleRead)
	}
	srv.Handle(methodReplicate, c.handleReplicate)
	srv.Handle(methodHint, c.handleHint)
	srv.Handle(methodPut, c.handlePut)
}

// LocalState returns this node's own stored state of key, without quorum.
func (c *Coordinator) LocalState(key []byte) (versioning.State, bool, error) {
	if err := c.enter(); err != nil {
		return versioning.State{}, false, err
	}
	defer c.leave()
	return c.store.Get(c.cluster.View().PartitionOf(key), key)
}

// planner returns the planner of this node's requests under the current
// failure detector.
func (c *Coordinator) planner() planner {
	return planner{self: c.self, dead: c.cluster.Dead, hints: !c.cfg.DisableHints}
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

// expired reports whether ctx is done or its deadline has passed (its
// timer may fire after that of a detached context with the same deadline,
// whose calls then fail first: their failure is the request's timeout).
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
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

// sendCopy gives node the state st of key, whose encoding is enc: a
// primary merges it into its records, a fallback keeps it as a hint for
// primary. enc is encoded once for every copy of st (see encodeState).
func (c *Coordinator) sendCopy(ctx context.Context, v *ring.View, node, primary string, p uint32, key []byte, st versioning.State, enc []byte) error {
	if node == c.self {
		var err error
		if node == primary {
			_, err = c.store.Merge(p, key, st)
		} else {
			_, err = c.store.PutHint(primary, p, key, st)
		}
		return err
	}
	// A copy carries the epoch and the write owners of the view the write
	// was planned on (see handleReplicate).
	method, msg := methodReplicate, wire.Writer(make([]byte, 0, 64+len(key)+len(enc))).U64(v.Epoch())
	if node != primary {
		method, msg = methodHint, msg.String(primary)
	} else {
		msg = appendOwners(msg, v.Primaries(p))
	}
	_, err := c.peer.Call(ctx, node, method, msg.U32(p).Bytes(key).Bytes(enc))
	return err
}

// refused reports whether a copy's error is the receiver's refusal of a
// stale sender (errNotOwner, errStaleView): the receiver is reachable, so
// a fallback must not stand in for it.
func refused(err error) bool {
	if errors.Is(err, errNotOwner) || errors.Is(err, errStaleView) {
		return true
	}
	var re *transport.RemoteError
	return errors.As(err, &re) && (re.Msg == errNotOwner.Error() || re.Msg == errStaleView.Error())
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
