package replica

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dotkv/dotkv/internal/memnet"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// staleThird writes v through n1 at w=quorum while the key's third primary
// is cut off with hints off, then heals: the third primary is stale.
func staleThird(t *testing.T, cfg Config) (c *testCluster, key []byte, third string) {
	t.Helper()
	cfg.DisableHints = true
	c = newTestCluster(t, 3, cfg)
	key = c.keyWhere(func(prims, _ []string) bool { return prims[0] == "n1" })
	prims, _ := c.prefs(key)
	third = prims[2]
	c.net.Isolate(third)
	if _, err := c.put("n1", key, "v", nil, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Heal only once the send to the third has failed (it may still be on
	// its way when the write is answered).
	c.waitFor("the send to "+third+" to fail", func() bool { return c.net.Stats()[methodReplicate].Blocked == 1 })
	c.net.Heal()
	if got := c.stored(third, key); len(got) != 0 {
		t.Fatalf("%s already stores %v", third, got)
	}
	return c, key, third
}

func TestReadRepairsAStaleReplicaInTheBackground(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	c, k, third := staleThird(t, Config{Metrics: m})
	st, err := c.get("n1", k, ReadOptions{R: All})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v"}) {
		t.Fatalf("read %v, want [v]", got)
	}
	c.waitFor(third+" to be repaired", func() bool { return slices.Equal(c.stored(third, k), []string{"v"}) })
	c.waitFor("the repair to be counted", func() bool { return testutil.ToFloat64(m.readRepairs) == 1 })
}

func TestSyncRepairRepairsBeforeAnswering(t *testing.T) {
	c, k, third := staleThird(t, Config{})
	st, err := c.get("n1", k, ReadOptions{R: One, SyncRepair: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v"}) {
		t.Fatalf("read %v, want [v]", got)
	}
	if got := c.stored(third, k); !slices.Equal(got, []string{"v"}) {
		t.Errorf("%s stores %v after a read with repair=sync, want [v]", third, got)
	}
}

func TestReadWhereEveryReplicaAgreesRepairsNothing(t *testing.T) {
	c := newTestCluster(t, 3, Config{})
	k := c.key(c.ring.Primaries(c.ring.PartitionOf([]byte("x")))...)
	if _, err := c.put("n1", k, "v", nil, WriteOptions{W: All}); err != nil {
		t.Fatal(err)
	}
	before := c.calls(methodReplicate)
	st, err := c.get("n2", k, ReadOptions{R: All, SyncRepair: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v"}) {
		t.Fatalf("read %v, want [v]", got)
	}
	if got := c.calls(methodReplicate) - before; got != 0 {
		t.Errorf("%d repair sends after a read every replica agreed on", got)
	}
}

func TestReadOfAMissingKey(t *testing.T) {
	c := newTestCluster(t, 3, Config{})
	st, err := c.get("n1", []byte("nothing"), ReadOptions{R: All})
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsZero() {
		t.Errorf("read %+v, want the zero state", st)
	}
}

func TestReadFindsADeadPrimarysCopyOnItsFallback(t *testing.T) {
	c := newTestCluster(t, 5, Config{})
	k := c.keyWhere(func(prims, _ []string) bool { return prims[0] == "n1" })
	prims, fbs := c.prefs(k)
	c.setDead(prims[2])
	c.net.Isolate(prims[2])
	if _, err := c.put("n1", k, "v", nil, WriteOptions{W: All}); err != nil {
		t.Fatal(err)
	}
	if got := c.hinted(fbs[0], prims[2], k); !slices.Equal(got, []string{"v"}) {
		t.Fatalf("%s holds %v for %s, want [v]", fbs[0], got, prims[2])
	}
	// Only the two live primaries hold their own copies, but r=all is met
	// with the fallback's hint; pr=all is not.
	st, err := c.get("n2", k, ReadOptions{R: All})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v"}) {
		t.Errorf("read %v, want [v]", got)
	}
	reads := c.calls(methodRead)
	_, err = c.get("n2", k, ReadOptions{PR: All})
	var ua *UnavailableError
	if !errors.As(err, &ua) || ua.Kind != "primaries" || ua.Acks != 2 || ua.Required != 3 {
		t.Errorf("pr=all: err = %v, want 2 of 3 primaries", err)
	}
	if got := c.calls(methodRead) - reads; got != 0 {
		t.Errorf("pr=all sent %d reads though it could not be met", got)
	}
}

func TestReadFailsOverToASpareFallback(t *testing.T) {
	c := newTestCluster(t, 5, Config{})
	k := c.keyWhere(func(prims, fbs []string) bool { return prims[0] == "n1" })
	prims, fbs := c.prefs(k)
	// The third primary is cut off without the failure detector knowing:
	// the write's copy fails over to the first fallback, and so does the read.
	c.net.Isolate(prims[2])
	if _, err := c.put("n1", k, "v", nil, WriteOptions{W: All}); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the fallback's hint", func() bool { return len(c.hinted(fbs[0], prims[2], k)) == 1 })
	// Cut a primary too: r=all needs both spares. The second holds no
	// hint for the key, and a fallback's empty answer is no answer (it
	// cannot tell whether the key exists), so r=all is unavailable, and
	// r=quorum merges the first primary's copy and the first spare's hint.
	c.net.Isolate(prims[1], prims[2])
	var ue *UnavailableError
	if _, err := c.get("n1", k, ReadOptions{R: All}); !errors.As(err, &ue) {
		t.Fatalf("r=all with one spare holding nothing: %v, want unavailable", err)
	}
	st, err := c.get("n1", k, ReadOptions{R: Quorum})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v"}) {
		t.Errorf("read %v, want [v]", got)
	}
}

// TestFallbackWithoutAHintIsNoAnswer: a coordinator that stands in for a
// dead reader and holds no hint for the key does not answer not-found at
// r=one: it asks a live reader, which holds the key.
func TestFallbackWithoutAHintIsNoAnswer(t *testing.T) {
	c := newTestCluster(t, 4, cheapReads)
	k := c.keyWhere(func(_, fbs []string) bool { return fbs[0] == "n4" })
	prims, _ := c.prefs(k)
	if _, err := c.put(prims[0], k, "v", nil, WriteOptions{W: All}); err != nil {
		t.Fatal(err)
	}
	c.setDead(prims[0]) // n4 now stands in for it, and reads its own copy first
	st, err := c.get("n4", k, ReadOptions{R: One})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v"}) {
		t.Fatalf("r=one through the fallback read %v, want [v]", got)
	}
}

