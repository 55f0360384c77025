package replica

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

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
func (c *Coordinator) Put(ctx context.Context, key []byte, vctx versioning.VersionVector, sib versioning.Sibling, o WriteOptions) (versioning.VersionVector, error) {
	if !c.cluster.Ready() {
		return nil, ErrNotReady
	}
	sib.Modified = c.cfg.Now().UnixMilli()
	r := c.cluster.Ring()
	p := r.PartitionOf(key)
	prims := r.Primaries(p)
	if slices.Contains(prims, c.self) {
		return c.coordinate(ctx, r, p, key, vctx, sib, o, -1)
	}
	vc, err, delivered := c.forward(ctx, prims, putRequest{key: key, vctx: vctx, sib: sib, w: o.W, pw: o.PW})
	if delivered || c.cfg.DisableHints {
		return vc, err
	}
	// No primary could be reached: stand in for the first one.
	return c.coordinate(ctx, r, p, key, vctx, sib, o, 0)
}

// forward sends the write to the first reachable primary, trying the next
// only when the request certainly never reached the previous one (so a
// write is never coordinated twice). delivered is false when no primary
// took the request.
func (c *Coordinator) forward(ctx context.Context, prims []string, req putRequest) (_ versioning.VersionVector, _ error, delivered bool) {
	need, _ := needs(len(prims), req.w, req.pw, c.cfg.W)
	// Alive primaries first, suspect ones last: a paused primary would hold
	// the request until its deadline.
	order := slices.Clone(prims)
	slices.SortStableFunc(order, func(a, b string) int {
		return cmp.Compare(boolInt(c.cluster.Suspect(a)), boolInt(c.cluster.Suspect(b)))
	})
	for _, node := range order {
		if c.cluster.Dead(node) {
			continue
		}
		if dl, ok := ctx.Deadline(); ok {
			req.timeout = time.Until(dl)
		}
		resp, err := c.peer.Call(ctx, node, methodPut, req.encode())
		if err != nil {
			if transport.NotDelivered(err) {
				c.log.Debug("forward write: primary unreachable, trying next", "node", node, "err", err)
				continue
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("forward write to %s: %w", node, errTimeout), true
			}
			return nil, fmt.Errorf("forward write to %s (outcome unknown): %w", node, err), true
		}
		vctx, err := decodePutResult(resp)
		if errors.Is(err, errNotPrimary) {
			continue // not ready, or rings disagree for a moment; nothing was applied
		}
		return vctx, err, true
	}
	return nil, &UnavailableError{Op: "write", Kind: "replicas", Acks: 0, Required: need}, false
}

func (c *Coordinator) handlePut(ctx context.Context, _ string, msg []byte) ([]byte, error) {
	req, err := decodePut(msg, c.cfg.N)
	if err != nil {
		return nil, err
	}
	r := c.cluster.Ring()
	p := r.PartitionOf(req.key)
	if !c.cluster.Ready() || !r.IsPrimary(p, c.self) {
		// Nothing was applied: the forwarder may safely try another primary.
		return encodePutResult(nil, errNotPrimary), nil
	}
	if req.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.timeout)
		defer cancel()
	}
	vctx, err := c.coordinate(ctx, r, p, req.key, req.vctx, req.sib, WriteOptions{W: req.w, PW: req.pw}, -1)
	return encodePutResult(vctx, err), nil
}

type slotResult struct {
	ok, primary bool
}

