package memnet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dotkv/dotkv/internal/bubble"
)

func recvPacket(t *testing.T, tr *GossipTransport) *memberlist.Packet {
	t.Helper()
	select {
	case p := <-tr.PacketCh():
		return p
	case <-time.After(time.Minute):
		t.Fatal("no packet")
		return nil
	}
}

// noPacket checks (in a synctest bubble) that nothing reached tr.
func noPacket(t *testing.T, tr *GossipTransport) {
	t.Helper()
	synctest.Wait()
	select {
	case p := <-tr.PacketCh():
		t.Fatalf("unexpected packet %q from %s", p.Buf, p.From)
	default:
	}
}

func TestPackets(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		n := New(1)
		a, b, c := n.Gossip("a", "10.0.0.1:7946"), n.Gossip("b", "10.0.0.2:7946"), n.Gossip("c", "10.0.0.3:7946")
		defer a.Shutdown()
		defer b.Shutdown()
		defer c.Shutdown()

		buf := []byte("ping")
		if _, err := a.WriteTo(buf, "10.0.0.2:7946"); err != nil {
			t.Fatal(err)
		}
		buf[0] = 'X'
		p := recvPacket(t, b)
		if string(p.Buf) != "ping" || p.From.String() != "10.0.0.1:7946" || p.Timestamp.IsZero() {
			t.Fatalf("got %q from %v at %v; want ping from 10.0.0.1:7946, stamped", p.Buf, p.From, p.Timestamp)
		}

		// Unknown addresses and partitions lose packets silently, as UDP.
		if _, err := a.WriteTo([]byte("x"), "10.0.0.9:7946"); err != nil {
			t.Errorf("packet to an unknown address: %v; want silent loss", err)
		}
		n.Partition([]string{"a"}, []string{"b"})
		if _, err := a.WriteToAddress([]byte("cut"), memberlist.Address{Addr: "10.0.0.2:7946", Name: "b"}); err != nil {
			t.Errorf("packet across a partition: %v; want silent loss", err)
		}
		noPacket(t, b)
		// c is in no group: it still reaches both.
		_, _ = c.WriteTo([]byte("from c"), "10.0.0.1:7946")
		if p := recvPacket(t, a); string(p.Buf) != "from c" {
			t.Fatalf("got %q; want from c", p.Buf)
		}

		// A partition made while a packet is in flight loses it.
		n.Heal()
		n.SetFaults(Faults{MinDelay: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond})
		start := time.Now()
		_, _ = a.WriteTo([]byte("late"), "10.0.0.2:7946")
		if p := recvPacket(t, b); string(p.Buf) != "late" || time.Since(start) != 10*time.Millisecond || !p.Timestamp.Equal(time.Now()) {
			t.Fatalf("delayed packet %q arrived after %v (virtual); want late after 10ms", p.Buf, time.Since(start))
		}
		_, _ = a.WriteTo([]byte("in flight"), "10.0.0.2:7946")
		n.Isolate("b")
		time.Sleep(20 * time.Millisecond)
		noPacket(t, b)

		st := n.GossipStats()
		if st.PacketsSent != 6 || st.PacketsDelivered != 3 || st.PacketsLost != 3 {
			t.Errorf("stats %+v; want 6 sent, 3 delivered, 3 lost", st)
		}
	})
}

func TestPacketDropsAreSeeded(t *testing.T) {
	run := func(seed uint64) (got string) {
		bubble.Test(t, func(t *testing.T) {
			n := New(seed)
			a, b := n.Gossip("a", "10.0.0.1:1"), n.Gossip("b", "10.0.0.2:1")
			defer a.Shutdown()
			defer b.Shutdown()
			n.SetFaults(Faults{Drop: 0.5})
			for i := range 64 {
				_, _ = a.WriteTo([]byte{byte(i)}, "10.0.0.2:1")
				synctest.Wait()
				select {
				case <-b.PacketCh():
					got += "."
				default:
					got += "x"
				}
			}
		})
		return got
	}
	p1, p2, p3 := run(3), run(3), run(4)
	if p1 != p2 || p1 == p3 {
		t.Errorf("seed 3 gave %s then %s, seed 4 gave %s; want the same fates per seed, different across seeds", p1, p2, p3)
	}
	if !slices.Contains([]byte(p1), 'x') || !slices.Contains([]byte(p1), '.') {
		t.Errorf("Drop 0.5 fates %s: want some lost and some delivered", p1)
	}
}

