package storage

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dotkv/dotkv/versioning"
)

// openBench opens a store in a fresh temp directory.
func openBench(b *testing.B, mode FsyncMode, memTable uint64) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{NodeID: "bench", Fsync: mode, MemTableSize: memTable})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// openSeeded opens a store in a fresh temp directory after seed has
// written to it without syncing each write (a synced seed of thousands of
// keys would take seconds): the seed is synced once, at the Close before
// the store reopens with mode.
func openSeeded(b *testing.B, mode FsyncMode, seed func(s *Store)) *Store {
	b.Helper()
	dir := b.TempDir()
	s, err := Open(dir, Options{NodeID: "bench", Fsync: FsyncNever})
	if err != nil {
		b.Fatal(err)
	}
	seed(s)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	if s, err = Open(dir, Options{NodeID: "bench", Fsync: mode}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkPut measures coordinator writes (lock, read, Update, encode,
// pebble Set) of 1 KiB values on a real temp-dir filesystem, from parallel
// writers so that fsync=always can group-commit.
func BenchmarkPut(b *testing.B) {
	for _, mode := range []FsyncMode{FsyncNever, FsyncAlways} {
		b.Run("fsync="+mode.String(), func(b *testing.B) {
			s := openBench(b, mode, 0)
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

// BenchmarkPutMemTable compares memtable sizes under fsync=never writes of
// 1 KiB values to fresh keys: the workload whose flushes and compactions
// the memtable size trades against memory. The values are random (the
// zeros of the other benchmarks compress away, and with them most of the
// flush and compaction work). The timed part ends once the memtable is
// flushed and no compaction runs, so a larger memtable does not win by
// leaving its work undone. cpu-ns/op is the process's CPU time (writers,
// flushes and compactions) per write; write-amp is pebble's bytes written
// to sstables and the WAL per byte written to the WAL. Run it long enough
// for many flushes, e.g. -benchtime=500000x.
func BenchmarkPutMemTable(b *testing.B) {
	for _, mib := range []uint64{16, 32, 64} {
		b.Run(fmt.Sprintf("memtable=%dMiB", mib), func(b *testing.B) {
			s := openBench(b, FsyncNever, mib<<20)
			value := randomValues()
			var n atomic.Int64
			b.SetParallelism(16)
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					k := fmt.Appendf(nil, "key-%d", i)
					val := versioning.Sibling{Value: value(i), ContentType: "application/octet-stream"}
					if _, _, err := s.Write(uint32(len(k)), k, nil, val); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := s.db.Flush(); err != nil {
				b.Fatal(err)
			}
			for s.db.Metrics().Compact.NumInProgress > 0 {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			m := s.db.Metrics()
			total := m.Total()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(total.WriteAmp(), "write-amp")
			b.ReportMetric(float64(m.Flush.Count), "flushes")
			b.ReportMetric(float64(m.Compact.Count), "compactions")
		})
	}
}

// randomValues returns value(i): 1 KiB of random bytes, from a pool large
// enough that the values of one sstable block do not repeat each other.
func randomValues() func(i int64) []byte {
	pool := make([]byte, 16<<20)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(pool)
	return func(i int64) []byte {
		off := (uint64(i) * 0x9e3779b97f4a7c15 >> 32) % uint64(len(pool)-1024)
		return pool[off : off+1024]
	}
}

// cpuTime returns the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMerge measures what a replica does on a replicate RPC: merge a
// state written by another node (one 1 KiB sibling) into its own copy —
// of a key it does not hold yet (new), of a key whose older version it
// holds (overwrite: the incoming state supersedes it), and of a key whose
// incoming state it already holds (unchanged: read and compare, no
// write). Parallel, like replicate RPCs from several coordinators.
func BenchmarkMerge(b *testing.B) {
	const keys = 1000
	val := make([]byte, 1024)
	// remote is the state of a key that a peer wrote with counter c.
	remote := func(c uint64) versioning.State {
		st, err := versioning.State{}.Update(nil, versioning.Sibling{
			Dot: versioning.Dot{Actor: "peer.1", Counter: c}, Value: val, ContentType: "application/octet-stream"})
		if err != nil {
			panic(err) // a fresh dot on the zero State
		}
		return st
	}
	key := func(i int64) []byte { return fmt.Appendf(nil, "key-%d", i) }
	for _, mode := range []FsyncMode{FsyncNever, FsyncAlways} {
		for _, kind := range []string{"new", "overwrite", "unchanged"} {
			b.Run("fsync="+mode.String()+"/"+kind, func(b *testing.B) {
				seeded := make([]versioning.State, keys)
				s := openSeeded(b, mode, func(s *Store) {
					if kind == "new" {
						return
					}
					for i := range int64(keys) {
						seeded[i] = remote(uint64(i + 1))
						if _, err := s.Merge(0, key(i), seeded[i]); err != nil {
							b.Fatal(err)
						}
					}
				})
				var n atomic.Int64
				b.SetParallelism(16)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1)
						var k []byte
						var st versioning.State
						switch kind {
						case "new":
							k, st = key(i), remote(uint64(i))
						case "overwrite":
							// The peer's counter only grows, so each state supersedes
							// the key's last one.
							k, st = key(i%keys), remote(uint64(keys+i))
						case "unchanged":
							k, st = key(i%keys), seeded[i%keys]
						}
						if _, err := s.Merge(0, k, st); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkGet reads 1 KiB single-sibling records.
func BenchmarkGet(b *testing.B) {
	for _, mode := range []FsyncMode{FsyncNever, FsyncAlways} {
		b.Run("fsync="+mode.String(), func(b *testing.B) {
			const keys = 10000
			s := openSeeded(b, mode, func(s *Store) {
				val := versioning.Sibling{Value: make([]byte, 1024)}
				for i := range keys {
					if _, _, err := s.Write(0, fmt.Appendf(nil, "key-%d", i), nil, val); err != nil {
						b.Fatal(err)
					}
				}
			})
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
