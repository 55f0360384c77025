package replica

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what the coordinator does besides answering: read
// repairs and hints. A nil *Metrics counts nothing.
type Metrics struct {
	readRepairs  prometheus.Counter
	hintsStored  prometheus.Counter
	hintsRefused prometheus.Counter
}

// NewMetrics registers the coordinator's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		readRepairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dotkv_read_repairs_total",
			Help: "Replicas sent the merged state after a read found them behind.",
		}),
		hintsStored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dotkv_hints_stored_total",
			Help: "Hints this coordinator kept for replicas that did not acknowledge.",
		}),
		hintsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dotkv_hints_refused_total",
			Help: "Hints this coordinator could not keep (hint store full or failing); anti-entropy covers them.",
		}),
	}
	reg.MustRegister(m.readRepairs, m.hintsStored, m.hintsRefused)
	return m
}

func (m *Metrics) readRepair() {
	if m != nil {
		m.readRepairs.Inc()
	}
}

func (m *Metrics) hintStored() {
	if m != nil {
		m.hintsStored.Inc()
	}
}

func (m *Metrics) hintRefused() {
	if m != nil {
		m.hintsRefused.Inc()
	}
}
