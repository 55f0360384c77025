package handoff

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// TestTransferMovesPartitionsAndMarksReceived: c joins a one-node
// cluster; it pulls each partition it receives from a, ends up with a's
// records of exactly those partitions and reports each for the change.
func TestTransferMovesPartitionsAndMarksReceived(t *testing.T) {
	c := newCluster(t, []string{"a"}, []string{"a", "c"}, 1)
	reg := prometheus.NewRegistry()
	a := newNode(t, c, "a", nil)
	rc := newNode(t, c, "c", func(cfg *Config) { cfg.BatchKeys, cfg.Registerer = 7, reg })
	want := c.receives("c")
	if len(want) == 0 || len(want) == 8 {
		t.Fatalf("c receives partitions %v: want some but not all", want)
	}
	for p := range uint32(8) {
		fill(t, c.cur, p, 40, 100, a.store)
	}
	rc.start(t)
	waitFor(t, "every partition received", func() bool { return slices.Equal(c.receivedBy(testChange), want) })

	for p := range uint32(8) {
		if slices.Contains(want, p) {
			samePartition(t, a.store, rc.store, p)
		} else if got := dump(t, rc.store, p); len(got) != 0 {
			t.Fatalf("c holds %d records of partition %d, which it does not receive", len(got), p)
		}
	}
	waitFor(t, "transfers done", func() bool {
		tr := rc.eng.Transfers()
		return len(tr) == len(want) && !slices.ContainsFunc(tr, func(x Transfer) bool { return x.State != StateDone })
	})
	var keys int64
	for i, tr := range rc.eng.Transfers() {
		if tr.Partition != want[i] || tr.From != "a" || tr.To != "c" || tr.Keys != 40 || tr.Bytes == 0 {
			t.Fatalf("transfer %+v: want partition %d from a to c, 40 keys", tr, want[i])
		}
		keys += tr.Keys
	}
	if got := counter(t, reg, "dotkv_transfer_keys_total"); got != float64(keys) {
		t.Fatalf("dotkv_transfer_keys_total = %v, want %d", got, keys)
	}
	if got := counter(t, reg, "dotkv_transfers_active"); got != 0 {
		t.Fatalf("dotkv_transfers_active = %v after every transfer ended", got)
	}
	if c.View().Moving(want[0]) {
		t.Fatal("the view still moves a received partition")
	}

	// Once the change has ended, its persisted progress is deleted.
	if v, ok, err := rc.store.GetMeta(progressName(testChange, want[0])); err != nil || !ok || string(v) != "d" {
		t.Fatalf("progress of a received partition: %q %v %v, want done", v, ok, err)
	}
	c.endChange()
	waitFor(t, "the ended change's progress to be deleted", func() bool {
		for _, p := range want {
			if _, ok, err := rc.store.GetMeta(progressName(testChange, p)); err != nil || ok {
				return false
			}
		}
		return true
	})
}

