package storage

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/dotkv/dotkv/versioning"
)

// BenchmarkPut measures coordinator writes (lock, read, Update, encode,
// pebble Set) of 1 KiB values on a real temp-dir filesystem, from parallel
// writers so that fsync=always can group-commit.
func BenchmarkPut(b *testing.B) {
	for _, mode := range []FsyncMode{FsyncNever, FsyncAlways} {
		b.Run("fsync="+mode.String(), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{NodeID: "bench", Fsync: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			val := versioning.Sibling{Value: make([]byte, 1024), ContentType: "application/octet-stream"}
			var n atomic.Int64
			b.SetParallelism(16)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					// Fresh keys: blind writes to one key would pile up siblings.
					k := fmt.Appendf(nil, "key-%d", n.Add(1))
					if _, _, err := s.Write(uint32(len(k)), k, nil, val); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkGet reads 1 KiB single-sibling records.
func BenchmarkGet(b *testing.B) {
	for _, mode := range []FsyncMode{FsyncNever, FsyncAlways} {
		b.Run("fsync="+mode.String(), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{NodeID: "bench", Fsync: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			val := versioning.Sibling{Value: make([]byte, 1024)}
			const keys = 10000
			for i := range keys {
				if _, _, err := s.Write(0, fmt.Appendf(nil, "key-%d", i), nil, val); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := fmt.Appendf(nil, "key-%d", n.Add(1)%keys)
					if _, found, err := s.Get(0, k); err != nil || !found {
						b.Errorf("get %s: found=%v err=%v", k, found, err)
						return
					}
				}
			})
		})
	}
}
