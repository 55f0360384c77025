package replica

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/transport"
	"github.com/dotkv/dotkv/versioning"
)

// Put writes sib (a value or a tombstone) with the client's context vctx
// and returns the context of the new version: vctx plus the new dot, so
// that a client writing again with it replaces only what it has seen.
//
// A primary of the key coordinates: this node if it is one, else the first
// live primary it can reach (one hop). When no primary can be reached and
// hints are on, this node coordinates as a fallback.
//
// A write that would leave the key's record beyond the store's limits is
// refused with a *LimitError (see storage.Limits) and changes nothing; a
// forwarded write carries the refusal back. A closed coordinator refuses
// every write with ErrClosed.
func (c *Coordinator) Put(ctx context.Context, key []byte, vctx versioning.VersionVector, sib versioning.Sibling, o WriteOptions) (versioning.VersionVector, error) {
	if !c.cluster.Ready() {
		return nil, ErrNotReady
	}
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer c.leave()
	sib.Modified = c.cfg.Now().UnixMilli()
	r := c.cluster.View()
	w := write{p: r.PartitionOf(key), key: key, vctx: vctx, sib: sib, o: o}
	if r.IsReader(w.p, c.self) {
		return c.coordinateAsPrimary(ctx, r, w)
	}
	// An owner still receiving the partition does not coordinate: its copy
	// may lack what the client's context refers to.
	vc, err, delivered := c.forward(ctx, r.Readers(w.p), putRequest{key: key, vctx: vctx, sib: sib, w: o.W, pw: o.PW})
	if delivered || c.cfg.DisableHints {
		return vc, err
	}
	// No primary could be reached: stand in for the first one.
	return c.coordinateAsFallback(ctx, r, w)
}

// write is one client write being coordinated.
type write struct {
	p    uint32
	key  []byte
	vctx versioning.VersionVector
	sib  versioning.Sibling
	o    WriteOptions
}

// forward sends the write to the first reachable primary, trying the next
// only when the request certainly never reached the previous one (so a
// write is never coordinated twice). delivered is false when no primary
// took the request.
func (c *Coordinator) forward(ctx context.Context, prims []string, req putRequest) (_ versioning.VersionVector, _ error, delivered bool) {
	need, _ := needs(len(prims), req.w, req.pw, c.cfg.W)
	for _, node := range c.forwardOrder(prims) {
		resp, err := c.peer.Call(ctx, node, methodPut, req.encode())
		if err != nil {
			if transport.NotDelivered(err) {
				c.log.Debug("forward write: primary unreachable, trying next", "node", node, "err", err)
				continue
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("forward write to %s: %w", node, errTimeout), true
			}
			return nil, fmt.Errorf("forward write to %s: %w: %w", node, ErrOutcomeUnknown, err), true
		}
		vctx, err := decodePutResult(resp)
		if errors.Is(err, errNotPrimary) {
			continue // not ready, or rings disagree for a moment; nothing was applied
		}
		return vctx, err, true
	}
	return nil, &UnavailableError{Op: "write", Kind: "replicas", Acks: 0, Required: need}, false
}

// forwardOrder returns the primaries a write may be forwarded to: not
// known dead, alive ones first and suspect ones last (a paused primary
// would hold the request until its deadline), else in preference order.
func (c *Coordinator) forwardOrder(prims []string) []string {
	order := slices.DeleteFunc(slices.Clone(prims), c.cluster.Dead)
	slices.SortStableFunc(order, func(a, b string) int {
		return cmp.Compare(boolInt(c.cluster.Suspect(a)), boolInt(c.cluster.Suspect(b)))
	})
	return order
}

// coordinateAsPrimary applies a write here, as a primary of its key, with
// a fresh dot of this node's actor, and replicates it.
func (c *Coordinator) coordinateAsPrimary(ctx context.Context, r *ring.View, w write) (versioning.VersionVector, error) {
	return c.coordinate(ctx, r, w, c.planner().forPrimary, func() (versioning.State, versioning.Dot, func() error, error) {
		return c.store.WriteDeferSync(w.p, w.key, w.vctx, w.sib)
	})
}

// coordinateAsFallback applies a write that no primary could take: this
// node holds the first primary's copy as a hint, written with a dot of its
// fallback actor (an exact update, see versioning.State.UpdateExact), and
// replicates it like a primary would.
func (c *Coordinator) coordinateAsFallback(ctx context.Context, r *ring.View, w write) (versioning.VersionVector, error) {
	primary := r.Primaries(w.p)[0]
	return c.coordinate(ctx, r, w, c.planner().forFallback, func() (versioning.State, versioning.Dot, func() error, error) {
		dot, err := c.store.FallbackDot(w.vctx)
		if err != nil {
			return versioning.State{}, versioning.Dot{}, nil, err
		}
		sib := w.sib
		sib.Dot = dot
		st, err := versioning.State{}.UpdateExact(w.vctx, sib)
		if err != nil {
			return versioning.State{}, versioning.Dot{}, nil, err
		}
		merged, err := c.store.PutHint(primary, w.p, w.key, st)
		if err != nil {
			return versioning.State{}, versioning.Dot{}, nil, err
		}
		c.cfg.Metrics.hintStored()
		return merged, dot, nil, nil // a hint is durable when PutHint returns
	})
}

