package node_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dotkv/dotkv/internal/kvtest"
)

// TestCloseWithForwardedWritesInFlight closes a primary while writes
// forwarded to it are in flight inside its coordinator: applied there, and
// their copies to the other primaries held by the network until the close
// has begun. More forwarded writes arrive while it closes. The node stops
// accepting, refuses the new ones with nothing applied (the forwarder
// gives them to the next primary), waits for the ones in flight and their
// replication, and only then closes its store. Every write is
// acknowledged and readable afterwards, and (with the package's goleak
// check, and under -race) nothing of the closed node runs on.
func TestCloseWithForwardedWritesInFlight(t *testing.T) {
	simulate(t, closeWithForwardedWritesInFlight)
}

func closeWithForwardedWritesInFlight(t *testing.T) {
	c := kvtest.NewCluster(t, 4, kvtest.Options{})
	const away = 0 // the node clients write through, not a primary of the keys
	// Keys whose first primary (where away forwards) is the same node.
	var keys []string
	closing := -1
	for k := 0; len(keys) < 16; k++ {
		key, prims := keyAwayFrom(t, c, away, fmt.Sprintf("inflight-%d", k))
		if closing == -1 {
			closing = prims[0]
		}
		if prims[0] == closing {
			keys = append(keys, key)
		}
	}
	closingID := c.Nodes[closing].ID
	// The first keys' writes: the closing node's copies to the other
	// primaries are held (two per write), so at w=quorum each write waits
	// inside its coordinator.
	const held = 8
	arrived, gate := make(chan struct{}, 2*len(keys)), make(chan struct{})
	var release sync.Once
	c.Net.OnDeliver(func(from, _, method string, _ []byte) {
		if method == "replicate" && from == closingID {
			arrived <- struct{}{}
			<-gate
		}
	})
	t.Cleanup(func() { release.Do(func() { close(gate) }) })

	status := make([]int, len(keys))
	answered := make(chan int, len(keys))
	var writers sync.WaitGroup
	put := func(i int) {
		writers.Go(func() {
			// A generous timeout: the held writes wait for the close to begin.
			r := c.Put(away, keys[i], "v-"+keys[i], "", "w=quorum&timeout=30s")
			status[i] = r.Status
			if r.Status != http.StatusNoContent {
				t.Errorf("put %s: %d %s", keys[i], r.Status, r.Body)
			}
			answered <- i
		})
	}
	for i := range held {
		put(i)
	}
	for range 2 * held {
		<-arrived
	}
	// Close the primary while those writes are in its coordinator.
	stopped := make(chan struct{})
	go func() {
		c.Stop(closing)
		close(stopped)
	}()
	probe := c.Net.Listen("probe")
	defer probe.Close()
	c.WaitFor(closingID+" to refuse new work", waitLimit, func() bool {
		_, err := probe.Call(context.Background(), closingID, "read", nil)
		return err != nil && strings.Contains(err.Error(), "shutting down")
	})
	select {
	case <-stopped:
		t.Fatal("the node closed with writes in flight")
	default:
	}
	// More forwards while it closes: refused with nothing applied, then
	// coordinated by the next primary.
	for i := held; i < len(keys); i++ {
		put(i)
	}
	// They are answered while the held ones still wait.
	for range len(keys) - held {
		if i := <-answered; i < held {
			t.Fatalf("put %s, held in the closing coordinator, was answered before the hold ended", keys[i])
		}
	}
	select {
	case <-stopped:
		t.Fatal("the node closed with writes in flight")
	default:
	}
	release.Do(func() { close(gate) })
	writers.Wait()
	<-stopped
	c.Net.OnDeliver(nil)
	for i, key := range keys {
		if status[i] != http.StatusNoContent {
			continue // reported above
		}
		if rd := c.Get(away, key, "r=quorum"); !slices.Equal(rd.Values(), []string{"v-" + key}) {
			t.Errorf("read %s with %s stopped: %d %v", key, closingID, rd.Status, rd.Values())
		}
	}
	// The held writes were coordinated by the closed node, the later ones
	// by another primary.
	c.Restart(closing)
	for i, key := range keys {
		rep := c.Replica(closing, key)
		if i < held && !slices.Equal(rep.Values(), []string{"v-" + key}) {
			t.Errorf("%s holds %v of %s after its restart, want the write it coordinated", closingID, rep.Values(), key)
		}
	}
}
