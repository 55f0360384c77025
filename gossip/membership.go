package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/transport"
)

// Liveness is what the failure detector currently says about a node.
// It never changes ring ownership.
type Liveness string

const (
	// Alive: memberlist lists the node and our latest probe of it
	// succeeded.
	Alive Liveness = "alive"
	// Suspect: memberlist has not declared the node dead, but our latest
	// direct probe of it failed (and memberlist has not yet had time to
	// settle the suspicion either way).
	Suspect Liveness = "suspect"
	// Dead: memberlist declared the node dead or left, or does not know
	// it at all.
	Dead Liveness = "dead"
)

// Member is a ring member as this node sees it.
type Member struct {
	ID       string
	HTTP     string // advertised client API address, host:port
	RPC      string // advertised internode RPC address, host:port
	Gossip   string // memberlist address, host:port
	Status   Status
	Liveness Liveness
	// Applied is the ring version (view epoch) the node last applied.
	Applied uint64
}

// Store persists the ring membership state. *storage.Store satisfies it.
type Store interface {
	GetMeta(name string) ([]byte, bool, error)
	SetMeta(name string, v []byte) error
}

// stateKey is the Store metadata name of the persisted ring state;
// lifeKey that of the data directory's life (see entry.Life).
const (
	stateKey = "gossip/ring"
	lifeKey  = "gossip/life"
)

// ErrInvalidConfig is wrapped by Start's configuration errors.
var ErrInvalidConfig = errors.New("gossip: invalid config")

// Config configures Start.
type Config struct {
	// NodeID is the node's stable identity and its memberlist name:
	// 1..64 of [A-Za-z0-9_-].
	NodeID string
	// GossipAddr is the host:port memberlist binds (UDP and TCP) and
	// advertises. The host must be a specific IP; port 0 picks one.
	GossipAddr string
	// HTTPAddr and RPCAddr are the advertised client API and RPC
	// addresses, carried in node metadata and in the ring state.
	HTTPAddr, RPCAddr string
	// Join lists seed gossip addresses (host:port).
	Join []string
	// Partitions (Q) and N are the ring parameters; 0 means 1024 and 3.
	Partitions, N int
	// Store persists the ring state; nil means not persisted.
	Store Store
	// Filter is the fault filter applied to every memberlist packet and
	// stream; nil blocks nothing. It does not apply to an injected
	// Transport.
	Filter *transport.Filter
	// Transport, if not nil, replaces memberlist's UDP/TCP transport
	// (tests: an in-memory network). Its FinalAdvertiseAddr is the node's
	// gossip address, and GossipAddr is ignored. Start owns it: memberlist
	// shuts it down, and Start does if it fails.
	Transport memberlist.NodeAwareTransport
	// NewCluster lets a node with no persisted ring state form a new
	// cluster when none of its Join addresses answers (at once, if it has
	// none). Without it, such a node waits for them. It has no effect once
	// the node has ring state.
	NewCluster bool
	// Replace names a dead member whose partitions this node, started
	// with no ring state, takes over when it joins.
	Replace string
	// ExternalSecret: the cluster secret that signs context tokens comes
	// from --cluster-secret-file, which the node read before it started.
	// Gossip then neither generates, adopts, records nor sends one, and
	// readiness does not wait for one. Without it, the node that forms
	// the cluster generates the secret and nodes that join adopt it
	// (secret.go); a node is ready only once it has it.
	ExternalSecret bool
	// OnSecret, if not nil, receives the cluster secret whenever this node
	// loads, generates, adopts or changes it, before the node can turn
	// ready on it: secrets[0] signs, the others still verify. It is called
	// from Start or from the membership's goroutine, and must not block.
	OnSecret func(secrets [][]byte)
	// Keys, if not empty, encrypt gossip (--gossip-key-file; keys.go):
	// Keys[0] encrypts every packet and stream, every key decrypts, and
	// nothing unencrypted or under another key is accepted, so a node
	// without one of the keys cannot join. Each key is 16, 24 or 32 bytes
	// (AES-128, -192, -256); at most MaxKeys, distinct. Empty: plain
	// gossip. SetKeys changes them on the running node. Start copies
	// them.
	Keys [][]byte
	// Fast selects the test tuning (testTuning): a stopped or cut-off
	// node is declared dead in about a second, yet a live node starved of
	// CPU (race detector, a busy machine) has seconds to answer.
	Fast bool
	// Logger receives membership and memberlist events; nil discards.
	Logger *slog.Logger
}

// tuning is the timing of memberlist and of our own loops.
type tuning struct {
	probeInterval, probeTimeout, gossipInterval time.Duration
	pushPullInterval, tcpTimeout                time.Duration
	gossipToTheDeadTime, deadNodeReclaimTime    time.Duration
	suspicionMult, suspicionMaxMult             int // memberlist's SuspicionMult, SuspicionMaxTimeoutMult
	retransmitMult                              int // memberlist's RetransmitMult, for its own broadcasts

	rejoin  time.Duration // how often to re-join seeds and non-alive members
	refresh time.Duration // how often to re-read memberlist's member list
	leave   time.Duration // how long Close waits for the leave broadcast
}

// suspicionMax bounds how long memberlist keeps a node suspect before
// declaring it dead, in a cluster of n: SuspicionMaxTimeoutMult ×
// SuspicionMult × max(1, log10 n) × ProbeInterval (memberlist's
// suspicionTimeout), plus a probe interval for the probe itself.
func (t tuning) suspicionMax(n int) time.Duration {
	scale := max(1, math.Log10(float64(n)))
	return time.Duration(float64(t.suspicionMaxMult*t.suspicionMult)*scale*float64(t.probeInterval)) + t.probeInterval
}

