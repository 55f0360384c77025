package storage

import (
	"fmt"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestLookupUnderConcurrentWrites: reads of existing keys never miss
// while other keys are written concurrently (flushes included).
func TestLookupUnderConcurrentWrites(t *testing.T) {
	s := openMem(t, vfs.NewMem(), "n1", FsyncNever)
	defer s.Close()
	const keys = 500
	for i := range keys {
		if _, _, err := s.Write(uint32(i%64), fmt.Appendf(nil, "k%d", i), nil, value("v")); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 2 {
		wg.Go(func() {
			for i := range 1500 { // 3 MiB: several flushes of the 1 MiB memtable
				k := fmt.Appendf(nil, "w%d-%d", w, i)
				if _, _, err := s.Write(uint32(i%64), k, nil, value(string(make([]byte, 1024)))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for r := range 2 {
		wg.Go(func() {
			for i := range 4000 {
				j := (i*7919 + r) % keys
				_, ok, err := s.Get(uint32(j%64), fmt.Appendf(nil, "k%d", j))
				if err != nil || !ok {
					errs <- fmt.Errorf("k%d: found %v, err %v", j, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
