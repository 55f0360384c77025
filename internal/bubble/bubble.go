// Package bubble runs tests in a testing/synctest bubble (virtual time),
// working around a bug of the Go 1.26 race detector: a timer that fires
// at once inside a bubble (time.After(0), a Reset to a past deadline) runs
// on the calling thread while the bubble's timer runner may run another
// on a second thread, both under the bubble's one race context, and the
// race runtime crashes (SIGSEGV in __tsan::SlotLock, or "ThreadSanitizer:
// CHECK failed"; golang/go#78156). Under the race detector, Test runs its
// bubble with GOMAXPROCS 1, which leaves one thread running Go code.
// Without the race detector it is synctest.Test.
package bubble

import (
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
)

// pinned counts the bubbles running with GOMAXPROCS pinned to 1 (tests
// of a package may run their bubbles in parallel); saved is the value to
// restore when the last one ends.
var (
	mu     sync.Mutex
	pinned int
	saved  int
)

// Test runs f in a new synctest bubble, as synctest.Test does, with
// GOMAXPROCS 1 for its duration under the race detector.
func Test(t *testing.T, f func(*testing.T)) {
	t.Helper()
	if raceEnabled {
		pin()
		defer unpin()
	}
	synctest.Test(t, f)
}

func pin() {
	mu.Lock()
	defer mu.Unlock()
	if pinned == 0 {
		saved = runtime.GOMAXPROCS(1)
	}
	pinned++
}

func unpin() {
	mu.Lock()
	defer mu.Unlock()
	pinned--
	if pinned == 0 {
		runtime.GOMAXPROCS(saved)
	}
}
