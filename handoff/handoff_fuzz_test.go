package handoff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/internal/fuzzcheck"
	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// Fuzz targets of the handoff RPCs: a source's handlers of handoff_scan
// and handoff_empty, given arbitrary requests against a real pebble store
// (vfs.NewMem), and a receiver's decoder of scan replies. No input may
// panic; the handlers never change stored data and answer only what the
// store holds; a reply that decodes re-encodes to what it was decoded
// from.

const fuzzQ = 8

type failPeer struct{}

func (failPeer) Call(context.Context, string, string, []byte) ([]byte, error) {
	return nil, errors.New("no peers in this test")
}

// fuzzSource is node a of a three-node ring (N = 2) during a join of d,
// with records in most partitions, and a handoff engine serving them.
type fuzzSource struct {
	store *storage.Store
	eng   *Engine
	view  *ring.View
}

func newFuzzSource(tb testing.TB) *fuzzSource {
	tb.Helper()
	cur, err := ring.New([]string{"a", "b", "c"}, fuzzQ, 2)
	if err != nil {
		tb.Fatal(err)
	}
	next, err := ring.New([]string{"a", "b", "c", "d"}, fuzzQ, 2)
	if err != nil {
		tb.Fatal(err)
	}
	v := ring.NewView(cur, next, 3, "join/d/1", func(p uint32, _ string) bool { return p%2 == 0 }, nil, nil)
	s, err := storage.Open("db", storage.Options{NodeID: "a", FS: vfs.NewMem(), Fsync: storage.FsyncNever,
		CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range 40 {
		key := fmt.Sprintf("k%02d", i)
		p := cur.PartitionOf([]byte(key))
		if p == 3 {
			continue // an empty partition
		}
		st, err := versioning.State{}.Update(nil, versioning.Sibling{Dot: versioning.Dot{Actor: "b.1", Counter: uint64(i + 1)},
			Value: []byte(key), ContentType: "text/plain", Modified: 1})
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := s.Merge(p, []byte(key), st); err != nil {
			tb.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.Self, cfg.Store, cfg.Peer = "a", s, failPeer{}
	cfg.View = func() *ring.View { return v }
	cfg.Live = func(string) bool { return true }
	cfg.MarkReceived = func(string, uint32) {}
	cfg.Limit = 1 << 20 // every request is admitted
	e, err := NewEngine(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return &fuzzSource{store: s, eng: e, view: v}
}

// records returns every record of the store as "partition key raw".
func records(tb testing.TB, s *storage.Store) []string {
	tb.Helper()
	var out []string
	if err := s.ScanRecords(func(p uint32, key, raw []byte) error {
		out = append(out, fmt.Sprintf("%d %q %x", p, key, raw))
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

// encodeScanReply is the layout handleScan answers with.
func encodeScanReply(b batch) []byte {
	w := wire.Writer(nil).Byte(statusOK).Uvarint(uint64(len(b.records)))
	for _, r := range b.records {
		w = w.Bytes(r.key).Bytes(r.raw)
	}
	w = w.Bytes(b.next)
	if b.done {
		return w.Byte(1)
	}
	return w.Byte(0)
}

// Selectors of FuzzHandoffHandlers.
const (
	fuzzScan = iota
	fuzzEmpty
	fuzzScanReply
	fuzzHandoffKinds
)

// FuzzHandoffHandlers gives arbitrary bytes to a source's handoff_scan
// or handoff_empty handler, or to a receiver's decoder of scan replies.
// The handlers must never change the store; a scan must answer a status
// alone or a reply that decodes, holding exactly the store's records of
// the partition after the cursor, in order; an empty-partitions answer
// must list only partitions asked, that the source reads and holds no
// record of. A scan reply that decodes must re-encode to a reply that
// decodes to the same batch and is never longer.
func FuzzHandoffHandlers(f *testing.F) {
	for p := range uint32(fuzzQ + 1) {
		f.Add(byte(fuzzScan), encodeScan(p, nil, 500, 1<<20))
		f.Add(byte(fuzzScan), encodeScan(p, []byte("k1"), 2, 10))
	}
	f.Add(byte(fuzzScan), encodeScan(0, nil, 0, 0))
	f.Add(byte(fuzzScan), encodeScan(0xffffffff, nil, 1, 1))
	f.Add(byte(fuzzScan), []byte(wire.Writer(nil).U32(1).Uvarint(1<<40)))
	f.Add(byte(fuzzScan), []byte(wire.Writer(nil).U32(1).Bytes(nil).Uvarint(1<<63).Uvarint(1<<63)))
	f.Add(byte(fuzzEmpty), []byte(wire.Writer(nil).Uvarint(4).U32(0).U32(3).U32(7).U32(fuzzQ)))
	f.Add(byte(fuzzEmpty), []byte(wire.Writer(nil).Uvarint(1<<40)))
	f.Add(byte(fuzzEmpty), []byte(wire.Writer(nil).Uvarint(1).U32(3).Byte(0)))
	good := encodeScanReply(batch{records: []record{{[]byte("k"), []byte{1, 0, 0}}, {[]byte(""), nil}}, next: []byte("k"), done: true})
	f.Add(byte(fuzzScanReply), good)
	f.Add(byte(fuzzScanReply), good[:len(good)-1])
	f.Add(byte(fuzzScanReply), []byte{statusBusy})
	f.Add(byte(fuzzScanReply), []byte{statusNotReader})
	f.Add(byte(fuzzScanReply), []byte{statusBusy, 0})
	f.Add(byte(fuzzScanReply), []byte(wire.Writer(nil).Byte(statusOK).Uvarint(1<<40)))

	src := newFuzzSource(f)
	f.Cleanup(func() { _ = src.store.Close() })
	before := records(f, src.store)
	f.Fuzz(func(t *testing.T, sel byte, msg []byte) {
		sel %= fuzzHandoffKinds
		if sel == fuzzScanReply {
			checkScanReply(t, msg)
			return
		}
		var (
			resp []byte
			err  error
		)
		if sel == fuzzScan {
			resp, err = src.eng.handleScan(context.Background(), "d", bytes.Clone(msg))
		} else {
			resp, err = src.eng.handleEmpty(context.Background(), "d", bytes.Clone(msg))
		}
		if after := records(t, src.store); !slices.Equal(after, before) {
			t.Fatalf("handler %d changed the store", sel)
		}
		if err != nil {
			return // a malformed request, or a cursor that is no record of the partition
		}
		r := wire.NewReader(msg)
		if sel == fuzzEmpty {
			asked := make([]uint32, r.Count(4))
			for i := range asked {
				asked[i] = r.U32()
			}
			if r.Done() != nil {
				t.Fatalf("handoff_empty accepted a malformed request %x", msg)
			}
			rr := wire.NewReader(resp)
			for range rr.Count(4) {
				p := rr.U32()
				if !slices.Contains(asked, p) || int(p) >= src.view.Partitions() || !src.view.IsReader(p, "a") {
					t.Fatalf("handoff_empty answered partition %d (asked %v)", p, asked)
				}
				var n int
				if _, _, err := src.store.ScanPartition(p, nil, 1, 1<<20, func(_, _ []byte) error { n++; return nil }); err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					t.Fatalf("handoff_empty answered partition %d, which holds records", p)
				}
			}
			if err := rr.Done(); err != nil {
				t.Fatalf("handoff_empty reply %x: %v", resp, err)
			}
			return
		}
		p, cursor := r.U32(), r.Bytes()
		r.Uvarint()
		r.Uvarint()
		if r.Done() != nil {
			t.Fatalf("handoff_scan accepted a malformed request %x", msg)
		}
		b, err := decodeScan(resp)
		switch {
		case errors.Is(err, ErrNotReader):
			if int(p) < src.view.Partitions() && src.view.IsReader(p, "a") {
				t.Fatalf("handoff_scan of %d: not a reader, but a reads it", p)
			}
			return
		case errors.Is(err, ErrBusy):
			t.Fatalf("handoff_scan of %d: busy with an unbounded limit", p)
		case err != nil:
			t.Fatalf("handoff_scan reply %x does not decode: %v", resp, err)
		}
		var want []string
		if len(cursor) == 0 {
			cursor = nil
		}
		if _, _, err := src.store.ScanPartition(p, cursor, max(len(b.records), 1), 1<<30, func(key, raw []byte) error {
			want = append(want, fmt.Sprintf("%q %x", key, raw))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, rec := range b.records {
			got = append(got, fmt.Sprintf("%q %x", rec.key, rec.raw))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("handoff_scan of %d after %q: %v, want %v", p, cursor, got, want)
		}
		if b.done {
			var more int
			next := b.next
			if len(next) == 0 {
				next = nil // as handleScan reads an empty cursor
			}
			if _, _, err := src.store.ScanPartition(p, next, 1, 1<<30, func(_, _ []byte) error { more++; return nil }); err != nil {
				t.Fatal(err)
			}
			if more > 0 {
				t.Fatalf("handoff_scan of %d said done at %q, but records follow", p, b.next)
			}
		}
	})
}

// checkScanReply decodes msg as a scan reply, as a receiver does.
func checkScanReply(t *testing.T, msg []byte) {
	fuzzcheck.Allocs(t, "decodeScan", len(msg), func() { _, _ = decodeScan(msg) })
	b, err := decodeScan(msg)
	if err != nil {
		if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, ErrBusy) && !errors.Is(err, ErrNotReader) {
			t.Fatalf("decodeScan: unexpected error %v", err)
		}
		if b.records != nil || b.next != nil || b.done || b.bytes != 0 {
			t.Fatalf("decodeScan: error %v with a batch %+v", err, b)
		}
		return
	}
	n := 0
	for _, r := range b.records {
		n += len(r.raw)
	}
	if n != b.bytes {
		t.Fatalf("decodeScan counted %d bytes of records, they hold %d", b.bytes, n)
	}
	enc := encodeScanReply(b)
	if len(enc) > len(msg) {
		t.Fatalf("scan reply %x re-encodes longer: %x", msg, enc)
	}
	b2, err := decodeScan(enc)
	if err != nil {
		t.Fatalf("re-encoded scan reply: %v", err)
	}
	if !bytes.Equal(encodeScanReply(b2), enc) || b2.bytes != b.bytes {
		t.Fatalf("scan reply round trip: %+v, then %+v", b, b2)
	}
}
