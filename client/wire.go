package client

// The HTTP API's headers, error codes and JSON shapes (docs/design.md
// §10), declared once here: the server (package api) encodes them, and
// the client, the CLI, the bench and the tests decode them. Fields may be
// added to these shapes but are never renamed.

// Headers of the client API.
const (
	// HeaderContext carries the opaque context token: sent with a write,
	// returned by reads and writes.
	HeaderContext = "X-Dotkv-Context"
	// HeaderDeleted marks a tombstone part ("true") in a 300
	// multipart/mixed answer of siblings.
	HeaderDeleted = "X-Dotkv-Deleted"
)

// Error codes: the "code" of an ErrorBody.
const (
	CodeBadKey           = "bad_key"            // 400: invalid key
	CodeBadParameter     = "bad_parameter"      // 400: invalid query parameter, level, timeout, content type or body
	CodeBadContext       = "bad_context"        // 400: a context token refused; nothing written
	CodeUnauthorized     = "unauthorized"       // 401: no valid bearer token
	CodeForbidden        = "forbidden"          // 403: the token's role does not allow the request
	CodeNotFound         = "not_found"          // 404: key absent or deleted; unknown endpoint
	CodeUnknownNode      = "unknown_node"       // 404: /cluster/remove/{id} of a node not in the ring
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeTooManySiblings  = "too_many_siblings"  // 409: the write would exceed --max-siblings; nothing written
	CodeNodeAlive        = "node_alive"         // 409: removing a node seen alive without force
	CodeNotMember        = "not_member"         // 409: a membership change of a node that is not a member
	CodeLastMember       = "last_member"        // 409: removing or leaving the last member
	CodeNotClustered     = "not_clustered"      // 409: a membership change of a node without gossip
	CodeTooLarge         = "too_large"          // 413: value above --max-value; nothing written
	CodeObjectTooLarge   = "object_too_large"   // 413: the write would exceed --max-record; nothing written
	CodeInternal         = "internal"           // 500: unexpected failure; for a write, outcome unknown
	CodeUnavailable      = "unavailable"        // 503: levels not met (Acks of Required); a write failed fast, nothing written
	CodePartialWrite     = "partial_write"      // 503: a write applied but acknowledged by too few replicas; outcome unknown
	CodeNotReady         = "not_ready"          // 503: the node has not joined its cluster yet; nothing written
	CodeShuttingDown     = "shutting_down"      // 503: the node is stopping; nothing written
	CodeTimeout          = "timeout"            // 504: the request's timeout passed; for a write, outcome unknown
)

// ErrorBody is the JSON body of every error answer: {"error": "...",
// "code": "..."} and, depending on the code, the fields that detail it.
type ErrorBody struct {
	// Error says what went wrong, for people.
	Error string `json:"error"`
	// Code names the error for programs (the Code constants).
	Code string `json:"code"`
	// Acks and Required: how many replicas answered of how many the
	// levels needed (unavailable).
	Acks     *int `json:"acks,omitempty"`
	Required *int `json:"required,omitempty"`
	// Context is the context token of a key's tombstones (not_found of a
	// deleted key): a write with it replaces them.
	Context string `json:"context,omitempty"`
	// A write refused for a limit of the key's record: the siblings the
	// key holds, and the bound (too_many_siblings) or the record's bytes
	// the write would have left and the bound (object_too_large).
	Siblings       *int   `json:"siblings,omitempty"`
	MaxSiblings    *int64 `json:"max_siblings,omitempty"`
	RecordBytes    *int64 `json:"record_bytes,omitempty"`
	MaxRecordBytes *int64 `json:"max_record_bytes,omitempty"`
}

