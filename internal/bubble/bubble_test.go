package bubble

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestImmediateTimersUnderRace fires timers due at once from many
// goroutines of a bubble, alongside timers the bubble's clock fires: under
// the race detector of Go 1.26, without pinning, this crashes the test
// binary within 50 bubbles (golang/go#78156).
func TestImmediateTimersUnderRace(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	for range 50 {
		Test(t, func(t *testing.T) {
			if raceEnabled && runtime.GOMAXPROCS(0) != 1 {
				t.Fatalf("GOMAXPROCS %d in a bubble under the race detector, want 1", runtime.GOMAXPROCS(0))
			}
			start := time.Now()
			var wg sync.WaitGroup
			for g := range 16 {
				wg.Go(func() {
					for i := range 300 {
						d := time.Duration((i+g)%3) * time.Microsecond // 0: due at once
						select {
						case <-time.After(d):
						case <-time.After(time.Duration(g) * time.Microsecond):
						}
					}
				})
			}
			wg.Wait()
			if time.Since(start) > time.Millisecond {
				t.Errorf("virtual time advanced %v, want at most 1ms (300 timers of ≤ 2µs each in 16 goroutines)", time.Since(start))
			}
		})
	}
	if after := runtime.GOMAXPROCS(0); after != before {
		t.Errorf("GOMAXPROCS %d after the bubbles, want %d restored", after, before)
	}
}
