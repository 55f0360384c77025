package replica

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/versioning"
)

// Get reads key at the levels o asks for and returns the merge of the
// answers that met them. It asks only as many of the key's copies as the
// levels need (primaries, or fallbacks standing in for dead ones): this
// node's own copy first when it holds one, and enough primaries to meet
// o.PR. It asks the next copy when one it asked fails (a spare fallback
// once every copy was asked), and one more copy when those asked have not
// all answered after Config.SpeculativeRetry. With o.SyncRepair, or by
// chance (Config.ReadRepairChance), it asks every copy at once instead.
//
// Replicas whose answer differs from the merge of all answers received
// get the merged state (read repair): in the background, or before the
// answer with o.SyncRepair. Replicas that were not asked are left to
// anti-entropy.
func (c *Coordinator) Get(ctx context.Context, key []byte, o ReadOptions) (versioning.State, error) {
	if !c.cluster.Ready() {
		return versioning.State{}, ErrNotReady
	}
	if err := c.enter(); err != nil {
		return versioning.State{}, err
	}
	defer c.leave()
	r := c.cluster.View()
	p := r.PartitionOf(key)
	prims := r.Readers(p) // owners still receiving p have not all of it
	need, needP := needs(len(prims), o.R, o.PR, c.cfg.R)
	pl := c.planner().forRead(prims, r.Fallbacks(p))
	if err := pl.unreachable("read", need, needP); err != nil {
		return versioning.State{}, err
	}
	all := o.SyncRepair || rand.Float64() < c.cfg.ReadRepairChance
	rd := c.startRead(ctx, pl, p, key, newTally("read", need, needP, pl), all)
	// Speculative retry: one timer, made once a remote read is out and
	// another copy could still be asked; it fires at most once.
	var spec *time.Timer
	var specC <-chan time.Time
	defer func() {
		if spec != nil {
			spec.Stop()
		}
	}()
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
		if spec == nil && c.cfg.SpeculativeRetry > 0 && rd.remote > 0 && rd.unasked() {
			spec = time.NewTimer(c.cfg.SpeculativeRetry)
			specC = spec.C
		}
		select {
		case rep := <-rd.replies:
			rd.count(rep)
		case <-specC:
			specC = nil
			rd.speculate()
		case <-ctx.Done():
		}
	}
	merged := mergeReplies(rd.got)
	if rd.inflight == 0 && len(stale(rd.got, merged)) == 0 {
		rd.cancel()
		return merged, nil // every replica asked answered and agrees: nothing to repair
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
// that finishes the round. The owner alone starts reads.
type readRound struct {
	replies chan readReply
	got     []readReply // successful replies so far
	t       *tally
	// ctx bounds the remote reads and their repair; it outlives the request
	// (but not its deadline) once some read is remote.
	ctx      context.Context
	cancel   context.CancelFunc
	outlives bool // ctx is detached from the request's
	c        *Coordinator
	pl       *plan
	p        uint32
	key      []byte

	order []int  // the slots in the order reads ask them (plan.readOrder)
	asked []bool // by slot: a read of it was started
	// all: every slot is asked, and a failed read moves to the next spare
	// fallback whether or not the levels need it (sync repair, or read
	// repair's chance).
	all bool
	// Reads started whose reply is not counted yet: in all, of a
	// primary's own copy, and remote. At most one per slot, so replies
	// never outnumber the channel's room.
	inflight, inflightP, remote int
}

type readReply struct {
	i       int  // the slot's index in the plan
	slot    slot // slot.node is the node asked
	planned bool // the slot was planned on its primary (see tally.add)
	st      versioning.State
	err     error
}

// startRead asks the first slots: every one if all, else as many as the
// levels need, in readOrder.
func (c *Coordinator) startRead(ctx context.Context, pl *plan, p uint32, key []byte, t *tally, all bool) *readRound {
	rd := &readRound{replies: make(chan readReply, len(pl.slots)), t: t, ctx: ctx, cancel: func() {}, c: c, pl: pl, p: p, key: key, all: all}
	rd.order = pl.readOrder(c.self, c.cluster.Suspect)
	rd.asked = make([]bool, len(pl.slots))
	if all {
		rd.ask(rd.order)
	} else {
		more, moreP := readShortfall(t, 0, 0)
		rd.ask(pickReads(pl.slots, rd.order, rd.asked, more, moreP))
	}
	return rd
}

// ask starts a read of each slot on its planned node: remote ones in
// goroutines, then this node's own copy at once.
func (rd *readRound) ask(slots []int) {
	for _, i := range slots {
		rd.asked[i] = true
		if rd.pl.slots[i].node != rd.c.self {
			rd.read(i, rd.pl.slots[i].node)
		}
	}
	for _, i := range slots {
		if rd.pl.slots[i].node == rd.c.self {
			rd.read(i, rd.c.self)
		}
	}
}

// read starts a read of slot i's copy from node.
func (rd *readRound) read(i int, node string) {
	planned := rd.pl.slots[i]
	s := slot{primary: planned.primary, node: node}
	rd.inflight++
	if s.direct() {
		rd.inflightP++
	}
	if node == rd.c.self {
		st, err := rd.c.readFrom(rd.ctx, node, s.primary, rd.p, rd.key)
		rd.replies <- readReply{i: i, slot: s, planned: planned.direct(), st: st, err: err}
		return
	}
	rd.remote++
	if !rd.outlives { // remote reads and their repairs outlive the request
		rd.ctx, rd.cancel = rd.c.detached(rd.ctx)
		rd.outlives = true
	}
	ctx := rd.ctx
	rd.c.wg.Go(func() {
		st, err := rd.c.readFrom(ctx, node, s.primary, rd.p, rd.key)
		rd.replies <- readReply{i: i, slot: s, planned: planned.direct(), st: st, err: err}
	})
}

// drain counts the replies of the reads in flight as they arrive, until
// ctx ends.
func (rd *readRound) drain(ctx context.Context) {
	for rd.inflight > 0 {
		select {
		case rep := <-rd.replies:
			rd.count(rep)
		case <-ctx.Done():
			return
		}
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

// unasked reports whether some planned slot has not been asked.
func (rd *readRound) unasked() bool {
	for _, i := range rd.order {
		if !rd.asked[i] {
			return true
		}
	}
	return false
}

// speculate asks one more slot, as the reads in flight are slow: one held
// by its primary if primary acks are still missing.
func (rd *readRound) speculate() {
	moreP := 0
	if rd.t.pAcks < rd.t.needP {
		moreP = 1
	}
	rd.ask(pickReads(rd.pl.slots, rd.order, rd.asked, 1, moreP))
}

func (rd *readRound) count(rep readReply) {
	rd.inflight--
	if rep.slot.direct() {
		rd.inflightP--
	}
	if rep.slot.node != rd.c.self {
		rd.remote--
	}
	if rep.err == nil && !rep.slot.direct() && rep.st.IsZero() {
		// A fallback that holds no hint for the key cannot tell whether
		// it exists: its empty answer is no answer, never a not-found.
		rep.err = errNoHint
	}
	if rep.err == nil {
		rd.t.add(true, rep.slot.direct(), rep.planned)
		rd.got = append(rd.got, rep)
		return
	}
	rd.c.log.Debug("read from replica failed", "key", string(rd.key), "node", rep.slot.node, "err", rep.err)
	if !rd.retry(rep.i) {
		rd.t.add(false, false, rep.planned)
	}
}

// retry replaces the failed read of slot i: by asking the next slots not
// asked yet if the levels need more, and else (or, with all, always) by
// reading slot i's copy from the next spare fallback. It reports whether
// slot i is still being read; if not, its failure is final.
func (rd *readRound) retry(i int) bool {
	if rd.ctx.Err() != nil || rd.t.hopeless() {
		return false
	}
	if !rd.all {
		more, moreP := readShortfall(rd.t, rd.inflight, rd.inflightP)
		next := pickReads(rd.pl.slots, rd.order, rd.asked, more, moreP)
		rd.ask(next)
		if len(next) >= more {
			return false
		}
	}
	spare := rd.pl.takeSpare()
	if spare == "" {
		return false
	}
	rd.read(i, spare)
	return true
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
	out := stale(replies, merged)
	if len(out) == 0 {
		return merged
	}
	enc, err := merged.AppendBinary(nil)
	if err != nil {
		c.log.Warn("read repair: encode the merged state", "key", string(key), "err", err)
		return merged
	}
	v := c.cluster.View()
	for _, rep := range out {
		if err := c.sendCopy(ctx, v, rep.slot.node, rep.slot.primary, p, key, merged, enc); err != nil {
			c.log.Debug("read repair failed", "key", string(key), "node", rep.slot.node, "err", err)
			continue
		}
		c.cfg.Metrics.readRepair()
	}
	return merged
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
	msg := wire.Writer(make([]byte, 0, 16+len(key))).U64(c.cluster.View().Epoch()).U32(p).Bytes(key).Byte(asFallback)
	resp, err := c.peer.Call(ctx, node, methodRead, msg)
	if err != nil {
		return versioning.State{}, err
	}
	return readState(wire.NewReader(resp))
}