// normalTuning is for the clusters dotkv runs: 3 to 32 nodes on one LAN
// or one host. It starts from memberlist's DefaultLocalConfig and halves
// the probe interval, so that a crashed or paused (SIGSTOP) node is
// declared dead in about 2–3 s instead of 4–18 s:
//
//   - probe every 500 ms with a 250 ms ack timeout (indirect probes through
//     one other node follow a miss);
//   - suspicion lasts SuspicionMult × max(1, log10 n) × ProbeInterval =
//     1.5 s for n ≤ 10 (2.3 s at 32), growing to 6× that (9 s) when no other
//     node confirms the suspicion — with SuspicionMult 3 one confirmation
//     suffices, which any cluster of 3 or more has;
//   - so detection ≈ one probe interval + probe timeout + 1.5 s ≈ 2.3 s;
//     the node is suspect after ~0.75 s, and coordinators already prefer
//     alive nodes over suspect ones when they pick whom to forward to.
//
// Faster probing costs little (one UDP ping per node per 500 ms) and
// false suspicions under load are refuted by the suspect itself
// (Lifeguard). TCPTimeout 2 s keeps joins to dead peers short (as
// grafana/dskit does); DeadNodeReclaimTime lets a node that restarts on a
// new port back in after 10 s. Push-pull every 10 s spreads ring state
// even when a broadcast was missed.
var normalTuning = tuning{
	probeInterval:       500 * time.Millisecond,
	probeTimeout:        250 * time.Millisecond,
	gossipInterval:      100 * time.Millisecond,
	pushPullInterval:    10 * time.Second,
	tcpTimeout:          2 * time.Second,
	gossipToTheDeadTime: 15 * time.Second,
	deadNodeReclaimTime: 10 * time.Second,
	suspicionMult:       3,
	suspicionMaxMult:    6,
	retransmitMult:      2,
	rejoin:              3 * time.Second,
	refresh:             250 * time.Millisecond,
	leave:               time.Second,
}

// testTuning is for tests (Config.Fast). Their clusters run in one
// process, often under the race detector, on machines busy with other
// tests and builds, where a goroutine may wait hundreds of milliseconds
// for a CPU — every node of the process at once. A live node must not be
// declared dead then, yet tests that stop or cut off a node want the
// verdict in about a second. How memberlist (v0.7.0) decides:
//
//   - A probe sends a UDP ping and waits ProbeTimeout for the ack; on a
//     miss it asks IndirectChecks (1) other nodes to ping and tries TCP,
//     but the whole probe ends ProbeInterval after it started (longer when
//     Lifeguard's awareness finds this node's own probes failing). So the
//     interval, not ProbeTimeout, is how long a slow peer has to answer; a
//     ProbeTimeout at or above the interval would only leave no time for
//     the indirect probe.
//   - A failed probe makes the node suspect. The suspicion lasts
//     SuspicionMult × max(1, log10 n) × ProbeInterval once k =
//     SuspicionMult − 2 other nodes have confirmed it (k is 0 in a cluster
//     too small to have k confirmers), and up to SuspicionMaxTimeoutMult
//     times that without confirmations. A live suspect refutes it as soon
//     as it hears of it.
//
// With SuspicionMult 3 (k = 1), a node that is really gone — every other
// node suspects it and confirms the others' suspicions — is dead after 3
// probe intervals of suspicion, while a suspicion no one confirms lasts 10
// times that. In tests with a node stopped or cut off, a starved live node
// typically has a single prober, whose suspicion no one can confirm. (If
// every node's probe of it fails at once, they confirm each other and it
// has the short course to refute.)
//
// Confirmations travel only as suspect messages in memberlist's broadcast
// queue (push-pull does not confirm), and a queued message goes out
// RetransmitMult × ⌈log10(n+1)⌉ times, piggybacked on gossip and on every
// UDP message — pings to the unreachable side of a partition included,
// where it is lost. With DefaultLocalConfig's 2 (and still with 4) the
// two nodes of the small side of a 3|2 partition often never heard of
// each other's suspicions, nor of the verdict, and the partition took the
// unconfirmed course; with 8 they do.
//
//   - probe every 200 ms; the UDP ack gets 100 ms before the indirect and
//     TCP probes, which have the rest of the interval;
//   - a confirmed suspicion lasts 600 ms (n ≤ 10), an unconfirmed one 6 s;
//   - so a cut-off or crashed node is dead ≈ 1–2 s after the fault for
//     a side of two or more nodes (until a probe of it: up to one round of
//     probes, 200 ms per peer; the probe, 200 ms; suspicion, 600 ms), and
//     after ≈ 6.5 s for a node on its own. A clean Close gossips a leave
//     and is seen at once.
//
// TCPTimeout 1 s keeps a slow push-pull or join from failing (dials to a
// host the fault filter blocks fail at once). Close waits up to 200 ms for
// its leave broadcast to be sent RetransmitMult times: the first gossip
// rounds (every 20 ms) already reach the peers, and a longer wait would
// only slow every test's teardown. memberlist stops gossiping to a dead node
// after GossipToTheDeadTime, 1 s; the rejoin loop, every 200 ms, is what
// brings back a node that was dead.
var testTuning = tuning{
	probeInterval:       200 * time.Millisecond,
	probeTimeout:        100 * time.Millisecond,
	gossipInterval:      20 * time.Millisecond,
	pushPullInterval:    500 * time.Millisecond,
	tcpTimeout:          time.Second,
	gossipToTheDeadTime: time.Second,
	deadNodeReclaimTime: time.Second,
	suspicionMult:       3,
	suspicionMaxMult:    10,
	retransmitMult:      8,
	rejoin:              200 * time.Millisecond,
	refresh:             50 * time.Millisecond,
	leave:               200 * time.Millisecond,
}

