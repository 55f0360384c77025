package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dotkv/dotkv/internal/memnet"
	"github.com/dotkv/dotkv/versioning"
)

func TestPutOnAPrimaryReplicatesToEveryPrimary(t *testing.T) {
	c := newTestCluster(t, 3, Config{})
	k := c.key("n1", "n2", "n3")
	vc, err := c.put("n2", k, "v1", nil, WriteOptions{W: All})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range c.ids {
		if got := c.stored(id, k); !slices.Equal(got, []string{"v1"}) {
			t.Errorf("%s stores %v, want [v1]", id, got)
		}
	}
	if c.calls(methodPut) != 0 {
		t.Errorf("a primary forwarded its own write")
	}
	// The returned context is the new version's: writing with it replaces v1.
	if _, err := c.put("n3", k, "v2", vc, WriteOptions{W: All}); err != nil {
		t.Fatal(err)
	}
	st, err := c.get("n1", k, ReadOptions{R: All})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v2"}) {
		t.Errorf("read %v after a write with the returned context, want [v2]", got)
	}
}

func TestConcurrentWritesBecomeSiblings(t *testing.T) {
	c := newTestCluster(t, 3, Config{})
	k := c.key("n1", "n2", "n3")
	base, err := c.put("n1", k, "v1", nil, WriteOptions{W: All})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct{ via, v string }{{"n1", "a"}, {"n2", "b"}} {
		if _, err := c.put(w.via, k, w.v, base, WriteOptions{W: All}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.get("n3", k, ReadOptions{R: All})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("read %v, want siblings [a b]", got)
	}
}

func TestNonPrimaryForwardsToAPrimary(t *testing.T) {
	c := newTestCluster(t, 5, Config{})
	k := c.keyWhere(func(prims, _ []string) bool { return !slices.Contains(prims, "n1") })
	prims, _ := c.prefs(k)
	vc, err := c.put("n1", k, "v1", nil, WriteOptions{W: All})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.calls(methodPut); got != 1 {
		t.Errorf("%d forwarded puts, want 1", got)
	}
	// The first primary coordinated: the new dot is its actor's.
	if actor := c.nodes[prims[0]].store.Actor(); vc.Get(actor) != 1 {
		t.Errorf("context %v: want a dot of %s's actor %s", vc, prims[0], actor)
	}
	if got := c.stored("n1", k); len(got) != 0 {
		t.Errorf("the forwarding node stored %v", got)
	}
}

func TestForwardSkipsPrimariesThatCannotBeReached(t *testing.T) {
	c := newTestCluster(t, 5, Config{})
	k := c.keyWhere(func(prims, _ []string) bool { return !slices.Contains(prims, "n1") })
	prims, _ := c.prefs(k)
	// The first primary is known dead, the second is cut off without the
	// failure detector knowing (the call fails, certainly undelivered), the
	// third takes the write.
	c.setDead(prims[0])
	c.net.Isolate(prims[0], prims[1])
	vc, err := c.put("n1", k, "v1", nil, WriteOptions{W: One})
	if err != nil {
		t.Fatal(err)
	}
	if actor := c.nodes[prims[2]].store.Actor(); vc.Get(actor) != 1 {
		t.Errorf("context %v: want the third primary %s to have coordinated", vc, prims[2])
	}
	if s := c.net.Stats()[methodPut]; s.Calls != 2 || s.Blocked != 1 || s.Delivered != 1 {
		t.Errorf("put calls %+v: want one blocked try and one delivered", s)
	}
}

func TestForwardPrefersAlivePrimariesOverSuspectOnes(t *testing.T) {
	c := newTestCluster(t, 5, Config{})
	k := c.keyWhere(func(prims, _ []string) bool { return !slices.Contains(prims, "n1") })
	prims, _ := c.prefs(k)
	c.setSuspect(prims[0], prims[1])
	vc, err := c.put("n1", k, "v1", nil, WriteOptions{W: One})
	if err != nil {
		t.Fatal(err)
	}
	if actor := c.nodes[prims[2]].store.Actor(); vc.Get(actor) != 1 {
		t.Errorf("context %v: want the only alive primary %s to have coordinated", vc, prims[2])
	}
}

func TestForwardedWriteOutcomeUnknownIsNotRetried(t *testing.T) {
	c := newTestCluster(t, 5, Config{})
	k := c.keyWhere(func(prims, _ []string) bool { return !slices.Contains(prims, "n1") })
	// Every message is lost: the forward may or may not have been applied,
	// so it must not be sent to another primary.
	c.net.SetFaults(memnet.Faults{Drop: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.nodes["n1"].coord.Put(ctx, k, nil, versioning.Sibling{Value: []byte("v")}, WriteOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if got := c.calls(methodPut); got != 1 {
		t.Errorf("%d forwards, want 1 (outcome unknown: never retried elsewhere)", got)
	}
}

// TestForwardedWriteToAPrimaryThatFailsIsOutcomeUnknown: the primary a
// write was forwarded to fails mid-request (here its handler errs after
// the request arrived; a connection lost after the request left is the
// same to the forwarder): the write may have been applied, so the answer
// is ErrOutcomeUnknown (504 at the API), and it is not forwarded again.
func TestForwardedWriteToAPrimaryThatFailsIsOutcomeUnknown(t *testing.T) {
	c := newTestCluster(t, 5, Config{})
	k := c.keyWhere(func(prims, _ []string) bool { return !slices.Contains(prims, "n1") })
	prims, _ := c.prefs(k)
	for _, p := range prims {
		c.nodes[p].ep.Handle(methodPut, func(context.Context, string, []byte) ([]byte, error) {
			return nil, errors.New("the node failed while it handled the write")
		})
	}
	_, err := c.put("n1", k, "v", nil, WriteOptions{})
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
	}
	if got := c.calls(methodPut); got != 1 {
		t.Errorf("%d forwards, want 1 (outcome unknown: never retried elsewhere)", got)
	}
}

func TestForwardedWriteWithForgedContextIsRefused(t *testing.T) {
	c := newTestCluster(t, 5, Config{})
	k := c.keyWhere(func(prims, _ []string) bool { return !slices.Contains(prims, "n1") })
	prims, _ := c.prefs(k)
	forged := versioning.VersionVector{{Actor: c.nodes[prims[0]].store.Actor(), Counter: 1_000_000}}
	_, err := c.put("n1", k, "v", forged, WriteOptions{})
	if !errors.Is(err, ErrBadContext) || !strings.Contains(err.Error(), versioning.ErrUnissuedDot.Error()) {
		t.Fatalf("err = %v, want ErrBadContext saying %q", err, versioning.ErrUnissuedDot)
	}
	for _, id := range c.ids {
		if got := c.stored(id, k); len(got) != 0 {
			t.Errorf("%s stored %v from a refused write", id, got)
		}
	}
}

func TestNoPrimaryReachableFallbackCoordinates(t *testing.T) {
	c := newTestCluster(t, 5, Config{})
	k := c.keyWhere(func(prims, fbs []string) bool { return !slices.Contains(prims, "n1") })
	prims, fbs := c.prefs(k)
	other := fbs[0]
	if other == "n1" {
		other = fbs[1]
	}
	c.net.Isolate(prims...) // undelivered: the forward falls through
	vc, err := c.put("n1", k, "v1", nil, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// n1 holds the first primary's copy, the other fallback the second's
	// or the third (whichever send failed first took it), and n1 a hint for
	// the remaining one (replication may finish after the answer).
	want1 := []string{"n1>" + prims[0], other + ">" + prims[1], "n1>" + prims[2]}
	want2 := []string{"n1>" + prims[0], "n1>" + prims[1], other + ">" + prims[2]}
	slices.Sort(want1)
	slices.Sort(want2)
	c.waitFor("a hint per primary", func() bool {
		h := c.hintHolders(k)
		return slices.Equal(h, want1) || slices.Equal(h, want2)
	})
	// The fallback actor's dot is in the context; nothing entered any
	// node's own records.
	if len(vc) != 1 || vc[0].Actor == c.nodes["n1"].store.Actor() {
		t.Errorf("context %v: want one entry, of n1's fallback actor", vc)
	}
	for _, id := range c.ids {
		if got := c.stored(id, k); len(got) != 0 {
			t.Errorf("%s stored %v as its own data", id, got)
		}
	}
	// While the primaries stay unreachable, a read finds the write in the
	// fallbacks' hints (n1 reads its own).
	st, err := c.get("n1", k, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("sloppy read = %v, want [v1]", got)
	}
}

func TestNoPrimaryReachableWithoutHintsIsUnavailable(t *testing.T) {
	c := newTestCluster(t, 5, Config{DisableHints: true})
	k := c.keyWhere(func(prims, _ []string) bool { return !slices.Contains(prims, "n1") })
	prims, _ := c.prefs(k)
	c.net.Isolate(prims...)
	_, err := c.put("n1", k, "v1", nil, WriteOptions{})
	var ua *UnavailableError
	if !errors.As(err, &ua) || ua.Acks != 0 || ua.Required != 2 || ua.Written || !strings.Contains(ua.Error(), "nothing was written") {
		t.Fatalf("err = %v, want 0 of 2 unavailable, nothing written", err)
	}
	if h := c.hintHolders(k); len(h) != 0 {
		t.Errorf("hints kept with hints off: %v", h)
	}
}

// TestWriteOutcomes runs one write through the first primary of a key
// under a failure-detector verdict, a network and levels, and checks the
// answer, every node's records and every hint. Nodes are named by role:
// p1..p3 the key's primaries (p1 coordinates), f1, f2 its fallbacks.
func TestWriteOutcomes(t *testing.T) {
	cases := []struct {
		name    string
		dead    []string // what the failure detector says
		cut     []string // isolated on the network
		noHints bool
		w, pw   Level
		err     string   // "" for success
		records []string // nodes holding the value as their own
		hints   []string // holder>target
	}{
		{name: "all alive, w=all", w: All, records: []string{"p1", "p2", "p3"}},
		{name: "known dead primary: first fallback holds its copy", dead: []string{"p3"}, cut: []string{"p3"}, w: All,
			records: []string{"p1", "p2"}, hints: []string{"f1>p3"}},
		{name: "unknown failure: the send fails over to a fallback", cut: []string{"p3"}, w: All,
			records: []string{"p1", "p2"}, hints: []string{"f1>p3"}},
		{name: "pw=all with a dead primary fails before writing", dead: []string{"p3"}, cut: []string{"p3"}, w: Quorum, pw: All,
			err: "write: 2 of 3 required primaries answered"},
		{name: "pw=all, unknown failure: refused after writing, hint kept", cut: []string{"p3"}, pw: All,
			err: "write: 2 of 3 required primaries answered", records: []string{"p1", "p2"}, hints: []string{"f1>p3"}},
		{name: "hints off, dead primary: quorum still met", dead: []string{"p3"}, cut: []string{"p3"}, noHints: true,
			records: []string{"p1", "p2"}},
		{name: "hints off, w=all with an unknown failure", cut: []string{"p3"}, noHints: true, w: All,
			err: "write: 2 of 3 required replicas answered", records: []string{"p1", "p2"}},
		{name: "everyone else cut: coordinator keeps hints", cut: []string{"p2", "p3", "f1", "f2"}, w: One,
			records: []string{"p1"}, hints: []string{"p1>p2", "p1>p3"}},
		{name: "everyone else cut, quorum: unavailable, hints kept", cut: []string{"p2", "p3", "f1", "f2"},
			err: "write: 1 of 2 required replicas answered", records: []string{"p1"}, hints: []string{"p1>p2", "p1>p3"}},
		{name: "two dead primaries, both fallbacks stand in", dead: []string{"p2", "p3"}, cut: []string{"p2", "p3"}, w: All,
			records: []string{"p1"}, hints: []string{"f1>p2", "f2>p3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, 5, Config{DisableHints: tc.noHints})
			k := c.keyWhere(func(prims, _ []string) bool { return prims[0] == "n1" })
			prims, fbs := c.prefs(k)
			role := map[string]string{"p1": prims[0], "p2": prims[1], "p3": prims[2], "f1": fbs[0], "f2": fbs[1]}
			ids := func(roles []string) []string {
				var out []string
				for _, r := range roles {
					holder, target, hint := strings.Cut(r, ">")
					if hint {
						out = append(out, role[holder]+">"+role[target])
					} else {
						out = append(out, role[r])
					}
				}
				slices.Sort(out)
				return out
			}
			c.setDead(ids(tc.dead)...)
			c.net.Isolate(ids(tc.cut)...)
			_, err := c.put("n1", k, "v", nil, WriteOptions{W: tc.w, PW: tc.pw})
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("put: %v", err)
			case tc.err != "":
				var ua *UnavailableError
				if !errors.As(err, &ua) {
					t.Fatalf("put err = %v, want %q", err, tc.err)
				}
				// A write fails as soon as its levels cannot be met, so acks
				// that were still on their way may be missing from the count.
				var acks, required int
				var kind string
				if _, err := fmt.Sscanf(tc.err, "write: %d of %d required %s answered", &acks, &required, &kind); err != nil {
					t.Fatal(err)
				}
				if ua.Kind != kind || ua.Required != required || ua.Acks > acks {
					t.Errorf("put err = %q, want %q (or fewer acks)", ua, tc.err)
				}
				// Written: the write was applied somewhere (outcome
				// unknown), or failed fast with nothing written.
				if written := len(tc.records) > 0; ua.Written != written {
					t.Errorf("put err %q says written=%v; want %v", ua, ua.Written, written)
				}
			}
			// Replication and hints may finish after the answer.
			c.waitFor("records and hints to settle", func() bool {
				var records []string
				for _, id := range c.ids {
					if len(c.stored(id, k)) > 0 {
						records = append(records, id)
					}
				}
				slices.Sort(records)
				return slices.Equal(records, ids(tc.records)) && slices.Equal(c.hintHolders(k), ids(tc.hints))
			})
		})
	}
}

func TestWriteTimeoutLeavesHints(t *testing.T) {
	c := newTestCluster(t, 3, Config{})
	k := c.key("n1", "n2", "n3")
	c.net.SetFaults(memnet.Faults{Drop: 1}) // sent, never answered: outcome unknown
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.nodes["n1"].coord.Put(ctx, k, nil, versioning.Sibling{Value: []byte("v")}, WriteOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	// The write stands on n1, and n1 keeps a hint for each replica that
	// never answered, for hinted handoff to deliver.
	c.waitFor("hints for n2 and n3", func() bool {
		return slices.Equal(c.hintHolders(k), []string{"n1>n2", "n1>n3"})
	})
	if got := c.stored("n1", k); !slices.Equal(got, []string{"v"}) {
		t.Errorf("n1 stores %v, want [v]", got)
	}
}

func TestNotReadyRefusesRequests(t *testing.T) {
	c := newTestCluster(t, 1, Config{})
	nd := c.nodes["n1"]
	coord, err := NewCoordinator("n1", nd.store, view{c: c, ready: false}, nd.ep, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	if _, err := coord.Put(context.Background(), []byte("k"), nil, versioning.Sibling{}, WriteOptions{}); !errors.Is(err, ErrNotReady) {
		t.Errorf("put: %v, want ErrNotReady", err)
	}
	if _, err := coord.Get(context.Background(), []byte("k"), ReadOptions{}); !errors.Is(err, ErrNotReady) {
		t.Errorf("get: %v, want ErrNotReady", err)
	}
	if coord.Ready() {
		t.Error("Ready() = true")
	}
}
