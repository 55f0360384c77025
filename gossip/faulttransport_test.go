package gossip

import (
	"errors"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dotkv/dotkv/transport"
)

func newTestTransport(t *testing.T, ip string, f *transport.Filter) *faultTransport {
	t.Helper()
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{ip},
		Logger:    log.New(io.Discard, "", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := newFaultTransport(nt, net.ParseIP(ip), f)
	t.Cleanup(func() { _ = tr.Shutdown() })
	return tr
}

func TestFaultTransportDialsFromItsOwnIPAndObeysTheFilter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.36:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f := transport.NewFilter(func(id string) []string {
		if id == "peer" {
			return []string{"127.0.0.36"}
		}
		return nil
	})
	tr := newTestTransport(t, "127.0.0.37", f)

	c, err := tr.DialAddressTimeout(memberlist.Address{Addr: ln.Addr().String(), Name: "peer"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.37" {
		t.Fatalf("dialed from %s, want the gossip IP 127.0.0.37", got)
	}

	f.Block("peer")
	if c, err := tr.DialTimeout(ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("dial to a blocked host succeeded")
	}
	if _, err := tr.WriteTo([]byte("x"), ln.Addr().String()); err != nil {
		t.Fatalf("write to a blocked host: %v, want a silent drop", err)
	}
	f.Heal()
	if c, err := tr.DialTimeout(ln.Addr().String(), time.Second); err != nil {
		t.Fatalf("dial after heal: %v", err)
	} else {
		c.Close()
	}
}

func TestFaultTransportDropsInboundFromBlockedHosts(t *testing.T) {
	f := transport.NewFilter(func(id string) []string {
		if id == "sender" {
			return []string{"127.0.0.38"}
		}
		return nil
	})
	f.Block("sender")
	rx := newTestTransport(t, "127.0.0.39", f)
	blocked := newTestTransport(t, "127.0.0.38", nil)
	open := newTestTransport(t, "127.0.0.40", nil)
	addr := net.JoinHostPort("127.0.0.39", strconv.Itoa(rx.inner.GetAutoBindPort()))

	// Packets: loopback UDP is delivered in send order, so if the blocked
	// packet were not dropped it would arrive before the marker.
	if _, err := blocked.WriteTo([]byte("blocked"), addr); err != nil {
		t.Fatal(err)
	}
	if _, err := open.WriteTo([]byte("marker"), addr); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-rx.PacketCh():
		if got := string(p.Buf); got != "marker" {
			t.Fatalf("first packet is %q, want the marker", got)
		}
	case <-time.After(waitLimit):
		t.Fatal("no packet")
	}

	// Streams: a connection from a blocked host is closed, never handed
	// to memberlist.
	c, err := blocked.DialTimeout(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on a blocked stream: %d, %v; want it closed", n, err)
	}
	c2, err := open.DialTimeout(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	select {
	case s := <-rx.StreamCh():
		defer s.Close()
		if got := s.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.40" {
			t.Fatalf("stream from %s reached memberlist", got)
		}
	case <-time.After(waitLimit):
		t.Fatal("no stream")
	}
}
