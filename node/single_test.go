package node_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/node"
)

// TestSingleNodeCollectsTombstones: a node without --gossip is a
// one-member cluster and still collects its tombstones after the grace.
func TestSingleNodeCollectsTombstones(t *testing.T) {
	n, err := node.Start(node.Config{ID: "solo", DataDir: "d", FS: vfs.NewMem(), HTTPAddr: "127.0.0.1:0",
		AAEInterval: 50 * time.Millisecond, TombstoneGrace: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	base := "http://" + n.HTTPAddr()
	do := func(method, path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader("v"))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := do(http.MethodPut, "/kv/k"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("put: %s", r.Status)
	}
	if r := do(http.MethodDelete, "/kv/k"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %s", r.Status)
	}
	if r := do(http.MethodGet, "/debug/replica/k"); r.StatusCode != http.StatusOK {
		t.Fatalf("the tombstone is not stored: %s", r.Status)
	}
	deadline := time.Now().Add(waitLimit)
	for do(http.MethodGet, "/debug/replica/k").StatusCode != http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatalf("tombstone of a 200 ms grace not collected after %v", waitLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
