package handoff

import (
	"testing"
	"time"

	"github.com/dotkv/dotkv/internal/memnet"
)

// BenchmarkTransfer moves one partition of 1 KiB records from a to a
// joining c over memnet, with the default batches and no rate limit,
// into a fresh store each iteration; it reports keys/s and MB/s.
func BenchmarkTransfer(b *testing.B) {
	const records, size = 20_000, 1 << 10
	c := newCluster(b, []string{"a"}, []string{"a", "c"}, 1)
	a := newNode(b, c, "a", nil)
	p := c.receives("c")[0]
	fill(b, c.cur, p, records, size, a.store)
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		// A fresh network and receiver: c starts empty every time.
		c.net = memnet.New(1)
		c.mu.Lock()
		c.received = map[string]map[uint32]bool{}
		c.rebuild()
		c.mu.Unlock()
		src := c.net.Listen("a")
		a.eng.Register(src)
		rc := newNode(b, c, "c", func(cfg *Config) { cfg.Rate = 0; cfg.Confirm = nil })
		b.StartTimer()
		start := time.Now()
		rc.start(b)
		waitFor(b, "the partition received", func() bool {
			for _, q := range c.receivedBy(testChange) {
				if q == p {
					return true
				}
			}
			return false
		})
		elapsed += time.Since(start)
		b.StopTimer()
		rc.stop()
		rc.ep.Close()
		src.Close()
		if n := len(dump(b, rc.store, p)); n != records {
			b.Fatalf("c holds %d records, want %d", n, records)
		}
		_ = rc.store.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(records*b.N)/elapsed.Seconds(), "keys/s")
	b.ReportMetric(float64(records*size*b.N)/elapsed.Seconds()/1e6, "MB/s")
}
