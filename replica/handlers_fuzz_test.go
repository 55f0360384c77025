package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/internal/fuzzcheck"
	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/transport"
	"github.com/dotkv/dotkv/versioning"
)

// Fuzz targets of the replica RPC handlers: each message a peer may send
// (read, replicate, hint, put) is handed, as arbitrary bytes, to the real
// handler of a coordinator on a real pebble store (vfs.NewMem). A handler
// must never panic; a message that does not decode must be refused with
// an error and change nothing stored; a message that decodes may change
// exactly what it names (the key's record or hint, merged with Sync) and
// nothing else.

// fuzzNode is node n1 of a four-node ring (Q = 64, N = 2): a primary of
// about half the partitions. Its peers never answer (every call fails as
// a cut link would), so a forwarded put it coordinates leaves hints.
type fuzzNode struct {
	store *storage.Store
	coord *Coordinator
	ring  *ring.Ring
}

const fuzzEpoch = 5

type fuzzCluster struct{ v *ring.View }

func (c fuzzCluster) View() *ring.View  { return c.v }
func (fuzzCluster) Dead(string) bool    { return false }
func (fuzzCluster) Suspect(string) bool { return false }
func (fuzzCluster) Ready() bool         { return true }

type cutPeer struct{}

func (cutPeer) Call(context.Context, string, string, []byte) ([]byte, error) {
	return nil, transport.ErrBlocked
}

