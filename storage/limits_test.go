package storage

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/versioning"
)

func openLimited(t *testing.T, id string, l Limits) *Store {
	t.Helper()
	s, err := Open("db", Options{NodeID: id, Fsync: FsyncNever, FS: vfs.NewMem(), CacheSize: 1 << 20, MemTableSize: 1 << 20, Limits: l})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// raw returns the stored bytes of key in partition 0 (nil if absent).
func raw(t *testing.T, s *Store, key string) []byte {
	t.Helper()
	b, _, err := s.GetRaw(0, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDefaultLimits(t *testing.T) {
	s := openLimited(t, "n1", Limits{})
	if got, want := s.Limits(), (Limits{MaxSiblings: 100, WarnSiblings: 25, MaxRecordBytes: 16 << 20}); got != want {
		t.Fatalf("limits %+v, want %+v", got, want)
	}
	if got := openLimited(t, "n2", Limits{MaxSiblings: 10}).Limits().WarnSiblings; got != 10 {
		t.Errorf("default warning threshold under a bound of 10: %d, want 10", got)
	}
	if err := (Limits{MaxSiblings: 10, WarnSiblings: 11}).Validate(); err == nil {
		t.Error("a warning threshold above the bound was accepted")
	}
	if err := (Limits{MaxSiblings: -1, WarnSiblings: 1000, MaxRecordBytes: -1}).Validate(); err != nil {
		t.Errorf("no bounds: %v", err)
	}
}

// TestBlindWritesStopAtMaxSiblings: blind writes add siblings up to the
// bound; the next is refused with the counts, stores nothing and issues no
// dot; a write with the read's context replaces them all.
func TestBlindWritesStopAtMaxSiblings(t *testing.T) {
	s := openLimited(t, "n1", Limits{MaxSiblings: 5, WarnSiblings: 3})
	key := []byte("k")
	var last versioning.Dot
	for i := range 5 {
		_, dot, err := s.Write(0, key, nil, value(fmt.Sprint(i)))
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		last = dot
	}
	before := raw(t, s, "k")
	for range 3 {
		_, _, err := s.Write(0, key, nil, value("over"))
		var le *LimitError
		if !errors.As(err, &le) || !errors.Is(err, ErrTooManySiblings) {
			t.Fatalf("write beyond the bound: %v, want a LimitError for siblings", err)
		}
		if le.Siblings != 5 || le.Would != 6 || le.Max != 5 {
			t.Fatalf("refusal %+v, want 5 siblings held, 6 would be left, bound 5", le)
		}
		if !strings.Contains(le.Error(), "write back with its context") {
			t.Errorf("refusal does not say how to resolve: %q", le.Error())
		}
	}
	if !bytes.Equal(raw(t, s, "k"), before) {
		t.Fatal("a refused write changed the record")
	}
	// A write whose context covers some siblings but leaves too many is
	// refused as well.
	st, _, _ := s.Get(0, key)
	partial := versioning.VersionVector(nil).AddDot(st.Siblings[0].Dot)
	if _, _, err := s.Write(0, key, partial, value("replaces one")); err != nil {
		t.Fatalf("a write replacing one of five siblings (leaving five): %v", err)
	}
	if _, _, err := s.Write(0, key, nil, value("over")); !errors.Is(err, ErrTooManySiblings) {
		t.Fatalf("blind write at the bound again: %v", err)
	}
	st, _, _ = s.Get(0, key)
	_, dot, err := s.Write(0, key, st.Context, value("resolved"))
	if err != nil {
		t.Fatalf("write with the read's context: %v", err)
	}
	// Refused writes issued no dot: the resolving write's counter follows
	// the last two accepted writes' directly.
	if dot.Counter != last.Counter+2 {
		t.Errorf("resolving write got counter %d, want %d (refused writes must not use counters)", dot.Counter, last.Counter+2)
	}
	if st, _, _ = s.Get(0, key); len(st.Siblings) != 1 || string(st.Siblings[0].Value) != "resolved" {
		t.Fatalf("after the resolving write: %v", values(st))
	}
	c := s.LimitCounts()
	// Writes that left ≥ 3 siblings: the 3rd, 4th and 5th blind writes and
	// the partial one (5).
	if c.RefusedSiblings != 4 || c.SiblingWarnings != 4 || c.RefusedBytes != 0 || c.OverSiblings != 0 {
		t.Errorf("counts %+v, want 4 refused, 4 warnings", c)
	}
}

// TestRecordBytesBound: a write that would leave a record above
// MaxRecordBytes is refused, stores nothing and issues no dot; replacing
// the siblings with a value that fits is allowed.
func TestRecordBytesBound(t *testing.T) {
	s := openLimited(t, "n1", Limits{MaxRecordBytes: 1000})
	key := []byte("big")
	v := strings.Repeat("x", 400)
	var last versioning.Dot
	for i := range 2 {
		_, dot, err := s.Write(0, key, nil, value(v))
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		last = dot
	}
	before := raw(t, s, "big")
	_, _, err := s.Write(0, key, nil, value(v))
	var le *LimitError
	if !errors.As(err, &le) || !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("third 400-byte sibling: %v, want a LimitError for bytes", err)
	}
	if le.Siblings != 2 || le.Would <= 1000 || le.Max != 1000 {
		t.Fatalf("refusal %+v, want 2 siblings held, more than 1000 bytes, bound 1000", le)
	}
	if !bytes.Equal(raw(t, s, "big"), before) {
		t.Fatal("a refused write changed the record")
	}
	if _, _, err := s.Write(0, []byte("other"), nil, value(strings.Repeat("y", 1001))); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("a single value above the bound: %v", err)
	}
	if got := raw(t, s, "other"); got != nil {
		t.Fatal("a refused write of a new key stored it")
	}
	st, _, _ := s.Get(0, key)
	_, dot, err := s.Write(0, key, st.Context, value(v))
	if err != nil {
		t.Fatalf("write with the read's context: %v", err)
	}
	if dot.Counter != last.Counter+1 {
		t.Errorf("counter %d after refusals, want %d", dot.Counter, last.Counter+1)
	}
	if c := s.LimitCounts(); c.RefusedBytes != 2 || c.OverBytes != 0 {
		t.Errorf("counts %+v, want 2 refused for bytes", c)
	}
}

// TestMergeBeyondLimitsIsKept: replica states are merged whole whatever
// the bounds (refusing would drop acknowledged writes) and counted; client
// writes to such a record must still resolve it.
func TestMergeBeyondLimitsIsKept(t *testing.T) {
	src := openLimited(t, "a", Limits{MaxSiblings: -1, MaxRecordBytes: -1})
	key := []byte("k")
	for i := range 8 {
		if _, _, err := src.Write(0, key, nil, value(fmt.Sprint(strings.Repeat("v", 100), i))); err != nil {
			t.Fatal(err)
		}
	}
	remote, _, _ := src.Get(0, key)

	dst := openLimited(t, "b", Limits{MaxSiblings: 4, MaxRecordBytes: 500})
	merged, err := dst.Merge(0, key, remote)
	if err != nil {
		t.Fatalf("merge beyond the bounds: %v", err)
	}
	if len(merged.Siblings) != 8 {
		t.Fatalf("merge kept %d siblings, want 8", len(merged.Siblings))
	}
	if st, _, _ := dst.Get(0, key); !st.Equal(remote) {
		t.Fatal("the stored record is not the merged state")
	}
	if c := dst.LimitCounts(); c.OverSiblings != 1 || c.OverBytes != 1 || c.SiblingWarnings != 1 {
		t.Errorf("counts %+v, want one merge over each bound and one warning", c)
	}
	// Merging the same state again changes nothing and counts nothing.
	if _, err := dst.Merge(0, key, remote); err != nil {
		t.Fatal(err)
	}
	if c := dst.LimitCounts(); c.OverSiblings != 1 {
		t.Errorf("an idempotent merge was counted: %+v", c)
	}
	if _, _, err := dst.Write(0, key, nil, value("blind")); !errors.Is(err, ErrTooManySiblings) {
		t.Fatalf("blind write to an over-bound record: %v", err)
	}
	if _, _, err := dst.Write(0, key, remote.Context, value("resolved")); err != nil {
		t.Fatalf("resolving write to an over-bound record: %v", err)
	}
	// Hints are merged whole too.
	if _, err := dst.PutHint("c", 0, key, remote); err != nil {
		t.Fatalf("hint beyond the bounds: %v", err)
	}
}

// TestConcurrentBlindWritesStopAtTheBound: the bound is checked in the
// same read-modify-write as the write, so concurrent blind writes leave
// exactly the bound, never more.
func TestConcurrentBlindWritesStopAtTheBound(t *testing.T) {
	s := openLimited(t, "n1", Limits{})
	const writers, each = 8, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				_, _, err := s.Write(0, []byte("hot"), nil, value(fmt.Sprintf("%d-%d", w, i)))
				mu.Lock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, ErrTooManySiblings):
					refused++
				default:
					t.Error(err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st, _, err := s.Get(0, []byte("hot"))
	if err != nil {
		t.Fatal(err)
	}
	if ok != DefaultMaxSiblings || refused != writers*each-DefaultMaxSiblings || len(st.Siblings) != DefaultMaxSiblings {
		t.Fatalf("%d accepted, %d refused, %d stored; want %d, %d, %d", ok, refused, len(st.Siblings),
			DefaultMaxSiblings, writers*each-DefaultMaxSiblings, DefaultMaxSiblings)
	}
}
