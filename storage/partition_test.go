package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// scanAll pages through partition p with the given limits and returns the
// keys in order and the number of batches.
func scanPages(t *testing.T, s *Store, p uint32, maxKeys, maxBytes int) (keys []string, batches int) {
	t.Helper()
	var cur []byte
	for {
		n := 0
		next, done, err := s.ScanPartition(p, cur, maxKeys, maxBytes, func(key, raw []byte) error {
			keys = append(keys, string(key))
			n++
			if len(raw) == 0 {
				return errors.New("empty raw value")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ScanPartition(%d, %q): %v", p, cur, err)
		}
		batches++
		if maxKeys > 0 && n > maxKeys {
			t.Fatalf("batch of %d records, limit %d", n, maxKeys)
		}
		if done {
			return keys, batches
		}
		if n == 0 {
			t.Fatal("batch passed no record but is not done")
		}
		cur = next
	}
}

func TestScanPartitionPagesInStoredOrder(t *testing.T) {
	s := openMem(t, vfs.NewMem(), "n1", FsyncNever)
	defer s.Close()
	for p := uint32(4); p <= 6; p++ {
		for i := range 100 {
			if _, _, err := s.Write(p, fmt.Appendf(nil, "k%03d", i), nil, value("v")); err != nil {
				t.Fatal(err)
			}
		}
	}
	var want []string
	if err := s.ScanRecords(func(p uint32, key, _ []byte) error {
		if p == 5 {
			want = append(want, string(key))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(want) != 100 {
		t.Fatalf("partition 5 holds %d records, want 100", len(want))
	}
	for _, lim := range []struct{ keys, bytes int }{{0, 0}, {1, 0}, {7, 0}, {100, 0}, {0, 1}, {1000, 200}} {
		got, batches := scanPages(t, s, 5, lim.keys, lim.bytes)
		if !slices.Equal(got, want) {
			t.Fatalf("limits %+v: got %d keys %v, want %v", lim, len(got), got, want)
		}
		if lim.keys == 7 && batches != 15 { // 14 full batches and one of 2
			t.Fatalf("limit 7: %d batches, want 15", batches)
		}
	}

	// The byte limit stops once it is reached, after the record that
	// reached it.
	raw, _, _ := s.GetRaw(5, []byte(want[0]))
	n := 0
	_, done, err := s.ScanPartition(5, nil, 0, 2*len(raw)+1, func(_, _ []byte) error { n++; return nil })
	if err != nil || done || n != 3 {
		t.Fatalf("byte limit: %d records, done %v, err %v; want 3 records, not done", n, done, err)
	}

	// An empty partition is done at once with a nil cursor.
	next, done, err := s.ScanPartition(9, nil, 10, 0, func(_, _ []byte) error { return errors.New("called") })
	if err != nil || !done || next != nil {
		t.Fatalf("empty partition: %q %v %v", next, done, err)
	}
}

func TestScanPartitionSeesRecordsWrittenAfterCursor(t *testing.T) {
	s := openMem(t, vfs.NewMem(), "n1", FsyncNever)
	defer s.Close()
	for i := range 10 {
		if _, _, err := s.Write(1, fmt.Appendf(nil, "a%d", i), nil, value("v")); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	next, done, err := s.ScanPartition(1, nil, 5, 0, func(key, _ []byte) error { seen = append(seen, string(key)); return nil })
	if err != nil || done {
		t.Fatal(done, err)
	}
	// A record stored past the cursor is seen by the next batch; the
	// cursor stays usable although the data changed.
	var added string
	for i := 0; added == ""; i++ {
		k := fmt.Appendf(nil, "b%d", i)
		if bytes.Compare(recordKey(1, k), next) > 0 {
			added = string(k)
			if _, _, err := s.Write(1, k, nil, value("v")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, done, err = s.ScanPartition(1, next, 0, 0, func(key, _ []byte) error { seen = append(seen, string(key)); return nil }); err != nil || !done {
		t.Fatal(done, err)
	}
	if len(seen) != 11 || !slices.Contains(seen, added) {
		t.Fatalf("seen %v: want the 10 records and %s", seen, added)
	}
}

func TestScanPartitionErrors(t *testing.T) {
	s := openMem(t, vfs.NewMem(), "n1", FsyncNever)
	if _, _, err := s.Write(2, []byte("k"), nil, value("v")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if _, _, err := s.ScanPartition(2, nil, 0, 0, func(_, _ []byte) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: got %v", err)
	}
	if _, _, err := s.ScanPartition(2, recordKey(3, []byte("k")), 0, 0, func(_, _ []byte) error { return nil }); err == nil {
		t.Fatal("a cursor of another partition was accepted")
	}
	s.Close()
	if _, _, err := s.ScanPartition(2, nil, 0, 0, func(_, _ []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed store: got %v", err)
	}
	if _, err := s.Partitions(); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed store: got %v", err)
	}
}

func TestPartitionsListsNonEmptyOnes(t *testing.T) {
	s := openMem(t, vfs.NewMem(), "n1", FsyncNever)
	defer s.Close()
	if got, err := s.Partitions(); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v %v", got, err)
	}
	want := []uint32{0, 3, 4, 255, 1 << 16, math.MaxUint32}
	for _, p := range slices.Backward(want) {
		for i := range 3 {
			if _, _, err := s.Write(p, fmt.Appendf(nil, "k%d", i), nil, value("v")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Hints and metadata are not records.
	if err := s.SetMeta("x", []byte("y")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Partitions()
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Partitions() = %v, %v; want %v", got, err, want)
	}
	// Deleting a partition's last record drops it from the list.
	for i := range 3 {
		k := fmt.Appendf(nil, "k%d", i)
		raw, _, _ := s.GetRaw(3, k)
		if ok, err := s.DeleteIfUnchanged(3, k, raw); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	got, err = s.Partitions()
	if err != nil || !slices.Equal(got, []uint32{0, 4, 255, 1 << 16, math.MaxUint32}) {
		t.Fatalf("after delete: %v, %v", got, err)
	}
}
