package replica

import (
	"context"

	"github.com/dotkv/dotkv/internal/wire"
)

// RPC handlers: what a node does for its peers' requests (see wire.go for
// the messages).

func (c *Coordinator) handlePut(ctx context.Context, _ string, msg []byte) ([]byte, error) {
	req, err := decodePut(msg, c.cfg.N)
	if err != nil {
		return nil, err
	}
	r := c.cluster.View()
	p := r.PartitionOf(req.key)
	if !c.cluster.Ready() || !r.IsPrimary(p, c.self) {
		// Nothing was applied: the forwarder may safely try another primary.
		return encodePutResult(nil, errNotPrimary), nil
	}
	// ctx carries the forwarder's deadline (the transport sends it).
	vctx, err := c.coordinateAsPrimary(ctx, r, write{p: p, key: req.key, vctx: req.vctx, sib: req.sib, o: WriteOptions{W: req.w, PW: req.pw}})
	return encodePutResult(vctx, err), nil
}

func (c *Coordinator) handleRead(_ context.Context, _ string, req []byte) ([]byte, error) {
	r := wire.NewReader(req)
	p, key, asFallback := r.U32(), r.Bytes(), r.Byte()
	if err := r.Done(); err != nil {
		return nil, err
	}
	st, err := c.readLocal(asFallback == 0, p, key)
	if err != nil {
		return nil, err
	}
	return appendState(nil, st)
}

func (c *Coordinator) handleReplicate(_ context.Context, _ string, req []byte) ([]byte, error) {
	r := wire.NewReader(req)
	p, key := r.U32(), r.Bytes()
	st, err := readState(r)
	if err != nil {
		return nil, err
	}
	if _, err := c.store.Merge(p, key, st); err != nil {
		return nil, err
	}
	return nil, nil
}

// handleHint keeps a copy for a primary this node stands in for. It never
// enters this node's records, so it is never served as primary data.
func (c *Coordinator) handleHint(_ context.Context, _ string, req []byte) ([]byte, error) {
	r := wire.NewReader(req)
	target, p, key := r.String(), r.U32(), r.Bytes()
	st, err := readState(r)
	if err != nil {
		return nil, err
	}
	if target == c.self {
		_, err = c.store.Merge(p, key, st)
	} else {
		_, err = c.store.PutHint(target, p, key, st)
	}
	return nil, err
}
