package kvtest

import (
	"bytes"
	"compress/lzw"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"

	"github.com/dotkv/dotkv/node"
)

// Helpers for tests of membership changes: nodes started with a changed
// configuration, and (on memnet) a node whose gossip can be cut apart from
// its RPC.

// AddNodeWith is AddNode with the new node's configuration changed by
// configure before it starts (e.g. its TransferRate, or its Join seeds).
// The change stays for the node's restarts.
func (c *Cluster) AddNodeWith(replace string, configure func(*node.Config)) int {
	c.t.Helper()
	nd := c.newNode(len(c.Nodes))
	for _, o := range c.Nodes {
		if o.Running() != nil {
			nd.cfg.Join = append(nd.cfg.Join, o.Running().GossipAddr())
			break
		}
	}
	nd.cfg.Replace = replace
	if configure != nil {
		configure(&nd.cfg)
	}
	c.Nodes = append(c.Nodes, nd)
	c.start(nd)
	return len(c.Nodes) - 1
}

// RestartWith is Restart with stopped node i's configuration changed by
// configure first; the change stays for its later restarts.
func (c *Cluster) RestartWith(i int, configure func(*node.Config)) {
	c.t.Helper()
	nd := c.Nodes[i]
	if nd.Running() != nil {
		c.t.Fatalf("restart of %s: the node is running; stop it first", nd.ID)
	}
	if configure != nil {
		configure(&nd.cfg)
	}
	c.Restart(i)
}

// GossipID returns the memnet ID under which the gossip of a node given
// to SeparateGossip joins the network.
func GossipID(id string) string { return id + "/gossip" }

// SeparateGossip makes stopped node i, from its next start on, gossip on
// the in-memory network under its own ID, GossipID(id), apart from its
// RPC. Partition and Isolate of the node (memnet partitions name node
// IDs) then cut its RPC only, and Net.Partition or Net.Isolate of
// GossipID(id) its gossip only. The returned GossipCut cuts its gossip of
// ring state only; Heal does not undo it. It needs a memnet cluster: on
// sockets a node's gossip and RPC share its IP, and the fault filter
// blocks both.
func (c *Cluster) SeparateGossip(i int) *GossipCut {
	c.t.Helper()
	nd := c.Nodes[i]
	if c.Net == nil {
		c.t.Fatalf("SeparateGossip(%s): needs a memnet cluster", nd.ID)
	}
	if nd.Running() != nil {
		c.t.Fatalf("SeparateGossip(%s): the node is running; stop it first", nd.ID)
	}
	switch n := nd.cfg.Network.(type) {
	case splitNetwork:
		return n.cut
	case memNetwork:
		cut := &GossipCut{}
		nd.cfg.Network = splitNetwork{memNetwork: n, cut: cut}
		return cut
	default:
		c.t.Fatalf("SeparateGossip(%s): unexpected network %T", nd.ID, n)
		return nil
	}
}

// splitNetwork is a memNetwork whose gossip joins the network under
// GossipID(id), through a cutTransport.
type splitNetwork struct {
	memNetwork
	cut *GossipCut
}

func (s splitNetwork) Gossip(id string) (memberlist.NodeAwareTransport, error) {
	return newCutTransport(s.net.Gossip(GossipID(id), net.JoinHostPort(s.ip, "7946")), s.cut), nil
}

// GossipCut cuts one node's gossip of ring state, in both directions,
// and nothing else. Its zero value cuts nothing.
//
// CutRing drops the memberlist user messages (dotkv's broadcasts of ring
// entries), whether sent alone, inside compound messages or compressed,
// and every stream (push-pull state exchanges and joins). Probes, acks and
// memberlist's own alive, suspect and dead messages still pass, so the
// node and its peers keep seeing each other alive, while the node learns
// no membership change and tells none. (To cut all of a node's gossip,
// isolate GossipID(id) on the network.)
type GossipCut struct {
	cut     atomic.Bool
	dropped atomic.Int64 // messages dropped (whole packets or parts)
	refused atomic.Int64 // streams refused or closed
}

// CutRing cuts the node's ring-state gossip.
func (g *GossipCut) CutRing() { g.cut.Store(true) }

// Restore lets all of the node's gossip through again.
func (g *GossipCut) Restore() { g.cut.Store(false) }

// Dropped returns how many packets or messages within packets the cut
// dropped, and how many streams it refused or closed.
func (g *GossipCut) Dropped() (messages, streams int64) { return g.dropped.Load(), g.refused.Load() }

// filter returns the packet to pass on (ok false: drop it).
func (g *GossipCut) filter(b []byte) (out []byte, ok bool) {
	if !g.cut.Load() {
		return b, true
	}
	out, ok, n := stripRingState(b, 0)
	g.dropped.Add(int64(n))
	return out, ok
}

// memberlist's message types (memberlist v0.7.0, net.go; unexported
// there). The numbers are its wire format and do not change.
const (
	mlCompound = 7
	mlUser     = 8
	mlCompress = 9
	mlEncrypt  = 10
	mlHasCRC   = 12
	mlHasLabel = 244
)

// errCut is the error of a dial the cut refuses.
var errCut = errors.New("kvtest: gossip cut")