// Membership runs memberlist for one node and maintains, on top of it,
// the replicated ring membership state and a liveness view.
//
// One goroutine, run, owns the ring state and everything derived from it.
// memberlist's callbacks only drop what they observed into an inbox and
// wake it; it merges, persists, broadcasts, rebuilds the ring when the
// member set changes, re-reads memberlist's member list, and publishes
// immutable snapshots (the ring, a view of members with liveness, and the
// encoded state for push-pull) through atomic pointers, which is all the
// rest of the node reads. A second goroutine, rejoinLoop, re-joins seeds
// and non-alive members, because memberlist stops talking to dead nodes
// after GossipToTheDeadTime and would not heal a long partition by itself.
type Membership struct {
	id    string
	cfg   Config
	tune  tuning
	log   *slog.Logger
	meta  []byte // node metadata, fixed at Start
	addr  string // bound gossip address
	ml    *memberlist.Memberlist
	queue *memberlist.TransmitLimitedQueue

	rview   atomic.Pointer[ring.View]
	leftCh  chan struct{}         // closed once this node has left
	refused atomic.Pointer[error] // set when the cluster refuses this node
	reqs    chan func()           // membership-change requests, run by run
	view    atomic.Pointer[snapshot]
	local   atomic.Pointer[[]byte] // encoded ring state for LocalState
	live    atomic.Int64           // memberlist members not dead, self included
	// ready turns true once this node knows the cluster's ring: it formed
	// the cluster, claimed its entry after merging a peer's state, or (with
	// a data directory) merged a peer's state or found none of its
	// recorded peers answering. Before that its ring is just itself or
	// what it recorded, and serving on it would strand acknowledged writes
	// on a node the others do not know, or serve a removed node's old
	// data. It turns false again only when the cluster refuses the node.
	ready     atomic.Bool
	readyCh   chan struct{} // closed the first time ready turns true
	readyOnce sync.Once
	// life identifies this data directory (entry.Life).
	life uint64
	// awaitPeers: the node started with ring state naming other members,
	// and is not ready until it hears from one (or none answers).
	awaitPeers atomic.Bool
	// secret is the cluster secret (nil until known; unused with
	// Config.ExternalSecret). readyPending: the node would be ready but
	// for the secret, and turns ready once it has it.
	secret       atomic.Pointer[clusterSecret]
	readyPending atomic.Bool
	// keyring is memberlist's keyring (nil: plain gossip); SetKeys
	// changes it, holding keysMu.
	keyring *memberlist.Keyring
	keysMu  sync.Mutex
	// lastKeyWarn is when rejoin last warned of a key mismatch (touched
	// only by rejoinLoop).
	lastKeyWarn time.Time
	// lastSeedWarn is when rejoin last said, while not ready, that a join
	// address did not answer (touched only by the rejoin loop).
	lastSeedWarn time.Time

	in   inbox
	wake chan struct{} // 1-buffered: "the inbox may hold something"
	quit chan struct{}
	wg   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	// own is touched only by run (and by Start before run starts).
	own struct {
		state ringState
		// fresh: the node started with no ring state and has not yet
		// claimed its entry (it does once it knows the cluster's state).
		fresh bool
		// heard: a peer's ring state has been merged since start.
		heard       bool
		change      *change  // the change in progress, as of the last plan
		prevSecrets [][]byte // secrets given up for a peer's, still verifying
		noSecretLog bool     // logged that the cluster sends no secret
		refusedCh   chan struct{}
		nodes       map[string]nodeInfo  // memberlist's view of each node
		unreachable map[string]time.Time // when our latest probe of the node failed
	}
}

// snapshot is an immutable snapshot of the membership as seen by this
// node.
type snapshot struct {
	members  []Member // every ring-state entry, sorted by ID
	index    map[string]int
	liveness map[string]Liveness
	hosts    map[string][]string
}

// msgRingState prefixes a broadcast of changed ring-state entries.
const msgRingState byte = 1

var validNodeID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validID is storage.ValidNodeID's rule; gossip does not import storage.
func validID(id string) bool { return validNodeID.MatchString(id) }

