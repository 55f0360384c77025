package history

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Op kinds in a history.
const (
	OpRead   = "read"
	OpWrite  = "write"
	OpDelete = "delete"
)

// Outcomes of an operation.
const (
	// OK: acknowledged (204 for writes and deletes; 200, 300 or 404 for
	// reads), by whichever node the client's failover reached.
	OK = "ok"
	// Fail: certainly not applied: refused by a node (400, 401, 403, 404,
	// 409, 413, a 503 that says nothing was written) or by every node
	// tried (connection refused, not ready, shutting down).
	Fail = "fail"
	// Info: indeterminate — a 504, 500 or 503 partial_write, a connection
	// lost after the request was sent, or no answer in time. A write with
	// this outcome may or may not have been applied.
	Info = "info"
)

// Op is one operation of a history: what a client asked, when, and what
// it got. Values are unique per write: "c<client>-<seq>" (the body may
// carry padding after a '|').
type Op struct {
	// Index is the op's position in the history (its order of invocation).
	Index int `json:"i"`
	// Client numbers the workload client that issued the op.
	Client int `json:"client"`
	// Kind is OpRead, OpWrite or OpDelete; Key the key it addressed.
	Kind string `json:"kind"`
	Key  string `json:"key"`
	// Node is the base URL of the node that answered the request (or,
	// if none did, the last one tried).
	Node string `json:"node"`
	// Start and End are invocation and completion times, in nanoseconds
	// since the run started.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// Status is the HTTP status (0 on a transport error; for a read, 200
	// for one sibling and 300 for several); Outcome one of
	// OK, Fail, Info; Error describes a failure.
	Status  int    `json:"status"`
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	// Value is the written value's ID (writes).
	Value string `json:"value,omitempty"`
	// Context is the token sent with a write or delete ("" for none), and
	// Covers the value IDs that context stands for: the values the
	// client's read returned, or its own previous write when it reuses the
	// context a PUT returned.
	Context string   `json:"context,omitempty"`
	Covers  []string `json:"covers,omitempty"`
	// Values are the value IDs a read returned (non-deleted siblings), and
	// Tombstones how many deleted siblings it saw.
	Values     []string `json:"values,omitempty"`
	Tombstones int      `json:"tombstones,omitempty"`
	// ReadContext is the context a read returned.
	ReadContext string `json:"read_context,omitempty"`
	// Level is the request's consistency parameters ("w=2&pw=2").
	Level string `json:"level,omitempty"`
	// Phase names the nemesis phase the op started in.
	Phase string `json:"phase"`
}

// Latency returns the op's duration.
func (o Op) Latency() time.Duration { return time.Duration(o.End - o.Start) }

// Phase is a stretch of the run with one fault state.
type Phase struct {
	// Name is "healthy", "healed" or the fault ("partition-halves", "kill n3", …).
	Name string `json:"name"`
	// Fault is true while a fault is active.
	Fault bool `json:"fault"`
	// Start and End in nanoseconds since the run started.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// Sides lists, for partitions, each side's node IDs.
	Sides [][]string `json:"sides,omitempty"`
}

// History is the record of a run, safe for concurrent appends.
type History struct {
	mu     sync.Mutex
	ops    []Op
	phases []Phase
}

// Add appends an op, assigning its Index, and returns it.
func (h *History) Add(op Op) Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.Index = len(h.ops)
	h.ops = append(h.ops, op)
	return op
}

// AddPhase appends a phase.
func (h *History) AddPhase(p Phase) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.phases = append(h.phases, p)
}

// Ops returns a copy of the ops.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}

// Phases returns a copy of the phases.
func (h *History) Phases() []Phase {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Phase(nil), h.phases...)
}

// WriteJSONL writes one op per line.
func (h *History) WriteJSONL(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, op := range h.Ops() {
		if err := enc.Encode(op); err != nil {
			return fmt.Errorf("write history: %w", err)
		}
	}
	return bw.Flush()
}

// ReadJSONL reads a history written by WriteJSONL.
func ReadJSONL(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ops []Op
	dec := json.NewDecoder(f)
	for dec.More() {
		var op Op
		if err := dec.Decode(&op); err != nil {
			return nil, fmt.Errorf("read history %s: %w", path, err)
		}
		ops = append(ops, op)
	}
	return ops, nil
}
