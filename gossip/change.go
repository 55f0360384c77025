package gossip

import (
	"errors"
	"fmt"
	"time"

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

// leave marks this node leaving (on the owner goroutine).
func (m *Membership) leave() error {
	e, ok := m.own.state[m.id]
	if !ok || m.own.fresh || e.Status != StatusMember {
		return fmt.Errorf("%w: this node is %s, only a member can leave", ErrNotMember, statusOr(e.Status, "not in the ring"))
	}
	if err := m.othersRemain(m.id); err != nil {
		return err
	}
	m.write(m.id, true, func(e *entry) { e.Status, e.Queued = StatusLeaving, time.Now().UnixNano() })
	m.log.Info("gossip: leaving the cluster: handing every partition to its next owner")
	m.stateChanged([]string{m.id})
	return nil
}

// remove marks node id removed: gone for good (on the owner goroutine).
func (m *Membership) remove(id string, force bool) error {
	e, ok := m.own.state[id]
	switch {
	case !ok:
		return fmt.Errorf("%w: %q", ErrUnknownNode, id)
	case id == m.id:
		return fmt.Errorf("%w: a node cannot remove itself; make it leave", ErrNotMember)
	case e.Status == StatusLeft || e.Status == StatusRemoved || e.Gone:
		return fmt.Errorf("%w: %s is already %s", ErrNotMember, id, statusOr(e.Status, "gone"))
	case !force && m.Liveness(id) != Dead:
		return fmt.Errorf("%w: %s is %s; make it leave instead, or remove it with force", ErrNodeAlive, id, m.Liveness(id))
	}
	if e.Status == StatusJoining && e.Replaces != id {
		// It holds nothing the ring counts on: out at once.
		m.write(id, true, func(e *entry) { e.Status = StatusRemoved })
		m.log.Warn("gossip: removed a joining node", "node", id)
		m.stateChanged([]string{id})
		return nil
	}
	if err := m.othersRemain(id); err != nil {
		return err
	}
	m.write(id, true, func(e *entry) {
		e.Status, e.Gone, e.Queued = StatusLeaving, true, time.Now().UnixNano()
	})
	m.log.Warn("gossip: removing a node: its partitions' other owners re-create its copies", "node", id, "force", force)
	m.stateChanged([]string{id})
	return nil
}

// othersRemain returns ErrLastMember unless a current member other than
// id would remain.
func (m *Membership) othersRemain(id string) error {
	for _, other := range m.own.state.current() {
		if e := m.own.state[other]; other != id && !e.Gone && e.Status == StatusMember {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is the last member; its data would have nowhere to go", ErrLastMember, id)
}

func statusOr(s Status, def string) string {
	if s == "" {
		return def
	}
	return string(s)
}