// Start binds the gossip address, loads the persisted ring state, puts
// this node in it as a member, and starts gossiping. Seeds are joined in
// the background; Start does not wait for them, and succeeds alone.
func Start(cfg Config) (_ *Membership, err error) {
	if cfg.Transport != nil {
		defer func() {
			if err != nil {
				_ = cfg.Transport.Shutdown()
			}
		}()
	}
	ip, port, err := cfg.check()
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Membership{
		id:   cfg.NodeID,
		cfg:  cfg,
		tune: normalTuning,
		log:  logger,
		meta: encodeMeta(cfg.HTTPAddr, cfg.RPCAddr),
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
	}
	if cfg.Fast {
		m.tune = testTuning
	}
	m.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(m.live.Load()) },
		RetransmitMult: 3,
	}
	m.live.Store(1)
	m.own.nodes = map[string]nodeInfo{}
	m.own.unreachable = map[string]time.Time{}
	m.leftCh = make(chan struct{})
	m.own.refusedCh = make(chan struct{})
	m.readyCh = make(chan struct{})
	m.reqs = make(chan func())
	if len(cfg.Keys) > 0 {
		m.cfg.Keys = cloneKeys(cfg.Keys)
		kr, err := memberlist.NewKeyring(m.cfg.Keys, m.cfg.Keys[0]) // in order, Keys[0] primary
		if err != nil {
			return nil, fmt.Errorf("%w: gossip keys: %w", ErrInvalidConfig, err)
		}
		m.keyring = kr
	}
	if err := m.load(); err != nil {
		return nil, err
	}

	// Bind first: the bound port goes into our ring entry.
	mlLog := newLogLogger(logger.With("component", "memberlist"))
	var tr memberlist.NodeAwareTransport
	if cfg.Transport != nil {
		tr = cfg.Transport
	} else {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{ip.String()},
			BindPort:  port,
			Logger:    mlLog,
		})
		if err != nil {
			return nil, fmt.Errorf("gossip: listen on %s: %w", cfg.GossipAddr, err)
		}
		port = nt.GetAutoBindPort()
		tr = newFaultTransport(nt, ip, cfg.Filter)
	}
	m.addr = net.JoinHostPort(ip.String(), strconv.Itoa(port))

	// The state and view exist before memberlist can call us.
	if !m.own.fresh {
		if e := m.own.state[m.id]; e.Status == StatusLeft || e.Status == StatusRemoved {
			_ = tr.Shutdown()
			return nil, fmt.Errorf("gossip: this node has %s the cluster and its data directory is stale: start it with an empty data directory or a new ID", e.Status)
		}
		if cfg.Replace != "" {
			m.log.Info("gossip: --replace ignored: the data directory already holds ring state", "replace", cfg.Replace)
		}
		// Ring state but no secret: a data directory of a dotkv without
		// secrets (secret.go).
		if err := m.ensureSecret(); err != nil {
			_ = tr.Shutdown()
			return nil, err
		}
		if m.own.state.alone(m.id) {
			m.claimSelf("")
			m.setReady()
		} else {
			// Serve only once a peer's state says this node is still
			// a member (or none of the recorded peers answers), and
			// claim the entry (a version bump) only after hearing from
			// a peer: a claim made in isolation could outrank the
			// cluster's removal of this node.
			m.awaitPeers.Store(true)
		}
	}
	others := slices.DeleteFunc(slices.Clone(cfg.Join), func(s string) bool { return s == m.addr })
	if m.own.fresh && cfg.NewCluster && len(others) == 0 {
		if err := m.form(); err != nil {
			_ = tr.Shutdown()
			return nil, err
		}
	}
	if err := m.persist(); err != nil {
		_ = tr.Shutdown()
		return nil, err
	}
	if err := m.replan(); err != nil {
		_ = tr.Shutdown()
		return nil, err
	}
	m.storeLocal()
	m.publish(map[string]bool{m.id: true})

	ml, err := memberlist.Create(m.memberlistConfig(tr, ip, port, mlLog))
	if err != nil {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("gossip: start memberlist: %w", err)
	}
	m.ml = ml
	if m.own.fresh && cfg.NewCluster && len(others) > 0 {
		// Form a new cluster only if none of the others answers. One that
		// answers under another key is a cluster this node cannot join:
		// forming another would hide the mistake.
		n, err := ml.Join(others)
		if reason, ok := keyMismatch(err); n == 0 && ok {
			_ = ml.Shutdown()
			return nil, fmt.Errorf("%w: a --join address answered, but %s: check the gossip key file (not forming a new cluster)", ErrKeyMismatch, reason)
		}
		if n == 0 {
			m.log.Info("gossip: no --join address answered: forming a new cluster", "join", others)
			if err := m.form(); err != nil {
				_ = ml.Shutdown()
				return nil, err
			}
			if err := m.persist(); err != nil {
				_ = ml.Shutdown()
				return nil, err
			}
			if err := m.replan(); err != nil {
				_ = ml.Shutdown()
				return nil, err
			}
			m.storeLocal()
		}
	}
	if m.own.fresh {
		if len(others) == 0 {
			m.log.Warn("gossip: empty data directory, no --join address and no --new-cluster: waiting to be joined (pass --new-cluster to form a new cluster)")
		} else {
			m.log.Info("gossip: joining the cluster", "join", others)
		}
	}
	if m.keyring != nil {
		m.log.Info("gossip: gossip is encrypted", "keys", len(m.cfg.Keys), "primary", keyID(m.cfg.Keys[0]))
	}
	m.log.Info("gossip: started", "gossip", m.addr, "members", len(m.View().Members()), "ready", m.ready.Load())
	// From here on m.own belongs to run.
	m.wg.Go(m.run)
	m.wg.Go(m.rejoinLoop)
	return m, nil
}

// check validates cfg, fills in defaults, and returns the gossip IP and
// port to bind.
func (cfg *Config) check() (net.IP, int, error) {
	if !validID(cfg.NodeID) {
		return nil, 0, fmt.Errorf("%w: node id %q: want 1..64 of [A-Za-z0-9_-]", ErrInvalidConfig, cfg.NodeID)
	}
	if cfg.Transport != nil {
		ip, port, err := cfg.Transport.FinalAdvertiseAddr("", 0)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: injected transport's address: %w", ErrInvalidConfig, err)
		}
		cfg.GossipAddr = net.JoinHostPort(ip.String(), strconv.Itoa(port))
	}
	host, portStr, err := net.SplitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: gossip address %q: %w", ErrInvalidConfig, cfg.GossipAddr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return nil, 0, fmt.Errorf("%w: gossip address %q: host must be a specific IP", ErrInvalidConfig, cfg.GossipAddr)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: gossip address %q: bad port", ErrInvalidConfig, cfg.GossipAddr)
	}
	if err := checkKeys(cfg.Keys); err != nil {
		return nil, 0, err
	}
	if len(encodeMeta(cfg.HTTPAddr, cfg.RPCAddr)) > memberlist.MetaMaxSize {
		return nil, 0, fmt.Errorf("%w: HTTP and RPC addresses too long for node metadata", ErrInvalidConfig)
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = ring.DefaultPartitions
	}
	if cfg.N == 0 {
		cfg.N = 3
	}
	return ip, int(port), nil
}

// memberlistConfig starts from DefaultLocalConfig and applies our tuning,
// explicit addresses (docs/design.md §8.2), transport and delegates.
func (m *Membership) memberlistConfig(tr memberlist.Transport, ip net.IP, port int, logger *log.Logger) *memberlist.Config {
	d := delegate{m}
	c := memberlist.DefaultLocalConfig()
	c.Name = m.id
	c.Transport = tr
	c.BindAddr, c.BindPort = ip.String(), port
	c.AdvertiseAddr, c.AdvertisePort = ip.String(), port
	c.Delegate = d
	c.Events = d
	c.Ping = d
	c.DisableTcpPingsForNode = d.probeFailed
	c.Logger = logger
	c.ProbeInterval = m.tune.probeInterval
	c.ProbeTimeout = m.tune.probeTimeout
	c.GossipInterval = m.tune.gossipInterval
	c.PushPullInterval = m.tune.pushPullInterval
	c.TCPTimeout = m.tune.tcpTimeout
	c.GossipToTheDeadTime = m.tune.gossipToTheDeadTime
	c.DeadNodeReclaimTime = m.tune.deadNodeReclaimTime
	c.SuspicionMult = m.tune.suspicionMult
	c.SuspicionMaxTimeoutMult = m.tune.suspicionMaxMult
	c.RetransmitMult = m.tune.retransmitMult
	if m.keyring != nil {
		// Encrypt everything sent, accept nothing unencrypted (keys.go).
		c.Keyring = m.keyring
		c.GossipVerifyIncoming = true
		c.GossipVerifyOutgoing = true
	}
	return c
}

