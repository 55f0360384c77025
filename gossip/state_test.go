package gossip

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

var statuses = []Status{StatusJoining, StatusMember, StatusLeaving, StatusRemoved}

// randomState draws entries from a small space so that states overlap and
// collide on (id, version) with different contents.
func randomState(rng *rand.Rand) ringState {
	s := ringState{}
	for range rng.IntN(6) {
		id := fmt.Sprintf("n%d", rng.IntN(5))
		s[id] = entry{
			Status:  statuses[rng.IntN(len(statuses))],
			Version: uint64(rng.IntN(4)),
			HTTP:    fmt.Sprintf("127.0.0.%d:80", rng.IntN(2)),
			RPC:     fmt.Sprintf("127.0.0.%d:81", rng.IntN(2)),
			Gossip:  fmt.Sprintf("127.0.0.%d:82", rng.IntN(2)),
		}
	}
	return s
}

func merged(states ...ringState) ringState {
	out := ringState{}
	for _, s := range states {
		out.merge(maps.Clone(s))
	}
	return out
}

func TestMergeLaws(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := range 5000 {
		a, b, c := randomState(rng), randomState(rng), randomState(rng)
		if ab, ba := merged(a, b), merged(b, a); !maps.EqualFunc(ab, ba, sameEntry) {
			t.Fatalf("seed %d, case %d: not commutative:\na=%v\nb=%v\na∪b=%v\nb∪a=%v", seed, i, a, b, ab, ba)
		}
		if l, r := merged(merged(a, b), c), merged(a, merged(b, c)); !maps.EqualFunc(l, r, sameEntry) {
			t.Fatalf("seed %d, case %d: not associative", seed, i)
		}
		if aa := merged(a, a); !maps.EqualFunc(aa, a, sameEntry) {
			t.Fatalf("seed %d, case %d: not idempotent: %v ∪ itself = %v", seed, i, a, aa)
		}
		// merge reports exactly the entries that changed.
		dst := maps.Clone(a)
		changed := dst.merge(b)
		var want []string
		for id := range dst {
			if old, ok := a[id]; !ok || !sameEntry(old, dst[id]) {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		if !slices.Equal(changed, want) {
			t.Fatalf("seed %d, case %d: merge reported %v changed, want %v", seed, i, changed, want)
		}
		if again := dst.merge(b); len(again) != 0 {
			t.Fatalf("seed %d, case %d: re-merge changed %v", seed, i, again)
		}
	}
}

func TestMergeKeepsHigherVersion(t *testing.T) {
	s := ringState{"n1": {Status: StatusMember, Version: 2, Gossip: "127.0.0.1:1"}}
	s.merge(ringState{"n1": {Status: StatusMember, Version: 1, Gossip: "127.0.0.1:9"}})
	if got := s["n1"].Gossip; got != "127.0.0.1:1" {
		t.Fatalf("an older version replaced a newer one: gossip %s", got)
	}
	s.merge(ringState{"n1": {Status: StatusLeaving, Version: 3, Gossip: "127.0.0.1:2"}})
	if got := s["n1"]; got.Version != 3 || got.Status != StatusLeaving {
		t.Fatalf("a newer version was not taken: %+v", got)
	}
}

func TestStateEncodingRoundTrips(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		s := randomState(rng)
		got, err := decodeState(encodeState(s))
		if err != nil {
			t.Fatal(err)
		}
		if !maps.EqualFunc(got, s, sameEntry) {
			t.Fatalf("round trip: %v → %v", s, got)
		}
	}
}

func TestDecodeStateRejectsGarbageAndSkipsUnknown(t *testing.T) {
	for _, in := range []string{``, `{`, `[]`, `{"nodes":{}}`, `{"format":0}`} {
		if _, err := decodeState([]byte(in)); err == nil {
			t.Errorf("decodeState(%q): want an error", in)
		}
	}
	s, err := decodeState([]byte(`{"format":1,"nodes":{
		"ok":{"status":"member","version":1},
		"bad id!":{"status":"member","version":1},
		"future":{"status":"hibernating","version":1}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 1 || s["ok"].Status != StatusMember {
		t.Fatalf("decoded %v, want only the valid entry", s)
	}
}

func TestRingMembersExcludeRemoved(t *testing.T) {
	s := ringState{
		"a": {Status: StatusJoining}, "b": {Status: StatusMember},
		"c": {Status: StatusLeaving}, "d": {Status: StatusRemoved},
	}
	if got := s.ringMembers(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("ringMembers = %v", got)
	}
}

func TestLogWriterMapsLevels(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"[ERR] memberlist: boom\n", "ERROR"},
		{"[WARN] memberlist: hmm", "WARN"},
		{"[INFO] memberlist: ok", "INFO"},
		{"[DEBUG] memberlist: chatter", "DEBUG"},
		{"no prefix", "INFO"},
		{"[ERR] memberlist: Failed to send gossip to 127.0.0.12:7946: write udp 127.0.0.13:7946->127.0.0.12:7946: use of closed network connection", "DEBUG"},
	} {
		var got string
		h := recordHandler(func(level, msg string) { got = level })
		newLogLogger(h).Print(tc.line)
		if got != tc.want {
			t.Errorf("%q logged at %s, want %s", tc.line, got, tc.want)
		}
	}
}

func sameEntry(a, b entry) bool { return compareEntries(a, b) == 0 }
