package storage

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/versioning"
)

// TestLookupAcrossLevels: records flushed and compacted to the bottom
// level (where lookups use its bloom filters) are found, absent ones are
// not, and a newer version in the memtable shadows the compacted one.
func TestLookupAcrossLevels(t *testing.T) {
	s := openMem(t, vfs.NewMem(), "n1", FsyncNever)
	defer s.Close()
	var ctxs []versioning.VersionVector
	for i := range 200 {
		st, dot, err := s.Write(7, fmt.Appendf(nil, "key-%d", i), nil, versioning.Sibling{Value: []byte("v1")})
		if err != nil {
			t.Fatal(err)
		}
		ctxs = append(ctxs, st.Context.AddDot(dot))
	}
	if err := s.db.Compact(context.Background(), []byte{'r'}, []byte{'s'}, false); err != nil {
		t.Fatal(err)
	}
	if m := s.db.Metrics(); m.Levels[6].TablesCount == 0 {
		t.Fatalf("no table in L6 after a manual compaction: %s", m)
	}
	if _, _, err := s.Write(7, []byte("key-3"), ctxs[3], versioning.Sibling{Value: []byte("v2")}); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		st, ok, err := s.Get(7, fmt.Appendf(nil, "key-%d", i))
		want := "v1"
		if i == 3 {
			want = "v2"
		}
		if err != nil || !ok || len(st.Siblings) != 1 || string(st.Siblings[0].Value) != want {
			t.Fatalf("key-%d: %+v, %v, %v; want one sibling %s", i, st, ok, err, want)
		}
	}
	for _, k := range []string{"key-200", "key-", "key-10x", "kex-1"} {
		if _, ok, err := s.Get(7, []byte(k)); ok || err != nil {
			t.Errorf("absent %q: found %v, err %v", k, ok, err)
		}
	}
	if _, ok, _ := s.Get(8, []byte("key-1")); ok {
		t.Error("key-1 found in another partition")
	}
}