func newFuzzNode(tb testing.TB) *fuzzNode {
	tb.Helper()
	r, err := ring.New([]string{"n1", "n2", "n3", "n4"}, 64, 2)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := storage.Open("data", storage.Options{NodeID: "n1", FS: vfs.NewMem(), Fsync: storage.FsyncNever,
		CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := NewCoordinator("n1", s, fuzzCluster{ring.Stable(r, fuzzEpoch)}, cutPeer{}, Config{N: 2, ReadRepairChance: -1})
	if err != nil {
		tb.Fatal(err)
	}
	n := &fuzzNode{store: s, coord: c, ring: r}
	// Records and hints the messages can name.
	for i, key := range fuzzKeys {
		p := r.PartitionOf([]byte(key))
		if _, err := s.Merge(p, []byte(key), fuzzState("n2.x", uint64(i+1), key)); err != nil {
			tb.Fatal(err)
		}
		if _, err := s.PutHint("n3", p, []byte(key), fuzzState("n4.y", uint64(i+1), key+"-hint")); err != nil {
			tb.Fatal(err)
		}
	}
	return n
}

func (n *fuzzNode) close() {
	n.coord.Close()
	_ = n.store.Close()
}

var fuzzKeys = []string{"a", "b", "c", "d", "e", "f", "g", "h"}

// fuzzState is a one-value state written by actor.
func fuzzState(actor string, counter uint64, value string) versioning.State {
	st, err := versioning.State{}.Update(nil, versioning.Sibling{Dot: versioning.Dot{Actor: actor, Counter: counter},
		Value: []byte(value), ContentType: "text/plain", Modified: 1700000000000})
	if err != nil {
		panic(err)
	}
	return st
}

// storeDump is everything a node stores for its peers and clients:
// records ("r" partition key) and hints ("h" target partition key), by
// their stored bytes.
type storeDump = fuzzcheck.Dump

func recordName(p uint32, key []byte) string { return fmt.Sprintf("r %d %q", p, key) }
func hintName(target string, p uint32, key []byte) string {
	return fmt.Sprintf("h %s %d %q", target, p, key)
}

func dumpStore(tb testing.TB, s *storage.Store) storeDump {
	tb.Helper()
	d := storeDump{}
	if err := s.ScanRecords(func(p uint32, key, raw []byte) error {
		d[recordName(p, key)] = bytes.Clone(raw)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	for target := range s.HintCounts() {
		hs, err := s.ScanHints(target, nil, 1<<20)
		if err != nil {
			tb.Fatal(err)
		}
		for _, h := range hs {
			enc, err := h.State.MarshalBinary()
			if err != nil {
				tb.Fatal(err)
			}
			d[hintName(target, h.Partition, h.Key)] = enc
		}
	}
	return d
}

// Handler selectors of FuzzReplicaHandlers.
const (
	fuzzRead = iota
	fuzzReplicate
	fuzzHint
	fuzzPut
	fuzzHandlers
)

func stateBytes(tb testing.TB, st versioning.State) []byte {
	tb.Helper()
	b, err := st.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzReplicaHandlers hands a message (sel picks the handler: read,
// replicate, hint or put) to node n1's handler and checks it against an
// independent decoding of the message's layout and a dump of the store
// taken before and after: see the comment at the top of this file.
func FuzzReplicaHandlers(f *testing.F) {
	seedRing, err := ring.New([]string{"n1", "n2", "n3", "n4"}, 64, 2)
	if err != nil {
		f.Fatal(err)
	}
	st := fuzzState("n2.x", 9, "new")
	two := versioning.Sync(st, fuzzState("n3.z", 1, "other"))
	tomb, err := st.Update(st.Context, versioning.Sibling{Dot: versioning.Dot{Actor: "n3.z", Counter: 2}, Deleted: true})
	if err != nil {
		f.Fatal(err)
	}
	for _, key := range []string{"a", "d", "zz", ""} {
		p := seedRing.PartitionOf([]byte(key))
		k := []byte(key)
		for _, e := range []uint64{0, fuzzEpoch, fuzzEpoch + 1} {
			f.Add(byte(fuzzRead), []byte(wire.Writer(nil).U64(e).U32(p).Bytes(k).Byte(0)))
			f.Add(byte(fuzzRead), []byte(wire.Writer(nil).U64(e).U32(p).Bytes(k).Byte(1)))
		}
		for _, s := range []versioning.State{st, two, tomb, {}} {
			f.Add(byte(fuzzReplicate), []byte(wire.Writer(nil).U64(fuzzEpoch).Uvarint(2).String("n1").String("n2").U32(p).Bytes(k).Bytes(stateBytes(f, s))))
			f.Add(byte(fuzzReplicate), []byte(wire.Writer(nil).U64(fuzzEpoch-1).Uvarint(1).String("n1").U32(p).Bytes(k).Bytes(stateBytes(f, s))))
			f.Add(byte(fuzzHint), []byte(wire.Writer(nil).U64(fuzzEpoch).String("n3").U32(p).Bytes(k).Bytes(stateBytes(f, s))))
			f.Add(byte(fuzzHint), []byte(wire.Writer(nil).U64(fuzzEpoch).String("n1").U32(p).Bytes(k).Bytes(stateBytes(f, s))))
		}
		for _, req := range []putRequest{
			{key: k, sib: versioning.Sibling{Value: []byte("v"), ContentType: "text/plain", Modified: 1}, w: One},
			{key: k, vctx: st.Context, sib: versioning.Sibling{Deleted: true}, w: All, pw: Number(1)},
			{key: k, vctx: versioning.VersionVector{{Actor: "x", Counter: 1 << 40}}, sib: versioning.Sibling{Value: []byte("v")}},
		} {
			f.Add(byte(fuzzPut), req.encode())
		}
	}
	// Malformed: truncated, trailing bytes, huge length prefixes and counts.
	good := wire.Writer(nil).U64(fuzzEpoch).Uvarint(1).String("n1").U32(1).Bytes([]byte("a")).Bytes(stateBytes(f, st))
	f.Add(byte(fuzzReplicate), []byte(good[:len(good)-1]))
	f.Add(byte(fuzzReplicate), append(bytes.Clone(good), 0))
	f.Add(byte(fuzzReplicate), []byte(wire.Writer(nil).U64(0).Uvarint(1<<40)))
	f.Add(byte(fuzzReplicate), []byte(wire.Writer(nil).U64(0).Uvarint(65).String("n1")))
	f.Add(byte(fuzzHint), []byte(wire.Writer(nil).U64(0).Uvarint(1<<62)))
	f.Add(byte(fuzzRead), []byte(wire.Writer(nil).U64(0).U32(0).Uvarint(1<<40)))
	f.Add(byte(fuzzPut), []byte(wire.Writer(nil).Uvarint(1<<40)))
	f.Add(byte(fuzzHint), []byte(wire.Writer(nil).U64(0).String("not a node id!").U32(1).Bytes([]byte("a")).Bytes(stateBytes(f, st))))

	n := newFuzzNode(f)
	f.Cleanup(func() { n.close() })
	// The store between two inputs: nothing else writes to it, so one
	// input's "after" is the next one's "before". Once the inputs have
	// added many entries, a fresh node keeps each dump small.
	var before storeDump
	f.Fuzz(func(t *testing.T, sel byte, msg []byte) {
		ctx := context.Background()
		if before == nil || len(before) > 200 {
			if before != nil {
				n.close()
				n = newFuzzNode(t)
			}
			before = dumpStore(t, n.store)
		}
		var (
			resp []byte
			herr error
		)
		sel %= fuzzHandlers
		switch sel {
		case fuzzRead:
			resp, herr = n.coord.handleRead(ctx, "n2", bytes.Clone(msg))
		case fuzzReplicate:
			resp, herr = n.coord.handleReplicate(ctx, "n2", bytes.Clone(msg))
		case fuzzHint:
			resp, herr = n.coord.handleHint(ctx, "n2", bytes.Clone(msg))
		case fuzzPut:
			resp, herr = n.coord.handlePut(ctx, "n2", bytes.Clone(msg))
		}
		n.coord.wg.Wait() // background replication of a put
		after := dumpStore(t, n.store)
		diff := before.Changed(after)
		defer func() { before = after }()

		// The message as the handler's layout reads it, decoded here
		// independently of the handler.
		var (
			p      uint32
			key    []byte
			remote versioning.State
			target string
			put    putRequest
			decErr error
		)
		r := wire.NewReader(msg)
		switch sel {
		case fuzzRead:
			r.U64()
			p, key = r.U32(), r.Bytes()
			r.Byte()
			decErr = r.Done()
		case fuzzReplicate, fuzzHint:
			r.U64()
			if sel == fuzzReplicate {
				owners := r.Count(1)
				if owners > maxOwners {
					decErr = wire.ErrMalformed
				}
				for range owners {
					_ = r.String()
				}
			} else {
				target = r.String()
			}
			p, key = r.U32(), r.Bytes()
			enc := r.Bytes()
			if err := r.Done(); err != nil {
				decErr = err
			} else if remote, err = versioning.DecodeState(enc); err != nil {
				decErr = err
			}
		case fuzzPut:
			fuzzcheck.Allocs(t, "decodePut", len(msg), func() { _, _ = decodePut(msg, 3) })
			put, decErr = decodePut(msg, n.coord.cfg.N)
			key, p = put.key, n.ring.PartitionOf(put.key)
		}

		if decErr != nil {
			if herr == nil {
				t.Fatalf("handler %d accepted a message that does not decode (%v): %x", sel, decErr, msg)
			}
			if len(diff) > 0 {
				t.Fatalf("handler %d refused a malformed message (%v) but changed %v", sel, herr, diff)
			}
			return
		}
		switch sel {
		case fuzzRead:
			if len(diff) > 0 {
				t.Fatalf("a read changed %v", diff)
			}
			if herr != nil {
				return
			}
			rr := wire.NewReader(resp)
			enc := rr.Bytes()
			if err := rr.Done(); err != nil {
				t.Fatalf("read reply %x: %v", resp, err)
			}
			got, err := versioning.DecodeState(enc)
			if err != nil {
				t.Fatalf("read reply state: %v", err)
			}
			if asPrimary := msg[len(msg)-1] == 0; asPrimary {
				if want := before.State(t, recordName(p, key)); !got.Equal(want) {
					t.Fatalf("read of %d %q answered %+v, store holds %+v", p, key, got, want)
				}
			}
		case fuzzReplicate, fuzzHint:
			if herr != nil {
				if len(diff) > 0 {
					t.Fatalf("handler %d failed (%v) but changed %v", sel, herr, diff)
				}
				return
			}
			if resp != nil {
				t.Fatalf("handler %d answered %x, want an empty ack", sel, resp)
			}
			name := recordName(p, key)
			if sel == fuzzHint && target != "n1" {
				name = hintName(target, p, key)
			}
			if len(diff) > 1 || (len(diff) == 1 && diff[0] != name) {
				t.Fatalf("handler %d of %s changed %v", sel, name, diff)
			}
			want := versioning.Sync(before.State(t, name), remote)
			if got := after.State(t, name); !got.Equal(want) {
				t.Fatalf("handler %d: %s holds %+v, want the merge %+v", sel, name, got, want)
			}
			if (sel == fuzzReplicate || sel == fuzzHint) && int(p) >= n.ring.Partitions() {
				t.Fatalf("handler %d accepted partition %d of %d", sel, p, n.ring.Partitions())
			}
		case fuzzPut:
			if herr != nil {
				t.Fatalf("put of a decodable message failed: %v", herr)
			}
			vctx, rerr := decodePutResult(resp)
			if errors.Is(rerr, wire.ErrMalformed) {
				t.Fatalf("put answered an undecodable result %x: %v", resp, rerr)
			}
			// A put changes only the key: its record, and hints for its
			// other primaries when they do not answer.
			for _, name := range diff {
				if name != recordName(p, key) && !isHintOf(name, p, key) {
					t.Fatalf("put of %d %q changed %s", p, key, name)
				}
			}
			if rerr == nil {
				// Acknowledged: the record holds the value under the dot
				// the answer's context names.
				rec := after.State(t, recordName(p, key))
				found := false
				for _, s := range rec.Siblings {
					if vctx.Covers(s.Dot) && bytes.Equal(s.Value, put.sib.Value) && s.Deleted == put.sib.Deleted &&
						s.ContentType == put.sib.ContentType && s.Modified == put.sib.Modified {
						found = true
					}
				}
				if !found {
					t.Fatalf("put acknowledged with %v but %d %q holds %+v", vctx, p, key, rec)
				}
			}
		}
	})
}

// isHintOf reports whether a dump name is a hint of key in partition p.
func isHintOf(name string, p uint32, key []byte) bool {
	for _, target := range []string{"n2", "n3", "n4"} {
		if name == hintName(target, p, key) {
			return true
		}
	}
	return false
}

// FuzzDecodePutResult decodes arbitrary bytes as a forwarded put's answer
// (what a forwarding node reads from the primary it asked). No input may
// panic, and an answer keeps its outcome through encodePutResult: a
// context re-decodes to the same context, an unavailable error to the
// same counts, and every other outcome to the same kind of error.
func FuzzDecodePutResult(f *testing.F) {
	vc := versioning.VersionVector{{Actor: "n1.x", Counter: 3}}
	for _, err := range []error{nil, &UnavailableError{Op: "write", Kind: "primaries", Acks: 1, Required: 3},
		errNotPrimary, fmt.Errorf("x: %w", versioning.ErrUnissuedDot), errTimeout, errors.New("disk on fire"),
		&LimitError{Err: ErrTooManySiblings, Siblings: 100, Would: 101, Max: 100},
		&LimitError{Err: ErrRecordTooLarge, Siblings: 2, Would: 17 << 20, Max: 16 << 20}} {
		f.Add(encodePutResult(vc, err))
	}
	f.Add([]byte{})
	f.Add([]byte{99})
	f.Add([]byte{putOK})
	f.Add([]byte{putOK, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{putUnavailable, 1})
	f.Add([]byte{putUnavailable, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzcheck.Allocs(t, "decodePutResult", len(data), func() { _, _ = decodePutResult(data) })
		v, err := decodePutResult(data)
		if err != nil && v != nil {
			t.Fatalf("an error (%v) with a context %v", err, v)
		}
		if putOutcome(err) == "malformed" {
			return // a primary never answers that
		}
		v2, err2 := decodePutResult(encodePutResult(v, err))
		if kind, kind2 := putOutcome(err), putOutcome(err2); kind != kind2 {
			t.Fatalf("outcome %s (%v) re-decodes as %s (%v)", kind, err, kind2, err2)
		}
		if !v2.Equal(v) {
			t.Fatalf("context %v re-decodes as %v", v, v2)
		}
		var ua, ua2 *UnavailableError
		if errors.As(err, &ua) && (!errors.As(err2, &ua2) || *ua2 != *ua) {
			t.Fatalf("unavailable %+v re-decodes as %v", *ua, err2)
		}
		var le, le2 *LimitError
		if errors.As(err, &le) && (!errors.As(err2, &le2) || *le2 != *le) {
			t.Fatalf("limit refusal %+v re-decodes as %v", *le, err2)
		}
	})
}

// putOutcome names the outcome a forwarder sees in a put's answer.
func putOutcome(err error) string {
	var ua *UnavailableError
	var le *LimitError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ua):
		return "unavailable"
	case errors.As(err, &le) && errors.Is(le, ErrTooManySiblings):
		return "too many siblings"
	case errors.As(err, &le) && errors.Is(le, ErrRecordTooLarge):
		return "too large"
	case errors.Is(err, errNotPrimary):
		return "not primary"
	case errors.Is(err, errTimeout):
		return "timeout"
	case errors.Is(err, versioning.ErrUnissuedDot), errors.Is(err, versioning.ErrEncodingLimit), errors.Is(err, ErrBadContext):
		return "bad context"
	case errors.Is(err, versioning.ErrMalformed), errors.Is(err, wire.ErrMalformed):
		return "malformed"
	}
	return "failed"
}
