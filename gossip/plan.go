package gossip

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	"github.com/dotkv/dotkv/ring"
)

// Change kinds.
const (
	kindJoin   = "join"
	kindLeave  = "leave"
	kindRemove = "remove"
)

// change is the membership change in progress: one at a time, the
// earliest requested first (Queued, then ID); the others wait.
type change struct {
	ID       string // kind/node/queued: receivers report progress under it
	Kind     string
	Node     string
	Replaces string // a join's replaced node ("" none; Node itself: wiped)
}

// changes returns the pending membership changes in queue order.
func (s ringState) changes() []change {
	replaced := map[string]bool{}
	for id, e := range s {
		if e.Status == StatusJoining && e.Replaces != "" && e.Replaces != id {
			replaced[e.Replaces] = true
		}
	}
	type queued struct {
		c  change
		at int64
	}
	var qs []queued
	for id, e := range s {
		var c change
		switch {
		case e.Status == StatusJoining:
			c = change{Kind: kindJoin, Node: id, Replaces: e.Replaces}
		case e.Status == StatusLeaving && (replaced[id] || e.ReplacedBy != ""):
			continue // part of its replacement's join
		case e.Status == StatusLeaving && e.Gone:
			c = change{Kind: kindRemove, Node: id}
		case e.Status == StatusLeaving:
			c = change{Kind: kindLeave, Node: id}
		default:
			continue
		}
		c.ID = c.Kind + "/" + id + "/" + strconv.FormatInt(e.Queued, 36)
		qs = append(qs, queued{c, e.Queued})
	}
	slices.SortFunc(qs, func(a, b queued) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.c.Node, b.c.Node)
	})
	out := make([]change, len(qs))
	for i, q := range qs {
		out[i] = q.c
	}
	return out
}

// current returns the IDs of the current ring: members and leaving
// nodes, and wiped members rejoining under their own ID.
func (s ringState) current() []string {
	var ids []string
	for id, e := range s {
		if e.Status == StatusMember || e.Status == StatusLeaving || (e.Status == StatusJoining && e.Replaces == id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// token returns id's placement token.
func (s ringState) token(id string) string {
	if t := s[id].Token; t != "" {
		return t
	}
	return id
}

// plan computes the ownership view of the state: the current ring, and
// the target ring of the change in progress (nil when none). A state with
// no current member (a node that has not joined yet) gets a placeholder
// ring of self alone, which is never served.
func (s ringState) plan(self string, q, n int) (*ring.View, *change, error) {
	epoch := s.epoch()
	curIDs := s.current()
	if len(curIDs) == 0 {
		r, err := ring.New([]string{self}, q, n)
		if err != nil {
			return nil, nil, err
		}
		return ring.Stable(r, epoch), nil, nil
	}
	cur, err := ring.NewWithTokens(curIDs, s.token, q, n)
	if err != nil {
		return nil, nil, fmt.Errorf("current ring: %w", err)
	}
	queue := s.changes()
	if len(queue) == 0 {
		return ring.Stable(cur, epoch), nil, nil
	}
	c := queue[0]
	var nextIDs, fresh, gone []string
	switch {
	case c.Kind == kindJoin && c.Replaces == c.Node:
		nextIDs, fresh = curIDs, []string{c.Node}
	case c.Kind == kindJoin && c.Replaces != "":
		nextIDs = append(slices.DeleteFunc(slices.Clone(curIDs), func(id string) bool { return id == c.Replaces }), c.Node)
		gone = []string{c.Replaces}
	case c.Kind == kindJoin:
		nextIDs = append(slices.Clone(curIDs), c.Node)
	default: // leave, remove
		nextIDs = slices.DeleteFunc(slices.Clone(curIDs), func(id string) bool { return id == c.Node })
		if c.Kind == kindRemove {
			gone = []string{c.Node}
		}
	}
	if len(nextIDs) == 0 {
		return ring.Stable(cur, epoch), nil, nil // the last member cannot go
	}
	next, err := ring.NewWithTokens(nextIDs, s.token, q, n)
	if err != nil {
		return nil, nil, fmt.Errorf("target ring of %s: %w", c.ID, err)
	}
	received := func(p uint32, node string) bool { return s[node].has(c.ID, p) }
	return ring.NewView(cur, next, epoch, c.ID, received, fresh, gone), &c, nil
}

// complete reports whether every partition of v's change has switched.
func complete(v *ring.View) bool {
	for p := range uint32(v.Partitions()) {
		if v.Moving(p) {
			return false
		}
	}
	return true
}
