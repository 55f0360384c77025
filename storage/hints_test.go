package storage

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/versioning"
)

// written returns the state a replica of actor holds after its counter-th
// write of v to a key it knew nothing about.
func written(t *testing.T, actor string, counter uint64, v string) versioning.State {
	t.Helper()
	sib := value(v)
	sib.Dot = versioning.Dot{Actor: actor, Counter: counter}
	st, err := versioning.State{}.Update(nil, sib)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func openHints(t *testing.T, fs vfs.FS, mode FsyncMode, lim HintLimits) *Store {
	t.Helper()
	s, err := Open("db", Options{NodeID: "n0", Fsync: mode, FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20, HintLimits: lim})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// scanAll returns every hint of target, read in batches of batch.
func scanAll(t *testing.T, s *Store, target string, batch int) []Hint {
	t.Helper()
	var all []Hint
	var after *Hint
	for {
		hs, err := s.ScanHints(target, after, batch)
		if err != nil {
			t.Fatalf("ScanHints(%s): %v", target, err)
		}
		if len(hs) > batch {
			t.Fatalf("ScanHints returned %d hints, limit %d", len(hs), batch)
		}
		all = append(all, hs...)
		if len(hs) < batch {
			return all
		}
		after = &hs[len(hs)-1]
	}
}

// storedBytes is what HintBytes should report for target, from its hints.
func storedBytes(t *testing.T, s *Store, target string) int64 {
	t.Helper()
	var n int64
	for _, h := range scanAll(t, s, target, 100) {
		n += int64(len(hintKey(h.Target, h.Partition, h.Key)) + len(h.raw))
	}
	return n
}

// checkTotals compares HintCounts and HintBytes with what is stored.
func checkTotals(t *testing.T, s *Store, targets ...string) {
	t.Helper()
	counts := s.HintCounts()
	for _, target := range targets {
		n := len(scanAll(t, s, target, 100))
		if counts[target] != n {
			t.Errorf("HintCounts[%s] = %d, %d stored", target, counts[target], n)
		}
		if _, listed := counts[target]; n == 0 && listed {
			t.Errorf("HintCounts lists %s with no hints", target)
		}
		if got, want := s.HintBytes(target), storedBytes(t, s, target); got != want {
			t.Errorf("HintBytes(%s) = %d, %d stored", target, got, want)
		}
	}
}

func TestPutHintCoalesces(t *testing.T) {
	s := openHints(t, vfs.NewMem(), FsyncAlways, HintLimits{})
	defer s.Close()
	sa, sb := written(t, "a", 1, "from-a"), written(t, "b", 1, "from-b")
	if _, found, err := s.GetHint("n2", 7, []byte("k")); err != nil || found {
		t.Fatalf("GetHint on empty store: found=%v err=%v", found, err)
	}
	if _, err := s.PutHint("n2", 7, []byte("k"), sa); err != nil {
		t.Fatal(err)
	}
	merged, err := s.PutHint("n2", 7, []byte("k"), sb)
	if err != nil {
		t.Fatal(err)
	}
	want := versioning.Sync(sa, sb)
	if !merged.Equal(want) {
		t.Fatalf("PutHint returned %+v, want %+v", merged, want)
	}
	got, found, err := s.GetHint("n2", 7, []byte("k"))
	if err != nil || !found || !got.Equal(want) {
		t.Fatalf("GetHint = %+v found=%v err=%v, want %+v", got, found, err, want)
	}
	if c := s.HintCounts(); !maps.Equal(c, map[string]int{"n2": 1}) {
		t.Fatalf("HintCounts = %v, want map[n2:1]", c)
	}
	// Putting a state the hint already holds changes nothing.
	before := s.HintBytes("n2")
	if again, err := s.PutHint("n2", 7, []byte("k"), sa); err != nil || !again.Equal(want) {
		t.Fatalf("idempotent PutHint = %+v, %v", again, err)
	}
	if s.HintBytes("n2") != before {
		t.Fatalf("idempotent PutHint moved HintBytes %d -> %d", before, s.HintBytes("n2"))
	}
	// The same key in another partition, or for another target, is another hint.
	if _, found, _ := s.GetHint("n2", 8, []byte("k")); found {
		t.Fatal("hint visible in another partition")
	}
	if _, found, _ := s.GetHint("n3", 7, []byte("k")); found {
		t.Fatal("hint visible for another target")
	}
	checkTotals(t, s, "n2")
}

func TestScanHintsPaginatesOneTarget(t *testing.T) {
	s := openHints(t, vfs.NewMem(), FsyncNever, HintLimits{})
	defer s.Close()
	type pk struct {
		partition uint32
		key       string
	}
	var want []pk
	for i := range 1000 {
		p := pk{uint32(i%7) * 1000003, fmt.Sprintf("key-%d", i*7919%1000)}
		want = append(want, p)
		if _, err := s.PutHint("n1", p.partition, []byte(p.key), written(t, "a", uint64(i+1), p.key)); err != nil {
			t.Fatal(err)
		}
	}
	// Neighbours in key order: IDs of which "n1" is a prefix, or that
	// sort right before or after it.
	for _, other := range []string{"n10", "n1_", "n", "n0", "n2", "m1"} {
		for i := range 5 {
			if _, err := s.PutHint(other, uint32(i), []byte("x"), written(t, "a", 1, other)); err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.SortFunc(want, func(a, b pk) int {
		return cmp.Or(cmp.Compare(a.partition, b.partition), cmp.Compare(a.key, b.key))
	})
	for _, batch := range []int{1, 37, 500, 1000, 5000} {
		got := scanAll(t, s, "n1", batch)
		if len(got) != len(want) {
			t.Fatalf("batch %d: scanned %d hints, want %d", batch, len(got), len(want))
		}
		for i, h := range got {
			if h.Target != "n1" || h.Partition != want[i].partition || string(h.Key) != want[i].key {
				t.Fatalf("batch %d: hint %d is %s/%d/%s, want n1/%d/%s", batch, i,
					h.Target, h.Partition, h.Key, want[i].partition, want[i].key)
			}
			if len(h.State.Siblings) != 1 || string(h.State.Siblings[0].Value) != want[i].key {
				t.Fatalf("batch %d: hint %d holds %v", batch, i, values(h.State))
			}
		}
	}
	if got := scanAll(t, s, "n10", 2); len(got) != 5 {
		t.Fatalf("n10 has %d hints, want 5", len(got))
	}
	if got := scanAll(t, s, "n9", 10); len(got) != 0 {
		t.Fatalf("n9 has %d hints, want 0", len(got))
	}
	if _, err := s.ScanHints("n1", &Hint{Target: "n10"}, 10); err == nil {
		t.Fatal("ScanHints resumed after another target's hint")
	}
	if _, err := s.ScanHints("n1", nil, 0); err == nil {
		t.Fatal("ScanHints accepted limit 0")
	}
	checkTotals(t, s, "n1", "n10", "n1_", "n", "n0", "n2", "m1")
}

func TestDeleteHintIfUnchanged(t *testing.T) {
	s := openHints(t, vfs.NewMem(), FsyncAlways, HintLimits{})
	defer s.Close()
	for _, k := range []string{"k1", "k2"} {
		if _, err := s.PutHint("n2", 0, []byte(k), written(t, "a", 1, k)); err != nil {
			t.Fatal(err)
		}
	}
	hs, err := s.ScanHints("n2", nil, 10)
	if err != nil || len(hs) != 2 {
		t.Fatalf("ScanHints = %d hints, %v", len(hs), err)
	}
	// A write coalesces into k2 after the scan read it.
	newer, err := s.PutHint("n2", 0, []byte("k2"), written(t, "b", 1, "newer"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.DeleteHintIfUnchanged(hs[0]); err != nil || !ok {
		t.Fatalf("delete unchanged k1: %v, %v", ok, err)
	}
	if ok, err := s.DeleteHintIfUnchanged(hs[1]); err != nil || ok {
		t.Fatalf("delete changed k2: %v, %v", ok, err)
	}
	if _, found, _ := s.GetHint("n2", 0, []byte("k1")); found {
		t.Fatal("k1 still stored after delete")
	}
	got, found, err := s.GetHint("n2", 0, []byte("k2"))
	if err != nil || !found || !got.Equal(newer) {
		t.Fatalf("k2 = %v found=%v err=%v, want %v", values(got), found, err, values(newer))
	}
	if c := s.HintCounts(); !maps.Equal(c, map[string]int{"n2": 1}) {
		t.Fatalf("HintCounts = %v, want map[n2:1]", c)
	}
	checkTotals(t, s, "n2")
	// Deleting again finds nothing.
	if ok, err := s.DeleteHintIfUnchanged(hs[0]); err != nil || ok {
		t.Fatalf("second delete of k1: %v, %v", ok, err)
	}
	// A hint not read by a scan cannot be deleted blindly.
	if _, err := s.DeleteHintIfUnchanged(Hint{Target: "n2", Key: []byte("k2")}); err == nil {
		t.Fatal("delete of an unread hint accepted")
	}
	// Rescanned, k2 is deleted.
	hs, err = s.ScanHints("n2", nil, 10)
	if err != nil || len(hs) != 1 {
		t.Fatalf("rescan = %d hints, %v", len(hs), err)
	}
	if ok, err := s.DeleteHintIfUnchanged(hs[0]); err != nil || !ok {
		t.Fatalf("delete rescanned k2: %v, %v", ok, err)
	}
	if c := s.HintCounts(); len(c) != 0 {
		t.Fatalf("HintCounts = %v after deleting every hint", c)
	}
	if b := s.HintBytes("n2"); b != 0 {
		t.Fatalf("HintBytes = %d after deleting every hint", b)
	}
}

func TestHintCountBound(t *testing.T) {
	s := openHints(t, vfs.NewMem(), FsyncNever, HintLimits{MaxCount: 10})
	defer s.Close()
	put := func(target, key string, c uint64) error {
		_, err := s.PutHint(target, 0, []byte(key), written(t, "a", c, key))
		return err
	}
	for i := range 10 {
		if err := put("n2", fmt.Sprint("k", i), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := put("n2", "k10", 1); !errors.Is(err, ErrHintsFull) {
		t.Fatalf("11th key: %v, want ErrHintsFull", err)
	}
	if _, found, _ := s.GetHint("n2", 0, []byte("k10")); found {
		t.Fatal("refused hint was stored")
	}
	if n := s.HintOverflows(); n != 1 {
		t.Fatalf("HintOverflows = %d, want 1", n)
	}
	// Updating an existing hint is allowed; another target has its own bound.
	if err := put("n2", "k3", 2); err != nil {
		t.Fatalf("update of an existing hint: %v", err)
	}
	if err := put("n3", "k10", 1); err != nil {
		t.Fatalf("other target: %v", err)
	}
	if err := put("n2", "k11", 1); !errors.Is(err, ErrHintsFull) {
		t.Fatalf("12th key: %v, want ErrHintsFull", err)
	}
	if n := s.HintOverflows(); n != 2 {
		t.Fatalf("HintOverflows = %d, want 2", n)
	}
	if c := s.HintCounts(); !maps.Equal(c, map[string]int{"n2": 10, "n3": 1}) {
		t.Fatalf("HintCounts = %v", c)
	}
	// Delivering one hint makes room for another.
	hs, err := s.ScanHints("n2", nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.DeleteHintIfUnchanged(hs[0]); err != nil || !ok {
		t.Fatalf("delete: %v, %v", ok, err)
	}
	if err := put("n2", "k10", 1); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	checkTotals(t, s, "n2", "n3")
}

func TestHintByteBound(t *testing.T) {
	one := int64(len(hintKey("n2", 0, []byte("k0"))))
	enc, _ := written(t, "a", 1, "k0").MarshalBinary()
	one += int64(len(enc))
	s := openHints(t, vfs.NewMem(), FsyncNever, HintLimits{MaxBytes: 3*one + one/2})
	defer s.Close()
	for i := range 3 {
		k := fmt.Sprint("k", i)
		if _, err := s.PutHint("n2", 0, []byte(k), written(t, "a", 1, k)); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.HintBytes("n2"); got != 3*one {
		t.Fatalf("HintBytes = %d, want %d", got, 3*one)
	}
	if _, err := s.PutHint("n2", 0, []byte("k3"), written(t, "a", 1, "k3")); !errors.Is(err, ErrHintsFull) {
		t.Fatalf("4th hint: %v, want ErrHintsFull", err)
	}
	// An update may grow the total past the bound.
	big := written(t, "b", 1, string(make([]byte, 4*one)))
	if _, err := s.PutHint("n2", 0, []byte("k1"), big); err != nil {
		t.Fatalf("growing update: %v", err)
	}
	if got := s.HintBytes("n2"); got <= 3*one+one/2 {
		t.Fatalf("HintBytes = %d after a growing update", got)
	}
	if _, err := s.PutHint("n3", 0, []byte("k3"), written(t, "a", 1, "k3")); err != nil {
		t.Fatalf("other target: %v", err)
	}
	// A single hint larger than the bound never fits.
	if _, err := s.PutHint("n4", 0, []byte("k"), big); !errors.Is(err, ErrHintsFull) {
		t.Fatalf("oversized hint: %v, want ErrHintsFull", err)
	}
	if n := s.HintOverflows(); n != 2 {
		t.Fatalf("HintOverflows = %d, want 2", n)
	}
	checkTotals(t, s, "n2", "n3", "n4")
}

// putSome stores hints for two targets and deletes one; it returns the
// states expected per target and key.
func putSome(t *testing.T, s *Store) map[string]versioning.State {
	t.Helper()
	want := map[string]versioning.State{}
	for i := range 60 {
		target := []string{"n1", "n10"}[i%2]
		k := fmt.Sprint("k", i%13)
		st := written(t, fmt.Sprint("a", i%3), uint64(i+1), fmt.Sprint(i))
		merged, err := s.PutHint(target, uint32(i%5), []byte(k), st)
		if err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprintf("%s/%d/%s", target, i%5, k)] = merged
	}
	hs, err := s.ScanHints("n10", nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.DeleteHintIfUnchanged(hs[0]); err != nil || !ok {
		t.Fatalf("delete: %v, %v", ok, err)
	}
	delete(want, fmt.Sprintf("n10/%d/%s", hs[0].Partition, hs[0].Key))
	return want
}

// checkHints compares every stored hint with want.
func checkHints(t *testing.T, s *Store, want map[string]versioning.State) {
	t.Helper()
	got := 0
	for _, target := range []string{"n1", "n10"} {
		for _, h := range scanAll(t, s, target, 7) {
			name := fmt.Sprintf("%s/%d/%s", target, h.Partition, h.Key)
			if w, ok := want[name]; !ok || !h.State.Equal(w) {
				t.Fatalf("hint %s = %v, want %v (present: %v)", name, values(h.State), values(w), ok)
			}
			got++
		}
	}
	if got != len(want) {
		t.Fatalf("%d hints stored, want %d", got, len(want))
	}
}

func TestHintsSurviveRestart(t *testing.T) {
	fs := vfs.NewMem()
	s := openHints(t, fs, FsyncNever, HintLimits{})
	want := putSome(t, s)
	counts, b1, b10 := s.HintCounts(), s.HintBytes("n1"), s.HintBytes("n10")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutHint("n1", 0, []byte("k"), written(t, "a", 1, "v")); !errors.Is(err, ErrClosed) {
		t.Fatalf("PutHint after Close: %v", err)
	}
	s = openHints(t, fs, FsyncNever, HintLimits{})
	defer s.Close()
	checkHints(t, s, want)
	if c := s.HintCounts(); !maps.Equal(c, counts) {
		t.Fatalf("HintCounts after restart = %v, want %v", c, counts)
	}
	if s.HintBytes("n1") != b1 || s.HintBytes("n10") != b10 {
		t.Fatalf("HintBytes after restart = %d, %d, want %d, %d", s.HintBytes("n1"), s.HintBytes("n10"), b1, b10)
	}
	checkTotals(t, s, "n1", "n10")
}

// TestCrashKeepsSyncedHints: with fsync=always every PutHint and delete is
// synced before it returns, so a crash image holding only synced data has
// them all.
func TestCrashKeepsSyncedHints(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openHints(t, fs, FsyncAlways, HintLimits{})
	want := putSome(t, s)
	counts := s.HintCounts()
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	_ = s.Close()
	s = openHints(t, crashed, FsyncAlways, HintLimits{})
	defer s.Close()
	checkHints(t, s, want)
	if c := s.HintCounts(); !maps.Equal(c, counts) {
		t.Fatalf("HintCounts after crash = %v, want %v", c, counts)
	}
	checkTotals(t, s, "n1", "n10")
}

// TestConcurrentPutHints: hints put from many goroutines to shared and
// separate keys end up as the Sync of everything put, and the totals
// match what is stored.
func TestConcurrentPutHints(t *testing.T) {
	s := openHints(t, vfs.NewMem(), FsyncAlways, HintLimits{})
	defer s.Close()
	const writers, each = 8, 40
	targets := []string{"n1", "n10"}
	type put struct {
		target string
		key    string
		st     versioning.State
	}
	plan := make([][]put, writers)
	for w := range writers {
		for i := range each {
			// Keys shared by every writer, and one key only w writes.
			key := fmt.Sprint("shared", i%4)
			if i%5 == 0 {
				key = fmt.Sprint("own", w)
			}
			plan[w] = append(plan[w], put{targets[i%2], key, written(t, fmt.Sprint("w", w), uint64(i+1), fmt.Sprintf("%d-%d", w, i))})
		}
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for _, p := range plan[w] {
				if _, err := s.PutHint(p.target, 3, []byte(p.key), p.st); err != nil {
					t.Error(err)
				}
			}
		})
	}
	// Scans and counters run alongside the writers.
	wg.Go(func() {
		for range 20 {
			_ = s.HintCounts()
			_ = s.HintBytes("n1")
			if _, err := s.ScanHints("n10", nil, 5); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	want := map[string]versioning.State{}
	for _, ps := range plan {
		for _, p := range ps {
			name := p.target + "/" + p.key
			want[name] = versioning.Sync(want[name], p.st)
		}
	}
	for name, w := range want {
		target, key, _ := bytes.Cut([]byte(name), []byte("/"))
		got, found, err := s.GetHint(string(target), 3, key)
		if err != nil || !found || !got.Equal(w) {
			t.Errorf("hint %s = %v (found %v, err %v), want %v", name, values(got), found, err, values(w))
		}
	}
	total := 0
	for _, n := range s.HintCounts() {
		total += n
	}
	if total != len(want) {
		t.Fatalf("HintCounts total %d, want %d", total, len(want))
	}
	checkTotals(t, s, targets...)
}

func TestClosedStoreRefusesHints(t *testing.T) {
	s := openHints(t, vfs.NewMem(), FsyncAlways, HintLimits{})
	if _, err := s.PutHint("n1", 0, []byte("k"), written(t, "a", 1, "v")); err != nil {
		t.Fatal(err)
	}
	hs, err := s.ScanHints("n1", nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutHint("n1", 0, []byte("k"), written(t, "a", 2, "v")); !errors.Is(err, ErrClosed) {
		t.Errorf("PutHint: %v", err)
	}
	if _, _, err := s.GetHint("n1", 0, []byte("k")); !errors.Is(err, ErrClosed) {
		t.Errorf("GetHint: %v", err)
	}
	if _, err := s.ScanHints("n1", nil, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("ScanHints: %v", err)
	}
	if _, err := s.DeleteHintIfUnchanged(hs[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("DeleteHintIfUnchanged: %v", err)
	}
}

func TestHintOptionsAndTargets(t *testing.T) {
	if _, err := Open("db", Options{NodeID: "n0", FS: vfs.NewMem(), HintLimits: HintLimits{MaxCount: -1}}); err == nil {
		t.Fatal("negative hint limit accepted")
	}
	s := openHints(t, vfs.NewMem(), FsyncNever, HintLimits{})
	defer s.Close()
	if _, err := s.PutHint("", 0, []byte("k"), written(t, "a", 1, "v")); err == nil {
		t.Fatal("empty target accepted")
	}
	// A zero state adds nothing to deliver.
	if _, err := s.PutHint("n1", 0, []byte("k"), versioning.State{}); err != nil {
		t.Fatal(err)
	}
	if c := s.HintCounts(); len(c) != 0 {
		t.Fatalf("zero state stored a hint: %v", c)
	}
	for _, hk := range [][]byte{nil, []byte("r"), []byte("h"), {'h', 5, 'n'}, {'h', 1, 'n', 0, 0, 0}} {
		if _, _, _, err := parseHintKey(hk); err == nil {
			t.Errorf("parseHintKey(%q) accepted", hk)
		}
	}
	target, p, key, err := parseHintKey(hintKey("n1", 9, []byte("key")))
	if err != nil || target != "n1" || p != 9 || string(key) != "key" {
		t.Fatalf("parseHintKey round trip = %s %d %s %v", target, p, key, err)
	}
}
