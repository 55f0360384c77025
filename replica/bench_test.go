package replica

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// The write and read paths of one replica: a single-node coordinator
// (NewLocal with the default config, as `dotkv server` without --gossip
// runs) over a real pebble store in memory (vfs.NewMem), driven by one
// client. The storage benchmarks measure the store alone, on disk.

const benchKeys = 1000

// benchCoordinator returns a single-node coordinator over an in-memory
// store, closed when b ends.
func benchCoordinator(b *testing.B) *Coordinator {
	b.Helper()
	store, err := storage.Open("data", storage.Options{NodeID: "solo", FS: vfs.NewMem(), Fsync: storage.FsyncNever})
	if err != nil {
		b.Fatal(err)
	}
	c, err := NewLocal("solo", store, DefaultConfig())
	if err != nil {
		_ = store.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		if err := store.Close(); err != nil {
			b.Error(err)
		}
	})
	return c
}

func benchKey(i int) []byte { return fmt.Appendf(nil, "key-%d", i) }

func benchValue() versioning.Sibling {
	return versioning.Sibling{Value: make([]byte, 1024), ContentType: "application/octet-stream"}
}

// seedBench writes benchKeys keys and returns their contexts.
func seedBench(b *testing.B, c *Coordinator) []versioning.VersionVector {
	b.Helper()
	ctxs := make([]versioning.VersionVector, benchKeys)
	for i := range ctxs {
		vc, err := c.Put(context.Background(), benchKey(i), nil, benchValue(), WriteOptions{})
		if err != nil {
			b.Fatal(err)
		}
		ctxs[i] = vc
	}
	return ctxs
}

// BenchmarkLocalPut writes 1 KiB values: to fresh keys without a context
// (new), and to existing keys with the context of their last write
// (overwrite, the read-modify-write a client does; no siblings pile up).
func BenchmarkLocalPut(b *testing.B) {
	b.Run("new", func(b *testing.B) {
		c := benchCoordinator(b)
		sib := benchValue()
		ctx := context.Background()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := c.Put(ctx, benchKey(i), nil, sib, WriteOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("overwrite", func(b *testing.B) {
		c := benchCoordinator(b)
		ctxs := seedBench(b, c)
		sib := benchValue()
		ctx := context.Background()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := i % benchKeys
			vc, err := c.Put(ctx, benchKey(k), ctxs[k], sib, WriteOptions{})
			if err != nil {
				b.Fatal(err)
			}
			ctxs[k] = vc
		}
		// Each write replaced the key's value: still one sibling.
		if st, err := c.Get(ctx, benchKey(0), ReadOptions{}); err != nil || len(st.Siblings) != 1 {
			b.Fatalf("key-0 after overwrites: %d siblings, %v", len(st.Siblings), err)
		}
	})
}

// BenchmarkLocalGet reads existing keys holding one 1 KiB value.
func BenchmarkLocalGet(b *testing.B) {
	c := benchCoordinator(b)
	seedBench(b, c)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		st, err := c.Get(ctx, benchKey(i%benchKeys), ReadOptions{})
		if err != nil || len(st.Siblings) != 1 {
			b.Fatalf("get: %d siblings, %v", len(st.Siblings), err)
		}
	}
}