// Members returns every node in the ring state (removed ones included,
// see Status), sorted by ID, with their liveness.
func (m *Membership) Members() []Member { return slices.Clone(m.view.Load().members) }

// Member returns one node of the ring state.
func (m *Membership) Member(id string) (Member, bool) {
	v := m.view.Load()
	i, ok := v.index[id]
	if !ok {
		return Member{}, false
	}
	return v.members[i], true
}

// Liveness reports what the failure detector says about id; this node is
// always alive, and an unknown node is dead. It is an atomic load and a
// map lookup.
func (m *Membership) Liveness(id string) Liveness {
	if id == m.id {
		return Alive
	}
	if l, ok := m.view.Load().liveness[id]; ok {
		return l
	}
	return Dead
}

// Hosts returns the hosts (IPs) of a node's gossip, RPC and HTTP
// addresses: the resolver transport.Filter needs. The result is shared;
// don't modify it.
func (m *Membership) Hosts(id string) []string { return m.view.Load().hosts[id] }

// Ready reports whether this node knows the cluster's ring (see the
// ready field): a node that is not ready must not serve client requests.
func (m *Membership) Ready() bool { return m.ready.Load() }

// ReadyCh returns a channel closed the first time the node becomes ready.
func (m *Membership) ReadyCh() <-chan struct{} { return m.readyCh }

// setReady marks the node ready, unless the cluster refused it.
func (m *Membership) setReady() {
	if m.Refused() != nil {
		return
	}
	if m.needSecret() {
		// Without the secret the node could not sign or verify a
		// context: it turns ready once it has adopted it (step).
		m.readyPending.Store(true)
		return
	}
	m.ready.Store(true)
	m.readyOnce.Do(func() { close(m.readyCh) })
}

// GossipAddr returns the bound gossip address, host:port.
func (m *Membership) GossipAddr() string { return m.addr }

// Close leaves the cluster (waiting briefly for the leave to be gossiped),
// shuts memberlist down and waits for every goroutine. The ring state
// stays persisted. Ring, Members and Liveness keep answering from the
// last snapshot.
func (m *Membership) Close() error {
	m.closeOnce.Do(func() {
		close(m.quit)
		if err := m.ml.Leave(m.tune.leave); err != nil {
			m.log.Debug("gossip: leave", "err", err)
		}
		m.closeErr = m.ml.Shutdown()
		m.wg.Wait()
	})
	return m.closeErr
}

func (m *Membership) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run is the owner goroutine.
func (m *Membership) run() {
	t := time.NewTicker(m.tune.refresh)
	defer t.Stop()
	for {
		select {
		case <-m.quit:
			return
		case <-m.wake:
		case <-t.C: // suspect→alive and missed events have no callback
		case req := <-m.reqs:
			req()
		}
		m.step()
	}
}

// step applies what the callbacks observed and republishes the view.
func (m *Membership) step() {
	remote, secret, nodes, reachable, received := m.in.take()
	was := m.own.state[m.id].Status
	changed := m.own.state.merge(remote)
	if len(remote) > 0 {
		m.own.heard = true
	}
	m.mergeSecret(secret)
	// A fresh node joins once it knows the cluster, and its secret: were it
	// to restart between the two, it would generate a secret of its own.
	if m.own.fresh && len(m.own.state) > 0 && !m.needSecret() {
		changed = append(changed, m.decide()...) // we know the cluster now
	}
	if !m.own.fresh && m.Refused() == nil {
		// A "left" written by another node for this leaving node is its
		// own leave completing (stateChanged closes Left), not a refusal.
		ownLeave := was == StatusLeaving && m.own.state[m.id].Status == StatusLeft
		if e := m.own.state[m.id]; e.Life != 0 && e.Life != m.life {
			changed = append(changed, m.rejoinAfterLoss(e)...)
		} else if (e.Status == StatusRemoved || e.Status == StatusLeft) && !m.isLeft() && !ownLeave {
			m.refuse(fmt.Errorf("gossip: the cluster says this node was %s: it must not serve with its old data; start it with an empty data directory or a new ID", e.Status))
		} else if (m.own.heard || !m.awaitPeers.Load()) && m.claimSelf("") {
			changed = append(changed, m.id)
		}
	}
	if m.own.change != nil {
		if parts := received[m.own.change.ID]; len(parts) > 0 && m.markReceived(m.own.change.ID, parts) {
			changed = append(changed, m.id)
		}
	}
	if len(changed) > 0 {
		m.stateChanged(changed)
	}
	for name, info := range nodes {
		m.own.nodes[name] = info
	}
	now := time.Now()
	for name, ok := range reachable {
		if ok {
			delete(m.own.unreachable, name)
		} else {
			m.own.unreachable[name] = now
		}
	}

	live := map[string]bool{}
	for _, n := range m.ml.Members() {
		live[n.Name] = true // Name is never rewritten in place; other fields are
	}
	m.live.Store(int64(len(live)))
	// A failed probe stops meaning anything once memberlist has settled
	// it: the node is dead (not live), or memberlist's suspicion of it
	// has run its longest course without declaring it dead, so it was
	// refuted or never needed (an indirect probe got through).
	ttl := m.tune.suspicionMax(len(live))
	for name, at := range m.own.unreachable {
		if !live[name] || now.Sub(at) > ttl {
			delete(m.own.unreachable, name)
		}
	}
	m.publish(live)
	// Having heard from a peer, a node that claimed its entry (or still
	// has it) serves, on the view just published.
	if len(remote) > 0 && !m.own.fresh && !m.ready.Load() {
		m.setReady()
	}
	if m.readyPending.Load() && !m.needSecret() {
		m.readyPending.Store(false)
		m.setReady()
	} else if m.needSecret() && len(remote) > 0 && !m.own.noSecretLog {
		m.own.noSecretLog = true
		m.log.Warn("gossip: the cluster has sent no cluster secret: if its nodes use --cluster-secret-file, start this node with the same file; waiting for the secret before serving")
	}
}

