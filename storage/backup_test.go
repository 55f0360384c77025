package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestBackupRestoresAsANewIncarnation: a backup taken while the store
// serves holds every write made before it and none made after; a store
// opened on it takes a new incarnation (so it can never issue again a dot
// issued after the backup) once, and leaves no checkpoint behind.
func TestBackupRestoresAsANewIncarnation(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, "n1", FsyncAlways)
	for i := range 50 {
		if _, _, err := s.Write(0, []byte(fmt.Sprintf("k%d", i)), nil, value("before")); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	_, after, err := s.Write(0, []byte("later"), nil, value("after"))
	if err != nil {
		t.Fatal(err)
	}
	if names, _ := fs.List("db"); len(names) == 0 {
		t.Fatal("no data directory")
	} else {
		for _, n := range names {
			if len(n) > 7 && n[:7] == "backup-" {
				t.Errorf("checkpoint %s left in the data directory", n)
			}
		}
	}
	oldActor := s.Actor()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	rfs := vfs.NewMem()
	if _, _, err := Restore(bytes.NewReader(buf.Bytes()), rfs, "db"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Restore(bytes.NewReader(buf.Bytes()), rfs, "db"); err == nil {
		t.Fatal("a restore into a directory that is not empty succeeded")
	}
	r := openMem(t, rfs, "n1", FsyncAlways)
	if r.Actor() == oldActor {
		t.Fatalf("restored store kept the actor %s", oldActor)
	}
	for i := range 50 {
		st, found, err := r.Get(0, []byte(fmt.Sprintf("k%d", i)))
		if err != nil || !found || values(st)[0] != "before" {
			t.Fatalf("k%d after restore: %v %v %v", i, values(st), found, err)
		}
	}
	if _, found, _ := r.Get(0, []byte("later")); found {
		t.Fatal("a write made after the backup is in it")
	}
	_, dot, err := r.Write(0, []byte("new"), nil, value("x"))
	if err != nil {
		t.Fatal(err)
	}
	if dot.Actor == after.Actor {
		t.Fatalf("restored node issued dot %v under the actor of a dot issued after the backup (%v)", dot, after)
	}
	if _, err := rfs.Stat(rfs.PathJoin("db", RestoredMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker still there after the open: %v", err)
	}
	actor := r.Actor()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	again := openMem(t, rfs, "n1", FsyncAlways)
	defer again.Close()
	if again.Actor() != actor {
		t.Fatalf("a second open took another incarnation: %s, then %s", actor, again.Actor())
	}
}
