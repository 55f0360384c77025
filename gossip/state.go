package gossip

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Status is a node's ring status. Joining nodes receive partitions,
// members own them, leaving nodes hand theirs over; left and removed
// nodes own nothing and are kept as tombstones, so that an old entry
// gossiped by a stale peer cannot bring them back.
type Status string

// Ring statuses, in lifecycle order.
const (
	StatusJoining Status = "joining"
	StatusMember  Status = "member"
	StatusLeaving Status = "leaving"
	StatusLeft    Status = "left"
	StatusRemoved Status = "removed"
)

// rank orders statuses along the lifecycle; 0 means unknown.
func (s Status) rank() int {
	switch s {
	case StatusJoining:
		return 1
	case StatusMember:
		return 2
	case StatusLeaving:
		return 3
	case StatusLeft:
		return 4
	case StatusRemoved:
		return 5
	}
	return 0
}

// InRing reports whether a node with this status takes part in the
// ring (owns partitions, or is about to).
func (s Status) InRing() bool {
	return s == StatusJoining || s == StatusMember || s == StatusLeaving
}

// epoch is the view number of a state: the sum of its entries' Gen. It
// grows with every ownership change any node makes.
func (s ringState) epoch() uint64 {
	var e uint64
	for _, x := range s {
		e += x.Gen
	}
	return e
}

// entry is one node's ring-membership record. The node itself writes new
// versions; an operator's remove, a replacement, and the completion of a
// removal write the entry of a node that is gone. Everyone else keeps the
// highest version it has seen.
type entry struct {
	Status  Status `json:"status"`
	Version uint64 `json:"version"`
	// Gen counts the changes of the entry that matter to ownership
	// (status, token, replacement, received partitions); the sum over all
	// entries is the view's epoch. Version also counts reports (Applied,
	// addresses), which change no ownership.
	Gen    uint64 `json:"gen,omitempty"`
	HTTP   string `json:"http,omitempty"`
	RPC    string `json:"rpc,omitempty"`
	Gossip string `json:"gossip,omitempty"`
	// Token is the placement token ("": the ID): a replacement takes the
	// token of the node it replaces.
	Token string `json:"token,omitempty"`
	// Replaces names the node a joining node replaces (itself: a node
	// whose data directory was wiped).
	Replaces string `json:"replaces,omitempty"`
	// Gone marks a leaving node that was removed or replaced: its data is
	// not there to be handed over.
	Gone bool `json:"gone,omitempty"`
	// ReplacedBy names the node that replaces this one: its leaving is
	// part of that node's join, never a removal of its own (the two
	// entries may reach a node in either order).
	ReplacedBy string `json:"replaced_by,omitempty"`
	// Queued orders membership changes (unix nanoseconds of the request):
	// one runs at a time, the earliest first.
	Queued int64 `json:"queued,omitempty"`
	// Change and Received: the partitions this node has received in the
	// change of that name (a bitmap by partition).
	Change   string `json:"change,omitempty"`
	Received []byte `json:"received,omitempty"`
	// Applied is the epoch of the last view this node applied.
	Applied uint64 `json:"applied,omitempty"`
	// Life identifies the data directory the node wrote its entry from
	// (random, made with its ring state): an entry of this ID from another
	// life means the directory was lost since.
	Life uint64 `json:"life,omitempty"`
}

// has reports whether the entry's bitmap holds partition p.
func (e entry) has(change string, p uint32) bool {
	return e.Change == change && int(p/8) < len(e.Received) && e.Received[p/8]&(1<<(p%8)) != 0
}