// SiblingJSON is one sibling of a ReadJSON.
type SiblingJSON struct {
	// Value is the sibling's value (base64 in JSON; empty for a
	// tombstone).
	Value []byte `json:"value"`
	// ContentType is the value's content type ("" for a tombstone).
	ContentType string `json:"content_type"`
	// Deleted marks a tombstone.
	Deleted bool `json:"deleted"`
	// Dot is the event that wrote the sibling, "actor:counter": only in
	// /debug/replica/{key} answers.
	Dot string `json:"dot,omitempty"`
}

// ReadJSON is the answer of GET /kv/{key} with Accept: application/json,
// and of /debug/replica/{key}: the key's siblings and the context token to
// write back with.
type ReadJSON struct {
	Context  string        `json:"context"`
	Siblings []SiblingJSON `json:"siblings"`
}

// ClusterStatus is the answer of GET /cluster/status: how the node asked
// sees its cluster.
type ClusterStatus struct {
	// Node is the ID of the node that answered.
	Node string `json:"node"`
	// Members lists every node of the ring state, with its liveness.
	Members []Member `json:"members"`
	// Ring is the ring the node routes by.
	Ring Ring `json:"ring"`
	// HintsPending counts the hints the node holds, by target node.
	HintsPending map[string]int `json:"hints_pending"`
	// Transfers lists the node's partition transfers.
	Transfers []Transfer `json:"transfers"`
}

// Member returns the entry of node id, if st lists it.
func (st *ClusterStatus) Member(id string) (Member, bool) {
	for _, m := range st.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// Member is one node of a ClusterStatus.
type Member struct {
	ID     string `json:"id"`
	HTTP   string `json:"http"`
	RPC    string `json:"rpc,omitempty"`
	Gossip string `json:"gossip,omitempty"`
	// Liveness is alive, suspect or dead.
	Liveness string `json:"liveness"`
	// Status is joining, member, leaving, left or removed.
	Status string `json:"status"`
	// RingVersion is the ring version the node has applied.
	RingVersion uint64 `json:"ring_version"`
	// Partitions counts the partitions the node owns.
	Partitions int `json:"partitions"`
}

// Ring is the ring of a ClusterStatus.
type Ring struct {
	Partitions int      `json:"partitions"`
	N          int      `json:"n"`
	Members    []string `json:"members"`
	Version    uint64   `json:"version"`
}

// Transfer is one partition transfer of a ClusterStatus.
type Transfer struct {
	Partition uint32 `json:"partition"`
	From      string `json:"from"`
	To        string `json:"to"`
	// State is queued, running, confirming, done, failed or paused.
	State string `json:"state"`
	Keys  int64  `json:"keys"`
	Bytes int64  `json:"bytes"`
}

// Preflist is the answer of GET /cluster/preflist/{key}: the key's
// partition and the nodes that hold it.
type Preflist struct {
	Key       string   `json:"key"`
	Partition uint32   `json:"partition"`
	Primaries []string `json:"primaries"`
	Fallbacks []string `json:"fallbacks"`
}

// Change is the 202 answer of POST /cluster/leave and
// POST /cluster/remove/{id}: the node whose decommission started.
type Change struct {
	Node   string `json:"node"`
	Status string `json:"status"`
}

// Health is the answer of GET /healthz.
type Health struct {
	Node string `json:"node"`
	// Status is ok or leaving (200), joining, left or removed (503).
	Status string `json:"status"`
	// Version is the node's dotkv version, if it reports one.
	Version string `json:"version,omitempty"`
}

// AAE is the answer of GET /admin/aae: the Merkle root of every
// partition the node replicates (partition number → 16 hex digits).
type AAE struct {
	Node  string            `json:"node"`
	Roots map[string]string `json:"roots"`
}

// Faults is the answer of /admin/fault: the nodes the fault filter
// blocks.
type Faults struct {
	Blocked []string `json:"blocked"`
}

// FaultChange is the body of POST /admin/fault (Block) and DELETE
// /admin/fault (Heal; empty: heal all).
type FaultChange struct {
	Block []string `json:"block,omitempty"`
	Heal  []string `json:"heal,omitempty"`
}
