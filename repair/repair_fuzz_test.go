package repair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/internal/fuzzcheck"
	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// Fuzz targets of the repair RPCs, on real pebble stores (vfs.NewMem):
// the handlers a peer's messages reach (merge_states, which hint
// delivery, cleanup and anti-entropy push with, and the five anti-entropy
// queries), and the anti-entropy client reading a peer's replies. No
// input may panic; a message that does not decode is refused and changes
// nothing stored; the queries never change anything; and what decodes
// re-encodes to what it was decoded from.

const fuzzQ = 16

// fuzzRepairNode is a store whose observer feeds its Merkle trees and
// tombstone index, with an engine on it (its Peer is set per target).
type fuzzRepairNode struct {
	store *storage.Store
	trees *Trees
	eng   *Engine
	ring  *ring.Ring
}

func newFuzzRepairNode(tb testing.TB, id string, peer Peer) *fuzzRepairNode {
	tb.Helper()
	r, err := ring.New([]string{"a", "b"}, fuzzQ, 2)
	if err != nil {
		tb.Fatal(err)
	}
	n := &fuzzRepairNode{trees: NewTrees(), ring: r}
	tombs := NewTombstones()
	n.store, err = storage.Open("db", storage.Options{NodeID: id, FS: vfs.NewMem(), Fsync: storage.FsyncNever,
		CacheSize: 1 << 20, MemTableSize: 1 << 20,
		Observer: func(p uint32, key, old, cur []byte) {
			n.trees.Observe(p, key, old, cur)
			tombs.Observe(p, key, old, cur)
		}})
	if err != nil {
		tb.Fatal(err)
	}
	n.eng = NewEngine(EngineConfig{
		Self: id, Store: n.store, Trees: n.trees, Tombs: tombs, Peer: peer,
		View:       func() *ring.View { return ring.Stable(r, 1) },
		Dead:       func(string) bool { return false },
		KeysPerSec: 1 << 30,
	})
	return n
}

// fill stores records of the given keys, written by actor.
func (n *fuzzRepairNode) fill(tb testing.TB, actor string, keys ...string) {
	tb.Helper()
	for i, key := range keys {
		if _, err := n.store.Merge(n.ring.PartitionOf([]byte(key)), []byte(key), valueState(actor, uint64(i+1), []byte(key+"@"+actor), 1)); err != nil {
			tb.Fatal(err)
		}
	}
}

// recordDump is every record of a store by "partition key", stored bytes.
type recordDump = fuzzcheck.Dump

func recName(p uint32, key []byte) string { return fmt.Sprintf("%d %q", p, key) }