// compareEntries is a total order on entries: by version, then (for two
// different writes of the same version, which a well-behaved cluster never
// produces but a restored backup might) by status rank and addresses. A
// merge keeps the maximum, so merges commute and are idempotent.
func compareEntries(a, b entry) int {
	if c := cmp.Compare(a.Version, b.Version); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Status.rank(), b.Status.rank()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Gossip, b.Gossip); c != 0 {
		return c
	}
	if c := cmp.Compare(a.RPC, b.RPC); c != 0 {
		return c
	}
	if c := cmp.Compare(a.HTTP, b.HTTP); c != 0 {
		return c
	}
	// Two different writes of one version: any total order will do.
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Compare(ja, jb)
}

// ringState is the replicated ring membership: node ID → entry. It is a
// state CRDT (a map of per-key maxima), so it can be merged from push-pull
// exchanges, broadcasts and the local store in any order, any number of
// times, with the same result.
type ringState map[string]entry

// merge folds src into s and returns the IDs whose entry changed, sorted.
func (s ringState) merge(src ringState) []string {
	var changed []string
	for id, e := range src {
		if cur, ok := s[id]; ok && compareEntries(e, cur) <= 0 {
			continue
		}
		s[id] = e
		changed = append(changed, id)
	}
	slices.Sort(changed)
	return changed
}

// ringMembers returns the sorted IDs of nodes that own partitions.
func (s ringState) ringMembers() []string {
	var ids []string
	for id, e := range s {
		if e.Status.InRing() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// alone reports whether no node but self is, or is becoming, a member:
// with nobody to ask, self's recorded state is all there is.
func (s ringState) alone(self string) bool {
	for id, e := range s {
		if id != self && e.Status.InRing() {
			return false
		}
	}
	return true
}

// subset returns a state holding only the given IDs.
func (s ringState) subset(ids []string) ringState {
	out := make(ringState, len(ids))
	for _, id := range ids {
		if e, ok := s[id]; ok {
			out[id] = e
		}
	}
	return out
}

// stateFormat is the version of the encoding below.
const stateFormat = 1

// wireState is the encoding of a ringState: in the store, in push-pull
// and in broadcasts (which carry only the changed entries). Push-pull
// also carries the cluster secret, when the node generated or adopted one
// (docs/design.md §4.8); the store and broadcasts never do.
type wireState struct {
	Format int              `json:"format"`
	Nodes  map[string]entry `json:"nodes"`
	Secret []byte           `json:"secret,omitempty"`
	// SecretBorn dates Secret (Unix nanoseconds; secret.go).
	SecretBorn int64 `json:"secret_born,omitempty"`
}

var errBadState = errors.New("gossip: malformed ring state")

func encodeState(s ringState) []byte { return encodeWire(s, nil) }

// encodeWire encodes s with the cluster secret (nil: none).
func encodeWire(s ringState, secret *clusterSecret) []byte {
	w := wireState{Format: stateFormat, Nodes: s}
	if secret != nil {
		w.Secret, w.SecretBorn = secret.key, secret.born
	}
	b, err := json.Marshal(w)
	if err != nil {
		// Strings and integers always marshal.
		panic(fmt.Sprintf("gossip: encode ring state: %v", err))
	}
	return b
}

// decodeState parses an encoded state. Entries with an invalid node ID or
// an unknown status (from a newer dotkv) are skipped rather than failing
// the whole exchange.
func decodeState(b []byte) (ringState, error) {
	s, _, err := decodeWire(b)
	return s, err
}

// decodeWire is decodeState that also returns the cluster secret the
// encoding carries (nil if none, or if it is not a valid secret).
func decodeWire(b []byte) (ringState, *clusterSecret, error) {
	var w wireState
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadState, err)
	}
	if w.Format < stateFormat {
		return nil, nil, fmt.Errorf("%w: format %d", errBadState, w.Format)
	}
	var secret *clusterSecret
	if validSecret(w.Secret) {
		secret = &clusterSecret{key: w.Secret, born: w.SecretBorn}
	}
	s := make(ringState, len(w.Nodes))
	for id, e := range w.Nodes {
		if validID(id) && e.Status.rank() != 0 {
			s[id] = e
		}
	}
	return s, secret, nil
}