// accept returns the next stream tr receives.
func accept(t *testing.T, tr *GossipTransport) net.Conn {
	t.Helper()
	select {
	case c := <-tr.StreamCh():
		return c
	case <-time.After(time.Minute):
		t.Fatal("no stream")
		return nil
	}
}

func TestStreams(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		n := New(1)
		a, b := n.Gossip("a", "10.0.0.1:7946"), n.Gossip("b", "10.0.0.2:7946")
		defer a.Shutdown()
		defer b.Shutdown()

		type dialed struct {
			c   net.Conn
			err error
		}
		dial := func() <-chan dialed {
			ch := make(chan dialed, 1)
			go func() {
				c, err := a.DialTimeout("10.0.0.2:7946", time.Second)
				ch <- dialed{c, err}
			}()
			return ch
		}
		d := dial()
		srv := accept(t, b)
		cli := <-d
		if cli.err != nil {
			t.Fatal(cli.err)
		}
		if cli.c.RemoteAddr().String() != "10.0.0.2:7946" || srv.RemoteAddr().String() != "10.0.0.1:7946" {
			t.Errorf("addresses: client sees %v, server sees %v", cli.c.RemoteAddr(), srv.RemoteAddr())
		}
		go func() { _, _ = cli.c.Write([]byte("push")) }()
		buf := make([]byte, 4)
		if _, err := io.ReadFull(srv, buf); err != nil || string(buf) != "push" {
			t.Fatalf("read %q, %v; want push", buf, err)
		}
		// Closing one end gives the other EOF.
		_ = cli.c.Close()
		if _, err := srv.Read(buf); err != io.EOF {
			t.Errorf("read after peer close: %v; want EOF", err)
		}
		_ = srv.Close()

		// A partition breaks an open stream.
		d = dial()
		srv = accept(t, b)
		cli = <-d
		readErr := make(chan error, 1)
		go func() { _, err := srv.Read(buf); readErr <- err }()
		n.Partition([]string{"a"}, []string{"b"})
		if err := <-readErr; err == nil {
			t.Error("read on a stream cut by a partition succeeded")
		}
		if _, err := cli.c.Write([]byte("x")); err == nil {
			t.Error("write on a stream cut by a partition succeeded")
		}
		_ = cli.c.Close()
		_ = srv.Close()

		// Dials across a partition or to an unknown address fail at once.
		start := time.Now()
		if _, err := a.DialTimeout("10.0.0.2:7946", time.Second); !errors.Is(err, ErrNoRoute) {
			t.Errorf("dial across a partition: %v; want ErrNoRoute", err)
		}
		if _, err := a.DialTimeout("10.0.0.7:7946", time.Second); !errors.Is(err, ErrRefused) {
			t.Errorf("dial to an unknown address: %v; want ErrRefused", err)
		}
		if time.Since(start) != 0 {
			t.Errorf("failed dials took %v (virtual); want no wait", time.Since(start))
		}

		// A lost dial times out.
		n.Heal()
		n.SetFaults(Faults{Drop: 1})
		start = time.Now()
		_, err := a.DialTimeout("10.0.0.2:7946", 300*time.Millisecond)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) != 300*time.Millisecond {
			t.Errorf("lost dial: %v after %v (virtual); want a timeout after 300ms", err, time.Since(start))
		}
		st := n.GossipStats()
		if st.Dials != 5 || st.DialsFailed != 3 || st.StreamsBroken != 1 {
			t.Errorf("stats %+v; want 5 dials, 3 failed, 1 stream broken", st)
		}
	})
}

func TestShutdownClosesStreamsAndFreesAddr(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		n := New(1)
		a, b := n.Gossip("a", "10.0.0.1:1"), n.Gossip("b", "10.0.0.2:1")
		defer a.Shutdown()
		go func() {
			c, err := a.DialTimeout("10.0.0.2:1", time.Second)
			if err == nil {
				_, _ = io.Copy(io.Discard, c) // returns when b shuts down
				_ = c.Close()
			}
		}()
		srv := accept(t, b)
		_ = b.Shutdown()
		if _, err := srv.Write([]byte("x")); err == nil {
			t.Error("write on a shut-down transport's stream succeeded")
		}
		synctest.Wait()
		// The address is free again: a restart.
		b2 := n.Gossip("b", "10.0.0.2:1")
		defer b2.Shutdown()
		_, _ = a.WriteTo([]byte("hello again"), "10.0.0.2:1")
		if p := recvPacket(t, b2); string(p.Buf) != "hello again" {
			t.Fatalf("got %q", p.Buf)
		}
	})
}

