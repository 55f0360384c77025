package handoff

// Transfer states, as reported in Transfer.State.
const (
	StateQueued     = "queued"     // waiting for a slot or a source
	StateRunning    = "running"    // pulling batches
	StateConfirming = "confirming" // scan done, Merkle confirmation running
	StateDone       = "done"       // received and reported
	StateFailed     = "failed"     // last attempt failed; retried later
	StatePaused     = "paused"     // transfers are paused (limit 0)
)

// Transfer describes one incoming partition transfer of this node: the
// JSON of an entry of /cluster/status's transfers list.
type Transfer struct {
	Partition uint32 `json:"partition"`
	From      string `json:"from"`
	To        string `json:"to"`
	State     string `json:"state"` // queued|running|confirming|done|failed|paused
	Keys      int64  `json:"keys"`
	Bytes     int64  `json:"bytes"`
}
