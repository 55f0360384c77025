package transport

import (
	"net"
	"slices"
	"sync"
)

// Filter is the in-process fault filter: a set of blocked peer node IDs.
// The zero value blocks nothing. A nil *Filter is valid and blocks
// nothing, so code paths need no "fault injection off" special case.
type Filter struct {
	mu struct {
		sync.RWMutex
		blocked map[string]bool
		hosts   func(id string) []string
	}
}

// NewFilter returns a filter that blocks nothing. hosts resolves a node ID
// to the hosts (IPs) it uses for gossip and RPC; it may be set later with
// SetResolver, since membership starts after the filter.
func NewFilter(hosts func(id string) []string) *Filter {
	f := &Filter{}
	f.mu.hosts = hosts
	return f
}

// SetResolver sets the node ID → hosts resolver.
func (f *Filter) SetResolver(hosts func(id string) []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.hosts = hosts
}

// Block adds node IDs to the blocked set.
func (f *Filter) Block(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.blocked == nil {
		f.mu.blocked = map[string]bool{}
	}
	for _, id := range ids {
		f.mu.blocked[id] = true
	}
}

// Heal unblocks the given node IDs, or every node when none are given.
func (f *Filter) Heal(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ids) == 0 {
		f.mu.blocked = nil
		return
	}
	for _, id := range ids {
		delete(f.mu.blocked, id)
	}
}

// Blocked returns the blocked node IDs, sorted.
func (f *Filter) Blocked() []string {
	if f == nil {
		return nil
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]string, 0, len(f.mu.blocked))
	for id := range f.mu.blocked {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// BlockedID reports whether traffic to or from node id is dropped.
func (f *Filter) BlockedID(id string) bool {
	if f == nil {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.blocked[id]
}

// BlockedAddr reports whether traffic to or from addr (a host or
// host:port) is dropped: whether it is a host of a blocked node.
func (f *Filter) BlockedAddr(addr string) bool {
	if f == nil {
		return false
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if len(f.mu.blocked) == 0 || f.mu.hosts == nil {
		return false
	}
	for id := range f.mu.blocked {
		if slices.Contains(f.mu.hosts(id), host) {
			return true
		}
	}
	return false
}
