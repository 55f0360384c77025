package memnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dotkv/dotkv/internal/bubble"
	"github.com/dotkv/dotkv/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cluster listens n1..nk on a fresh network; every endpoint serves "echo"
// (replies "<self>:<from>:<req>") and "fail".
func cluster(t *testing.T, seed uint64, k int) (*Network, []*Endpoint) {
	t.Helper()
	n := New(seed)
	eps := make([]*Endpoint, k)
	for i := range eps {
		id := fmt.Sprintf("n%d", i+1)
		e := n.Listen(id)
		e.Handle("echo", func(_ context.Context, from string, req []byte) ([]byte, error) {
			return []byte(id + ":" + from + ":" + string(req)), nil
		})
		e.Handle("fail", func(context.Context, string, []byte) ([]byte, error) {
			return nil, errors.New("handler says no")
		})
		eps[i] = e
		t.Cleanup(e.Close)
	}
	return n, eps
}

func call(e *Endpoint, to, method string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return e.Call(ctx, to, method, []byte("hi"))
}

func TestCallCarriesCallerAndBody(t *testing.T) {
	_, eps := cluster(t, 1, 2)
	got, err := call(eps[0], "n2", "echo")
	if err != nil || string(got) != "n2:n1:hi" {
		t.Fatalf("echo = %q, %v; want n2:n1:hi", got, err)
	}
}

func TestBytesAreCopied(t *testing.T) {
	n := New(1)
	a, b := n.Listen("a"), n.Listen("b")
	defer a.Close()
	defer b.Close()
	var served []byte
	reply := []byte("reply")
	b.Handle("keep", func(_ context.Context, _ string, req []byte) ([]byte, error) {
		served = req
		req[0] = 'X' // must not reach the caller's slice
		return reply, nil
	})
	req := []byte("request")
	got, err := a.Call(context.Background(), "b", "keep", req)
	if err != nil {
		t.Fatal(err)
	}
	if string(req) != "request" {
		t.Errorf("handler's write reached the caller's request: %q", req)
	}
	got[0] = 'Y'
	if string(reply) != "reply" {
		t.Errorf("caller's write reached the handler's reply: %q", reply)
	}
	req[1] = 'Z'
	if string(served) != "Xequest" {
		t.Errorf("caller's write reached the handler's request: %q", served)
	}
}

func TestEmptyReplyIsNotNil(t *testing.T) {
	n := New(1)
	a, b := n.Listen("a"), n.Listen("b")
	defer a.Close()
	defer b.Close()
	b.Handle("nil", func(context.Context, string, []byte) ([]byte, error) { return nil, nil })
	got, err := a.Call(context.Background(), "b", "nil", nil)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("nil reply = %#v, %v; want empty non-nil (as the HTTP client)", got, err)
	}
}

func TestHandlerErrorIsRemoteError(t *testing.T) {
	_, eps := cluster(t, 1, 2)
	_, err := call(eps[0], "n2", "fail")
	var re *transport.RemoteError
	if !errors.As(err, &re) || re.Status != 500 || re.Msg != "handler says no" {
		t.Fatalf("fail: %v; want RemoteError 500 %q", err, "handler says no")
	}
	if transport.NotDelivered(err) {
		t.Errorf("a handler error was delivered: NotDelivered(%v) = true", err)
	}
	_, err = call(eps[0], "n2", "nope")
	if !errors.As(err, &re) || re.Status != 404 {
		t.Fatalf("unknown method: %v; want RemoteError 404", err)
	}
}

func TestUnknownAndClosedPeersAreNotDelivered(t *testing.T) {
	n, eps := cluster(t, 1, 3)
	_, err := call(eps[0], "n9", "echo")
	if !errors.Is(err, transport.ErrUnknownPeer) || !transport.NotDelivered(err) {
		t.Fatalf("unknown peer: %v; want not delivered, ErrUnknownPeer", err)
	}
	eps[1].Close()
	_, err = call(eps[0], "n2", "echo")
	if !transport.NotDelivered(err) {
		t.Fatalf("closed peer: %v; want not delivered", err)
	}
	_, err = call(eps[1], "n1", "echo")
	if !transport.NotDelivered(err) || !errors.Is(err, ErrClosed) {
		t.Fatalf("call from closed endpoint: %v; want not delivered, ErrClosed", err)
	}
	if got := n.Stats()["echo"]; got.Delivered != 0 || got.Blocked != 3 || got.Calls != 3 {
		t.Errorf("stats = %+v; want 3 calls, 3 blocked, 0 delivered", got)
	}
	// A restarted node listens again under the same ID.
	e := n.Listen("n2")
	defer e.Close()
	e.Handle("echo", func(context.Context, string, []byte) ([]byte, error) { return []byte("back"), nil })
	if got, err := call(eps[0], "n2", "echo"); err != nil || string(got) != "back" {
		t.Fatalf("after restart: %q, %v; want back", got, err)
	}
}

