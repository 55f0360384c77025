package replica

import (
	"context"
	"slices"

	"github.com/dotkv/dotkv/internal/wire"
)

// RPC handlers: what a node does for its peers' requests (see wire.go for
// the messages).

func (c *Coordinator) handlePut(ctx context.Context, _ string, msg []byte) ([]byte, error) {
	req, err := decodePut(msg, c.cfg.N)
	if err != nil {
		return nil, err
	}
	if c.enter() != nil {
		// Closing: nothing was applied, so the forwarder may try another
		// primary.
		return encodePutResult(nil, errNotPrimary), nil
	}
	defer c.leave()
	r := c.cluster.View()
	p := r.PartitionOf(req.key)
	if !c.cluster.Ready() || !r.IsReader(p, c.self) {
		// Nothing was applied: the forwarder may safely try another primary.
		return encodePutResult(nil, errNotPrimary), nil
	}
	// ctx carries the forwarder's deadline (the transport sends it).
	vctx, err := c.coordinateAsPrimary(ctx, r, write{p: p, key: req.key, vctx: req.vctx, sib: req.sib, o: WriteOptions{W: req.w, PW: req.pw}})
	return encodePutResult(vctx, err), nil
}

func (c *Coordinator) handleRead(_ context.Context, _ string, req []byte) ([]byte, error) {
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer c.leave()
	r := wire.NewReader(req)
	epoch, p, key, asFallback := r.U64(), r.U32(), r.Bytes(), r.Byte()
	if err := r.Done(); err != nil {
		return nil, err
	}
	if asFallback == 0 && !c.owns(p, epoch, true) {
		return nil, errNotOwner
	}
	st, err := c.readLocal(asFallback == 0, p, key)
	if err != nil {
		return nil, err
	}
	return appendState(nil, st)
}

func (c *Coordinator) handleReplicate(_ context.Context, _ string, req []byte) ([]byte, error) {
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer c.leave()
	r := wire.NewReader(req)
	epoch := r.U64()
	owners, err := readOwners(r)
	if err != nil {
		return nil, err
	}
	p, key := r.U32(), r.Bytes()
	st, err := readState(r)
	if err != nil {
		return nil, err
	}
	if !c.owns(p, epoch, false) {
		return nil, errNotOwner
	}
	if v := c.cluster.View(); v.Epoch() > epoch { // owns refused p ≥ Q
		// The sender's view is older. Its copy counts only if the sender
		// planned the write on every write owner this view has: else a
		// node it does not know of (a new owner) would lack the write.
		for _, m := range v.Primaries(p) {
			if !slices.Contains(owners, m) {
				return nil, errStaleView
			}
		}
	}
	if _, err := c.store.Merge(p, key, st); err != nil {
		return nil, err
	}
	return nil, nil
}

// handleHint keeps a copy for a primary this node stands in for. It never
// enters this node's records, so it is never served as primary data.
func (c *Coordinator) handleHint(_ context.Context, _ string, req []byte) ([]byte, error) {
	// The sender's epoch is not checked: a hint is kept for its target,
	// and re-targeted to the partition's owners if the target leaves.
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer c.leave()
	r := wire.NewReader(req)
	_, target, p, key := r.U64(), r.String(), r.U32(), r.Bytes()
	st, err := readState(r)
	if err != nil {
		return nil, err
	}
	if int(p) >= c.cluster.View().Partitions() {
		return nil, errNotOwner // no node owns a partition past Q
	}
	if target == c.self {
		_, err = c.store.Merge(p, key, st)
	} else {
		_, err = c.store.PutHint(target, p, key, st)
	}
	return nil, err
}

// owns reports whether this node may take a copy of (or, for a read,
// answer for) partition p from a node whose view has the given epoch: it
// is an owner in its own view, or its view is older than the sender's (the
// sender knows better). A node still receiving p never answers reads of
// it: it may not hold the key yet.
func (c *Coordinator) owns(p uint32, epoch uint64, read bool) bool {
	v := c.cluster.View()
	switch {
	case int(p) >= v.Partitions():
		return false
	case read && slices.Contains(v.Receiving(p), c.self):
		return false
	case v.IsPrimary(p, c.self):
		return true
	}
	return v.Epoch() < epoch
}
