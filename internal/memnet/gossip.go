package memnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Gossip semantics (memberlist on memnet):
//
//   - Packets are UDP-like: WriteTo never blocks and never fails; a packet
//     to an unknown or shut-down address, across a partition, or lost to
//     Faults.Drop vanishes. A delivered packet arrives after a Faults
//     delay; a partition made while it is in flight loses it.
//   - Streams are TCP-like and carried by net.Pipe pairs. A dial to an
//     unknown or shut-down address, or across a partition, fails at once
//     (connection refused / no route); a dial lost to Faults.Drop fails
//     after its timeout, as when every SYN is lost. Stream writes are
//     reliable but each is delayed by a Faults delay. A partition or
//     Isolate made while a stream is open breaks it: both ends are closed,
//     so reads see EOF and writes io.ErrClosedPipe (rather than hanging as
//     a blackholed TCP connection would until its deadline).
//   - Shutdown closes the transport's open streams and drops packets still
//     in flight to it.
//
// Create the network and the transports inside a testing/synctest bubble
// to run memberlist on virtual time.

// Addr is a memnet address: an "ip:port" string.
type Addr string

func (a Addr) Network() string { return "memnet" }
func (a Addr) String() string  { return string(a) }

// ErrNoRoute is wrapped by stream dials across a partition.
var ErrNoRoute = errors.New("memnet: no route to host")

// ErrRefused is wrapped by stream dials to an unknown or shut-down address.
var ErrRefused = errors.New("memnet: connection refused")

// GossipStats counts gossip traffic.
type GossipStats struct {
	PacketsSent, PacketsLost, PacketsDelivered int
	Dials, DialsFailed, StreamsBroken          int
}

type gossipState struct {
	byAddr  map[string]*GossipTransport
	streams map[*stream]struct{}
	stats   GossipStats
}

// packetBuffer is how many packets a transport queues before senders'
// deliveries wait (in their own goroutines) for memberlist to read.
const packetBuffer = 256

// GossipTransport is one node's memberlist transport on the network. It
// implements memberlist.NodeAwareTransport.
type GossipTransport struct {
	net      *Network
	id       string
	addr     Addr
	ip       net.IP
	port     int
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	wg       sync.WaitGroup // deliveries in flight to this transport
	once     sync.Once
}

var _ memberlist.NodeAwareTransport = (*GossipTransport)(nil)

// Gossip returns node id's memberlist transport, at addr: a fake "ip:port"
// (any IP) unique among live transports. Partitions apply to id. It
// panics if addr is malformed or in use.
func (n *Network) Gossip(id, addr string) *GossipTransport {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		panic(fmt.Sprintf("memnet: gossip address %q: %v", addr, err))
	}
	ip := net.ParseIP(host)
	port, err := strconv.ParseUint(portStr, 10, 16)
	if ip == nil || err != nil {
		panic(fmt.Sprintf("memnet: gossip address %q: want ip:port", addr))
	}
	t := &GossipTransport{
		net:      n,
		id:       id,
		addr:     Addr(addr),
		ip:       ip,
		port:     int(port),
		packetCh: make(chan *memberlist.Packet, packetBuffer),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	g := &n.mu.gossip
	if g.byAddr == nil {
		g.byAddr = map[string]*GossipTransport{}
		g.streams = map[*stream]struct{}{}
	}
	if _, ok := g.byAddr[addr]; ok {
		panic(fmt.Sprintf("memnet: gossip address %s is in use", addr))
	}
	g.byAddr[addr] = t
	return t
}

// GossipStats returns a copy of the gossip counters.
func (n *Network) GossipStats() GossipStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.gossip.stats
}

// Addr returns the transport's address.
func (t *GossipTransport) Addr() string { return string(t.addr) }

// FinalAdvertiseAddr returns the transport's own address, whatever
// memberlist was configured with.
func (t *GossipTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.ip, t.port, nil
}

func (t *GossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a packet (see the semantics above).
func (t *GossipTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	n := t.net
	n.mu.Lock()
	defer n.mu.Unlock()
	g := &n.mu.gossip
	g.stats.PacketsSent++
	dst := g.byAddr[a.Addr]
	if t.isShut() || dst == nil || !n.reachableLocked(t.id, dst.id) {
		g.stats.PacketsLost++
		return now, nil
	}
	lost, delay := n.fateLocked()
	if lost {
		g.stats.PacketsLost++
		return now, nil
	}
	p := &memberlist.Packet{Buf: clone(b), From: t.addr}
	if delay == 0 {
		p.Timestamp = now
		select {
		case dst.packetCh <- p:
			g.stats.PacketsDelivered++
			return now, nil
		default: // full: deliver from a goroutine
		}
	}
	dst.wg.Add(1)
	go dst.deliver(t.id, p, delay)
	return now, nil
}

// deliver hands p to memberlist after delay, unless the sender got cut
// off meanwhile or this transport shuts down.
func (t *GossipTransport) deliver(from string, p *memberlist.Packet, delay time.Duration) {
	defer t.wg.Done()
	n := t.net
	if delay > 0 {
		tm := time.NewTimer(delay)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-t.done:
			n.countPacket(false)
			return
		}
	}
	if !n.Reachable(from, t.id) {
		n.countPacket(false)
		return
	}
	p.Timestamp = time.Now()
	select {
	case t.packetCh <- p:
		n.countPacket(true)
	case <-t.done:
		n.countPacket(false)
	}
}

func (n *Network) countPacket(delivered bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if delivered {
		n.mu.gossip.stats.PacketsDelivered++
	} else {
		n.mu.gossip.stats.PacketsLost++
	}
}

func (t *GossipTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *GossipTransport) StreamCh() <-chan net.Conn { return t.streamCh }