func TestBindServesOnlyAfterServe(t *testing.T) {
	n := New(1)
	a, b := n.Listen("a"), n.Bind("b")
	defer a.Close()
	defer b.Close()
	b.Handle("echo", func(_ context.Context, from string, req []byte) ([]byte, error) { return req, nil })
	a.Handle("echo", func(_ context.Context, from string, req []byte) ([]byte, error) { return req, nil })
	if _, err := b.Call(context.Background(), "a", "echo", nil); err != nil {
		t.Fatalf("a bound endpoint's call: %v", err)
	}
	_, err := a.Call(context.Background(), "b", "echo", nil)
	if !transport.NotDelivered(err) || !errors.Is(err, ErrRefused) {
		t.Fatalf("call to a bound endpoint before Serve: %v; want a refused dial (not delivered)", err)
	}
	b.Serve()
	if got, err := a.Call(context.Background(), "b", "echo", []byte("x")); err != nil || string(got) != "x" {
		t.Fatalf("after Serve: %q, %v", got, err)
	}
}

func TestSecondListenPanics(t *testing.T) {
	n := New(1)
	e := n.Listen("a")
	defer e.Close()
	defer func() {
		if recover() == nil {
			t.Error("second Listen of a live ID did not panic")
		}
	}()
	n.Listen("a")
}

func TestPartitionIsolateHeal(t *testing.T) {
	n, eps := cluster(t, 1, 4)
	reach := func(from, to int) bool {
		_, err := call(eps[from-1], fmt.Sprintf("n%d", to), "echo")
		if err != nil && !(transport.NotDelivered(err) && errors.Is(err, transport.ErrBlocked)) {
			t.Fatalf("n%d→n%d: %v; want success or ErrBlocked", from, to, err)
		}
		if got := n.Reachable(fmt.Sprintf("n%d", from), fmt.Sprintf("n%d", to)); got != (err == nil) {
			t.Fatalf("Reachable(n%d, n%d) = %v but call err = %v", from, to, got, err)
		}
		return err == nil
	}
	check := func(stage string, want map[[2]int]bool) {
		t.Helper()
		for from := 1; from <= 4; from++ {
			for to := 1; to <= 4; to++ {
				w, ok := want[[2]int{from, to}]
				if !ok {
					w = want[[2]int{to, from}]
					if _, ok := want[[2]int{to, from}]; !ok {
						w = true
					}
				}
				if got := reach(from, to); got != w {
					t.Errorf("%s: n%d→n%d reachable = %v, want %v", stage, from, to, got, w)
				}
			}
		}
	}
	n.Partition([]string{"n1", "n2"}, []string{"n3"})
	// n4 is in no group: it reaches everyone.
	check("n1,n2|n3", map[[2]int]bool{{1, 3}: false, {2, 3}: false})
	n.Isolate("n4")
	check("n1,n2|n3 + isolate n4", map[[2]int]bool{{1, 3}: false, {2, 3}: false, {4, 1}: false, {4, 2}: false, {4, 3}: false})
	n.Partition([]string{"n1"}, []string{"n2"}) // replaces n1,n2|n3; n4 stays isolated
	check("n1|n2 + isolate n4", map[[2]int]bool{{1, 2}: false, {4, 1}: false, {4, 2}: false, {4, 3}: false})
	n.Heal()
	check("healed", nil)
	if got := n.Stats()["echo"]; got.Lost != 0 || got.Delivered+got.Blocked != got.Calls {
		t.Errorf("stats = %+v; blocked calls must not be delivered or lost", got)
	}
}

func TestDropIsOutcomeUnknown(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		n, eps := cluster(t, 1, 2)
		n.SetFaults(Faults{Drop: 1})
		start := time.Now()
		_, err := call(eps[0], "n2", "echo")
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrLost) {
			t.Fatalf("dropped call: %v; want ErrLost wrapping DeadlineExceeded", err)
		}
		if transport.NotDelivered(err) {
			t.Errorf("a lost call must be outcome-unknown, but NotDelivered(%v) = true", err)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Errorf("lost call returned after %v (virtual); want the full 1s context", waited)
		}
		if got := n.Stats()["echo"]; got.Lost != 1 || got.Delivered != 0 {
			t.Errorf("stats = %+v; want 1 lost, 0 delivered", got)
		}
	})
}

