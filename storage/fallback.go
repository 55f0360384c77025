package storage

import "github.com/dotkv/dotkv/versioning"

// FallbackActor is the actor this node stamps on writes it coordinates
// while it is not a primary of the key. Those writes live in hints, not in
// the node's records, so the node cannot claim a prefix of their events
// (see versioning.State.UpdateExact); a separate actor keeps them apart
// from the prefix the node claims as a primary.
func (s *Store) FallbackActor() string { return s.actor + ".f" }

// FallbackDot issues a fresh dot of the fallback actor, above every event
// of it in the client's context ctx.
func (s *Store) FallbackDot(ctx versioning.VersionVector) (versioning.Dot, error) {
	if s.closed.Load() {
		return versioning.Dot{}, ErrClosed
	}
	a := s.FallbackActor()
	c, err := s.nextCounter(0, ctx.Max(a))
	if err != nil {
		return versioning.Dot{}, err
	}
	return versioning.Dot{Actor: a, Counter: c}, nil
}
