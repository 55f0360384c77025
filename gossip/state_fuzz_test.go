package gossip

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/dotkv/dotkv/internal/fuzzcheck"
)

// FuzzDecodeRingState decodes arbitrary bytes as what gossip receives
// from other nodes: a ring state (push-pull exchanges, and broadcasts
// after their type byte) and node metadata. No input may panic. A state
// that decodes holds only valid IDs and known statuses, and re-encodes to
// a state that decodes to the same one (the encoding is then stable);
// merging it into a node's state follows the merge laws; and the node can
// plan its view from the result (or refuse to, with an error) without
// panicking, as its owner goroutine does on every change.
func FuzzDecodeRingState(f *testing.F) {
	member := entry{Status: StatusMember, Version: 2, Gen: 1, HTTP: "127.0.0.1:8080", RPC: "127.0.0.1:7947", Gossip: "127.0.0.1:7946"}
	base := ringState{"n1": member, "n2": member, "n3": member}
	f.Add(encodeState(base))
	f.Add(encodeState(ringState{
		"n4": {Status: StatusJoining, Version: 1, Gen: 1, Queued: 5, Change: "join/n4/5", Received: []byte{0xff, 0x01}},
		"n3": {Status: StatusLeaving, Version: 3, Gen: 2, Queued: 4, Gone: true},
	}))
	f.Add(encodeState(ringState{
		"z":  {Status: StatusJoining, Replaces: "n3", Token: "n3", Gen: 1, Version: 9, Queued: 4},
		"n3": {Status: StatusLeaving, Gone: true, ReplacedBy: "z", Gen: 2, Version: 9, Queued: 4},
		"n2": {Status: StatusJoining, Replaces: "n2", Gen: 3, Version: 9, Queued: 6},
	}))
	f.Add(encodeState(ringState{"x": {Status: StatusLeft, Version: 4}, "y": {Status: StatusRemoved, Version: 4}}))
	f.Add(encodeState(ringState{"n1": {Status: StatusMember, Version: 5, Token: "n2"}, "n9": {Status: StatusMember, Version: 5, Token: "n2"}}))
	f.Add([]byte(`{"format":1,"nodes":{"bad id!":{"status":"member"},"n5":{"status":"future"}}}`))
	f.Add([]byte(`{"format":0,"nodes":{}}`))
	f.Add([]byte(`{"format":2,"nodes":{"n1":{"status":"member","received":"!!"}}}`))
	f.Add([]byte(`{"format":1,"nodes":{"n1":{"status":"member","version":-1}}}`))
	f.Add([]byte(`{"format":1,"nodes":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"f":1,"h":"127.0.0.1:8080","r":"127.0.0.1:7947"}`))
	f.Add(encodeMeta("127.0.0.1:8080", "127.0.0.1:7947"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if md, ok := decodeMeta(data); ok {
			md2, ok2 := decodeMeta(encodeMeta(md.HTTP, md.RPC))
			if !ok2 || md2.HTTP != md.HTTP || md2.RPC != md.RPC {
				t.Fatalf("meta %+v re-decodes as %+v (%v)", md, md2, ok2)
			}
		}

		fuzzcheck.Allocs(t, "decodeState", len(data), func() { _, _ = decodeState(data) })
		s, err := decodeState(data)
		if err != nil {
			if !errors.Is(err, errBadState) {
				t.Fatalf("decodeState: error %v does not wrap errBadState", err)
			}
			if s != nil {
				t.Fatalf("decodeState: error %v with a state %v", err, s)
			}
			return
		}
		for id, e := range s {
			if !validID(id) || e.Status.rank() == 0 {
				t.Fatalf("decodeState kept entry %q %+v", id, e)
			}
		}
		enc := encodeState(s)
		s2, err := decodeState(enc)
		if err != nil {
			t.Fatalf("re-encoded state %s: %v", enc, err)
		}
		if !maps.EqualFunc(s, s2, sameEntry) {
			t.Fatalf("state round trip:\n%v\n%v", s, s2)
		}
		if enc2 := encodeState(s2); !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}

		// What a node does with it: merge, replan.
		own := maps.Clone(base)
		changedIDs := own.merge(maps.Clone(s))
		for _, id := range changedIDs {
			if _, ok := s[id]; !ok {
				t.Fatalf("merge reports %q changed, which the remote state does not name", id)
			}
		}
		again := maps.Clone(own)
		if ch := again.merge(maps.Clone(s)); len(ch) != 0 || !maps.EqualFunc(again, own, sameEntry) {
			t.Fatalf("merging the same state twice changed %v", ch)
		}
		for _, st := range []ringState{s, own} {
			for _, self := range []string{"n1", "z"} {
				v, c, err := st.plan(self, 64, 3)
				if err != nil {
					continue
				}
				if c != nil && v.Change() != c.ID {
					t.Fatalf("plan: change %q, view of %q", c.ID, v.Change())
				}
				members := v.Current().Members()
				if !slices.IsSorted(members) || len(members) == 0 {
					t.Fatalf("plan: current members %v", members)
				}
				_ = complete(v)
			}
		}
	})
}
