package node_test

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/internal/kvtest"
	"github.com/dotkv/dotkv/storage"
)

// TestBackupUnderLoadRestoresWithoutLoss: n3 is backed up (GET
// /admin/backup) while writes go on; after the backup some keys are
// written again and some deleted. n3 is then stopped, its data directory
// replaced by the backup, and restarted: it takes a new incarnation,
// rejoins, and the cluster converges with every acknowledged write
// present and every acknowledged delete still deleted.
func TestBackupUnderLoadRestoresWithoutLoss(t *testing.T) {
	c := kvtest.NewCluster(t, 3, kvtest.Options{})
	const before = 60
	for i := range before {
		if r := c.Put(i%2, fmt.Sprintf("pre-%d", i), "v0", "", "w=all"); r.Status != http.StatusNoContent {
			t.Fatalf("put pre-%d: %d %s", i, r.Status, r.Body)
		}
	}
	// Writes through n1 and n2 while n3 takes its backup.
	var (
		mu    sync.Mutex
		acked = map[string]string{}
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for w := range 2 {
		wg.Go(func() {
			for i := 0; i < 400; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key, val := fmt.Sprintf("load-%d-%d", w, i), fmt.Sprintf("v%d", i)
				if r, err := c.TryPut(w, key, val, "", "w=quorum"); err == nil && r.Status == http.StatusNoContent {
					mu.Lock()
					acked[key] = val
					mu.Unlock()
				}
			}
		})
	}
	backup := c.Do(2, http.MethodGet, "/admin/backup", nil, nil)
	if backup.Status != http.StatusOK || backup.Header.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("GET /admin/backup: %d %s", backup.Status, backup.Header.Get("Content-Type"))
	}
	close(stop)
	wg.Wait()
	// After the backup: overwrite some keys, delete others, all acknowledged by every replica.
	for i := range 20 {
		key := fmt.Sprintf("pre-%d", i)
		rd := c.Get(0, key, "r=all")
		if r := c.Delete(0, key, rd.Context, "w=all"); r.Status != http.StatusNoContent {
			t.Fatalf("delete %s: %d %s", key, r.Status, r.Body)
		}
	}
	for i := 20; i < 40; i++ {
		key := fmt.Sprintf("pre-%d", i)
		rd := c.Get(1, key, "r=all")
		if r := c.Put(1, key, "v1", rd.Context, "w=all"); r.Status != http.StatusNoContent {
			t.Fatalf("put %s: %d %s", key, r.Status, r.Body)
		}
		acked[key] = "v1"
	}
	for i := 40; i < before; i++ {
		acked[fmt.Sprintf("pre-%d", i)] = "v0"
	}
	oldActor := c.Nodes[2].Running().Store().Actor()

	c.Stop(2)
	restored := vfs.NewMem()
	if _, _, err := storage.Restore(bytes.NewReader(backup.Body), restored, "data"); err != nil {
		t.Fatal(err)
	}
	c.RestoreData(2, restored)
	c.Restart(2)
	c.WaitAllAlive()
	if got := c.Nodes[2].Running().Store().Actor(); got == oldActor {
		t.Fatalf("the restored node kept its actor %s", got)
	}
	c.WaitRootsAgree(waitLimit)

	for key, val := range acked {
		for i := range c.Nodes {
			if got := c.Replica(i, key).Values(); !slices.Equal(got, []string{val}) {
				t.Fatalf("%s on n%d after the restore: %v; want [%s]", key, i+1, got, val)
			}
		}
	}
	for i := range 20 {
		key := fmt.Sprintf("pre-%d", i)
		if rd := c.Get(2, key, "r=all"); rd.Status != http.StatusNotFound {
			t.Fatalf("deleted %s came back after the restore: %d %v", key, rd.Status, rd.Values())
		}
	}
}
