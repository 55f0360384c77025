package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dotkv/dotkv/client"
	"github.com/dotkv/dotkv/internal/kvtest"
)

// TestKeepsWorkingWhileANodeIsDown is the client's promise: a program
// using it against a 3-node cluster (real nodes on real sockets) keeps
// working, every request answered, while any one node is stopped and
// restarted.
func TestKeepsWorkingWhileANodeIsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	cl := kvtest.NewCluster(t, 3, kvtest.Options{})
	var urls []string
	for _, nd := range cl.Nodes {
		urls = append(urls, nd.URL())
	}
	c := newClient(t, client.Config{Endpoints: urls, Timeout: 5 * time.Second})
	ctx := context.Background()
	answeredBy := map[string]int{}
	seq := 0
	// step reads a key, writes it back with the read's context, and reads
	// the write back: each request must be answered.
	step := func(phase string) {
		t.Helper()
		seq++
		key := fmt.Sprintf("k%d", seq%10)
		value := fmt.Sprintf("%s-%d", phase, seq)
		var vctx string
		obj, err := c.Get(ctx, key)
		var nf *client.NotFoundError
		switch {
		case err == nil:
			vctx = obj.Context
			answeredBy[obj.Endpoint]++
		case errors.As(err, &nf):
			vctx = nf.Context
			answeredBy[nf.Endpoint]++
		default:
			t.Fatalf("%s: get %s: %v", phase, key, err)
		}
		w, err := c.Put(ctx, key, []byte(value), client.Context(vctx))
		if err != nil {
			t.Fatalf("%s: put %s: %v", phase, key, err)
		}
		answeredBy[w.Endpoint]++
		obj, err = c.Get(ctx, key)
		if err != nil {
			t.Fatalf("%s: get %s after the put: %v", phase, key, err)
		}
		answeredBy[obj.Endpoint]++
		if !slices.ContainsFunc(obj.Values(), func(v []byte) bool { return string(v) == value }) {
			t.Fatalf("%s: get %s after putting %s: %q", phase, key, value, obj.Values())
		}
	}

	for range 30 {
		step("healthy")
	}
	for i := range cl.Nodes {
		if answeredBy[cl.Nodes[i].URL()] == 0 {
			t.Errorf("no request answered by %s of a healthy cluster: %v", cl.Nodes[i].ID, answeredBy)
		}
	}

	const down = 1
	downURL := cl.Nodes[down].URL()
	cl.CloseIdleConnections()
	cl.Stop(down)
	clear(answeredBy)
	for range 60 {
		step("stopped")
	}
	if answeredBy[downURL] != 0 {
		t.Fatalf("%s answered while stopped: %v", cl.Nodes[down].ID, answeredBy)
	}

	cl.Restart(down)
	for range 30 {
		step("restarting")
	}
	// The node serves again once it has rejoined; requests reach it.
	cl.WaitFor(cl.Nodes[down].ID+" to serve again", time.Minute, func() bool {
		h, err := c.Health(ctx, client.Via(downURL))
		return err == nil && h.Serving()
	})
	clear(answeredBy)
	cl.WaitFor("a request answered by "+cl.Nodes[down].ID, time.Minute, func() bool {
		step("restarted")
		return answeredBy[downURL] > 0
	})
	if _, err := c.Get(ctx, "k1", client.Via(downURL)); err != nil {
		t.Fatalf("get via the restarted node: %v", err)
	}
}