// coordinate drives a write: plan the copies, fail fast (before writing
// anything) if the levels cannot be met, apply the write locally, send the
// new state to every other slot's node, and count acknowledgements until
// the levels are met, can no longer be, or ctx ends. apply may return
// before its write is durable: then its sync (waited for while the copies
// travel) must succeed before this node's own copy counts.
func (c *Coordinator) coordinate(ctx context.Context, r *ring.View, w write,
	makePlan func(prims, fallbacks []string) *plan,
	apply func() (versioning.State, versioning.Dot, func() error, error),
) (versioning.VersionVector, error) {
	prims := r.Primaries(w.p)
	pl := makePlan(prims, r.Fallbacks(w.p))
	// While owners are added, the write needs as many more acks as there
	// are new owners, so that it counts only once they hold it too.
	extra := r.Extra(w.p)
	need, needP := needs(len(prims)-extra, w.o.W, w.o.PW, c.cfg.W)
	need += extra
	if needP > 0 {
		needP += extra
	}
	if err := pl.unreachable("write", need, needP); err != nil {
		return nil, err
	}
	st, dot, sync, err := apply()
	if err != nil {
		return nil, fmt.Errorf("write %q locally: %w", w.key, err)
	}
	t := newTally("write", need, needP, pl)
	results := c.replicate(ctx, r, pl, w.p, w.key, st, sync)
	for !t.met() {
		if expired(ctx) { // sends also fail once the deadline passed
			return nil, fmt.Errorf("write %q: %d of %d acks (outcome unknown): %w", w.key, t.acks, need, errTimeout)
		}
		if t.hopeless() {
			err := countReady(t, results).err()
			err.Written = true // applied here, and sent
			return nil, err
		}
		select {
		case res := <-results:
			t.add(res.ok, res.primary, res.direct)
		case <-ctx.Done():
		}
	}
	return w.vctx.AddDot(dot), nil
}

// countReady adds the results that have already arrived to t.
func countReady(t *tally, results <-chan slotResult) *tally {
	for {
		select {
		case res := <-results:
			t.add(res.ok, res.primary, res.direct)
		default:
			return t
		}
	}
}

// slotResult is one slot's outcome in a write.
type slotResult struct {
	ok      bool // some node acknowledged the copy
	primary bool // that node was the slot's primary
	direct  bool // the slot was planned on its primary
}

// replicate sends st to every slot's node and reports each slot's outcome
// on the returned channel, which has room for all of them: the remote
// slots as they answer, and this node's own slot once sync (if not nil)
// says the local write is durable — it waits while the copies travel. A
// slot no node holds gets a hint here. Replication outlives the request:
// replicas that answer after the client got its answer still get the
// write, and any that never answers within the request's deadline gets a
// hint.
func (c *Coordinator) replicate(ctx context.Context, v *ring.View, pl *plan, p uint32, key []byte, st versioning.State, sync func() error) <-chan slotResult {
	results := make(chan slotResult, len(pl.slots))
	var remote []slot
	var own *slot
	for i, s := range pl.slots {
		switch s.node {
		case c.self: // applied already
			own = &pl.slots[i]
		case "":
			c.storeHint(s.primary, p, key, st)
		default:
			remote = append(remote, s)
		}
	}
	c.sendCopies(ctx, v, pl, remote, p, key, st, results)
	durable := sync == nil
	if !durable {
		if err := sync(); err != nil {
			c.log.Error("local write not durable", "key", string(key), "err", err)
		} else {
			durable = true
		}
	}
	if own != nil {
		results <- slotResult{ok: durable, primary: own.direct(), direct: own.direct()}
	}
	return results
}

// sendCopies sends st to the remote slots' nodes, each in its own
// goroutine, which reports the slot's outcome on results.
func (c *Coordinator) sendCopies(ctx context.Context, v *ring.View, pl *plan, remote []slot, p uint32, key []byte, st versioning.State, results chan<- slotResult) {
	if len(remote) == 0 {
		return
	}
	enc, err := st.AppendBinary(nil) // once, for every copy
	if err != nil {
		c.log.Warn("replicate: encode the state", "key", string(key), "err", err)
		for _, s := range remote {
			c.storeHint(s.primary, p, key, st)
			results <- slotResult{direct: s.direct()}
		}
		return
	}
	rctx, cancel := c.detached(ctx)
	var left atomic.Int32 // the last send to finish cancels rctx
	left.Store(int32(len(remote)))
	for _, s := range remote {
		c.wg.Go(func() {
			results <- c.deliverCopy(rctx, v, s, pl, p, key, st, enc)
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
}

// deliverCopy gives slot s's copy to its node; if that fails, to the next
// spare fallback (as a hint for the primary); and if no one takes it, keeps
// a hint here. Only the first two count as acknowledgements. A node that
// refuses the copy because this node's view is stale is not stood in for:
// the write then lacks that acknowledgement, as it must, since it was not
// sent to every owner the newer view has.
func (c *Coordinator) deliverCopy(ctx context.Context, v *ring.View, s slot, pl *plan, p uint32, key []byte, st versioning.State, enc []byte) slotResult {
	for node := s.node; node != ""; node = pl.takeSpare() {
		err := c.sendCopy(ctx, v, node, s.primary, p, key, st, enc)
		if err == nil {
			return slotResult{ok: true, primary: node == s.primary, direct: s.direct()}
		}
		c.log.Debug("replicate failed", "key", string(key), "node", node, "for", s.primary, "err", err)
		if ctx.Err() != nil || refused(err) {
			break
		}
	}
	c.storeHint(s.primary, p, key, st)
	return slotResult{direct: s.direct()}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
