package storage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/versioning"
)

func openMem(t *testing.T, fs vfs.FS, id string, mode FsyncMode) *Store {
	t.Helper()
	s, err := Open("db", Options{NodeID: id, Fsync: mode, FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func value(v string) versioning.Sibling {
	return versioning.Sibling{Value: []byte(v), ContentType: "text/plain"}
}

func values(st versioning.State) []string {
	var out []string
	for _, s := range st.Siblings {
		out = append(out, string(s.Value))
	}
	return out
}

func TestWriteReadAndResolve(t *testing.T) {
	s := openMem(t, vfs.NewMem(), "n1", FsyncAlways)
	defer s.Close()
	key := []byte("k")
	if _, found, err := s.Get(3, key); err != nil || found {
		t.Fatalf("Get on empty store: found=%v err=%v", found, err)
	}
	st1, _, err := s.Write(3, key, nil, value("v1"))
	if err != nil {
		t.Fatal(err)
	}
	c1 := st1.Context
	// Two writes with the same context both survive.
	if _, _, err := s.Write(3, key, c1, value("v2")); err != nil {
		t.Fatal(err)
	}
	st, _, err := s.Write(3, key, c1, value("v3"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(values(st)); got != "[v2 v3]" {
		t.Fatalf("after two writes with C1: %s, want [v2 v3]", got)
	}
	got, found, err := s.Get(3, key)
	if err != nil || !found || !got.Equal(st) {
		t.Fatalf("Get = %+v found=%v err=%v, want %+v", got, found, err, st)
	}
	st, _, err = s.Write(3, key, got.Context, value("v4"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(values(st)); got != "[v4]" {
		t.Fatalf("after resolving write: %s, want [v4]", got)
	}
	// Partitions are separate keyspaces.
	if _, found, _ := s.Get(4, key); found {
		t.Fatal("key visible in another partition")
	}
}

func TestReopenKeepsEveryAcknowledgedWrite(t *testing.T) {
	dir := t.TempDir()
	want := map[string]versioning.State{}
	for round := range 3 {
		s, err := Open(dir, Options{NodeID: "n1", Fsync: FsyncNever})
		if err != nil {
			t.Fatal(err)
		}
		for k, st := range want {
			got, found, err := s.Get(0, []byte(k))
			if err != nil || !found || !got.Equal(st) {
				t.Fatalf("round %d: key %s = %+v (found %v, err %v), want %+v", round, k, got, found, err, st)
			}
		}
		for i := range 200 {
			k := fmt.Sprintf("k%d", i%50)
			st, _, err := s.Write(0, []byte(k), want[k].Context, value(fmt.Sprintf("r%d-%d", round, i)))
			if err != nil {
				t.Fatal(err)
			}
			want[k] = st
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNodeIDIsCheckedAgainstDataDirectory(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, "n1", FsyncAlways)
	inc := s.Incarnation()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open("db", Options{NodeID: "n2", FS: fs}); err == nil {
		t.Fatal("opening n1's directory as n2 succeeded")
	}
	if _, err := Open("db2", Options{NodeID: "bad id!", FS: fs}); err == nil {
		t.Fatal("invalid node id accepted")
	}
	s = openMem(t, fs, "n1", FsyncAlways)
	defer s.Close()
	if s.Incarnation() != inc {
		t.Fatalf("clean restart changed incarnation %d -> %d", inc, s.Incarnation())
	}
}

// TestDotsAreNeverReused issues dots across restarts, for keys this node
// has never stored and for keys whose record vanished, and checks that no
// (actor, counter) pair repeats.
func TestDotsAreNeverReused(t *testing.T) {
	fs := vfs.NewMem()
	seen := map[versioning.Dot]bool{}
	issue := func(s *Store, key string) {
		t.Helper()
		_, dot, err := s.Write(1, []byte(key), nil, value(key))
		if err != nil {
			t.Fatal(err)
		}
		if seen[dot] {
			t.Fatalf("dot %v issued twice", dot)
		}
		seen[dot] = true
	}
	for restart := range 4 {
		s := openMem(t, fs, "n1", FsyncAlways)
		for i := range 20 {
			issue(s, fmt.Sprintf("fresh-%d-%d", restart, i)) // no local state
			issue(s, "same")
		}
		// A record that disappeared (e.g. purged) must not restart the counter.
		if err := s.db.Delete(recordKey(1, []byte("same")), nil); err != nil {
			t.Fatal(err)
		}
		issue(s, "same")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCounterLeaseRenewal crosses a lease block boundary and restarts. A
// state holding a high event of this node's actor (as a context forged at
// another coordinator could spread) forces a jump past it.
func TestCounterLeaseRenewal(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, "n1", FsyncAlways)
	high := versioning.State{Context: versioning.VersionVector{{Actor: s.Actor(), Counter: 3 * counterBlock}}}
	if _, err := s.Merge(0, []byte("k"), high); err != nil {
		t.Fatal(err)
	}
	_, dot, err := s.Write(0, []byte("k"), nil, value("v"))
	if err != nil {
		t.Fatal(err)
	}
	if dot.Counter <= 3*counterBlock {
		t.Fatalf("dot %d not above the state's %d", dot.Counter, 3*counterBlock)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openMem(t, fs, "n1", FsyncAlways)
	defer s.Close()
	_, dot2, err := s.Write(0, []byte("other"), nil, value("v"))
	if err != nil {
		t.Fatal(err)
	}
	if dot2.Counter <= dot.Counter {
		t.Fatalf("after restart issued %d, not above %d", dot2.Counter, dot.Counter)
	}
}

// TestForgedContextIsRefused: a client context claiming an event of this
// node's actor that it never issued must not move the counter.
func TestForgedContextIsRefused(t *testing.T) {
	s := openMem(t, vfs.NewMem(), "n1", FsyncAlways)
	defer s.Close()
	_, first, err := s.Write(0, []byte("k"), nil, value("v1"))
	if err != nil {
		t.Fatal(err)
	}
	forged := versioning.VersionVector{{Actor: s.Actor(), Counter: versioning.MaxCounter}}
	if _, _, err := s.Write(0, []byte("k"), forged, value("v2")); !errors.Is(err, versioning.ErrUnissuedDot) {
		t.Fatalf("forged context: err = %v, want ErrUnissuedDot", err)
	}
	st, _, _ := s.Get(0, []byte("k"))
	if got := fmt.Sprint(values(st)); got != "[v1]" {
		t.Fatalf("state after refused write: %s", got)
	}
	_, next, err := s.Write(0, []byte("k"), st.Context, value("v3"))
	if err != nil {
		t.Fatal(err)
	}
	if next.Counter != first.Counter+1 {
		t.Fatalf("counter moved: %d after %d", next.Counter, first.Counter)
	}
}

// TestCrashKeepsSyncedWrites writes with fsync=always, takes a crash image
// holding only synced data plus a random share of unsynced data, and checks
// every acknowledged write and the incarnation survive.
func TestCrashKeepsSyncedWrites(t *testing.T) {
	for seed := range uint64(5) {
		fs := vfs.NewCrashableMem()
		s := openMem(t, fs, "n1", FsyncAlways)
		inc := s.Incarnation()
		want := map[string]versioning.State{}
		for i := range 100 {
			k := fmt.Sprintf("k%d", i%17)
			st, _, err := s.Write(2, []byte(k), want[k].Context, value(fmt.Sprint(i)))
			if err != nil {
				t.Fatal(err)
			}
			want[k] = st
		}
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(seed, 1))})
		_ = s.Close()
		s2 := openMem(t, crashed, "n1", FsyncAlways)
		if s2.Incarnation() != inc {
			t.Errorf("seed %d: fsync=always crash changed the incarnation", seed)
		}
		for k, st := range want {
			got, found, err := s2.Get(2, []byte(k))
			if err != nil || !found || !got.Equal(st) {
				t.Fatalf("seed %d: key %s lost or changed by crash: %+v found=%v err=%v", seed, k, got, found, err)
			}
		}
		_ = s2.Close()
	}
}

// TestUncleanStopWithFsyncNeverTakesNewActor: records written with
// fsync=never may vanish in a crash; the node must not reissue dots under
// the same actor on top of the lost state.
func TestUncleanStopWithFsyncNeverTakesNewActor(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openMem(t, fs, "n1", FsyncNever)
	oldActor := s.Actor()
	var issued []versioning.Dot
	for i := range 50 {
		_, dot, err := s.Write(0, []byte("k"), nil, value(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, dot)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	_ = s.Close()
	s2 := openMem(t, crashed, "n1", FsyncNever)
	defer s2.Close()
	if s2.Actor() == oldActor {
		t.Fatalf("unclean stop with fsync=never kept actor %s", oldActor)
	}
	_, dot, err := s2.Write(0, []byte("k"), nil, value("after"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range issued {
		if d == dot {
			t.Fatalf("dot %v reissued after crash", dot)
		}
	}
	// A clean stop keeps the actor.
	fs2 := vfs.NewMem()
	a := openMem(t, fs2, "n1", FsyncNever)
	actor := a.Actor()
	_ = a.Close()
	b := openMem(t, fs2, "n1", FsyncNever)
	defer b.Close()
	if b.Actor() != actor {
		t.Fatalf("clean stop changed actor %s -> %s", actor, b.Actor())
	}
}

// TestConcurrentWritesToOneKeyAllSurvive checks that read-modify-write is
// atomic: blind writes from many goroutines must all remain as siblings
// (with no sibling bound; TestConcurrentBlindWritesStopAtTheBound has one).
func TestConcurrentWritesToOneKeyAllSurvive(t *testing.T) {
	s, err := Open("db", Options{NodeID: "n1", Fsync: FsyncNever, FS: vfs.NewMem(), CacheSize: 1 << 20, MemTableSize: 1 << 20,
		Limits: Limits{MaxSiblings: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, _, err := s.Write(0, []byte("hot"), nil, value(fmt.Sprintf("%d-%d", w, i))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	st, _, err := s.Get(0, []byte("hot"))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Siblings) != writers*each {
		t.Fatalf("%d siblings survived, want %d", len(st.Siblings), writers*each)
	}
}

func TestMergeSyncsRemoteState(t *testing.T) {
	a := openMem(t, vfs.NewMem(), "a", FsyncNever)
	defer a.Close()
	b := openMem(t, vfs.NewMem(), "b", FsyncNever)
	defer b.Close()
	sa, _, _ := a.Write(0, []byte("k"), nil, value("from-a"))
	sb, _, _ := b.Write(0, []byte("k"), nil, value("from-b"))
	merged, err := a.Merge(0, []byte("k"), sb)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(values(merged)); got != "[from-a from-b]" {
		t.Fatalf("merge = %s", got)
	}
	if !merged.Equal(versioning.Sync(sa, sb)) {
		t.Fatal("Merge differs from versioning.Sync")
	}
	// Merging again is idempotent.
	again, _ := a.Merge(0, []byte("k"), sb)
	if !again.Equal(merged) {
		t.Fatal("second merge changed the state")
	}
}

// TestMergeOfAnEmptyStateStoresNothing: merging an empty state into a key
// this node does not hold leaves no (empty) record behind.
func TestMergeOfAnEmptyStateStoresNothing(t *testing.T) {
	s := openMem(t, vfs.NewMem(), "a", FsyncNever)
	defer s.Close()
	if _, err := s.Merge(0, []byte("k"), versioning.State{}); err != nil {
		t.Fatal(err)
	}
	if raw, found, err := s.GetRaw(0, []byte("k")); err != nil || found {
		t.Fatalf("record after merging an empty state: %x, found %v, %v", raw, found, err)
	}
}

func TestClosedStoreRefusesWork(t *testing.T) {
	s := openMem(t, vfs.NewMem(), "n1", FsyncAlways)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := s.Get(0, []byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, _, err := s.Write(0, []byte("k"), nil, value("v")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestParseFsyncMode(t *testing.T) {
	for in, want := range map[string]FsyncMode{"always": FsyncAlways, "never": FsyncNever} {
		got, err := ParseFsyncMode(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseFsyncMode(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFsyncMode("sometimes"); err == nil {
		t.Error("ParseFsyncMode(sometimes): want error")
	}
}

func TestMetaSurvivesRestart(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, "n1", FsyncNever)
	if _, ok, err := s.GetMeta("ring"); err != nil || ok {
		t.Fatalf("GetMeta on fresh store: ok=%v err=%v", ok, err)
	}
	if err := s.SetMeta("ring", []byte("state-1")); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s = openMem(t, fs, "n1", FsyncNever)
	defer s.Close()
	v, ok, err := s.GetMeta("ring")
	if err != nil || !ok || string(v) != "state-1" {
		t.Fatalf("GetMeta after restart = %q, %v, %v", v, ok, err)
	}
	// Caller names cannot reach the store's own metadata.
	if _, ok, _ := s.GetMeta("incarnation"); ok {
		t.Fatal("GetMeta exposed internal metadata")
	}
}

// TestDeleteMetaRange: a range deletion removes exactly the names in
// [from, to).
func TestDeleteMetaRange(t *testing.T) {
	s := openMem(t, vfs.NewMem(), "n1", FsyncNever)
	defer s.Close()
	names := []string{"handoff/a/1", "handoff/a/2", "handoff/b/1", "handoff0", "ring"}
	for _, n := range names {
		if err := s.SetMeta(n, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteMetaRange("handoff/", "handoff/b/"); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		_, ok, err := s.GetMeta(n)
		if err != nil {
			t.Fatal(err)
		}
		if want := n != "handoff/a/1" && n != "handoff/a/2"; ok != want {
			t.Errorf("%s present = %v after deleting [handoff/, handoff/b/), want %v", n, ok, want)
		}
	}
}

// TestDeferredSyncWrites: with fsync=always a deferred-sync write is
// visible at once (the coordinator replicates it while its WAL syncs), and
// once its sync returns it survives a crash that keeps no unsynced data.
func TestDeferredSyncWrites(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openMem(t, fs, "n1", FsyncAlways)
	var syncs []func() error
	want := map[string]versioning.State{}
	for i := range 20 {
		k := fmt.Sprintf("k%d", i)
		st, _, sync, err := s.WriteDeferSync(3, []byte(k), nil, value(k))
		if err != nil {
			t.Fatal(err)
		}
		if got, found, err := s.Get(3, []byte(k)); err != nil || !found || !got.Equal(st) {
			t.Fatalf("%s not visible before its sync: %+v, %v, %v", k, got, found, err)
		}
		want[k] = st
		syncs = append(syncs, sync)
	}
	for _, sync := range syncs {
		if err := sync(); err != nil {
			t.Fatal(err)
		}
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	_ = s.Close()
	s2 := openMem(t, crashed, "n1", FsyncAlways)
	defer s2.Close()
	for k, st := range want {
		if got, found, err := s2.Get(3, []byte(k)); err != nil || !found || !got.Equal(st) {
			t.Fatalf("%s lost by a crash after its sync returned: %+v, %v, %v", k, got, found, err)
		}
	}
}
