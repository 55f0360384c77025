package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/dotkv/dotkv/client"
	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/handoff"
	"github.com/dotkv/dotkv/ring"
)

// ClusterView is what the /cluster endpoints need (*gossip.Membership).
type ClusterView interface {
	Members() []gossip.Member
	View() *ring.View
	// Leave starts this node's graceful decommission (POST /cluster/leave).
	Leave() error
	// Remove takes node id out of the ring (POST /cluster/remove/{id});
	// without force a node seen alive is refused (gossip.ErrNodeAlive).
	Remove(id string, force bool) error
}

// TransferLister reports this node's partition transfers
// (*handoff.Manager) for /cluster/status.
type TransferLister interface {
	Transfers() []handoff.Transfer
}

// HintCounter reports pending hints per target node (*storage.Store).
type HintCounter interface {
	HintCounts() map[string]int
}

// AAEView reports Merkle roots of partitions (*repair.Trees).
type AAEView interface {
	Roots(partitions []uint32) []uint64
}

// FaultFilter is the fault filter /admin/fault drives (*transport.Filter).
type FaultFilter interface {
	Block(ids ...string)
	Heal(ids ...string)
	Blocked() []string
}

func (s *Server) clusterStatus(w http.ResponseWriter, _ *http.Request) {
	r := s.cfg.Cluster.View()
	out := client.ClusterStatus{
		Node:         s.cfg.NodeID,
		Members:      []client.Member{},
		Ring:         client.Ring{Partitions: r.Partitions(), N: r.N(), Members: r.Members(), Version: r.Epoch()},
		HintsPending: map[string]int{},
		Transfers:    []client.Transfer{},
	}
	if s.cfg.Transfers != nil {
		for _, t := range s.cfg.Transfers.Transfers() {
			out.Transfers = append(out.Transfers, client.Transfer{
				Partition: t.Partition, From: t.From, To: t.To, State: t.State, Keys: t.Keys, Bytes: t.Bytes,
			})
		}
	}
	if s.cfg.Hints != nil {
		for target, n := range s.cfg.Hints.HintCounts() {
			out.HintsPending[target] = n
		}
	}
	for _, m := range s.cfg.Cluster.Members() {
		out.Members = append(out.Members, client.Member{
			ID: m.ID, HTTP: m.HTTP, RPC: m.RPC, Gossip: m.Gossip, RingVersion: m.Applied,
			Liveness: string(m.Liveness), Status: string(m.Status), Partitions: len(r.Owned(m.ID)),
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) clusterPreflist(w http.ResponseWriter, r *http.Request, escapedKey string) {
	if !readOnly(w, r, "/cluster/preflist/{key}") {
		return
	}
	key, e := parseKey(escapedKey)
	if e != nil {
		writeBad(w, e)
		return
	}
	rg := s.cfg.Cluster.View()
	p := rg.PartitionOf(key)
	writeJSON(w, http.StatusOK, client.Preflist{
		Key: string(key), Partition: p,
		Primaries: append([]string{}, rg.Primaries(p)...),
		Fallbacks: append([]string{}, rg.Fallbacks(p)...),
	})
}

// adminFault serves the fault filter: POST {"block": [ids]} adds to the
// blocked set, DELETE heals (all, or {"heal": [ids]}), GET shows it.
func (s *Server) adminFault(w http.ResponseWriter, r *http.Request) {
	f := s.cfg.Faults
	if f == nil {
		writeError(w, http.StatusNotFound, codeNotFound, "fault injection is off (start the node with --fault-injection)")
		return
	}
	var body client.FaultChange
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost, http.MethodDelete:
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			writeError(w, http.StatusBadRequest, codeBadParameter, "read body: "+err.Error())
			return
		}
		if len(data) > 0 {
			if err := json.Unmarshal(data, &body); err != nil {
				writeError(w, http.StatusBadRequest, codeBadParameter, "body must be JSON like {\"block\": [\"n2\"]}: "+err.Error())
				return
			}
		}
		if r.Method == http.MethodPost {
			if len(body.Block) == 0 {
				writeError(w, http.StatusBadRequest, codeBadParameter, `POST /admin/fault needs {"block": [node IDs]}`)
				return
			}
			f.Block(body.Block...)
			s.log.Warn("fault filter: blocking", "nodes", body.Block)
		} else {
			f.Heal(body.Heal...)
			s.log.Warn("fault filter: healed", "nodes", body.Heal)
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, "method "+r.Method+" not allowed on /admin/fault")
		return
	}
	writeJSON(w, http.StatusOK, client.Faults{Blocked: f.Blocked()})
}

// SingleNode returns the cluster view of a node running without gossip:
// it is the only member of its ring and always alive.
func SingleNode(id, httpAddr string, r *ring.View) ClusterView {
	return singleNode{id: id, http: httpAddr, r: r}
}

type singleNode struct {
	id, http string
	r        *ring.View
}

func (s singleNode) View() *ring.View { return s.r }

func (s singleNode) Members() []gossip.Member {
	return []gossip.Member{{ID: s.id, HTTP: s.http, Status: gossip.StatusMember, Liveness: gossip.Alive, Applied: s.r.Epoch()}}
}

// ErrNotClustered is what a single node's Leave and Remove return: without
// gossip there is no cluster whose membership could change.
var ErrNotClustered = errors.New("this node runs without gossip (no --gossip): a single node cannot change its cluster's membership")

func (singleNode) Leave() error              { return ErrNotClustered }
func (singleNode) Remove(string, bool) error { return ErrNotClustered }

// adminAAE returns the Merkle root of every partition this node replicates
// (16 hex digits; all zeros for an empty partition), so that a checker can
// tell when replicas agree.
func (s *Server) adminAAE(w http.ResponseWriter, r *http.Request) {
	if !readOnly(w, r, "/admin/aae") {
		return
	}
	out := client.AAE{Node: s.cfg.NodeID, Roots: map[string]string{}}
	if s.cfg.AAE != nil {
		parts := s.cfg.Cluster.View().Owned(s.cfg.NodeID)
		for i, root := range s.cfg.AAE.Roots(parts) {
			out.Roots[strconv.FormatUint(uint64(parts[i]), 10)] = fmt.Sprintf("%016x", root)
		}
	}
	writeJSON(w, http.StatusOK, out)
}