// claimSelf makes this node's own entry carry its current addresses, with
// the given status ("" keeps the current one), bumping the version over
// whatever the cluster had for it. It reports whether the entry changed.
func (m *Membership) claimSelf(status Status) bool {
	cur, ok := m.own.state[m.id]
	if status == "" {
		status = cur.Status
		if !ok {
			status = StatusMember
		}
	}
	if ok && cur.Status == status && cur.HTTP == m.cfg.HTTPAddr && cur.RPC == m.cfg.RPCAddr && cur.Gossip == m.addr {
		return false
	}
	m.write(m.id, status != cur.Status, func(e *entry) {
		e.Status, e.HTTP, e.RPC, e.Gossip = status, m.cfg.HTTPAddr, m.cfg.RPCAddr, m.addr
	})
	return true
}

// write changes id's entry with fn and bumps its version (and its Gen
// when the change matters to ownership).
func (m *Membership) write(id string, ownership bool, fn func(e *entry)) {
	e := m.own.state[id]
	fn(&e)
	if id == m.id {
		e.Life = m.life
	}
	e.Version++
	if ownership {
		e.Gen++
	}
	m.own.state[id] = e
}

// form makes this node the first member of a new cluster, with a new
// cluster secret.
func (m *Membership) form() error {
	if err := m.ensureSecret(); err != nil {
		return err
	}
	m.own.fresh = false
	m.write(m.id, true, func(e *entry) {
		*e = entry{Status: StatusMember, Version: e.Version, Gen: e.Gen,
			HTTP: m.cfg.HTTPAddr, RPC: m.cfg.RPCAddr, Gossip: m.addr}
	})
	m.setReady()
	return nil
}

// decide claims this fresh node's entry once it knows the cluster's
// state: a join, as a new node, as the replacement of Config.Replace, or
// (when the cluster knows this ID as a member: its data directory was
// wiped) as its own replacement, which receives everything it owns
// before it serves reads. It returns the IDs whose entry it wrote.
func (m *Membership) decide() []string {
	now := time.Now().UnixNano()
	cur, had := m.own.state[m.id]
	join := func(e *entry) { m.joinEntry(e, now) }
	if old := m.cfg.Replace; old != "" {
		oe, ok := m.own.state[old]
		switch {
		case old == m.id:
			m.refuse(fmt.Errorf("gossip: --replace %s names this node itself", old))
			return nil
		case !ok || (oe.Status != StatusMember && oe.Status != StatusLeaving):
			m.refuse(fmt.Errorf("gossip: cannot replace %s: it is not a member (status %q)", old, oe.Status))
			return nil
		case m.ml != nil && slices.ContainsFunc(m.ml.Members(), func(n *memberlist.Node) bool { return n.Name == old }):
			m.refuse(fmt.Errorf("gossip: cannot replace %s: it is alive (stop it, or make it leave)", old))
			return nil
		}
		token := m.own.state.token(old)
		m.own.fresh = false
		m.write(m.id, true, func(e *entry) { join(e); e.Replaces, e.Token = old, token })
		m.write(old, true, func(e *entry) { e.Status, e.Gone, e.ReplacedBy, e.Queued = StatusLeaving, true, m.id, now })
		m.log.Info("gossip: joining as the replacement of a dead node", "replaces", old)
		return []string{m.id, old}
	}
	m.own.fresh = false
	if had && (cur.Status == StatusMember || cur.Status == StatusLeaving) {
		token := cur.Token
		m.write(m.id, true, func(e *entry) { join(e); e.Replaces, e.Token = m.id, token })
		m.log.Warn("gossip: the cluster knows this node as a member but its data directory is empty: rejoining, to receive its partitions again")
	} else {
		m.write(m.id, true, join)
		m.log.Info("gossip: joining the cluster")
	}
	return []string{m.id}
}

// joinEntry makes e this node's entry of a join requested at now.
func (m *Membership) joinEntry(e *entry, now int64) {
	*e = entry{Status: StatusJoining, Version: e.Version, Gen: e.Gen,
		HTTP: m.cfg.HTTPAddr, RPC: m.cfg.RPCAddr, Gossip: m.addr, Queued: now}
}

// rejoinAfterLoss handles the cluster's entry of this ID written in an
// earlier life of the node (e): its data directory was lost and it
// formed a cluster alone (the first node, restarted with its usual
// flags) before hearing from the others. As when a fresh node finds its
// ID a member (decide), it rejoins as its own replacement, and receives
// what it owns before it serves reads of it; the records it took while
// alone stay, and those of partitions it does not own are handed to
// their owners. It returns the IDs it wrote.
func (m *Membership) rejoinAfterLoss(e entry) []string {
	now := time.Now().UnixNano()
	switch e.Status {
	case StatusMember, StatusLeaving:
		token := e.Token
		m.write(m.id, true, func(e *entry) { m.joinEntry(e, now); e.Replaces, e.Token = m.id, token })
		m.log.Warn("gossip: the cluster knows this node from before its data directory was lost: rejoining, to receive its partitions again")
	case StatusJoining: // restart the join it was in
		replaces, token := e.Replaces, e.Token
		m.write(m.id, true, func(e *entry) { m.joinEntry(e, now); e.Replaces, e.Token = replaces, token })
		m.log.Warn("gossip: the cluster knows this node from before its data directory was lost, joining: joining again")
	default: // left or removed: a new node under the old ID
		m.write(m.id, true, func(e *entry) { m.joinEntry(e, now) })
		m.log.Warn("gossip: this ID left the cluster before its data directory was lost: joining as a new node")
	}
	return []string{m.id}
}

// refuse stops this node from serving: the cluster does not take it.
func (m *Membership) refuse(err error) {
	m.ready.Store(false)
	m.refused.Store(&err)
	close(m.own.refusedCh)
	m.log.Error("gossip: refused by the cluster", "err", err)
}

// RefusedCh returns a channel closed when Refused becomes non-nil.
func (m *Membership) RefusedCh() <-chan struct{} { return m.own.refusedCh }

