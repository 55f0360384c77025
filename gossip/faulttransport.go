package gossip

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dotkv/dotkv/transport"
)

// faultTransport decorates memberlist's NetTransport (docs/design.md §9.3):
//
//   - Every packet and stream to or from a host the fault filter blocks is
//     dropped: outbound packets silently (UDP semantics), outbound dials
//     with an error, inbound packets and streams by forwarder goroutines
//     that sit between the NetTransport's channels and memberlist.
//   - Outgoing TCP connections use the node's own gossip IP as their source
//     address, so that iptables rules between per-node loopback addresses
//     (docs/design.md §9.4) cut them like any other traffic. UDP already leaves
//     from the bound listener.
//   - Dials in flight are cancelled by Shutdown, so a Join to a blackholed
//     peer cannot hold Close up for a whole TCP timeout.
//
// A nil filter blocks nothing; the forwarders then only add a hop.
type faultTransport struct {
	inner  *memberlist.NetTransport
	filter *transport.Filter
	dialer net.Dialer

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	dialCtx    context.Context
	cancelDial context.CancelFunc
	done       chan struct{}
	wg         sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
}

var _ memberlist.NodeAwareTransport = (*faultTransport)(nil)

func newFaultTransport(inner *memberlist.NetTransport, localIP net.IP, filter *transport.Filter) *faultTransport {
	ctx, cancel := context.WithCancel(context.Background())
	t := &faultTransport{
		inner:      inner,
		filter:     filter,
		dialer:     net.Dialer{LocalAddr: &net.TCPAddr{IP: localIP}},
		packetCh:   make(chan *memberlist.Packet),
		streamCh:   make(chan net.Conn),
		dialCtx:    ctx,
		cancelDial: cancel,
		done:       make(chan struct{}),
	}
	t.wg.Go(t.forwardPackets)
	t.wg.Go(t.forwardStreams)
	return t
}

func (t *faultTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *faultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.filter.BlockedAddr(a.Addr) {
		return time.Now(), nil // lost on the way, as UDP may be
	}
	return t.inner.WriteToAddress(b, a)
}

func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *faultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.filter.BlockedAddr(a.Addr) {
		return nil, fmt.Errorf("dial %s: blocked by fault filter", a.Addr)
	}
	d := t.dialer // copy: Timeout differs per call
	d.Timeout = timeout
	return d.DialContext(t.dialCtx, "tcp", a.Addr)
}

func (t *faultTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *faultTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown stops the NetTransport first, while memberlist still reads
// from our channels: its listener goroutines may be blocked handing us a
// packet, and the forwarders must keep draining for them to exit. Only
// then are the forwarders stopped. memberlist calls this before it closes
// its own shutdown channel. Shutdown is idempotent: a failed
// memberlist.Create may or may not have called it already.
func (t *faultTransport) Shutdown() error {
	t.shutdownOnce.Do(func() {
		t.cancelDial()
		t.shutdownErr = t.inner.Shutdown()
		close(t.done)
		t.wg.Wait()
	})
	return t.shutdownErr
}

func (t *faultTransport) forwardPackets() {
	in := t.inner.PacketCh()
	for {
		select {
		case p := <-in:
			if t.filter.BlockedAddr(p.From.String()) {
				continue
			}
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

func (t *faultTransport) forwardStreams() {
	in := t.inner.StreamCh()
	for {
		select {
		case c := <-in:
			if t.filter.BlockedAddr(c.RemoteAddr().String()) {
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