// stripRingState returns packet b without its memberlist user messages:
// ok is false when nothing is left, dropped counts what was removed. A
// checksum wrapper is removed (a packet without one is valid), and a
// compressed packet is passed on uncompressed. Encrypted packets are
// dropped whole (the test clusters do not encrypt).
func stripRingState(b []byte, depth int) (out []byte, ok bool, dropped int) {
	if len(b) == 0 || depth > 4 {
		return b, len(b) > 0, 0
	}
	switch b[0] {
	case mlUser, mlEncrypt:
		return nil, false, 1
	case mlHasCRC:
		if len(b) < 5 {
			return nil, false, 1
		}
		return stripRingState(b[5:], depth+1)
	case mlHasLabel:
		if len(b) < 2 || len(b) < 2+int(b[1]) {
			return nil, false, 1
		}
		head := b[:2+int(b[1])]
		rest, ok, n := stripRingState(b[len(head):], depth+1)
		if !ok {
			return nil, false, n
		}
		return append(append([]byte{}, head...), rest...), true, n
	case mlCompress:
		inner, err := decompress(b[1:])
		if err != nil {
			return nil, false, 1
		}
		return stripRingState(inner, depth+1)
	case mlCompound:
		parts, err := compoundParts(b[1:])
		if err != nil {
			return nil, false, 1
		}
		var kept [][]byte
		dropped := 0
		for _, p := range parts {
			q, ok, n := stripRingState(p, depth+1)
			dropped += n
			if ok {
				kept = append(kept, q)
			}
		}
		switch {
		case len(kept) == 0:
			return nil, false, dropped
		case dropped == 0:
			return b, true, 0
		}
		return compound(kept), true, dropped
	}
	return b, true, 0
}

// compoundParts splits the body of a memberlist compound message: a
// count byte, the parts' big-endian uint16 lengths, then the parts.
func compoundParts(b []byte) ([][]byte, error) {
	if len(b) < 1 {
		return nil, errors.New("compound: no count")
	}
	n := int(b[0])
	b = b[1:]
	if len(b) < 2*n {
		return nil, errors.New("compound: truncated lengths")
	}
	parts := make([][]byte, 0, n)
	lens := b[:2*n]
	b = b[2*n:]
	for i := range n {
		l := int(binary.BigEndian.Uint16(lens[2*i:]))
		if len(b) < l {
			break // truncated parts: memberlist drops them too
		}
		parts = append(parts, b[:l])
		b = b[l:]
	}
	return parts, nil
}

// compound builds a memberlist compound message of parts (at most 255).
func compound(parts [][]byte) []byte {
	out := []byte{mlCompound, byte(len(parts))}
	for _, p := range parts {
		out = binary.BigEndian.AppendUint16(out, uint16(len(p)))
	}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// decompress decodes the body of a memberlist compress message: a
// msgpack-encoded {Algo, Buf} whose Buf is LZW (LSB, 8-bit literals).
func decompress(b []byte) ([]byte, error) {
	var c struct {
		Algo uint8
		Buf  []byte
	}
	if err := codec.NewDecoderBytes(b, &codec.MsgpackHandle{}).Decode(&c); err != nil {
		return nil, err
	}
	if c.Algo != 0 {
		return nil, fmt.Errorf("compression algorithm %d", c.Algo)
	}
	r := lzw.NewReader(bytes.NewReader(c.Buf), lzw.LSB, 8)
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, 1<<20))
}

// cutTransport wraps a node's memberlist transport with a GossipCut, as
// the nodes' faultTransport wraps theirs with the fault filter: outgoing
// packets and dials are filtered on the way out, incoming ones by
// forwarder goroutines between the inner transport's channels and
// memberlist.
type cutTransport struct {
	inner    memberlist.NodeAwareTransport
	cut      *GossipCut
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
	err      error
}

var _ memberlist.NodeAwareTransport = (*cutTransport)(nil)

func newCutTransport(inner memberlist.NodeAwareTransport, cut *GossipCut) *cutTransport {
	t := &cutTransport{
		inner:    inner,
		cut:      cut,
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
	}
	t.wg.Go(t.forwardPackets)
	t.wg.Go(t.forwardStreams)
	return t
}

func (t *cutTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	out, ok := t.cut.filter(b)
	if !ok {
		return time.Now(), nil // lost on the way, as UDP may be
	}
	return t.inner.WriteToAddress(out, a)
}

func (t *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *cutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.cut.cut.Load() {
		t.cut.refused.Add(1)
		return nil, fmt.Errorf("dial %s: %w", a.Addr, errCut)
	}
	return t.inner.DialAddressTimeout(a, timeout)
}

func (t *cutTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *cutTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown stops the inner transport first, while the forwarders still
// drain it, then the forwarders (as the nodes' faultTransport does).
func (t *cutTransport) Shutdown() error {
	t.once.Do(func() {
		t.err = t.inner.Shutdown()
		close(t.done)
		t.wg.Wait()
	})
	return t.err
}

func (t *cutTransport) forwardPackets() {
	in := t.inner.PacketCh()
	for {
		select {
		case p := <-in:
			buf, ok := t.cut.filter(p.Buf)
			if !ok {
				continue
			}
			p.Buf = buf
			select {
			case t.packetCh <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *cutTransport) forwardStreams() {
	in := t.inner.StreamCh()
	for {
		select {
		case c := <-in:
			if t.cut.cut.Load() {
				t.cut.refused.Add(1)
				_ = c.Close()
				continue
			}
			select {
			case t.streamCh <- c:
			case <-t.done:
				_ = c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}
