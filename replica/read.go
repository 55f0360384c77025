package replica

import (
	"context"
	"fmt"

	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/versioning"
)

type readReply struct {
	slot replicaSlot // slot.node is the node that answered
	st   versioning.State
	err  error
}

// Get asks the holders of the key's copies in parallel (primaries, or
// fallbacks standing in for dead ones) and returns the merge of the first
// R answers. Replicas whose answer differs from the merge of all answers
// get the merged state (read repair): in the background, or before the
// answer with o.SyncRepair.
func (c *Coordinator) Get(ctx context.Context, key []byte, o ReadOptions) (versioning.State, error) {
	if !c.cluster.Ready() {
		return versioning.State{}, ErrNotReady
	}
	r := c.cluster.Ring()
	p := r.PartitionOf(key)
	prims := r.Primaries(p)
	need, needP := needs(len(prims), o.R, o.PR, c.cfg.R)
	pool := c.newPool(r.Fallbacks(p), true)
	slots := c.plan(prims, pool, -1)
	reach, primReach := 0, 0
	for _, s := range slots {
		if s.node != "" {
			reach++
			if s.direct() {
				primReach++
			}
		}
	}
	if err := levelsMet("read", reach, primReach, need, needP); err != nil {
		return versioning.State{}, err
	}
	replies := make(chan readReply, len(slots))
	rctx, cancel := ctx, context.CancelFunc(func() {})
	var local []replicaSlot
	for _, s := range slots {
		switch s.node {
		case "":
		case c.self:
			local = append(local, s)
		default:
			if rctx == ctx { // remote reads and their repairs outlive the request
				rctx, cancel = c.detached(ctx)
			}
			c.wg.Go(func() { replies <- c.readCopy(rctx, s, pool, p, key) })
		}
	}
	for _, s := range local { // this node's own copy: no goroutine needed
		replies <- c.readCopy(rctx, s, pool, p, key)
	}

	var got []readReply
	pending, acks, primaryAcks := reach, 0, 0
	collect := func(rep readReply) {
		pending--
		if rep.err != nil {
			c.log.Debug("read from replica failed", "key", string(key), "node", rep.slot.node, "err", rep.err)
			return
		}
		got = append(got, rep)
		acks++
		if rep.slot.direct() {
			primaryAcks++
		}
	}
	for levelsMet("read", acks, primaryAcks, need, needP) != nil {
		if pending == 0 {
			cancel()
			return versioning.State{}, levelsMet("read", acks, primaryAcks, need, needP)
		}
		select {
		case rep := <-replies:
			collect(rep)
		case <-ctx.Done():
			cancel()
			return versioning.State{}, fmt.Errorf("read %q: %d of %d replies: %w", key, acks, need, errTimeout)
		}
	}
	merged := mergeReplies(got)
	if pending == 0 && allEqual(got, merged) {
		cancel()
		return merged, nil // every replica answered and agrees: nothing to repair
	}
	if !o.SyncRepair {
		// Wait for the stragglers and repair in the background.
		c.wg.Go(func() {
			defer cancel()
			for pending > 0 {
				select {
				case rep := <-replies:
					collect(rep)
				case <-rctx.Done():
					pending = 0
				}
			}
			c.repair(rctx, p, key, got)
		})
		return merged, nil
	}
	defer cancel()
	for pending > 0 {
		select {
		case rep := <-replies:
			collect(rep)
		case <-ctx.Done():
			pending = 0
		}
	}
	return c.repair(ctx, p, key, got), nil
}

func allEqual(replies []readReply, st versioning.State) bool {
	for _, rep := range replies {
		if !rep.st.Equal(st) {
			return false
		}
	}
	return true
}

func mergeReplies(replies []readReply) versioning.State {
	var merged versioning.State
	for _, rep := range replies {
		merged = versioning.Sync(merged, rep.st)
	}
	return merged
}

// repair sends the merge of replies to every replica whose answer differs
// from it, and returns the merge.
func (c *Coordinator) repair(ctx context.Context, p uint32, key []byte, replies []readReply) versioning.State {
	merged := mergeReplies(replies)
	for _, rep := range replies {
		if rep.st.Equal(merged) {
			continue
		}
		if err := c.sendCopy(ctx, rep.slot.node, rep.slot.primary, p, key, merged); err != nil {
			c.log.Debug("read repair failed", "key", string(key), "node", rep.slot.node, "err", err)
			continue
		}
		c.cfg.Metrics.readRepair()
	}
	return merged
}

// readCopy reads slot s's copy from its node, or, if that fails, from the
// next free fallback (hints on).
func (c *Coordinator) readCopy(ctx context.Context, s replicaSlot, pool *fallbackPool, p uint32, key []byte) readReply {
	node := s.node
	var err error
	for node != "" {
		var st versioning.State
		st, err = c.readFrom(ctx, node, s.primary, p, key)
		if err == nil {
			return readReply{slot: replicaSlot{primary: s.primary, node: node}, st: st}
		}
		if ctx.Err() != nil {
			break
		}
		node = pool.take()
	}
	return readReply{slot: s, err: err}
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
