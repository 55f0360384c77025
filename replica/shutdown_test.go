package replica

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/dotkv/dotkv/versioning"
)

// holdDeliveries makes the network hold every call of method to node in
// its handler's goroutine, before the handler runs, until the returned
// release is called; arrived receives one value per held call.
func (c *testCluster) holdDeliveries(method, node string) (arrived <-chan struct{}, release func()) {
	ch := make(chan struct{}, 64)
	gate := make(chan struct{})
	var once sync.Once
	c.net.OnDeliver(func(_, to, m string, _ []byte) {
		if m == method && to == node {
			ch <- struct{}{}
			<-gate
		}
	})
	rel := func() { once.Do(func() { close(gate) }) }
	c.t.Cleanup(rel) // before the cluster's close, which waits for handlers
	return ch, rel
}

func TestClosedCoordinatorRefusesRequests(t *testing.T) {
	c := newTestCluster(t, 3, Config{})
	k := c.key("n1", "n2", "n3")
	co := c.nodes["n1"].coord
	co.Close()
	if _, err := c.put("n1", k, "v", nil, WriteOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("put on a closed coordinator: %v, want ErrClosed", err)
	}
	if _, err := c.get("n1", k, ReadOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("get on a closed coordinator: %v, want ErrClosed", err)
	}
	if _, _, err := co.LocalState(k); !errors.Is(err, ErrClosed) {
		t.Errorf("local state on a closed coordinator: %v, want ErrClosed", err)
	}
	// A forwarded write is answered "not a primary" (nothing applied), so
	// the forwarder may try another primary.
	resp, err := co.handlePut(t.Context(), "n2", putRequest{key: k, sib: versioning.Sibling{Value: []byte("v")}}.encode())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodePutResult(resp); !errors.Is(err, errNotPrimary) {
		t.Errorf("forwarded put to a closed coordinator: %v, want not a primary", err)
	}
	if _, err := co.handleRead(t.Context(), "n2", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("read RPC to a closed coordinator: %v", err)
	}
	if _, err := co.handleReplicate(t.Context(), "n2", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("replicate RPC to a closed coordinator: %v", err)
	}
	if _, err := co.handleHint(t.Context(), "n2", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("hint RPC to a closed coordinator: %v", err)
	}
	if got := c.stored("n1", k); len(got) != 0 {
		t.Errorf("a closed coordinator stored %v", got)
	}
	co.Close() // twice is safe
}

// TestForwardedWriteReachingAClosingPrimaryGoesToTheNext: a forwarded put
// that reaches a primary once its coordinator closed is refused with
// nothing applied, and the forwarder tries the next primary.
func TestForwardedWriteReachingAClosingPrimaryGoesToTheNext(t *testing.T) {
	c := newTestCluster(t, 5, Config{})
	k := c.keyWhere(func(prims, _ []string) bool { return !slices.Contains(prims, "n1") })
	prims, _ := c.prefs(k)
	arrived, release := c.holdDeliveries(methodPut, prims[0])
	type result struct {
		vc  versioning.VersionVector
		err error
	}
	res := make(chan result, 1)
	go func() {
		vc, err := c.put("n1", k, "v", nil, WriteOptions{W: Quorum})
		res <- result{vc, err}
	}()
	<-arrived // the forward is in flight, not yet handled
	c.nodes[prims[0]].coord.Close()
	release()
	r := <-res
	if r.err != nil {
		t.Fatalf("forwarded write: %v", r.err)
	}
	if actor := c.nodes[prims[1]].store.Actor(); r.vc.Get(actor) == 0 {
		t.Errorf("context %v: want the second primary %s to have coordinated", r.vc, prims[1])
	}
	if got := c.stored(prims[0], k); len(got) != 0 {
		t.Errorf("the closed primary stored %v itself", got)
	}
}

// TestShutdownWaitsForReplication: a write answered at w=1 keeps
// replicating; Shutdown returns only once that replication is done, so the
// replica gets the write and nothing runs after Shutdown.
func TestShutdownWaitsForReplication(t *testing.T) {
	c := newTestCluster(t, 3, Config{})
	k := c.key("n1", "n2", "n3")
	arrived, release := c.holdDeliveries(methodReplicate, "n3")
	if _, err := c.put("n1", k, "v", nil, WriteOptions{W: One}); err != nil {
		t.Fatal(err)
	}
	<-arrived // n1's copy to n3 is held in flight
	done := make(chan struct{})
	go func() {
		c.nodes["n1"].coord.Shutdown(context.Background())
		close(done)
	}()
	c.waitFor("n1 to refuse new requests", func() bool {
		_, err := c.get("n1", k, ReadOptions{})
		return errors.Is(err, ErrClosed)
	})
	// Shutdown has begun; the copy cannot finish while held, so neither
	// can Shutdown.
	select {
	case <-done:
		t.Fatal("Shutdown returned while a copy was in flight")
	default:
	}
	release()
	<-done
	if got := c.stored("n3", k); !slices.Equal(got, []string{"v"}) {
		t.Errorf("n3 stores %v after the drained replication, want [v]", got)
	}
	if got := c.hinted("n1", "n3", k); len(got) != 0 {
		t.Errorf("n1 kept a hint %v for a copy that was delivered", got)
	}
}

// TestShutdownPastItsBoundCancelsReplication: once Shutdown's context is
// done, replication still in flight is cancelled and its copies become
// hints, kept before Shutdown returns.
func TestShutdownPastItsBoundCancelsReplication(t *testing.T) {
	c := newTestCluster(t, 3, Config{})
	k := c.key("n1", "n2", "n3")
	arrived, _ := c.holdDeliveries(methodReplicate, "n3")
	if _, err := c.put("n1", k, "v", nil, WriteOptions{W: One}); err != nil {
		t.Fatal(err)
	}
	<-arrived
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.nodes["n1"].coord.Shutdown(ctx)
	if got := c.hinted("n1", "n3", k); !slices.Equal(got, []string{"v"}) {
		t.Errorf("n1 hints %v for n3 after a cancelled copy, want [v]", got)
	}
}