func (t *GossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// dialError is a net.Error so that memberlist treats it as a network
// failure.
type dialError struct {
	addr    string
	err     error
	timeout bool
}

func (e *dialError) Error() string   { return fmt.Sprintf("dial memnet %s: %v", e.addr, e.err) }
func (e *dialError) Unwrap() error   { return e.err }
func (e *dialError) Timeout() bool   { return e.timeout }
func (e *dialError) Temporary() bool { return false }

// DialAddressTimeout opens a stream (see the semantics above).
func (t *GossipTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	n := t.net
	fail := func(err error, timeout bool) (net.Conn, error) {
		n.mu.Lock()
		n.mu.gossip.stats.DialsFailed++
		n.mu.Unlock()
		return nil, &dialError{addr: a.Addr, err: err, timeout: timeout}
	}
	n.mu.Lock()
	n.mu.gossip.stats.Dials++
	dst := n.mu.gossip.byAddr[a.Addr]
	reachable := dst != nil && n.reachableLocked(t.id, dst.id)
	lost, delay := n.fateLocked()
	if dst != nil && n.silentLocked(t.id, dst.id) {
		reachable, lost = true, true
	}
	n.mu.Unlock()
	switch {
	case t.isShut() || dst == nil:
		return fail(ErrRefused, false)
	case !reachable:
		return fail(ErrNoRoute, false)
	}
	var deadline <-chan time.Time
	if timeout > 0 {
		tm := time.NewTimer(timeout)
		defer tm.Stop()
		deadline = tm.C
	}
	if lost {
		select {
		case <-deadline: // nil without a timeout: wait for Shutdown
		case <-t.done:
		}
		return fail(os.ErrDeadlineExceeded, true)
	}
	if delay > 0 {
		tm := time.NewTimer(delay)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-deadline:
			return fail(os.ErrDeadlineExceeded, true)
		case <-t.done:
			return fail(net.ErrClosed, false)
		}
	}

	s := &stream{net: n, ids: [2]string{t.id, dst.id}}
	client, server := net.Pipe()
	s.ends[0] = &streamConn{Conn: client, s: s, local: t.addr, remote: dst.addr, self: t.id, peer: dst.id}
	s.ends[1] = &streamConn{Conn: server, s: s, local: dst.addr, remote: t.addr, self: dst.id, peer: t.id}
	n.mu.Lock()
	if !n.reachableLocked(t.id, dst.id) {
		n.mu.Unlock()
		return fail(ErrNoRoute, false)
	}
	n.mu.gossip.streams[s] = struct{}{}
	n.mu.Unlock()
	select {
	case dst.streamCh <- s.ends[1]:
		return s.ends[0], nil
	case <-dst.done:
		s.close(false)
		return fail(ErrRefused, false)
	case <-t.done:
		s.close(false)
		return fail(net.ErrClosed, false)
	case <-deadline:
		s.close(false)
		return fail(os.ErrDeadlineExceeded, true)
	}
}

func (t *GossipTransport) isShut() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// Shutdown unregisters the transport's address, closes its streams,
// drops the packets in flight to it and waits for their goroutines. It is
// idempotent.
func (t *GossipTransport) Shutdown() error {
	t.once.Do(func() {
		n := t.net
		n.mu.Lock()
		close(t.done)
		g := &n.mu.gossip
		if g.byAddr[string(t.addr)] == t {
			delete(g.byAddr, string(t.addr))
		}
		var mine []*stream
		for s := range g.streams {
			if s.ids[0] == t.id || s.ids[1] == t.id {
				mine = append(mine, s)
			}
		}
		n.mu.Unlock()
		for _, s := range mine {
			s.close(false)
		}
		t.wg.Wait()
	})
	return nil
}

// breakStreams is called with n.mu held and releases it: it closes the
// open streams that the current reachability cuts.
func (n *Network) breakStreams() {
	var cut []*stream
	for s := range n.mu.gossip.streams {
		if !n.reachableLocked(s.ids[0], s.ids[1]) || !n.reachableLocked(s.ids[1], s.ids[0]) {
			cut = append(cut, s)
		}
	}
	n.mu.Unlock()
	for _, s := range cut {
		s.close(true)
	}
}

// stream is one open stream: a net.Pipe pair between two nodes.
type stream struct {
	net  *Network
	ids  [2]string // dialer, listener
	ends [2]*streamConn
	once sync.Once
}

// close closes both ends and forgets the stream; broken counts it as cut
// by a partition.
func (s *stream) close(broken bool) {
	s.once.Do(func() {
		n := s.net
		n.mu.Lock()
		delete(n.mu.gossip.streams, s)
		if broken {
			n.mu.gossip.stats.StreamsBroken++
		}
		n.mu.Unlock()
		_ = s.ends[0].Conn.Close()
		_ = s.ends[1].Conn.Close()
	})
}

// streamConn is one end of a stream.
type streamConn struct {
	net.Conn
	s             *stream
	local, remote Addr
	self, peer    string
	closed        atomic.Bool
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

// Write delays b by one Faults delay, then writes it unless the stream
// was cut meanwhile.
func (c *streamConn) Write(b []byte) (int, error) {
	n := c.s.net
	if _, delay := n.fate(); delay > 0 {
		time.Sleep(delay)
	}
	if !n.Reachable(c.self, c.peer) {
		c.s.close(true)
	}
	return c.Conn.Write(b)
}

// Close closes this end: the peer's reads see EOF. The stream is
// forgotten once both ends are closed.
func (c *streamConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	err := c.Conn.Close()
	other := c.s.ends[0]
	if other == c {
		other = c.s.ends[1]
	}
	if other.closed.Load() {
		c.s.close(false)
	}
	return err
}