func dumpRecords(tb testing.TB, s *storage.Store) recordDump {
	tb.Helper()
	d := recordDump{}
	if err := s.ScanRecords(func(p uint32, key, raw []byte) error {
		d[recName(p, key)] = bytes.Clone(raw)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return d
}

// Selectors of FuzzRepairHandlers.
const (
	fuzzMergeStates = iota
	fuzzRoots
	fuzzMids
	fuzzLeaves
	fuzzKeys
	fuzzGet
	fuzzRepairHandlers
)

var fuzzRepairKeys = []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}

func FuzzRepairHandlers(f *testing.F) {
	r, err := ring.New([]string{"a", "b"}, fuzzQ, 2)
	if err != nil {
		f.Fatal(err)
	}
	one := valueState("b.1", 7, []byte("v"), 1)
	both := versioning.Sync(one, valueState("c.1", 1, []byte("w"), 2))
	gone := update(f, one, "b.1", 8, nil, 3)
	var hints []storage.Hint
	for i, key := range []string{"a", "b", "zz", ""} {
		st := []versioning.State{one, both, gone, {}}[i]
		hints = append(hints, storage.Hint{Partition: r.PartitionOf([]byte(key)), Key: []byte(key), State: st})
	}
	for i := range hints {
		msg, err := encodeBatch(hints[i:])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(fuzzMergeStates), msg)
	}
	dup, _ := encodeBatch([]storage.Hint{hints[0], hints[0], {Partition: hints[0].Partition, Key: hints[0].Key, State: both}})
	f.Add(byte(fuzzMergeStates), dup)
	f.Add(byte(fuzzMergeStates), []byte(wire.Writer(nil).Uvarint(1<<40)))
	f.Add(byte(fuzzMergeStates), []byte(wire.Writer(nil).Uvarint(1).U32(1).Bytes([]byte("k")).Bytes([]byte{1, 0xff})))
	f.Add(byte(fuzzMergeStates), dup[:len(dup)-1])
	parts := wire.Writer(nil).Uvarint(3).U32(0).U32(5).U32(fuzzQ - 1)
	for _, sel := range []byte{fuzzRoots, fuzzMids} {
		f.Add(sel, []byte(parts))
		f.Add(sel, []byte(wire.Writer(nil).Uvarint(1).U32(1<<31)))
		f.Add(sel, []byte(wire.Writer(nil).Uvarint(1<<40)))
	}
	f.Add(byte(fuzzLeaves), []byte(wire.Writer(nil).Uvarint(2).U32(0).Uvarint(3).U32(5).Uvarint(midCount-1)))
	f.Add(byte(fuzzLeaves), []byte(wire.Writer(nil).Uvarint(1).U32(0).Uvarint(midCount)))
	f.Add(byte(fuzzKeys), []byte(wire.Writer(nil).Uvarint(2).U32(r.PartitionOf([]byte("a"))).Uvarint(uint64(storage.Bucket([]byte("a")))).U32(5).Uvarint(leafCount-1)))
	f.Add(byte(fuzzKeys), []byte(wire.Writer(nil).Uvarint(1).U32(0).Uvarint(leafCount)))
	get := wire.Writer(nil).Uvarint(uint64(len(fuzzRepairKeys) + 1))
	for _, k := range append(slices.Clone(fuzzRepairKeys), "nope") {
		get = get.U32(r.PartitionOf([]byte(k))).String(k)
	}
	f.Add(byte(fuzzGet), []byte(get))
	f.Add(byte(fuzzGet), []byte(wire.Writer(nil).Uvarint(1).U32(0).Uvarint(1<<40)))

	n := newFuzzRepairNode(f, "a", nil)
	n.fill(f, "a.1", fuzzRepairKeys...)
	f.Cleanup(func() { _ = n.store.Close() })
	var before recordDump
	f.Fuzz(func(t *testing.T, sel byte, msg []byte) {
		if before == nil || len(before) > 200 {
			if before != nil {
				_ = n.store.Close()
				n = newFuzzRepairNode(t, "a", nil)
				n.fill(t, "a.1", fuzzRepairKeys...)
			}
			before = dumpRecords(t, n.store)
		}
		ctx := context.Background()
		sel %= fuzzRepairHandlers
		var (
			resp []byte
			herr error
		)
		switch sel {
		case fuzzMergeStates:
			resp, herr = HandleMergeStates(n.store, n.ring.PartitionOf)(ctx, "b", bytes.Clone(msg))
		case fuzzRoots:
			resp, herr = n.eng.handleRoots(ctx, "b", bytes.Clone(msg))
		case fuzzMids:
			resp, herr = n.eng.handleMids(ctx, "b", bytes.Clone(msg))
		case fuzzLeaves:
			resp, herr = n.eng.handleLeaves(ctx, "b", bytes.Clone(msg))
		case fuzzKeys:
			resp, herr = n.eng.handleKeys(ctx, "b", bytes.Clone(msg))
		case fuzzGet:
			resp, herr = n.eng.handleGet(ctx, "b", bytes.Clone(msg))
		}
		after := dumpRecords(t, n.store)
		diff := before.Changed(after)
		defer func() { before = after }()

		if sel != fuzzMergeStates {
			if len(diff) > 0 {
				t.Fatalf("query %d changed %v", sel, diff)
			}
			if herr != nil {
				if !errors.Is(herr, wire.ErrMalformed) {
					t.Fatalf("query %d: unexpected error %v", sel, herr)
				}
				return
			}
			checkQueryReply(t, n, sel, msg, resp)
			return
		}

		// merge_states: decodeBatch is the decoder; check it against an
		// independent reading of the layout, then the handler's effect.
		fuzzcheck.Allocs(t, "decodeBatch", len(msg), func() { _, _ = decodeBatch(msg) })
		hs, derr := decodeBatch(msg)
		if derr != nil {
			if !errors.Is(derr, wire.ErrMalformed) {
				t.Fatalf("decodeBatch: error %v does not wrap wire.ErrMalformed", derr)
			}
			if herr == nil || len(diff) > 0 {
				t.Fatalf("a malformed batch (%v) was accepted (%v) or changed %v", derr, herr, diff)
			}
			return
		}
		enc, err := encodeBatch(hs)
		if err != nil {
			t.Fatalf("a decoded batch does not re-encode: %v", err)
		}
		if len(enc) > len(msg) {
			t.Fatalf("batch %x re-encodes longer: %x", msg, enc)
		}
		hs2, err := decodeBatch(enc)
		if err != nil || len(hs2) != len(hs) {
			t.Fatalf("re-encoded batch decodes as %d hints, %v; want %d", len(hs2), err, len(hs))
		}
		want := map[string]versioning.State{}
		for i, h := range hs {
			if hs2[i].Partition != h.Partition || !bytes.Equal(hs2[i].Key, h.Key) || !hs2[i].State.Equal(h.State) {
				t.Fatalf("hint %d round trip: %+v, want %+v", i, hs2[i], h)
			}
			name := recName(h.Partition, h.Key)
			cur, ok := want[name]
			if !ok {
				cur = before.State(t, name)
			}
			want[name] = versioning.Sync(cur, h.State)
		}
		if resp != nil {
			t.Fatalf("merge_states answered %x", resp)
		}
		for _, name := range diff {
			if _, ok := want[name]; !ok {
				t.Fatalf("merge_states of %d hints changed %s, which none names", len(hs), name)
			}
		}
		if herr != nil {
			return // a well-formed batch whose merge failed may be merged in part
		}
		for name, st := range want {
			if got := after.State(t, name); !got.Equal(st) {
				t.Fatalf("merge_states: %s holds %+v, want %+v", name, got, st)
			}
		}
		// TODO(issue 12): a batch naming a partition outside the ring
		// (here p >= fuzzQ) is accepted and stored, and the cleaner then
		// panics on it (ring.(*Ring).row); once merge_states refuses such
		// partitions, assert it here.
	})
}

