package node

import (
	"fmt"
	"sync/atomic"

	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/versioning"
)

// contextKeys holds the keys that sign and verify the clients' context
// tokens (docs/design.md §4.8); nil until the node knows its cluster's
// secret, which it does before it is ready.
type contextKeys struct {
	p atomic.Pointer[versioning.ContextKeys]
}

// initContextKeys sets the keys from Config.ClusterSecrets or, on a
// single node, from the secret recorded in its data directory (generated
// on its first start). In a cluster without ClusterSecrets, gossip sets
// them (onSecret).
func (n *Node) initContextKeys(clustered bool) error {
	switch {
	case n.cfg.ClusterSecrets != nil:
		return n.setContextKeys(n.cfg.ClusterSecrets)
	case !clustered:
		secret, err := gossip.LoadOrCreateSecret(n.store)
		if err != nil {
			return err
		}
		return n.setContextKeys([][]byte{secret})
	}
	return nil
}

func (n *Node) setContextKeys(secrets [][]byte) error {
	k, err := versioning.NewContextKeys(secrets...)
	if err != nil {
		return fmt.Errorf("cluster secret: %w", err)
	}
	n.keys.p.Store(k)
	return nil
}

// onSecret is gossip's OnSecret: the cluster secret it loaded, generated
// or adopted.
func (n *Node) onSecret(secrets [][]byte) {
	if err := n.setContextKeys(secrets); err != nil {
		n.log.Error("cluster secret from gossip refused", "err", err)
	}
}
