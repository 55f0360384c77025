package gossip

import (
	"errors"

	"github.com/dotkv/dotkv/ring"
)

// Errors of the membership-change requests; callers branch on them (the
// HTTP API maps them to status codes).
var (
	// ErrUnknownNode: no node of that ID is in the ring state.
	ErrUnknownNode = errors.New("gossip: unknown node")
	// ErrNodeAlive: a node the failure detector sees alive cannot be
	// removed without force (it should leave instead).
	ErrNodeAlive = errors.New("gossip: node is alive")
	// ErrNotMember: the node is not in a state the request applies to
	// (e.g. leaving twice, removing a node that has left).
	ErrNotMember = errors.New("gossip: node is not a member")
	// ErrLastMember: the last member of a cluster cannot leave or be
	// removed (its data would have nowhere to go).
	ErrLastMember = errors.New("gossip: last member")
)

// View returns the ownership view requests are routed by. It never
// returns nil.
func (m *Membership) View() *ring.View { return m.rview.Load() }

// Leave starts this node's graceful decommission: its status becomes
// leaving, its partitions are handed to their next owners, and once they
// all hold them it becomes left (see Left).
func (m *Membership) Leave() error { return m.request(func() error { return m.leave() }) }

// Remove takes node id out of the ring for good: it is gone, and the
// surviving owners re-create its copies. A node the failure detector sees
// alive is refused with ErrNodeAlive unless force is set.
func (m *Membership) Remove(id string, force bool) error {
	return m.request(func() error { return m.remove(id, force) })
}

// MarkReceived records that this node holds partition p of change (a
// View's Change), which lets p switch to its new owners once every
// receiver has it. A stale change is ignored.
func (m *Membership) MarkReceived(change string, p uint32) {
	m.in.addReceived(change, p)
	m.poke()
}

// Left returns a channel closed once this node has left the ring (its
// decommission completed).
func (m *Membership) Left() <-chan struct{} { return m.leftCh }

// Refused returns a non-nil error when the cluster refuses this node (it
// was removed, or has left, and came back with its old data): it must not
// serve, and should be restarted empty or under a new ID.
func (m *Membership) Refused() error {
	if p := m.refused.Load(); p != nil {
		return *p
	}
	return nil
}

// request runs fn on the owner goroutine and returns its error.
func (m *Membership) request(fn func() error) error {
	done := make(chan error, 1)
	select {
	case m.reqs <- func() { done <- fn() }:
	case <-m.quit:
		return errors.New("gossip: closed")
	}
	select {
	case err := <-done:
		return err
	case <-m.quit:
		return errors.New("gossip: closed")
	}
}

func (m *Membership) leave() error              { return errors.New("not yet") }
func (m *Membership) remove(string, bool) error { return errors.New("not yet") }