// checkQueryReply reads a query's reply as the anti-entropy client does
// and checks it against the node's own trees and records.
func checkQueryReply(t *testing.T, n *fuzzRepairNode, sel byte, msg, resp []byte) {
	t.Helper()
	req := wire.NewReader(msg)
	rep := wire.NewReader(resp)
	switch sel {
	case fuzzRoots, fuzzMids:
		ps := make([]uint32, req.Count(4))
		for i := range ps {
			ps[i] = req.U32()
		}
		if err := req.Done(); err != nil {
			t.Fatalf("query %d accepted a malformed request %x", sel, msg)
		}
		for _, p := range ps {
			want := []uint64{n.trees.Root(p)}
			if sel == fuzzMids {
				m := n.trees.Mids(p)
				want = m[:]
			}
			for _, h := range want {
				if got := rep.U64(); got != h {
					t.Fatalf("query %d of partition %d: hash %x, want %x", sel, p, got, h)
				}
			}
		}
	case fuzzLeaves:
		for range req.Count(5) {
			p, mid := req.U32(), req.Uvarint()
			for _, h := range n.trees.Leaves(p, int(mid)) {
				if got := rep.U64(); got != h {
					t.Fatalf("leaves of %d/%d: hash %x, want %x", p, mid, got, h)
				}
			}
		}
	case fuzzKeys:
		for range req.Count(5) {
			p, bucket := req.U32(), req.Uvarint()
			var want []string
			if err := n.store.ScanBucket(p, uint16(bucket), func(key, raw []byte) error {
				want = append(want, fmt.Sprintf("%q %x", key, keyHash(key, raw)))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			var got []string
			for range rep.Count(9) {
				k := rep.Bytes()
				got = append(got, fmt.Sprintf("%q %x", k, rep.U64()))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("keys of %d/%d: %v, want %v", p, bucket, got, want)
			}
		}
	case fuzzGet:
		for range req.Count(5) {
			p, key := req.U32(), req.Bytes()
			if rep.Len() == 0 {
				break // a prefix of the keys asked
			}
			raw, _, err := n.store.GetRaw(p, key)
			if err != nil {
				t.Fatal(err)
			}
			if got := rep.Bytes(); !bytes.Equal(got, raw) {
				t.Fatalf("get of %d %q: %x, want %x", p, key, got, raw)
			}
		}
	}
	if err := req.Done(); err != nil {
		t.Fatalf("query %d accepted a malformed request %x", sel, msg)
	}
	if err := rep.Done(); err != nil {
		t.Fatalf("query %d: reply %x does not read back: %v", sel, resp, err)
	}
}

// scriptPeer answers an anti-entropy exchange from a script: each call
// but merge_states takes the next length-prefixed reply; when the script
// runs out, calls fail as a cut link does. Pushes (merge_states) are
// checked to decode and recorded.
type scriptPeer struct {
	t      *testing.T
	script *wire.Reader
	asked  map[string]bool // keys named in aae_get requests
	pushed []storage.Hint
}

var errScriptEnd = errors.New("script: no more replies")

func (s *scriptPeer) Call(_ context.Context, _, method string, req []byte) ([]byte, error) {
	switch method {
	case MethodMergeStates:
		hs, err := decodeBatch(req)
		if err != nil {
			s.t.Fatalf("the exchange pushed a batch that does not decode: %v", err)
		}
		s.pushed = append(s.pushed, hs...)
		return nil, nil
	case methodGet:
		r := wire.NewReader(req)
		for range r.Count(5) {
			p, k := r.U32(), r.Bytes()
			s.asked[recName(p, k)] = true
		}
		if err := r.Done(); err != nil {
			s.t.Fatalf("the exchange sent a malformed aae_get: %v", err)
		}
	}
	if s.script.Len() == 0 {
		return nil, errScriptEnd
	}
	resp := s.script.Bytes()
	if resp == nil { // the script's length prefix is malformed: it ends here
		return nil, errScriptEnd
	}
	return bytes.Clone(resp), nil
}

// recordingPeer answers with another node's real handlers and records
// the replies as a script.
type recordingPeer struct {
	to     *fuzzRepairNode
	script wire.Writer
}

func (p *recordingPeer) Call(ctx context.Context, _, method string, req []byte) ([]byte, error) {
	var h func(context.Context, string, []byte) ([]byte, error)
	switch method {
	case methodRoots:
		h = p.to.eng.handleRoots
	case methodMids:
		h = p.to.eng.handleMids
	case methodLeaves:
		h = p.to.eng.handleLeaves
	case methodKeys:
		h = p.to.eng.handleKeys
	case methodGet:
		h = p.to.eng.handleGet
	case MethodMergeStates:
		return HandleMergeStates(p.to.store, p.to.ring.PartitionOf)(ctx, "a", req)
	}
	resp, err := h(ctx, "a", req)
	if err == nil {
		p.script = p.script.Bytes(resp)
	}
	return resp, err
}

// FuzzAAEExchange runs node a's side of an anti-entropy exchange of
// every partition against a peer whose replies are the fuzzer's (a
// script of length-prefixed replies, one per call). Whatever the peer
// answers, the exchange must not panic or loop, may only add to a's
// records (every record after is a Sync successor of the one before:
// nothing a held is lost), may only write keys it asked the peer for or
// and must push only batches that decode.
func FuzzAAEExchange(f *testing.F) {
	// Seeds: the replies of real exchanges with a peer holding other
	// versions of some keys, keys a lacks, and tombstones.
	for i, keys := range [][]string{fuzzRepairKeys[:3], fuzzRepairKeys, {"x", "y"}} {
		a := newFuzzRepairNode(f, "a", nil)
		a.fill(f, "a.1", fuzzRepairKeys[:5]...)
		b := newFuzzRepairNode(f, "b", nil)
		b.fill(f, "b.1", keys...)
		if i == 2 {
			if _, err := b.store.Merge(b.ring.PartitionOf([]byte("a")), []byte("a"), update(f, valueState("a.1", 1, []byte("a@a.1"), 1), "b.1", 9, nil, 2)); err != nil {
				f.Fatal(err)
			}
		}
		rec := &recordingPeer{to: b}
		a.eng.cfg.Peer = rec
		if _, err := a.eng.ExchangePartitions(context.Background(), "b", allPartitions()); err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(rec.script))
		f.Add([]byte(rec.script[:len(rec.script)/2]))
		_ = a.store.Close()
		_ = b.store.Close()
	}
	f.Add([]byte(wire.Writer(nil).Bytes(bytes.Repeat([]byte{0xff}, 8*fuzzQ))))
	f.Add([]byte(wire.Writer(nil).Uvarint(1 << 40)))

	n := newFuzzRepairNode(f, "a", nil)
	n.fill(f, "a.1", fuzzRepairKeys[:5]...)
	f.Cleanup(func() { _ = n.store.Close() })
	var before recordDump
	f.Fuzz(func(t *testing.T, script []byte) {
		if before == nil || len(before) > 200 {
			if before != nil {
				_ = n.store.Close()
				n = newFuzzRepairNode(t, "a", nil)
				n.fill(t, "a.1", fuzzRepairKeys[:5]...)
			}
			before = dumpRecords(t, n.store)
		}
		peer := &scriptPeer{t: t, script: wire.NewReader(script), asked: map[string]bool{}}
		n.eng.cfg.Peer = peer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = n.eng.ExchangePartitions(ctx, "b", allPartitions())
		if ctx.Err() != nil {
			t.Fatalf("the exchange ran for 10 s")
		}
		after := dumpRecords(t, n.store)
		defer func() { before = after }()
		for _, name := range before.Changed(after) {
			old, cur := before.State(t, name), after.State(t, name)
			if _, still := after[name]; !still {
				t.Fatalf("the exchange deleted %s", name)
			}
			if !peer.asked[name] {
				t.Fatalf("the exchange wrote %s, which it never asked the peer for", name)
			}
			if !versioning.Sync(old, cur).Equal(cur) {
				t.Fatalf("the exchange lost part of %s: %+v became %+v", name, old, cur)
			}
		}
	})
}

func allPartitions() []uint32 {
	ps := make([]uint32, fuzzQ)
	for i := range ps {
		ps[i] = uint32(i)
	}
	return ps
}