// TestConfirmComparesWithEveryReader: a record that only the reader the
// transfer did not pull from holds (a write its source missed) reaches
// the receiver before the partition is reported received.
func TestConfirmComparesWithEveryReader(t *testing.T) {
	c := newCluster(t, []string{"a", "b"}, []string{"a", "b", "c"}, 2)
	nodes := map[string]*node{"a": newNode(t, c, "a", nil), "b": newNode(t, c, "b", nil)}
	rc := newNode(t, c, "c", nil)
	p := c.receives("c")[0]
	srcs := rc.eng.sources(p)
	if len(srcs) != 2 {
		t.Fatalf("partition %d has sources %v, want two readers", p, srcs)
	}
	fill(t, c.cur, p, 50, 64, nodes["a"].store, nodes["b"].store)
	var only []byte // a key of p that only the second reader holds
	for i := 0; only == nil; i++ {
		if k := fmt.Appendf(nil, "only-%d", i); c.cur.PartitionOf(k) == p {
			only = k
		}
	}
	if _, _, err := nodes[srcs[1]].store.Write(p, only, nil, versioning.Sibling{Value: []byte("x"), ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	rc.start(t)
	waitFor(t, "the partition received", func() bool { return slices.Contains(c.receivedBy(testChange), p) })
	if _, ok, err := rc.store.Get(p, only); err != nil || !ok {
		t.Fatalf("c lacks the record only %s held: %v %v", srcs[1], ok, err)
	}
}

// TestTransferResumesFromPersistedCursor: c's engine stops in the middle
// of a transfer; a new engine on the same store resumes from the last
// merged batch, and from the other source since the first one died,
// pulling no batch twice.
func TestTransferResumesFromPersistedCursor(t *testing.T) {
	c := newCluster(t, []string{"a", "b"}, []string{"a", "b", "c"}, 2)
	a, b := newNode(t, c, "a", nil), newNode(t, c, "b", nil)
	p0 := c.receives("c")[0]
	const batchKeys, count = 20, 300
	fill(t, c.cur, p0, count, 64, a.store, b.store)

	cs := &countingStore{}
	var sources sync.Map // node → scans of p0, per run
	scans := func(run int) (n int64) {
		sources.Range(func(k, v any) bool {
			if k.(string)[0]-'0' == byte(run) {
				n += v.(*atomic.Int64).Load()
			}
			return true
		})
		return n
	}
	blocked := make(chan string, 1)
	// wrap counts c's pulls of p0 by source; in run 1 the 6th blocks
	// until the engine stops.
	wrap := func(run int) func(*Config) {
		return func(cfg *Config) {
			if cs.Store == nil {
				cs.Store = cfg.Store.(*countingStore).Store
			}
			cfg.Store, cfg.BatchKeys = cs, batchKeys
			inner := cfg.Peer
			cfg.Peer = peerFunc(func(ctx context.Context, to, method string, req []byte) ([]byte, error) {
				if method == MethodScan && partitionOf(req) == p0 {
					v, _ := sources.LoadOrStore(fmt.Sprint(run, to), new(atomic.Int64))
					if v.(*atomic.Int64).Add(1) == 6 && run == 1 {
						blocked <- to
						<-ctx.Done()
						return nil, ctx.Err()
					}
				}
				return inner.Call(ctx, to, method, req)
			})
		}
	}
	rc := newNode(t, c, "c", func(cfg *Config) {
		cfg.Store = &countingStore{Store: cfg.Store.(*storage.Store)}
		wrap(1)(cfg)
	})
	rc.start(t)
	first := <-blocked
	rc.stop()
	if got := cs.merges.Load(); got != 5*batchKeys {
		t.Fatalf("merged %d records before the stop, want %d", got, 5*batchKeys)
	}
	if prog, ok, err := rc.store.GetMeta(progressName(testChange, p0)); err != nil || !ok || prog[0] != 'c' {
		t.Fatalf("no cursor persisted: %q %v %v", prog, ok, err)
	}
	if slices.Contains(c.receivedBy(testChange), p0) {
		t.Fatal("partition reported before its transfer ended")
	}

	// The first source dies; a new engine on the same store resumes.
	c.setDead(first, true)
	rc.eng = rc.newEngine(t, wrap(2))
	rc.eng.Register(rc.ep)
	rc.start(t)
	waitFor(t, "the partition received", func() bool { return slices.Contains(c.receivedBy(testChange), p0) })
	samePartition(t, a.store, rc.store, p0)
	other := map[string]string{"a": "b", "b": "a"}[first]
	if n := scans(2); n != count/batchKeys-5 {
		t.Fatalf("second run pulled %d batches, want %d", n, count/batchKeys-5)
	}
	if v, ok := sources.Load(fmt.Sprint(2, other)); !ok || v.(*atomic.Int64).Load() != scans(2) {
		t.Fatalf("second run did not pull everything from %s", other)
	}
	if got := cs.merges.Load(); got > count+batchKeys {
		t.Fatalf("merged %d records for %d, more than one batch twice", got, count)
	}
	for _, tr := range rc.eng.Transfers() {
		if tr.Partition == p0 && (tr.From != other || tr.Keys != count-5*batchKeys) {
			t.Fatalf("resumed transfer %+v: want from %s, %d keys", tr, other, count-5*batchKeys)
		}
	}
}

// partitionOf returns the partition a MethodScan request asks for.
func partitionOf(req []byte) uint32 { return wire.NewReader(req).U32() }

func counter(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestBusySourceRefusesThenServes: a source serving its limit of one
// transfer answers busy to a second one, which backs off and completes
// once the first is done.
func TestBusySourceRefusesThenServes(t *testing.T) {
	c := newCluster(t, []string{"a"}, []string{"a", "c"}, 1)
	a := newNode(t, c, "a", func(cfg *Config) { cfg.Limit = 1 })
	parts := c.receives("c")[:2]
	for _, p := range parts {
		fill(t, c.cur, p, 50, 32, a.store)
	}
	var busy atomic.Int64
	sawBusy := make(chan struct{})
	var holding atomic.Bool
	rc := newNode(t, c, "c", func(cfg *Config) {
		cfg.BatchKeys = 10
		inner := cfg.Peer
		cfg.Peer = peerFunc(func(ctx context.Context, to, method string, req []byte) ([]byte, error) {
			resp, err := inner.Call(ctx, to, method, req)
			if err != nil || method != MethodScan {
				return resp, err
			}
			bt, derr := decodeScan(resp)
			if errors.Is(derr, ErrBusy) {
				if busy.Add(1) == 1 {
					close(sawBusy)
				}
			} else if derr == nil && !bt.done && slices.Contains(parts, partitionOf(req)) && holding.CompareAndSwap(false, true) {
				// The first batch served: hold this transfer (and its
				// slot at a) until the other one was refused.
				select {
				case <-sawBusy:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return resp, err
		})
	})
	rc.start(t)
	waitFor(t, "both partitions received", func() bool {
		got := c.receivedBy(testChange)
		return slices.Contains(got, parts[0]) && slices.Contains(got, parts[1])
	})
	if busy.Load() == 0 {
		t.Fatal("the source never answered busy")
	}
	for _, p := range parts {
		samePartition(t, a.store, rc.store, p)
	}
}

// TestLimitZeroPauses: with limit 0 nothing moves, and the transfers say
// paused, until SetLimit lets them run.
func TestLimitZeroPauses(t *testing.T) {
	c := newCluster(t, []string{"a"}, []string{"a", "c"}, 1)
	a := newNode(t, c, "a", nil)
	parts := c.receives("c")
	for _, p := range parts {
		fill(t, c.cur, p, 20, 32, a.store)
	}
	var scans atomic.Int64
	rc := newNode(t, c, "c", func(cfg *Config) {
		cfg.Limit = 0
		inner := cfg.Peer
		cfg.Peer = peerFunc(func(ctx context.Context, to, method string, req []byte) ([]byte, error) {
			if method == MethodScan {
				scans.Add(1)
			}
			return inner.Call(ctx, to, method, req)
		})
	})
	rc.start(t)
	waitFor(t, "transfers paused", func() bool {
		tr := rc.eng.Transfers()
		return len(tr) == len(parts) && !slices.ContainsFunc(tr, func(x Transfer) bool { return x.State != StatePaused })
	})
	plans := rc.eng.plans.Load()
	waitFor(t, "five more planning passes", func() bool { return rc.eng.plans.Load() >= plans+5 })
	if n := scans.Load(); n != 0 {
		t.Fatalf("%d pulls while paused", n)
	}
	for _, p := range parts {
		if got := dump(t, rc.store, p); len(got) != 0 {
			t.Fatalf("partition %d: %d records arrived while paused", p, len(got))
		}
	}
	rc.eng.SetLimit(2)
	waitFor(t, "every partition received", func() bool { return slices.Equal(c.receivedBy(testChange), parts) })
	for _, p := range parts {
		samePartition(t, a.store, rc.store, p)
	}
}

// TestConfirmSyncsWritesDuringTransfer: records a's clients write while c
// pulls — updates of records c already has, deletes and new keys — are on
// c once the transfer is confirmed (an anti-entropy exchange of the
// partition) and reported.
func TestConfirmSyncsWritesDuringTransfer(t *testing.T) {
	c := newCluster(t, []string{"a"}, []string{"a", "c"}, 1)
	a := newNode(t, c, "a", nil)
	p := c.receives("c")[0]
	keys := fill(t, c.cur, p, 200, 64, a.store)
	var once sync.Once
	writes := func() {
		// Every record, including those of the batch c just merged.
		for i, k := range keys {
			st, _, err := a.store.Get(p, []byte(k))
			if err != nil {
				t.Error(err)
				return
			}
			sib := versioning.Sibling{Value: []byte("v2"), ContentType: "text/plain", Deleted: i%3 == 0}
			if _, _, err := a.store.Write(p, []byte(k), st.Context, sib); err != nil {
				t.Error(err)
				return
			}
		}
		for i, added := 0, 0; added < 50; i++ { // 50 new keys
			k := fmt.Appendf(nil, "new-%d", i)
			if c.cur.PartitionOf(k) != p {
				continue
			}
			if _, _, err := a.store.Write(p, k, nil, versioning.Sibling{Value: k, ContentType: "text/plain"}); err != nil {
				t.Error(err)
				return
			}
			added++
		}
	}
	rc := newNode(t, c, "c", func(cfg *Config) {
		cfg.BatchKeys = 25
		inner := cfg.Peer
		cfg.Peer = peerFunc(func(ctx context.Context, to, method string, req []byte) ([]byte, error) {
			resp, err := inner.Call(ctx, to, method, req)
			if method == MethodScan && err == nil && partitionOf(req) == p {
				once.Do(writes) // after the first batch was read at a
			}
			return resp, err
		})
	})
	rc.start(t)
	waitFor(t, "the partition received", func() bool { return slices.Contains(c.receivedBy(testChange), p) })
	samePartition(t, a.store, rc.store, p)
	if n := len(dump(t, rc.store, p)); n != 250 {
		t.Fatalf("c holds %d records, want 250", n)
	}
}

// TestChangeMovedOnStopsTransfers: when the view's change is no longer
// the one a transfer belongs to, the transfer stops and is not reported.
func TestChangeMovedOnStopsTransfers(t *testing.T) {
	c := newCluster(t, []string{"a"}, []string{"a", "c"}, 1)
	a := newNode(t, c, "a", nil)
	p := c.receives("c")[0]
	fill(t, c.cur, p, 20, 32, a.store)
	stuck := make(chan struct{})
	rc := newNode(t, c, "c", func(cfg *Config) {
		inner := cfg.Peer
		cfg.Peer = peerFunc(func(ctx context.Context, to, method string, req []byte) ([]byte, error) {
			if method == MethodScan && partitionOf(req) == p {
				select {
				case stuck <- struct{}{}:
				default:
				}
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return inner.Call(ctx, to, method, req)
		})
	})
	rc.start(t)
	<-stuck
	c.endChange()
	waitFor(t, "transfers dropped", func() bool { return len(rc.eng.Transfers()) == 0 })
	rc.stop()
	if slices.Contains(c.receivedBy(testChange), p) {
		t.Fatal("a stopped transfer was reported")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err == nil {
		t.Fatal("a config without the node's parts validated")
	}
	c := newCluster(t, []string{"a"}, []string{"a"}, 1)
	n := newNode(t, c, "a", nil)
	good := n.eng.cfg
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]func(*Config){
		"limit":    func(c *Config) { c.Limit = -1 },
		"rate":     func(c *Config) { c.Rate = -1 },
		"keys":     func(c *Config) { c.BatchKeys = 0 },
		"bytes":    func(c *Config) { c.BatchBytes = maxBatchBytes + 1 },
		"interval": func(c *Config) { c.Interval = 0 },
		"timeout":  func(c *Config) { c.CallTimeout = 0 },
		"view":     func(c *Config) { c.View = nil },
	} {
		cfg := good
		bad(&cfg)
		if _, err := NewEngine(cfg); err == nil {
			t.Errorf("%s: invalid config accepted", name)
		}
	}
	zero := good
	zero.Limit, zero.Rate = 0, 0
	if err := zero.Validate(); err != nil {
		t.Fatalf("limit 0 (paused) and rate 0 (unlimited): %v", err)
	}
}