// isLeft reports whether this node completed its own leave.
func (m *Membership) isLeft() bool {
	select {
	case <-m.leftCh:
		return true
	default:
		return false
	}
}

// markReceived sets received partitions in this node's entry for change;
// it reports whether any was new.
func (m *Membership) markReceived(change string, parts []uint32) bool {
	e := m.own.state[m.id]
	bits := slices.Clone(e.Received)
	if e.Change != change {
		bits = nil
	}
	if need := (m.cfg.Partitions + 7) / 8; len(bits) < need {
		bits = append(bits, make([]byte, need-len(bits))...)
	}
	added := false
	for _, p := range parts {
		if int(p) < m.cfg.Partitions && bits[p/8]&(1<<(p%8)) == 0 {
			bits[p/8] |= 1 << (p % 8)
			added = true
		}
	}
	if !added && e.Change == change {
		return false
	}
	m.write(m.id, true, func(e *entry) { e.Change, e.Received = change, bits })
	return true
}

// stateChanged persists the state, replans the view, makes the writes a
// completed change calls for, and broadcasts the changed entries.
func (m *Membership) stateChanged(changed []string) {
	for range 3 { // a completion writes, which replans once more
		if err := m.replan(); err != nil {
			m.log.Error("gossip: plan the ring; keeping the previous one", "err", err)
			break
		}
		more := m.afterPlan()
		if len(more) == 0 {
			break
		}
		changed = append(changed, more...)
	}
	if err := m.persist(); err != nil {
		m.log.Error("gossip: persist ring state", "err", err)
	}
	m.storeLocal()
	slices.Sort(changed)
	for _, id := range slices.Compact(changed) {
		msg := append([]byte{msgRingState}, encodeState(m.own.state.subset([]string{id}))...)
		m.queue.QueueBroadcast(&entryBroadcast{id: id, msg: msg})
	}
	if m.isLeftNow() {
		close(m.leftCh)
	}
}

// isLeftNow reports whether this node's entry says it left and leftCh is
// still open.
func (m *Membership) isLeftNow() bool {
	return m.own.state[m.id].Status == StatusLeft && !m.isLeft() && !m.own.fresh
}

// replan computes and publishes the view of the owned state.
func (m *Membership) replan() error {
	v, c, err := m.own.state.plan(m.id, m.cfg.Partitions, m.cfg.N)
	if err != nil {
		return err
	}
	prev := m.rview.Load()
	m.rview.Store(v)
	m.own.change = c
	if prev == nil || prev.Change() != v.Change() || !slices.Equal(prev.Members(), v.Members()) {
		m.log.Info("gossip: ring changed", "version", v.Epoch(), "members", v.Members(), "change", v.Change())
	}
	return nil
}

// afterPlan makes the writes the current view calls for and returns the
// IDs it wrote: a completed change's final statuses, and this node's
// Applied report.
func (m *Membership) afterPlan() []string {
	if m.own.fresh || m.Refused() != nil {
		return nil
	}
	v, c := m.rview.Load(), m.own.change
	var wrote []string
	if c != nil && complete(v) {
		switch {
		case c.Kind == kindJoin && c.Node == m.id:
			m.write(m.id, true, func(e *entry) {
				e.Status, e.Replaces, e.Change, e.Received = StatusMember, "", "", nil
			})
			wrote = append(wrote, m.id)
			if c.Replaces != "" && c.Replaces != m.id {
				m.write(c.Replaces, true, func(e *entry) { e.Status = StatusRemoved })
				wrote = append(wrote, c.Replaces)
			}
			m.log.Info("gossip: joined: this node now serves all it owns", "partitions", len(v.Owned(m.id)))
		case c.Kind == kindLeave && c.Node == m.id:
			m.write(m.id, true, func(e *entry) { e.Status, e.Change, e.Received = StatusLeft, "", nil })
			wrote = append(wrote, m.id)
			m.log.Info("gossip: left the cluster: every partition is with its new owners")
		case c.Kind == kindLeave && m.own.state[c.Node].Status == StatusLeaving:
			// Any node completes a leave too: the leaving node exits once
			// it has written its own "left", and that write may never
			// leave it (its gossip stops), which would hold every later
			// change behind this one.
			m.write(c.Node, true, func(e *entry) { e.Status, e.Change, e.Received = StatusLeft, "", nil })
			wrote = append(wrote, c.Node)
			m.log.Info("gossip: a node left: its partitions are with their new owners", "left", c.Node)
		case c.Kind == kindRemove && m.own.state[c.Node].Status == StatusLeaving:
			m.write(c.Node, true, func(e *entry) { e.Status = StatusRemoved })
			wrote = append(wrote, c.Node)
			m.log.Info("gossip: removed a node: its partitions have their new owners", "removed", c.Node)
		}
		if len(wrote) > 0 {
			return wrote
		}
	}
	if e, ok := m.own.state[m.id]; ok && e.Applied != v.Epoch() {
		m.write(m.id, false, func(e *entry) { e.Applied = v.Epoch() })
		wrote = append(wrote, m.id)
	}
	return wrote
}

func (m *Membership) load() error {
	m.own.state = ringState{}
	m.own.fresh = true
	m.life = rand.Uint64() | 1 // never 0
	if err := m.loadSecret(); err != nil {
		return err
	}
	if m.cfg.Store == nil {
		return nil
	}
	switch b, ok, err := m.cfg.Store.GetMeta(lifeKey); {
	case err != nil:
		return fmt.Errorf("gossip: load life: %w", err)
	case ok && len(b) == 8:
		m.life = binary.BigEndian.Uint64(b)
	default:
		if err := m.cfg.Store.SetMeta(lifeKey, binary.BigEndian.AppendUint64(nil, m.life)); err != nil {
			return fmt.Errorf("gossip: persist life: %w", err)
		}
	}
	b, ok, err := m.cfg.Store.GetMeta(stateKey)
	if err != nil {
		return fmt.Errorf("gossip: load ring state: %w", err)
	}
	if !ok {
		return nil
	}
	s, err := decodeState(b)
	if err != nil {
		return fmt.Errorf("gossip: load ring state: %w", err)
	}
	m.own.state = s
	_, m.own.fresh = s[m.id]
	m.own.fresh = !m.own.fresh
	return nil
}