// TestDropsAreSeeded: the same seed loses the same requests and replies of
// a sequential run, and Drop 0.5 loses both requests (handler not run) and
// replies (handler run, caller times out).
func TestDropsAreSeeded(t *testing.T) {
	run := func(seed uint64) (pattern string, st MethodStats) {
		bubble.Test(t, func(t *testing.T) {
			n, eps := cluster(t, seed, 2)
			var served atomic.Int64
			eps[1].Handle("count", func(context.Context, string, []byte) ([]byte, error) {
				served.Add(1)
				return nil, nil
			})
			n.SetFaults(Faults{Drop: 0.5})
			for range 64 {
				before := served.Load()
				_, err := call(eps[0], "n2", "count")
				switch {
				case err == nil:
					pattern += "."
				case served.Load() == before:
					pattern += "q" // request lost
				default:
					pattern += "r" // reply lost
				}
			}
			st = n.Stats()["count"]
		})
		return pattern, st
	}
	p1, st := run(7)
	p2, _ := run(7)
	p3, _ := run(8)
	if p1 != p2 {
		t.Errorf("same seed, different fates:\n%s\n%s", p1, p2)
	}
	if p1 == p3 {
		t.Errorf("seeds 7 and 8 gave the same fates %s", p1)
	}
	var q, r, ok int
	for _, c := range p1 {
		switch c {
		case 'q':
			q++
		case 'r':
			r++
		default:
			ok++
		}
	}
	if q == 0 || r == 0 || ok == 0 {
		t.Errorf("fates %s: want some lost requests, lost replies and successes", p1)
	}
	if st.Lost != q+r || st.Delivered != r+ok {
		t.Errorf("stats %+v disagree with fates (q=%d r=%d ok=%d)", st, q, r, ok)
	}
}

func TestDelaysApplyEachWay(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		n, eps := cluster(t, 1, 2)
		var servedAt time.Time
		eps[1].Handle("when", func(context.Context, string, []byte) ([]byte, error) {
			servedAt = time.Now()
			return nil, nil
		})
		n.SetFaults(Faults{MinDelay: 30 * time.Millisecond, MaxDelay: 30 * time.Millisecond})
		start := time.Now()
		if _, err := call(eps[0], "n2", "when"); err != nil {
			t.Fatal(err)
		}
		if got := servedAt.Sub(start); got != 30*time.Millisecond {
			t.Errorf("request took %v (virtual); want 30ms", got)
		}
		if got := time.Since(servedAt); got != 30*time.Millisecond {
			t.Errorf("reply took %v (virtual); want 30ms", got)
		}

		// Uniform delays stay in [Min, Max] and vary.
		n.SetFaults(Faults{MinDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond})
		seen := map[time.Duration]bool{}
		for range 20 {
			start := time.Now()
			if _, err := call(eps[0], "n2", "when"); err != nil {
				t.Fatal(err)
			}
			rt := time.Since(start)
			if rt < 20*time.Millisecond || rt > 40*time.Millisecond {
				t.Errorf("round trip %v outside [20ms, 40ms]", rt)
			}
			seen[rt] = true
		}
		if len(seen) < 5 {
			t.Errorf("20 round trips took only %d distinct times; delays are not random", len(seen))
		}
	})
}

func TestPartitionInFlightLosesTheReply(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		n, eps := cluster(t, 1, 2)
		var ran atomic.Bool
		eps[1].Handle("cut", func(context.Context, string, []byte) ([]byte, error) {
			ran.Store(true)
			n.Partition([]string{"n1"}, []string{"n2"})
			return []byte("never arrives"), nil
		})
		_, err := call(eps[0], "n2", "cut")
		if !ran.Load() || !errors.Is(err, ErrLost) || transport.NotDelivered(err) {
			t.Fatalf("reply across a new partition: ran=%v err=%v; want ran, ErrLost, outcome unknown", ran.Load(), err)
		}
	})
}

func TestCancelReachesHandlerAndCloseWaits(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		n := New(1)
		a, b := n.Listen("a"), n.Listen("b")
		defer a.Close()
		entered := make(chan struct{})
		release := make(chan struct{})
		var sawCancel atomic.Bool
		b.Handle("block", func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
			close(entered)
			<-ctx.Done()
			sawCancel.Store(true)
			<-release
			return nil, nil
		})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := a.Call(ctx, "b", "block", nil)
			errc <- err
		}()
		<-entered
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) || transport.NotDelivered(err) {
			t.Fatalf("cancelled call: %v; want context.Canceled, outcome unknown", err)
		}
		synctest.Wait()
		if !sawCancel.Load() {
			t.Fatal("the handler's context was not cancelled with the caller's")
		}
		var closed atomic.Bool
		go func() { b.Close(); closed.Store(true) }()
		synctest.Wait()
		if closed.Load() {
			t.Fatal("Close returned while a handler was running")
		}
		close(release)
		synctest.Wait()
		if !closed.Load() {
			t.Fatal("Close did not return after the handler finished")
		}
	})
}

