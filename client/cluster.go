package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// The cluster and admin endpoints are about the node that answers: give
// Via to ask a given node. Reads of them are retried on the next endpoint
// like Get; membership changes are sent once.

// call sends a request about the cluster with a JSON body in (nil: none)
// and decodes the answer of a status in ok into out.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, in any, ok []int, out any, opts []Option) error {
	o := c.options(opts)
	rq := &request{method: method, path: path, query: q, ok: ok, idempotent: method == http.MethodGet || o.idempotent,
		timeout: o.timeout, via: o.via}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("dotkv: %s %s: %w", method, path, err)
		}
		rq.body, rq.header = b, http.Header{"Content-Type": {"application/json"}}
	}
	resp, err := c.do(ctx, rq)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(resp.body, out); err != nil {
		return fmt.Errorf("dotkv: %s %s at %s: decode the %d answer: %w", method, path, resp.endpoint, resp.status, err)
	}
	return nil
}

// Status returns GET /cluster/status: the members, their liveness and the
// ring as the node that answers sees them.
func (c *Client) Status(ctx context.Context, opts ...Option) (*ClusterStatus, error) {
	var st ClusterStatus
	if err := c.call(ctx, http.MethodGet, "/cluster/status", nil, nil, []int{http.StatusOK}, &st, opts); err != nil {
		return nil, err
	}
	return &st, nil
}

// Preflist returns GET /cluster/preflist/{key}: the key's partition,
// primaries and fallbacks.
func (c *Client) Preflist(ctx context.Context, key string, opts ...Option) (*Preflist, error) {
	var p Preflist
	if err := c.call(ctx, http.MethodGet, "/cluster/preflist/"+url.PathEscape(key), nil, nil, []int{http.StatusOK}, &p, opts); err != nil {
		return nil, err
	}
	return &p, nil
}

// Health returns GET /healthz, which a node answers whether it serves
// (Serving) or not (503, with its status): it takes no token.
func (c *Client) Health(ctx context.Context, opts ...Option) (*Health, error) {
	var h Health
	if err := c.call(ctx, http.MethodGet, "/healthz", nil, nil, []int{http.StatusOK, http.StatusServiceUnavailable}, &h, opts); err != nil {
		return nil, err
	}
	return &h, nil
}

// Serving reports whether the node serves clients: status ok, or leaving
// while it hands its partitions off.
func (h *Health) Serving() bool { return h.Status == "ok" || h.Status == "leaving" }

// Leave asks the node that answers (give Via) to leave the cluster
// (POST /cluster/leave): it hands its partitions off, then leaves.
func (c *Client) Leave(ctx context.Context, opts ...Option) (*Change, error) {
	var ch Change
	if err := c.call(ctx, http.MethodPost, "/cluster/leave", nil, nil, []int{http.StatusAccepted}, &ch, opts); err != nil {
		return nil, err
	}
	return &ch, nil
}

// Remove takes node id out of the ring (POST /cluster/remove/{id}); a node
// seen alive is refused (409 node_alive) unless force.
func (c *Client) Remove(ctx context.Context, id string, force bool, opts ...Option) (*Change, error) {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	var ch Change
	if err := c.call(ctx, http.MethodPost, "/cluster/remove/"+url.PathEscape(id), q, nil, []int{http.StatusAccepted}, &ch, opts); err != nil {
		return nil, err
	}
	return &ch, nil
}

// AAE returns GET /admin/aae: the Merkle roots of the partitions the node
// replicates.
func (c *Client) AAE(ctx context.Context, opts ...Option) (*AAE, error) {
	var a AAE
	if err := c.call(ctx, http.MethodGet, "/admin/aae", nil, nil, []int{http.StatusOK}, &a, opts); err != nil {
		return nil, err
	}
	return &a, nil
}

// Block makes the node's fault filter (nodes started with
// --fault-injection) drop all traffic to and from nodes (POST
// /admin/fault), and returns the nodes it blocks. It is idempotent.
func (c *Client) Block(ctx context.Context, nodes []string, opts ...Option) (*Faults, error) {
	var f Faults
	if err := c.call(ctx, http.MethodPost, "/admin/fault", nil, FaultChange{Block: nodes}, []int{http.StatusOK}, &f, append(opts, Idempotent())); err != nil {
		return nil, err
	}
	return &f, nil
}

// Heal unblocks nodes in the node's fault filter, every node if none is
// given (DELETE /admin/fault), and returns the nodes still blocked. It is
// idempotent.
func (c *Client) Heal(ctx context.Context, nodes []string, opts ...Option) (*Faults, error) {
	var in any
	if len(nodes) > 0 {
		in = FaultChange{Heal: nodes}
	}
	var f Faults
	if err := c.call(ctx, http.MethodDelete, "/admin/fault", nil, in, []int{http.StatusOK}, &f, append(opts, Idempotent())); err != nil {
		return nil, err
	}
	return &f, nil
}
