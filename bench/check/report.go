package check

// Latencies are latency percentiles in milliseconds, of OK ops only.
type Latencies struct {
	// P50, P95, P99 and P999 are the 50th, 95th, 99th and 99.9th
	// percentiles; Max the largest latency.
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// PhaseReport summarises the ops that started in one phase.
type PhaseReport struct {
	// Name and Fault are the phase's (history.Phase).
	Name  string `json:"name"`
	Fault bool   `json:"fault"`
	// Start and End are in seconds since the run started.
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	// Ops counts the ops that started in the phase, OK those that
	// succeeded.
	Ops int `json:"ops"`
	OK  int `json:"ok"`
	// ThroughputOpsPerSec is OK ops per second of the phase.
	ThroughputOpsPerSec float64 `json:"throughput_ops_per_sec"`
	// LatencyMs are the latencies of the phase's OK ops.
	LatencyMs Latencies `json:"latency_ms"`
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
	// Key and Value are what the write wrote; Op is its index in the
	// history.
	Key   string `json:"key"`
	Value string `json:"value"`
	Op    int    `json:"op"`
}

// StaleRead is a read, in a fault-free phase under strict quorums, that
// missed a write acknowledged before it started.
type StaleRead struct {
	// Key is the key read; ReadOp the read's index in the history and
	// WriteOp that of the write (or delete) it missed.
	Key     string `json:"key"`
	ReadOp  int    `json:"read_op"`
	WriteOp int    `json:"write_op"`
	// Missing is the value ID the read missed, or "the delete of <ID>"
	// when it returned a value an acknowledged delete had superseded.
	Missing string `json:"missing"`
}

// Report is the outcome of a run: what report.json holds.
type Report struct {
	// Config describes the run (Options.Config).
	Config map[string]any `json:"config"`

	// Ops counts the history's ops, OK those that succeeded and Failed the
	// others (outcomes Fail and Info).
	Ops    int `json:"ops"`
	OK     int `json:"ok"`
	Failed int `json:"failed"`

	// LostAcknowledgedWrites counts the entries of Lost.
	LostAcknowledgedWrites int         `json:"lost_acknowledged_writes"`
	Lost                   []LostWrite `json:"lost,omitempty"`
	// StaleReads counts the reads with an entry in Stale (a read that
	// missed several writes has several).
	StaleReads int         `json:"stale_reads"`
	Stale      []StaleRead `json:"stale,omitempty"`
	// InvalidReads counts the reads, and final states, that returned a
	// value no write of the key wrote or one that a write or delete had
	// superseded (resurrected, final state only); Invalid describes each.
	InvalidReads int      `json:"invalid_reads"`
	Invalid      []string `json:"invalid,omitempty"`

	// SiblingHistogram counts reads by number of siblings returned.
	SiblingHistogram map[int]int `json:"sibling_histogram"`
	// ConvergenceSeconds is the time from the final heal until every
	// node's Merkle roots agreed and no hints were pending (-1: not within
	// the timeout).
	ConvergenceSeconds float64 `json:"convergence_seconds"`

	// ThroughputOpsPerSec is OK ops per second from the first op's start
	// to the last op's end; LatencyMs the latencies of every OK op.
	ThroughputOpsPerSec float64   `json:"throughput_ops_per_sec"`
	LatencyMs           Latencies `json:"latency_ms"`
	// Phases has one entry per phase of the history, in its order.
	Phases []PhaseReport `json:"phases"`

	// Series are per-second buckets for the plots.
	Series []Bucket `json:"series"`

	// Checks lists every check with its verdict; Passed is their AND.
	Checks []Check `json:"checks"`
	Passed bool    `json:"passed"`
}

// Bucket is one second of the run: the ops that completed in it.
type Bucket struct {
	// Second counts seconds since the run started.
	Second int `json:"second"`
	// Ops counts the ops that completed in this second, OK those that
	// succeeded.
	Ops int `json:"ops"`
	OK  int `json:"ok"`
	// P50 and P99 are latency percentiles of the OK ops, in ms.
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
}

// Check is one verdict of the checker.
type Check struct {
	// Name is one of CheckLost, CheckValidity, CheckStale and
	// CheckConvergence.
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	// Detail gives the numbers behind the verdict.
	Detail string `json:"detail"`
}
