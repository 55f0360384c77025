//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupAgainstBinary: `dotkv backup --out DIR` takes a backup of a
// serving node; a node started (same ID) on DIR serves the data it held,
// under a new incarnation (it says so); --out names a non-empty
// directory: refused.
func TestBackupAgainstBinary(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	s := startServer(t, "n1", t.TempDir())
	s.put(t, "kept", "text/plain", "", []byte("before the backup"))
	out := filepath.Join(t.TempDir(), "backup")
	if r := runDotkv(t, "", "backup", "--addr", s.base, "--out", out); r.code != 0 || !strings.Contains(r.stdout, "backup of") {
		t.Fatalf("backup: %v", r)
	}
	if _, err := os.Stat(out + ".partial"); !os.IsNotExist(err) {
		t.Errorf("a .partial directory is left: %v", err)
	}
	s.put(t, "later", "text/plain", "", []byte("after the backup"))
	if r := runDotkv(t, "", "backup", "--addr", s.base, "--out", out); r.code != exitError || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("backup into a non-empty directory: %v", r)
	}
	s.stop()

	restored := startServer(t, "n1", out)
	wantSingle(t, restored.get(t, "kept"), "text/plain", "before the backup")
	if r := restored.get(t, "later"); r.Status != 404 {
		t.Errorf("a write made after the backup: %v", r)
	}
	if !strings.Contains(restored.stderr.String(), "restored from a backup: taking a new incarnation") {
		t.Errorf("the restored node does not say it took a new incarnation:\n%s", restored.stderr)
	}
	restored.stop()
}
