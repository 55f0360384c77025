package api

import (
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics counts requests and their latency by route, method and status.
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	// series caches each label set's counter and histogram: the vectors'
	// WithLabelValues hashes the labels and looks them up on every call.
	// The map is copied on write; it holds the few label sets requests
	// have had (routes and methods are fixed, and statuses are few).
	series atomic.Pointer[map[seriesKey]series]
	mu     sync.Mutex // serialises writers of series
}

type seriesKey struct {
	route, method string
	status        int
}

type series struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dotkv_http_requests_total",
			Help: "HTTP requests served, by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dotkv_http_request_duration_seconds",
			Help:    "HTTP request latency, by route, method and status.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100 µs .. 3.3 s
		}, []string{"route", "method", "status"}),
	}
	m.series.Store(&map[seriesKey]series{})
	reg.MustRegister(m.requests, m.latency)
	return m
}

func (m *httpMetrics) observe(route, method string, status int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodHead, http.MethodPost:
	default:
		method = "other" // bound label cardinality
	}
	k := seriesKey{route, method, status}
	s, ok := (*m.series.Load())[k]
	if !ok {
		s = m.addSeries(k)
	}
	s.requests.Inc()
	s.latency.Observe(d.Seconds())
}

// addSeries returns the series of k, adding it to the cache.
func (m *httpMetrics) addSeries(k seriesKey) series {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.series.Load()
	if s, ok := old[k]; ok { // added since the caller looked
		return s
	}
	code := strconv.Itoa(k.status)
	s := series{
		requests: m.requests.WithLabelValues(k.route, k.method, code),
		latency:  m.latency.WithLabelValues(k.route, k.method, code),
	}
	next := maps.Clone(old)
	next[k] = s
	m.series.Store(&next)
	return s
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