// memberlistConfig is a LAN-like memberlist config on tr. Under synctest
// the timing is virtual, so CPU starvation cannot cause false failures.
func memberlistConfig(name string, tr *GossipTransport) *memberlist.Config {
	c := memberlist.DefaultLocalConfig()
	c.Name = name
	c.Transport = tr
	c.LogOutput = io.Discard
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = time.Second
	c.TCPTimeout = 500 * time.Millisecond
	c.SuspicionMult = 2
	c.GossipToTheDeadTime = 5 * time.Second
	c.DeadNodeReclaimTime = time.Second
	return c
}

// alive returns the sorted names ml lists as alive (memberlist's Members
// excludes dead and left nodes).
func alive(ml *memberlist.Memberlist) []string {
	var names []string
	for _, m := range ml.Members() {
		if m.State == memberlist.StateAlive {
			names = append(names, m.Name)
		}
	}
	slices.Sort(names)
	return names
}

// drainMemberlist lets the goroutines memberlist leaves behind after
// Shutdown (probes waiting for their ack timeout) finish: a synctest
// bubble's virtual time stops when its main goroutine returns, so they
// would otherwise block forever.
func drainMemberlist() { time.Sleep(time.Minute) }

// waitFor polls cond every 50ms of (virtual) time until it holds or
// limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMemberlistPartitionAndHeal runs three real memberlist instances on
// memnet in virtual time: they join, a partition makes each side see the
// other dead, and after a heal a join brings them back together.
func TestMemberlistPartitionAndHeal(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		start := time.Now()
		memberlistScenario(t)
		drainMemberlist()
		t.Logf("virtual time: %v", time.Since(start))
	})
}

// TestMemberlistRealTime is the same story on the real clock.
func TestMemberlistRealTime(t *testing.T) {
	if testing.Short() {
		t.Skip("real time")
	}
	memberlistScenario(t)
}

func memberlistScenario(t *testing.T) {
	n := New(42)
	n.SetFaults(Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond})
	names := []string{"n1", "n2", "n3"}
	mls := make([]*memberlist.Memberlist, 3)
	for i, name := range names {
		ml, err := memberlist.Create(memberlistConfig(name, n.Gossip(name, fmt.Sprintf("10.0.0.%d:7946", i+1))))
		if err != nil {
			t.Fatal(err)
		}
		mls[i] = ml
	}
	defer func() {
		for _, ml := range mls {
			_ = ml.Shutdown()
		}
	}()
	for _, ml := range mls[1:] {
		if _, err := ml.Join([]string{"10.0.0.1:7946"}); err != nil {
			t.Fatal(err)
		}
	}
	all := func() bool {
		for _, ml := range mls {
			if !slices.Equal(alive(ml), names) {
				return false
			}
		}
		return true
	}
	waitFor(t, 10*time.Second, "all three alive everywhere", all)

	n.Partition([]string{"n1", "n2"}, []string{"n3"})
	split := func() bool {
		return slices.Equal(alive(mls[0]), []string{"n1", "n2"}) &&
			slices.Equal(alive(mls[1]), []string{"n1", "n2"}) &&
			slices.Equal(alive(mls[2]), []string{"n3"})
	}
	waitFor(t, 30*time.Second, "each side to see the other dead", split)

	n.Heal()
	// memberlist does not gossip to dead nodes once its broadcasts are
	// out, so a healed partition needs a join (gossip.Membership's
	// rejoin loop does this).
	if _, err := mls[2].Join([]string{"10.0.0.1:7946"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "all three alive again", all)
	if st := n.GossipStats(); st.PacketsLost == 0 || st.PacketsDelivered == 0 || st.Dials == 0 {
		t.Errorf("stats %+v: want packets delivered and lost, and streams", st)
	}
}
