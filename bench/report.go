package bench

// Latencies are latency percentiles in milliseconds.
type Latencies struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// PhaseReport summarises the ops that started in one phase.
type PhaseReport struct {
	Name                string    `json:"name"`
	Fault               bool      `json:"fault"`
	Start               float64   `json:"start"` // seconds since the run started
	End                 float64   `json:"end"`
	Ops                 int       `json:"ops"`
	OK                  int       `json:"ok"`
	ThroughputOpsPerSec float64   `json:"throughput_ops_per_sec"`
	LatencyMs           Latencies `json:"latency_ms"`
	// Availability is the share of ops that succeeded, per side of a
	// partition (node ID set → share) and per consistency level.
	AvailabilityBySide  map[string]float64 `json:"availability_by_side,omitempty"`
	AvailabilityByLevel map[string]float64 `json:"availability_by_level,omitempty"`
	// AvailabilityBySideAndLevel keys are "side | level".
	AvailabilityBySideAndLevel map[string]float64 `json:"availability_by_side_and_level,omitempty"`
}

// LostWrite is an acknowledged write the final state neither holds nor
// supersedes.
type LostWrite struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Op    int    `json:"op"`
}

// StaleRead is a read, in a fault-free phase under strict quorums, that
// missed a write acknowledged before it started.
type StaleRead struct {
	Key     string `json:"key"`
	ReadOp  int    `json:"read_op"`
	WriteOp int    `json:"write_op"`
	Missing string `json:"missing"`
}

// Report is the outcome of a run: what report.json holds.
type Report struct {
	Config map[string]any `json:"config"`

	Ops    int `json:"ops"`
	OK     int `json:"ok"`
	Failed int `json:"failed"` // Fail + Info

	LostAcknowledgedWrites int         `json:"lost_acknowledged_writes"`
	Lost                   []LostWrite `json:"lost,omitempty"`
	StaleReads             int         `json:"stale_reads"`
	Stale                  []StaleRead `json:"stale,omitempty"`
	// InvalidReads are reads that returned a value no write wrote.
	InvalidReads int      `json:"invalid_reads"`
	Invalid      []string `json:"invalid,omitempty"`

	// SiblingHistogram counts reads by number of siblings returned.
	SiblingHistogram map[int]int `json:"sibling_histogram"`
	// ConvergenceSeconds is the time from the final heal until every
	// node's Merkle roots agreed and no hints were pending (-1: not within
	// the timeout).
	ConvergenceSeconds float64 `json:"convergence_seconds"`

	ThroughputOpsPerSec float64       `json:"throughput_ops_per_sec"`
	LatencyMs           Latencies     `json:"latency_ms"`
	Phases              []PhaseReport `json:"phases"`

	// Series are per-second buckets for the plots.
	Series []Bucket `json:"series"`

	// Checks lists every check with its verdict; Passed is their AND.
	Checks []Check `json:"checks"`
	Passed bool    `json:"passed"`
}

// Bucket is one second of the run.
type Bucket struct {
	Second int     `json:"second"`
	Ops    int     `json:"ops"`
	OK     int     `json:"ok"`
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
}

// Check is one verdict of the checker.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}