// coordinate applies a write here and replicates it. standIn < 0: this
// node is a primary and writes its records; otherwise it is a fallback
// holding primary prims[standIn]'s copy as a hint.
func (c *Coordinator) coordinate(ctx context.Context, r *ring.Ring, p uint32, key []byte, vctx versioning.VersionVector, sib versioning.Sibling, o WriteOptions, standIn int) (versioning.VersionVector, error) {
	prims := r.Primaries(p)
	need, needP := needs(len(prims), o.W, o.PW, c.cfg.W)
	pool := c.newPool(r.Fallbacks(p), false)
	slots := c.plan(prims, pool, standIn)
	reach, primReach := 0, 0
	for _, s := range slots {
		if s.node != "" {
			reach++
			if s.direct() {
				primReach++
			}
		}
	}
	if err := levelsMet("write", reach, primReach, need, needP); err != nil {
		return nil, err // fail fast, before writing anything
	}

	var st versioning.State
	var dot versioning.Dot
	var err error
	if standIn < 0 {
		st, dot, err = c.store.Write(p, key, vctx, sib)
	} else {
		st, dot, err = c.writeAsFallback(prims[standIn], p, key, vctx, sib)
	}
	if err != nil {
		return nil, fmt.Errorf("write %q locally: %w", key, err)
	}
	newCtx := vctx.AddDot(dot)

	// Replication outlives the request: replicas that answer after the
	// client got its answer still get the write, and any that never
	// answers within the request's deadline gets a hint.
	results := make(chan slotResult, len(slots))
	var remote []replicaSlot
	for _, s := range slots {
		switch {
		case s.node == c.self:
		case s.node == "":
			c.storeHint(s.primary, p, key, st)
		default:
			remote = append(remote, s)
		}
	}
	if len(remote) > 0 {
		rctx, cancel := c.detached(ctx)
		var sends sync.WaitGroup
		for _, s := range remote {
			sends.Add(1)
			c.wg.Go(func() {
				defer sends.Done()
				results <- c.deliverCopy(rctx, s, pool, p, key, st)
			})
		}
		c.wg.Go(func() { sends.Wait(); cancel() })
	}

	acks, primaryAcks := 1, 0
	if standIn < 0 {
		primaryAcks = 1
	}
	pending := reach - 1
	for levelsMet("write", acks, primaryAcks, need, needP) != nil {
		if pending == 0 {
			err := levelsMet("write", acks, primaryAcks, need, needP)
			return nil, err
		}
		select {
		case res := <-results:
			pending--
			if res.ok {
				acks++
				if res.primary {
					primaryAcks++
				}
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("write %q: %d of %d acks (outcome unknown): %w", key, acks, need, errTimeout)
		}
	}
	return newCtx, nil
}

// writeAsFallback applies a write this node coordinates without being a
// primary: a fresh dot of its fallback actor on an exact update, kept here
// as a hint for primary.
func (c *Coordinator) writeAsFallback(primary string, p uint32, key []byte, vctx versioning.VersionVector, sib versioning.Sibling) (versioning.State, versioning.Dot, error) {
	dot, err := c.store.FallbackDot(vctx)
	if err != nil {
		return versioning.State{}, versioning.Dot{}, err
	}
	sib.Dot = dot
	st, err := versioning.State{}.UpdateExact(vctx, sib)
	if err != nil {
		return versioning.State{}, versioning.Dot{}, err
	}
	merged, err := c.store.PutHint(primary, p, key, st)
	if err != nil {
		return versioning.State{}, versioning.Dot{}, err
	}
	c.cfg.Metrics.hintStored()
	return merged, dot, nil
}

// deliverCopy gives slot s's copy to its node; if that fails, to the next
// free fallback (as a hint for the primary); and if no one takes it, keeps
// a hint here. Only the first two count as acknowledgements.
func (c *Coordinator) deliverCopy(ctx context.Context, s replicaSlot, pool *fallbackPool, p uint32, key []byte, st versioning.State) slotResult {
	node := s.node
	for node != "" {
		err := c.sendCopy(ctx, node, s.primary, p, key, st)
		if err == nil {
			return slotResult{ok: true, primary: node == s.primary}
		}
		c.log.Debug("replicate failed", "key", string(key), "node", node, "for", s.primary, "err", err)
		if ctx.Err() != nil {
			break
		}
		node = pool.take()
	}
	c.storeHint(s.primary, p, key, st)
	return slotResult{}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