func TestOnCallHook(t *testing.T) {
	n, eps := cluster(t, 1, 3)
	var seen []string
	n.OnCall(func(from, to, method string) { seen = append(seen, from+">"+to+":"+method) })
	n.Isolate("n3")
	_, _ = call(eps[0], "n2", "echo")
	_, _ = call(eps[1], "n3", "fail")
	n.OnCall(nil)
	_, _ = call(eps[0], "n2", "echo")
	if fmt.Sprint(seen) != "[n1>n2:echo n2>n3:fail]" {
		t.Errorf("hook saw %v; want [n1>n2:echo n2>n3:fail] (blocked calls included, none after removal)", seen)
	}
}

func TestBlackholeLosesSilently(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		n, eps := cluster(t, 1, 3)
		g1, g2 := n.Gossip("n1", "10.0.0.1:1"), n.Gossip("n2", "10.0.0.2:1")
		defer g1.Shutdown()
		defer g2.Shutdown()
		n.Blackhole("n2")
		start := time.Now()
		_, err := call(eps[0], "n2", "echo")
		if !errors.Is(err, ErrLost) || !errors.Is(err, context.DeadlineExceeded) || transport.NotDelivered(err) {
			t.Fatalf("call into a blackhole: %v; want lost after the deadline, outcome unknown", err)
		}
		if time.Since(start) != time.Second {
			t.Errorf("call into a blackhole returned after %v (virtual); want its 1s deadline", time.Since(start))
		}
		if _, err := call(eps[1], "n3", "echo"); !errors.Is(err, ErrLost) {
			t.Errorf("call out of a blackhole: %v; want lost", err)
		}
		if _, err := call(eps[0], "n3", "echo"); err != nil {
			t.Errorf("n1→n3 beside a blackhole: %v", err)
		}
		start = time.Now()
		var ne net.Error
		if _, err := g1.DialTimeout("10.0.0.2:1", 300*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) != 300*time.Millisecond {
			t.Errorf("dial into a blackhole: %v after %v; want a timeout after 300ms", err, time.Since(start))
		}
		_, _ = g1.WriteTo([]byte("x"), "10.0.0.2:1")
		noPacket(t, g2)
		n.Heal()
		if _, err := call(eps[0], "n2", "echo"); err != nil {
			t.Errorf("after Heal: %v", err)
		}
	})
}

func TestMessageLimitAndSizes(t *testing.T) {
	n := New(1)
	a, b := n.Listen("a"), n.Listen("b")
	defer a.Close()
	defer b.Close()
	var served atomic.Int64
	b.Handle("size", func(_ context.Context, _ string, req []byte) ([]byte, error) {
		served.Add(1)
		return make([]byte, len(req)*2), nil
	})
	ctx := context.Background()
	if _, err := a.Call(ctx, "b", "size", make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	_, err := a.Call(ctx, "b", "size", make([]byte, transport.MaxMessage+1))
	var re *transport.RemoteError
	if !errors.As(err, &re) || re.Status != 400 || served.Load() != 1 {
		t.Errorf("request over MaxMessage: %v (served %d); want the server's 400, handler not run", err, served.Load())
	}
	_, err = a.Call(ctx, "b", "size", make([]byte, transport.MaxMessage/2+1))
	if !errors.Is(err, ErrTooLarge) || transport.NotDelivered(err) {
		t.Errorf("reply over MaxMessage: %v; want ErrTooLarge, delivered", err)
	}
	if st := n.Stats()["size"]; st.MaxRequest != transport.MaxMessage+1 || st.MaxReply != transport.MaxMessage+2 {
		t.Errorf("stats %+v; want the largest request %d and reply %d", st, transport.MaxMessage+1, transport.MaxMessage+2)
	}
}

func TestOnDeliverSeesRequests(t *testing.T) {
	n, eps := cluster(t, 1, 2)
	var seen []string
	n.OnDeliver(func(from, to, method string, req []byte) {
		seen = append(seen, fmt.Sprintf("%s>%s:%s:%s", from, to, method, req))
		req[0] = 'H' // a copy: the caller's bytes stay
	})
	n.Isolate("n3")
	got, err := call(eps[0], "n2", "echo")
	if err != nil || string(got) != "n2:n1:Hi" {
		t.Fatalf("echo = %q, %v; want the hook's change to reach the handler", got, err)
	}
	_, _ = call(eps[0], "n3", "echo") // blocked: not delivered
	n.OnDeliver(nil)
	_, _ = call(eps[0], "n2", "echo")
	if fmt.Sprint(seen) != "[n1>n2:echo:hi]" {
		t.Errorf("hook saw %v; want one delivery", seen)
	}
}
