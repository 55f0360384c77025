package replica

import (
	"context"
	"fmt"

	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/versioning"
)

// Get asks the holders of the key's copies in parallel (primaries, or
// fallbacks standing in for dead ones) and returns the merge of the
// answers that met the read levels. Replicas whose answer differs from the
// merge of all answers get the merged state (read repair): in the
// background, or before the answer with o.SyncRepair.
func (c *Coordinator) Get(ctx context.Context, key []byte, o ReadOptions) (versioning.State, error) {
	if !c.cluster.Ready() {
		return versioning.State{}, ErrNotReady
	}
	r := c.cluster.Ring()
	p := r.PartitionOf(key)
	prims := r.Primaries(p)
	need, needP := needs(len(prims), o.R, o.PR, c.cfg.R)
	pl := c.planner().forRead(prims, r.Fallbacks(p))
	if err := pl.unreachable("read", need, needP); err != nil {
		return versioning.State{}, err
	}
	rd := c.startRead(ctx, pl, p, key, newTally("read", need, needP, pl))
	for !rd.t.met() {
		if expired(ctx) { // reads also fail once the deadline passed
			rd.cancel()
			return versioning.State{}, fmt.Errorf("read %q: %d of %d replies: %w", key, rd.t.acks, need, errTimeout)
		}
		if rd.t.hopeless() {
			for rd.ready() { // count what has already arrived
			}
			rd.cancel()
			return versioning.State{}, rd.t.err()
		}
		rd.next(ctx)
	}
	merged := mergeReplies(rd.got)
	if rd.t.pending == 0 && len(stale(rd.got, merged)) == 0 {
		rd.cancel()
		return merged, nil // every replica answered and agrees: nothing to repair
	}
	if !o.SyncRepair {
		// The read is answered; a background goroutine owns the round from
		// here: it waits for the stragglers and repairs.
		c.wg.Go(func() {
			defer rd.cancel()
			rd.drain(rd.ctx)
			c.repair(rd.ctx, p, key, rd.got)
		})
		return merged, nil
	}
	defer rd.cancel()
	rd.drain(ctx)
	return c.repair(ctx, p, key, rd.got), nil
}

// readRound is one read's replies as they arrive. One goroutine owns it at
// a time: Get, until it answers, then (if repair is needed) the goroutine
// that finishes the round.
type readRound struct {
	replies chan readReply
	got     []readReply // successful replies so far
	t       *tally
	// ctx bounds the remote reads and their repair; it outlives the request
	// (but not its deadline) when some read is remote.
	ctx    context.Context
	cancel context.CancelFunc
	c      *Coordinator
	key    []byte
}

type readReply struct {
	slot    slot // slot.node is the node that answered
	planned bool // the slot was planned on its primary (see tally.add)
	st      versioning.State
	err     error
}

// startRead sends a read to every slot's node: remote ones in goroutines,
// this node's own copy at once.
func (c *Coordinator) startRead(ctx context.Context, pl *plan, p uint32, key []byte, t *tally) *readRound {
	rd := &readRound{replies: make(chan readReply, len(pl.slots)), t: t, ctx: ctx, cancel: func() {}, c: c, key: key}
	var local []slot
	for _, s := range pl.slots {
		switch s.node {
		case "":
		case c.self:
			local = append(local, s)
		default:
			if rd.ctx == ctx { // remote reads and their repairs outlive the request
				rd.ctx, rd.cancel = c.detached(ctx)
			}
			c.wg.Go(func() { rd.replies <- c.readCopy(rd.ctx, s, pl, p, key) })
		}
	}
	for _, s := range local {
		rd.replies <- c.readCopy(rd.ctx, s, pl, p, key)
	}
	return rd
}

// next waits for one reply and counts it; false if ctx ended first.
func (rd *readRound) next(ctx context.Context) bool {
	select {
	case rep := <-rd.replies:
		rd.count(rep)
		return true
	case <-ctx.Done():
		return false
	}
}

// drain counts the remaining replies as they arrive, until ctx ends.
func (rd *readRound) drain(ctx context.Context) {
	for rd.t.pending > 0 && rd.next(ctx) {
	}
}

// ready counts one reply if one has arrived; false if none has.
func (rd *readRound) ready() bool {
	select {
	case rep := <-rd.replies:
		rd.count(rep)
		return true
	default:
		return false
	}
}

func (rd *readRound) count(rep readReply) {
	ok := rep.err == nil
	rd.t.add(ok, ok && rep.slot.direct(), rep.planned)
	if ok {
		rd.got = append(rd.got, rep)
	} else {
		rd.c.log.Debug("read from replica failed", "key", string(rd.key), "node", rep.slot.node, "err", rep.err)
	}
}

func mergeReplies(replies []readReply) versioning.State {
	var merged versioning.State
	for _, rep := range replies {
		merged = versioning.Sync(merged, rep.st)
	}
	return merged
}

// stale returns the replies that differ from merged: the replicas read
// repair sends merged to.
func stale(replies []readReply, merged versioning.State) []readReply {
	var out []readReply
	for _, rep := range replies {
		if !rep.st.Equal(merged) {
			out = append(out, rep)
		}
	}
	return out
}

// repair sends the merge of replies to every replica whose answer differs
// from it, and returns the merge.
func (c *Coordinator) repair(ctx context.Context, p uint32, key []byte, replies []readReply) versioning.State {
	merged := mergeReplies(replies)
	for _, rep := range stale(replies, merged) {
		if err := c.sendCopy(ctx, rep.slot.node, rep.slot.primary, p, key, merged); err != nil {
			c.log.Debug("read repair failed", "key", string(key), "node", rep.slot.node, "err", err)
			continue
		}
		c.cfg.Metrics.readRepair()
	}
	return merged
}

// readCopy reads slot s's copy from its node, or, if that fails, from the
// next spare fallback (hints on).
func (c *Coordinator) readCopy(ctx context.Context, s slot, pl *plan, p uint32, key []byte) readReply {
	var err error
	for node := s.node; node != ""; node = pl.takeSpare() {
		var st versioning.State
		st, err = c.readFrom(ctx, node, s.primary, p, key)
		if err == nil {
			return readReply{slot: slot{primary: s.primary, node: node}, planned: s.direct(), st: st}
		}
		if ctx.Err() != nil {
			break
		}
	}
	return readReply{slot: s, planned: s.direct(), err: err}
}

// readFrom returns node's copy of key: its records if it is the primary,
// else every hint it holds for the key.
func (c *Coordinator) readFrom(ctx context.Context, node, primary string, p uint32, key []byte) (versioning.State, error) {
	if node == c.self {
		return c.readLocal(node == primary, p, key)
	}
	var asFallback byte
	if node != primary {
		asFallback = 1
	}
	resp, err := c.peer.Call(ctx, node, methodRead, wire.Writer(nil).U32(p).Bytes(key).Byte(asFallback))
	if err != nil {
		return versioning.State{}, err
	}
	return readState(wire.NewReader(resp))
}