func (m *Membership) persist() error {
	if m.cfg.Store == nil {
		return nil
	}
	if err := m.cfg.Store.SetMeta(stateKey, encodeState(m.own.state)); err != nil {
		return fmt.Errorf("gossip: persist ring state: %w", err)
	}
	return nil
}

// publish builds and stores a new view from the owned state.
func (m *Membership) publish(live map[string]bool) {
	ids := make([]string, 0, len(m.own.state))
	for id := range m.own.state {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	v := &snapshot{
		members:  make([]Member, 0, len(ids)),
		index:    make(map[string]int, len(ids)),
		liveness: make(map[string]Liveness, len(ids)),
		hosts:    make(map[string][]string, len(ids)),
	}
	for _, id := range ids {
		e := m.own.state[id]
		l := m.liveness(id, live)
		v.index[id] = len(v.members)
		v.members = append(v.members, Member{ID: id, HTTP: e.HTTP, RPC: e.RPC, Gossip: e.Gossip, Status: e.Status, Liveness: l, Applied: e.Applied})
		v.liveness[id] = l
		n := m.own.nodes[id]
		v.hosts[id] = hostsOf(e.Gossip, e.RPC, e.HTTP, n.Gossip, n.RPC, n.HTTP)
	}
	// Nodes memberlist knows before their ring entry has arrived.
	for id, n := range m.own.nodes {
		if _, ok := m.own.state[id]; !ok {
			v.liveness[id] = m.liveness(id, live)
			v.hosts[id] = hostsOf(n.Gossip, n.RPC, n.HTTP)
		}
	}
	m.view.Store(v)
}

func (m *Membership) liveness(id string, live map[string]bool) Liveness {
	switch {
	case id == m.id:
		return Alive
	case !live[id]:
		return Dead
	}
	if _, ok := m.own.unreachable[id]; ok {
		return Suspect
	}
	return Alive
}

// hostsOf returns the distinct, sorted hosts of some host:port addresses.
func hostsOf(addrs ...string) []string {
	var hosts []string
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err != nil || h == "" || slices.Contains(hosts, h) {
			continue
		}
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	return hosts
}

// rejoinLoop periodically joins the seeds, when this node is alone, and
// every ring member that is not alive, at its last known gossip address.
// memberlist forgets dead nodes after GossipToTheDeadTime and never
// probes them again, so without this a long partition never heals
// (docs/design.md §8.4), and a restarted node would not find its peers.
func (m *Membership) rejoinLoop() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-m.quit:
			return
		case <-t.C:
		}
		mismatch := m.rejoin()
		// A recorded member that answered under another gossip key is
		// there: this node must not serve alone on its recorded ring.
		if m.awaitPeers.Load() && !m.ready.Load() && m.ml.NumMembers() <= 1 && !mismatch {
			m.log.Warn("gossip: none of the recorded members answered: serving on the recorded ring")
			m.setReady()
		}
		if m.ready.Load() {
			t.Reset(m.tune.rejoin)
		} else {
			t.Reset(min(m.tune.rejoin, 200*time.Millisecond)) // still joining: retry the seeds soon
		}
	}
}

// rejoin makes one pass; it reports whether a peer answered under
// another gossip key (or encryption setting).
func (m *Membership) rejoin() (mismatch bool) {
	seen := map[string]bool{m.addr: true}
	var targets []string
	add := func(addr string) {
		if addr != "" && !seen[addr] {
			seen[addr] = true
			targets = append(targets, addr)
		}
	}
	// Seeds while alone, and while not yet ready: fresh nodes started
	// together may find each other before they find the cluster.
	if m.ml.NumMembers() <= 1 || (!m.ready.Load() && m.Refused() == nil) {
		for _, s := range m.cfg.Join {
			add(s)
		}
	}
	for _, mem := range m.view.Load().members {
		if mem.ID != m.id && mem.Status != StatusRemoved && mem.Liveness != Alive {
			add(mem.Gossip)
		}
	}
	// One at a time, so Close interrupts between targets; a dial in
	// flight is cancelled by the transport's Shutdown.
	for _, addr := range targets {
		select {
		case <-m.quit:
			return mismatch
		default:
		}
		_, err := m.ml.Join([]string{addr})
		if err == nil {
			continue
		}
		if reason, ok := keyMismatch(err); ok {
			mismatch = true
			if time.Since(m.lastKeyWarn) >= keyWarnEvery {
				m.lastKeyWarn = time.Now()
				m.log.Warn(msgKeyMismatch, "addr", addr, "reason", reason)
			}
		}
		m.log.Debug("gossip: rejoin failed", "addr", addr, "err", err)
		if !m.ready.Load() && time.Since(m.lastSeedWarn) >= seedWarnEvery {
			// A node that cannot reach its cluster says so (not only at
			// debug level), now and then.
			m.lastSeedWarn = time.Now()
			m.log.Info("gossip: waiting for the cluster: a join address did not answer; still trying", "addr", addr, "err", err)
		}
	}
	return mismatch
}

// keyWarnEvery spaces rejoin's warnings of a key mismatch, which it
// meets at every attempt; msgKeyMismatch is the warning.
const (
	seedWarnEvery  = 10 * time.Second
	keyWarnEvery   = time.Minute
	msgKeyMismatch = "gossip: a peer cannot be joined: it gossips under another key or encryption setting; check the gossip key file"
)

// entryBroadcast carries one node's changed ring entry. A newer broadcast
// for the same node replaces an older one still in the queue.
type entryBroadcast struct {
	id  string
	msg []byte
}

var _ memberlist.NamedBroadcast = (*entryBroadcast)(nil)

func (b *entryBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*entryBroadcast)
	return ok && o.id == b.id
}
func (b *entryBroadcast) Name() string    { return "ring/" + b.id }
func (b *entryBroadcast) Message() []byte { return b.msg }
func (b *entryBroadcast) Finished()       {}