func TestReadUnavailableWhenTooFewAnswer(t *testing.T) {
	c := newTestCluster(t, 3, Config{DisableHints: true})
	k := c.keyWhere(func(prims, _ []string) bool { return prims[0] == "n1" })
	prims, _ := c.prefs(k)
	c.net.Isolate(prims[1], prims[2])
	_, err := c.get("n1", k, ReadOptions{})
	var ua *UnavailableError
	if !errors.As(err, &ua) || ua.Op != "read" || ua.Kind != "replicas" || ua.Acks != 1 || ua.Required != 2 {
		t.Fatalf("err = %v, want read: 1 of 2 replicas", err)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v does not wrap ErrUnavailable", err)
	}
	// Known dead: refused before anything is asked.
	c.setDead(prims[1], prims[2])
	reads := c.calls(methodRead)
	if _, err := c.get("n1", k, ReadOptions{}); !errors.As(err, &ua) || ua.Acks != 1 {
		t.Errorf("err = %v, want read: 1 of 2 replicas", err)
	}
	if got := c.calls(methodRead) - reads; got != 0 {
		t.Errorf("%d reads sent for a read that could not be met", got)
	}
}

func TestReadTimeout(t *testing.T) {
	c := newTestCluster(t, 3, Config{})
	k := c.keyWhere(func(prims, _ []string) bool { return prims[0] == "n1" })
	c.net.SetFaults(memnet.Faults{Drop: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.nodes["n1"].coord.Get(ctx, k, ReadOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout", err)
	}
}

func TestReadsUnderSeededDelaysSeeEveryAcknowledgedWrite(t *testing.T) {
	c := newTestCluster(t, 5, Config{})
	c.net.SetFaults(memnet.Faults{MinDelay: 0, MaxDelay: 2 * time.Millisecond})
	var keys [][]byte
	for i := range 20 {
		k := []byte{'d', byte('a' + i)}
		keys = append(keys, k)
		if _, err := c.put(c.ids[i%5], k, string(k), nil, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Quorum writes and quorum reads overlap: every read sees its write,
	// whichever replicas answer first.
	for i, k := range keys {
		st, err := c.get(c.ids[(i+2)%5], k, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := values(st); !slices.Equal(got, []string{string(k)}) {
			t.Errorf("read %s = %v", k, got)
		}
	}
}

func TestLocalCoordinator(t *testing.T) {
	store, err := storage.Open("data", storage.Options{NodeID: "solo", FS: vfs.NewMem(), Fsync: storage.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c, err := NewLocal("solo", store, Config{N: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.N() != 3 || !c.Ready() || !slices.Equal(c.View().Members(), []string{"solo"}) {
		t.Fatalf("N %d, ready %v, members %v", c.N(), c.Ready(), c.View().Members())
	}
	k := []byte("k")
	vc, err := c.Put(context.Background(), k, nil, versioning.Sibling{Value: []byte("v")}, WriteOptions{W: All})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(context.Background(), k, vc, versioning.Sibling{Deleted: true}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	st, found, err := c.LocalState(k)
	if err != nil || !found || !st.Deleted() {
		t.Errorf("local state %+v, found %v, err %v: want a tombstone", st, found, err)
	}
	got, err := c.Get(context.Background(), k, ReadOptions{R: All})
	if err != nil || !got.Deleted() {
		t.Errorf("read %+v, %v: want deleted", got, err)
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := NewCoordinator("n1", nil, nil, nil, Config{N: -1}); err == nil {
		t.Error("N = -1 accepted")
	}
	def := DefaultConfig()
	if def.N != 3 || def.R != Quorum || def.W != Quorum || def.ReplicaTimeout <= 0 {
		t.Errorf("DefaultConfig() = %+v", def)
	}
	if err := def.Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
	bad := def
	bad.R = Number(5)
	if err := bad.Validate(); err == nil {
		t.Error("R = 5 with N = 3 accepted")
	}
	if def.ReadRepairChance != 0.1 || def.SpeculativeRetry != 10*time.Millisecond {
		t.Errorf("DefaultConfig() read repair chance %v, speculative retry %v", def.ReadRepairChance, def.SpeculativeRetry)
	}
	for _, chance := range []float64{1.5, math.NaN()} {
		bad := def
		bad.ReadRepairChance = chance
		if err := bad.Validate(); err == nil {
			t.Errorf("read repair chance %v accepted", chance)
		}
	}
	// Zero takes the default; negative turns it off, and stays negative.
	if got := (Config{}).withDefaults(); got.ReadRepairChance != def.ReadRepairChance || got.SpeculativeRetry != def.SpeculativeRetry {
		t.Errorf("zero config: read repair chance %v, speculative retry %v", got.ReadRepairChance, got.SpeculativeRetry)
	}
	off := cheapReads.withDefaults()
	if off.ReadRepairChance >= 0 || off.SpeculativeRetry >= 0 || off.Validate() != nil {
		t.Errorf("negative read repair chance %v, speculative retry %v: want them kept and valid", off.ReadRepairChance, off.SpeculativeRetry)
	}
}

// cheapReads is a coordinator config whose reads ask only what their
// levels need: no read repair chance, no speculative retry.
var cheapReads = Config{ReadRepairChance: -1, SpeculativeRetry: -1}

// sorted returns a sorted copy of ids: the order of concurrent calls.
func sorted(ids []string) []string { return slices.Sorted(slices.Values(ids)) }

// recordReads records the targets of read RPCs from now on, in call order.
func (c *testCluster) recordReads() (targets func() []string) {
	var mu sync.Mutex
	var got []string
	c.net.OnCall(func(_, to, method string) {
		if method == methodRead {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, to)
		}
	})
	c.t.Cleanup(func() { c.net.OnCall(nil) })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func TestHealthyReadAsksOnlyWhatItsLevelNeeds(t *testing.T) {
	c := newTestCluster(t, 3, cheapReads)
	k := c.keyWhere(func(prims, _ []string) bool { return prims[0] == "n1" })
	prims, _ := c.prefs(k)
	if _, err := c.put("n1", k, "v", nil, WriteOptions{W: All}); err != nil {
		t.Fatal(err)
	}
	reads := c.recordReads()
	// r=2 at a primary: its own copy and one remote one.
	st, err := c.get("n1", k, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v"}) {
		t.Fatalf("read %v, want [v]", got)
	}
	if got := reads(); !slices.Equal(got, []string{prims[1]}) {
		t.Errorf("r=2 at %s read from %v, want [%s]", prims[0], got, prims[1])
	}
	// r=1: its own copy only.
	if _, err := c.get(prims[2], k, ReadOptions{R: One}); err != nil {
		t.Fatal(err)
	}
	if got := reads(); len(got) != 1 {
		t.Errorf("r=1 at a primary sent %d read RPCs, want none", len(got)-1)
	}
}

func TestReadAsksTheNextReplicaWhenOneFails(t *testing.T) {
	c := newTestCluster(t, 3, cheapReads)
	k := c.keyWhere(func(prims, _ []string) bool { return prims[0] == "n1" })
	prims, _ := c.prefs(k)
	if _, err := c.put("n1", k, "v", nil, WriteOptions{W: All}); err != nil {
		t.Fatal(err)
	}
	c.net.Isolate(prims[1])
	reads := c.recordReads()
	st, err := c.get("n1", k, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v"}) {
		t.Errorf("read %v, want [v]", got)
	}
	if got, want := reads(), []string{prims[1], prims[2]}; !slices.Equal(got, want) {
		t.Errorf("read from %v, want %v", got, want)
	}
}

func TestSpeculativeRetryAsksAnotherReplica(t *testing.T) {
	cfg := cheapReads
	cfg.SpeculativeRetry = time.Millisecond
	c := newTestCluster(t, 3, cfg)
	k := c.keyWhere(func(prims, _ []string) bool { return prims[0] == "n1" })
	prims, _ := c.prefs(k)
	if _, err := c.put("n1", k, "v", nil, WriteOptions{W: All}); err != nil {
		t.Fatal(err)
	}
	// The replica asked never answers (and is not known dead): without the
	// retry the read would wait out its 30 s deadline and fail.
	c.net.Blackhole(prims[1])
	reads := c.recordReads()
	st, err := c.get("n1", k, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v"}) {
		t.Errorf("read %v, want [v]", got)
	}
	// (The retry's call may be made before the first one's, and the read
	// may be answered before the first one's goroutine gets to call: on a
	// busy machine it is recorded late.)
	want := sorted([]string{prims[1], prims[2]})
	c.waitFor("the blackholed replica's and the retry's reads", func() bool { return len(reads()) >= len(want) })
	if got := sorted(reads()); !slices.Equal(got, want) {
		t.Errorf("read from %v, want %v", got, want)
	}
}

func TestReadRepairChanceAsksAndRepairsEveryReplica(t *testing.T) {
	cfg := cheapReads
	cfg.ReadRepairChance = 1
	c, k, third := staleThird(t, cfg)
	reads := c.recordReads()
	if _, err := c.get("n1", k, ReadOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitFor(third+" to be repaired", func() bool { return slices.Equal(c.stored(third, k), []string{"v"}) })
	if got := reads(); len(got) != 2 {
		t.Errorf("read from %v, want both other replicas", got)
	}
}

func TestReadRepairsAStaleReplicaItAsked(t *testing.T) {
	c, k, third := staleThird(t, cheapReads)
	prims, _ := c.prefs(k)
	reads := c.recordReads()
	// Read at n1: its own copy and the second primary's agree; the stale
	// third is not asked, and is left to anti-entropy.
	st, err := c.get("n1", k, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v"}) {
		t.Fatalf("read %v, want [v]", got)
	}
	if got := reads(); !slices.Equal(got, []string{prims[1]}) {
		t.Fatalf("read from %v, want [%s]", got, prims[1])
	}
	// Nothing differed, so no repair is under way to wait for.
	if got := c.stored(third, k); len(got) != 0 {
		t.Fatalf("%s, not asked, stores %v", third, got)
	}
	// Read at the stale third: its own copy is asked first, differs from
	// n1's, and is repaired.
	st, err = c.get(third, k, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v"}) {
		t.Fatalf("read %v, want [v]", got)
	}
	if got := reads(); !slices.Equal(got, []string{prims[1], prims[0]}) {
		t.Errorf("read from %v, want [%s %s]", got, prims[1], prims[0])
	}
	c.waitFor(third+" to be repaired", func() bool { return slices.Equal(c.stored(third, k), []string{"v"}) })
}

func TestPrimaryReadLevelPicksPrimaries(t *testing.T) {
	c := newTestCluster(t, 5, cheapReads)
	k := c.keyWhere(func(prims, _ []string) bool { return prims[0] == "n1" })
	prims, fbs := c.prefs(k)
	if _, err := c.put("n1", k, "v", nil, WriteOptions{W: All}); err != nil {
		t.Fatal(err)
	}
	// The third primary's copy is planned on the first fallback, and the
	// second primary is suspect: a plain r=2 read asks the first primary
	// and the fallback, not the suspect; but the fallback holds no hint
	// (the write reached the third primary), which is no answer, so the
	// suspect is asked too.
	c.setDead(prims[2])
	c.setSuspect(prims[1])
	reads := c.recordReads()
	if _, err := c.get(fbs[1], k, ReadOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := sorted(reads()), sorted([]string{prims[0], fbs[0], prims[1]}); !slices.Equal(got, want) {
		t.Errorf("r=2 read from %v, want %v", got, want)
	}
	// pr=2 needs two primaries: it asks the suspect one and not the
	// fallback.
	before := len(reads())
	st, err := c.get(fbs[1], k, ReadOptions{PR: Number(2)})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(st); !slices.Equal(got, []string{"v"}) {
		t.Errorf("read %v, want [v]", got)
	}
	if got, want := sorted(reads()[before:]), sorted([]string{prims[0], prims[1]}); !slices.Equal(got, want) {
		t.Errorf("pr=2 read from %v, want %v", got, want)
	}
}
