package gossip

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Status is a node's ring status. Only joining, member and leaving nodes
// own partitions; removed nodes are kept as tombstones so that an old
// entry gossiped by a stale peer cannot bring them back.
type Status string

// Ring statuses, in lifecycle order.
const (
	StatusJoining Status = "joining"
	StatusMember  Status = "member"
	StatusLeaving Status = "leaving"
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
	case StatusRemoved:
		return 4
	}
	return 0
}

// InRing reports whether a node with this status owns partitions.
func (s Status) InRing() bool {
	return s == StatusJoining || s == StatusMember || s == StatusLeaving
}

// entry is one node's ring-membership record. Only the node itself (and,
// later, an operator acting on it) writes a new version; everyone else
// just keeps the highest version it has seen.
type entry struct {
	Status  Status `json:"status"`
	Version uint64 `json:"version"`
	HTTP    string `json:"http,omitempty"`
	RPC     string `json:"rpc,omitempty"`
	Gossip  string `json:"gossip,omitempty"`
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
	return cmp.Compare(a.HTTP, b.HTTP)
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
// and in broadcasts (which carry only the changed entries).
type wireState struct {
	Format int              `json:"format"`
	Nodes  map[string]entry `json:"nodes"`
}

var errBadState = errors.New("gossip: malformed ring state")

func encodeState(s ringState) []byte {
	b, err := json.Marshal(wireState{Format: stateFormat, Nodes: s})
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
	var w wireState
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadState, err)
	}
	if w.Format < stateFormat {
		return nil, fmt.Errorf("%w: format %d", errBadState, w.Format)
	}
	s := make(ringState, len(w.Nodes))
	for id, e := range w.Nodes {
		if validID(id) && e.Status.rank() != 0 {
			s[id] = e
		}
	}
	return s, nil
}
