package gossip

import (
	"bytes"
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. Every method runs on a
// memberlist goroutine, some while memberlist holds its node lock
// (docs/design.md §8.6), so none of them blocks or calls back into
// memberlist: they copy what they were given into the inbox and wake the
// owner goroutine, which does the work.
type delegate struct{ m *Membership }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
	_ memberlist.PingDelegate  = delegate{}
)

// Delegate: node metadata, broadcasts and push-pull state.

func (d delegate) NodeMeta(limit int) []byte { return d.m.meta }

// NotifyMsg receives a broadcast of changed ring entries. buf is reused by
// memberlist after we return; decoding copies what we keep.
func (d delegate) NotifyMsg(buf []byte) {
	if len(buf) == 0 || buf[0] != msgRingState {
		return
	}
	s, err := decodeState(buf[1:])
	if err != nil {
		d.m.log.Debug("gossip: dropping ring broadcast", "err", err)
		return
	}
	d.m.in.addState(s, nil)
	d.m.poke()
}

func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m.queue.GetBroadcasts(overhead, limit)
}

// LocalState returns the full ring state (and the cluster secret),
// encoded by the owner goroutine whenever it changes.
func (d delegate) LocalState(join bool) []byte { return *d.m.local.Load() }

func (d delegate) MergeRemoteState(buf []byte, join bool) {
	s, secret, err := decodeWire(buf)
	if err != nil {
		d.m.log.Warn("gossip: dropping remote ring state", "err", err)
		return
	}
	d.m.in.addState(s, secret)
	d.m.poke()
}

// EventDelegate: called under memberlist's node lock.

func (d delegate) NotifyJoin(n *memberlist.Node)   { d.node(n, true) }
func (d delegate) NotifyLeave(n *memberlist.Node)  { d.node(n, false) }
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.node(n, true) }

func (d delegate) node(n *memberlist.Node, reachable bool) {
	info := nodeInfo{Gossip: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))}
	if md, ok := decodeMeta(n.Meta); ok {
		info.HTTP, info.RPC = md.HTTP, md.RPC
	}
	d.m.in.addNode(n.Name, info, reachable)
	d.m.poke()
}

// PingDelegate and the probe-failure hook.
//
// memberlist v0.7.0 has no race-free way to read a peer's suspect state:
// Members() returns pointers into structs that memberlist rewrites under
// its own lock (memberlist#306), and no callback fires on alive→suspect.
// What it does expose, without locks held, is the outcome of this node's
// own probes: NotifyPingComplete after a direct ack, and the
// DisableTcpPingsForNode hook, which it consults exactly when a direct
// UDP probe has failed and it is about to fall back to indirect and TCP
// probes. Liveness reports "suspect" from those: memberlist has not
// declared the peer dead, but our latest probe of it failed.

func (d delegate) AckPayload() []byte { return nil }

func (d delegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	d.m.in.addProbe(other.Name, true)
	d.m.poke()
}

// probeFailed is installed as Config.DisableTcpPingsForNode. It never
// disables TCP pings.
func (d delegate) probeFailed(name string) bool {
	d.m.in.addProbe(name, false)
	d.m.poke()
	return false
}

// inbox hands callback data to the owner goroutine without blocking and
// without dropping anything: remote ring entries are merged as they
// arrive (merging is commutative, so early merging changes nothing), and
// per-node observations keep only the latest.
type inbox struct {
	mu struct {
		sync.Mutex
		state     ringState
		secret    *clusterSecret // the oldest cluster secret received
		nodes     map[string]nodeInfo
		reachable map[string]bool
		received  map[string][]uint32 // change → partitions this node received
	}
}

// nodeInfo is memberlist's view of a node: its gossip address and the
// addresses in its metadata.
type nodeInfo struct {
	Gossip, HTTP, RPC string
}

func (in *inbox) addState(s ringState, secret *clusterSecret) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if secret != nil && (in.mu.secret == nil || secret.older(*in.mu.secret)) {
		in.mu.secret = secret
	}
	if in.mu.state == nil {
		in.mu.state = ringState{}
	}
	in.mu.state.merge(s)
}

func (in *inbox) addNode(name string, info nodeInfo, reachable bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.mu.nodes == nil {
		in.mu.nodes = map[string]nodeInfo{}
	}
	in.mu.nodes[name] = info
	if reachable {
		// A node that (re)joins or updates is talking to the cluster;
		// forget a probe failure from its previous life.
		in.setReachableLocked(name, true)
	}
}

func (in *inbox) addProbe(name string, ok bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.setReachableLocked(name, ok)
}

func (in *inbox) setReachableLocked(name string, ok bool) {
	if in.mu.reachable == nil {
		in.mu.reachable = map[string]bool{}
	}
	in.mu.reachable[name] = ok
}

// take empties the inbox.
func (in *inbox) take() (state ringState, secret *clusterSecret, nodes map[string]nodeInfo, reachable map[string]bool, received map[string][]uint32) {
	in.mu.Lock()
	defer in.mu.Unlock()
	state, secret, nodes, reachable, received = in.mu.state, in.mu.secret, in.mu.nodes, in.mu.reachable, in.mu.received
	in.mu.state, in.mu.secret, in.mu.nodes, in.mu.reachable, in.mu.received = nil, nil, nil, nil, nil
	return state, secret, nodes, reachable, received
}

// Node metadata: the advertised client and RPC addresses.

const metaFormat = 1

type nodeMeta struct {
	Format int    `json:"f"`
	HTTP   string `json:"h,omitempty"`
	RPC    string `json:"r,omitempty"`
}

func encodeMeta(httpAddr, rpcAddr string) []byte {
	b, _ := json.Marshal(nodeMeta{Format: metaFormat, HTTP: httpAddr, RPC: rpcAddr})
	return b
}

func decodeMeta(b []byte) (nodeMeta, bool) {
	var md nodeMeta
	if len(b) == 0 || json.Unmarshal(b, &md) != nil || md.Format < metaFormat {
		return nodeMeta{}, false
	}
	return md, true
}

// Logging: memberlist writes lines like "[WARN] memberlist: ..." to a
// *log.Logger; logWriter turns each into a slog record at the matching
// level, so memberlist's warnings and errors are not hidden at debug
// (except a failed send on its closed socket, which only shutdown causes).
type logWriter struct{ log *slog.Logger }

func newLogLogger(l *slog.Logger) *log.Logger { return log.New(logWriter{l}, "", 0) }

var logLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
	{"[WARN]", slog.LevelWarn},
	{"[INFO]", slog.LevelInfo},
	{"[DEBUG]", slog.LevelDebug},
	{"[TRACE]", slog.LevelDebug},
}

func (w logWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for _, l := range logLevels {
		if rest, ok := strings.CutPrefix(msg, l.prefix); ok {
			msg, level = strings.TrimSpace(rest), l.level
			break
		}
	}
	if level > slog.LevelDebug && strings.Contains(msg, net.ErrClosed.Error()) {
		// A send racing the node's own shutdown: memberlist's socket is
		// closed only then, so this is not an error worth reporting.
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

func (in *inbox) addReceived(change string, p uint32) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.mu.received == nil {
		in.mu.received = map[string][]uint32{}
	}
	in.mu.received[change] = append(in.mu.received[change], p)
}
