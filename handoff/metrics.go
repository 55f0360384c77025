package handoff

import "github.com/prometheus/client_golang/prometheus"

// metrics are the engine's Prometheus metrics; they are registered only
// when Config.Registerer is set, and count either way.
type metrics struct {
	active                prometheus.Gauge
	bytes, keys, failures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dotkv_transfers_active",
			Help: "Partition transfers this node is receiving now.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dotkv_transfer_bytes_total",
			Help: "Bytes of record states this node received in partition transfers.",
		}),
		keys: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dotkv_transfer_keys_total",
			Help: "Records this node received in partition transfers.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dotkv_transfer_failures_total",
			Help: "Partition transfer attempts that failed (and are retried); refusals of busy sources are not counted.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.active, m.bytes, m.keys, m.failures)
	}
	return m
}
