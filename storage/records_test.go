package storage

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/versioning"
)

type change struct {
	p        uint32
	key      string
	old, new []byte
}

func TestObserverSeesEveryChange(t *testing.T) {
	var mu sync.Mutex
	var seen []change
	s, err := Open("db", Options{NodeID: "n1", FS: vfs.NewMem(), CacheSize: 1 << 20, MemTableSize: 1 << 20,
		Observer: func(p uint32, key, old, new []byte) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, change{p, string(key), bytes.Clone(old), bytes.Clone(new)})
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st1, _, _ := s.Write(3, []byte("k"), nil, value("v1"))
	st2, _, _ := s.Write(3, []byte("k"), st1.Context, value("v2"))
	if _, err := s.Merge(3, []byte("k"), st1); err != nil { // nothing new: no write, no event
		t.Fatal(err)
	}
	raw, ok, err := s.GetRaw(3, []byte("k"))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	enc1, _ := st1.MarshalBinary()
	enc2, _ := st2.MarshalBinary()
	if !bytes.Equal(raw, enc2) {
		t.Fatal("GetRaw differs from the encoding of the stored state")
	}
	if deleted, err := s.DeleteIfUnchanged(3, []byte("k"), enc1); err != nil || deleted {
		t.Fatalf("delete with stale bytes: %v %v", deleted, err)
	}
	if deleted, err := s.DeleteIfUnchanged(3, []byte("k"), raw); err != nil || !deleted {
		t.Fatalf("delete with current bytes: %v %v", deleted, err)
	}
	if _, found, _ := s.Get(3, []byte("k")); found {
		t.Fatal("record still there after delete")
	}
	want := []change{{3, "k", nil, enc1}, {3, "k", enc1, enc2}, {3, "k", enc2, nil}}
	if len(seen) != len(want) {
		t.Fatalf("observer saw %d changes, want %d: %+v", len(seen), len(want), seen)
	}
	for i := range want {
		if seen[i].p != want[i].p || seen[i].key != want[i].key || !bytes.Equal(seen[i].old, want[i].old) || !bytes.Equal(seen[i].new, want[i].new) {
			t.Fatalf("change %d = %+v, want %+v", i, seen[i], want[i])
		}
	}
}

func TestScanBucketAndRecords(t *testing.T) {
	s := openMem(t, vfs.NewMem(), "n1", FsyncNever)
	defer s.Close()
	want := map[string]bool{}
	for i := range 3000 {
		k := fmt.Sprintf("key-%d", i)
		p := uint32(i % 3)
		if _, _, err := s.Write(p, []byte(k), nil, value("v")); err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprintf("%d/%s", p, k)] = true
	}
	got := map[string]bool{}
	if err := s.ScanRecords(func(p uint32, key, raw []byte) error {
		if _, err := versioning.DecodeState(raw); err != nil {
			return err
		}
		got[fmt.Sprintf("%d/%s", p, key)] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("ScanRecords saw %d records, want %d", len(got), len(want))
	}
	// Every bucket scan of partition 1 returns exactly that bucket's keys.
	n := 0
	for b := range uint16(Buckets) {
		if err := s.ScanBucket(1, b, func(key, _ []byte) error {
			if Bucket(key) != b || !want["1/"+string(key)] {
				t.Fatalf("bucket %d scan returned %q (bucket %d)", b, key, Bucket(key))
			}
			n++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if n != 1000 {
		t.Fatalf("bucket scans of partition 1 found %d keys, want 1000", n)
	}
}
