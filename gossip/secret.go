package gossip

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// The cluster secret signs the clients' context tokens (docs/design.md
// §4.8). With --cluster-secret-file (Config.ExternalSecret) the node has
// it before it starts and gossip leaves it alone. Otherwise:
//
//   - the node that forms a cluster generates one (32 random bytes, dated
//     with the time it was made);
//   - a node that joins adopts the cluster's, from a push-pull exchange
//     (the join itself is one), and is not ready before it has it;
//   - every node records it in its data directory (SetMeta, synced)
//     before it uses it, and carries it in its push-pull state;
//   - a node whose data directory holds ring state but no secret (written
//     by a dotkv without secrets) generates one at start.
//
// Two nodes can thus meet with different secrets: nodes upgraded from a
// dotkv without secrets, or a first node that lost its data directory and
// formed a cluster alone before it heard from the others. Both keep the
// older secret (the earlier date; the smaller bytes on a tie), so the
// cluster converges on one, and the established cluster's wins over a
// lone node's. A node that gives its own secret up still verifies the
// tokens it signed with it, until it restarts.
//
// The secret travels only in push-pull state (LocalState, on join and
// every PushPullInterval), which memberlist sends as a TCP stream; the
// broadcasts piggybacked on UDP gossip carry ring entries without it
// (encodeState), and node metadata holds only addresses. With gossip
// keys (Config.Keys) memberlist encrypts every stream, push-pull
// included, and accepts none unencrypted, so the secret never crosses
// the network readable (TestGossipKeyEncryptsEverythingOnTheWire checks
// the bytes on the wire). Without keys it crosses it in plain text: run
// such a cluster on a trusted network, or give every node
// --cluster-secret-file (Config.ExternalSecret: gossip then never sends
// a secret).

// secretKey is the Store metadata name of the cluster secret: its date
// (Unix nanoseconds, 8 bytes big-endian), then its bytes.
const secretKey = "cluster/secret"

// secretLen is the length of a generated secret.
const secretLen = 32

// Bounds of a secret received or loaded (versioning's MinSecretLen and
// MaxSecretLen: gossip does not import versioning).
const minSecretLen, maxSecretLen = 16, 1024

func validSecret(s []byte) bool { return len(s) >= minSecretLen && len(s) <= maxSecretLen }

// clusterSecret is a secret and the time it was generated.
type clusterSecret struct {
	key  []byte
	born int64 // Unix nanoseconds
}

// older reports whether a wins over b: made earlier, or (made at the same
// time, which only two nodes' clocks can make happen) smaller.
func (a clusterSecret) older(b clusterSecret) bool {
	if a.born != b.born {
		return a.born < b.born
	}
	return bytes.Compare(a.key, b.key) < 0
}

func (a clusterSecret) equal(b clusterSecret) bool {
	return a.born == b.born && bytes.Equal(a.key, b.key)
}

func generateSecret() clusterSecret {
	s := make([]byte, secretLen)
	_, _ = rand.Read(s) // never fails (crypto/rand's documentation)
	return clusterSecret{key: s, born: time.Now().UnixNano()}
}

func (a clusterSecret) encode() []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(a.born)), a.key...)
}

func decodeSecret(b []byte) (clusterSecret, bool) {
	if len(b) < 8 || !validSecret(b[8:]) {
		return clusterSecret{}, false
	}
	return clusterSecret{key: bytes.Clone(b[8:]), born: int64(binary.BigEndian.Uint64(b))}, true
}

// LoadOrCreateSecret returns the cluster secret recorded in store,
// generating and recording one first if there is none: the secret of a
// node that runs without gossip, a one-member cluster.
func LoadOrCreateSecret(store Store) ([]byte, error) {
	b, ok, err := store.GetMeta(secretKey)
	if err != nil {
		return nil, fmt.Errorf("gossip: load the cluster secret: %w", err)
	}
	if s, valid := decodeSecret(b); ok && valid {
		return s.key, nil
	}
	s := generateSecret()
	if err := store.SetMeta(secretKey, s.encode()); err != nil {
		return nil, fmt.Errorf("gossip: record the cluster secret: %w", err)
	}
	return s.key, nil
}

// loadSecret reads the recorded secret, if any (load calls it).
func (m *Membership) loadSecret() error {
	if m.cfg.ExternalSecret || m.cfg.Store == nil {
		return nil
	}
	b, ok, err := m.cfg.Store.GetMeta(secretKey)
	if err != nil {
		return fmt.Errorf("gossip: load the cluster secret: %w", err)
	}
	if s, valid := decodeSecret(b); ok && valid {
		m.secret.Store(&s)
		if m.cfg.OnSecret != nil {
			m.cfg.OnSecret([][]byte{s.key})
		}
	}
	return nil
}

// ensureSecret generates and records a secret if this node has none (it
// forms a cluster, or its data directory predates secrets).
func (m *Membership) ensureSecret() error {
	if m.cfg.ExternalSecret || m.secret.Load() != nil {
		return nil
	}
	return m.setSecret(generateSecret(), nil)
}

// setSecret records s as the cluster secret (previous: secrets that
// still verify), publishes it, and refreshes the push-pull state. Only
// Start and run call it.
func (m *Membership) setSecret(s clusterSecret, previous [][]byte) error {
	if m.cfg.Store != nil {
		if err := m.cfg.Store.SetMeta(secretKey, s.encode()); err != nil {
			return fmt.Errorf("gossip: record the cluster secret: %w", err)
		}
	}
	m.secret.Store(&s)
	m.own.prevSecrets = previous
	if m.cfg.OnSecret != nil {
		m.cfg.OnSecret(append([][]byte{s.key}, previous...))
	}
	if m.local.Load() != nil {
		m.storeLocal()
	}
	return nil
}

// mergeSecret takes a secret received from a peer: adopted if this node
// has none or if it is the older of two (see above).
func (m *Membership) mergeSecret(remote *clusterSecret) {
	if m.cfg.ExternalSecret || remote == nil {
		return
	}
	cur := m.secret.Load()
	var previous [][]byte
	switch {
	case cur == nil:
		m.log.Info("gossip: adopted the cluster secret")
	case cur.equal(*remote) || !remote.older(*cur):
		return
	default:
		previous = append(slices.Clone(m.own.prevSecrets), cur.key)
		m.log.Warn("gossip: a peer has an older cluster secret: adopting it; tokens signed with this node's own still verify here until it restarts")
	}
	if err := m.setSecret(*remote, previous); err != nil {
		m.log.Error("gossip: cluster secret not adopted", "err", err)
	}
}

// storeLocal publishes the encoded state memberlist's push-pull sends.
func (m *Membership) storeLocal() {
	var secret *clusterSecret
	if !m.cfg.ExternalSecret {
		secret = m.secret.Load()
	}
	m.local.Store(new(encodeWire(m.own.state, secret)))
}

// needSecret reports whether this node cannot serve yet for want of the
// cluster secret.
func (m *Membership) needSecret() bool {
	return !m.cfg.ExternalSecret && m.secret.Load() == nil
}
