package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var labelRE = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// metricValue returns the value of the sample of name whose labels include
// every pair of want (in the Prometheus text format), 0 if there is none.
// It fails the test if more than one sample matches.
func metricValue(t *testing.T, text []byte, name string, want map[string]string) float64 {
	t.Helper()
	var (
		val   float64
		found int
	)
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels, num, ok := strings.Cut(rest, "} ")
		if !ok {
			t.Fatalf("malformed sample line %q", line)
		}
		got := map[string]string{}
		for _, m := range labelRE.FindAllStringSubmatch(labels, -1) {
			got[m[1]] = m[2]
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(num)[0], 64)
		if err != nil {
			t.Fatalf("sample line %q: %v", line, err)
		}
		val = f
		found++
	}
	if found > 1 {
		t.Fatalf("%s%v matches %d samples", name, want, found)
	}
	return val
}

func (n *node) metrics() []byte {
	n.t.Helper()
	r := n.do(http.MethodGet, "/metrics", nil, nil)
	if r.status != http.StatusOK {
		n.t.Fatalf("GET /metrics = %v", r)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		n.t.Fatalf("/metrics Content-Type = %q, want the text format", ct)
	}
	return r.body
}

func TestMetricsCountRequests(t *testing.T) {
	n := newNode(t)
	n.put("warm", "x", ctText, "") // every label set below is then known to /metrics or absent

	sets := []struct {
		labels map[string]string
		count  int
		do     func()
	}{
		{map[string]string{"route": "kv", "method": "PUT", "status": "204"}, 3, func() { n.put("m", "v", ctText, "") }},
		{map[string]string{"route": "kv", "method": "GET", "status": "404"}, 2, func() { n.get("missing") }},
		{map[string]string{"route": "kv", "method": "GET", "status": "200"}, 4, func() { n.get("warm") }},
		{map[string]string{"route": "kv", "method": "GET", "status": "400"}, 1, func() { n.do("GET", "/kv/x?foo=1", nil, nil) }},
		{map[string]string{"route": "kv", "method": "DELETE", "status": "404"}, 1, func() { n.del("missing", "") }},
		{map[string]string{"route": "kv", "method": "other", "status": "405"}, 2, func() { n.do("PATCH", "/kv/x", nil, nil) }},
		{map[string]string{"route": "healthz", "method": "GET", "status": "200"}, 1, func() { n.do("GET", "/healthz", nil, nil) }},
		{map[string]string{"route": "other", "method": "GET", "status": "404"}, 1, func() { n.do("GET", "/nope", nil, nil) }},
	}

	before := n.metrics()
	for _, s := range sets {
		for range s.count {
			s.do()
		}
	}
	after := n.metrics()

	for _, s := range sets {
		b := metricValue(t, before, "dotkv_http_requests_total", s.labels)
		a := metricValue(t, after, "dotkv_http_requests_total", s.labels)
		if a-b != float64(s.count) {
			t.Errorf("dotkv_http_requests_total%v went from %v to %v, want +%d", s.labels, b, a, s.count)
		}
		bc := metricValue(t, before, "dotkv_http_request_duration_seconds_count", s.labels)
		ac := metricValue(t, after, "dotkv_http_request_duration_seconds_count", s.labels)
		if ac-bc != float64(s.count) {
			t.Errorf("dotkv_http_request_duration_seconds_count%v went from %v to %v, want +%d", s.labels, bc, ac, s.count)
		}
		inf := map[string]string{"le": "+Inf"}
		for k, v := range s.labels {
			inf[k] = v
		}
		if got := metricValue(t, after, "dotkv_http_request_duration_seconds_bucket", inf); got != ac {
			t.Errorf("+Inf bucket of %v = %v, want the count %v", s.labels, got, ac)
		}
	}
	// Labels are quoted as in the exposition format.
	for _, want := range []string{
		`dotkv_http_requests_total{method="PUT",route="kv",status="204"}`,
		`dotkv_http_requests_total{method="GET",route="kv",status="404"}`,
		`dotkv_http_request_duration_seconds_bucket{method="PUT",route="kv",status="204",le="0.0001"}`,
		"# TYPE dotkv_http_requests_total counter",
		"# TYPE dotkv_http_request_duration_seconds histogram",
	} {
		if !bytes.Contains(after, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The /metrics request itself is counted (seen by the next scrape).
	if got := metricValue(t, n.metrics(), "dotkv_http_requests_total", map[string]string{"route": "metrics", "method": "GET", "status": "200"}); got < 2 {
		t.Errorf("metrics route counted %v times, want at least 2", got)
	}
}

func TestHealthz(t *testing.T) {
	n := newNode(t)
	r := n.do(http.MethodGet, "/healthz", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /healthz = %v", r)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var body map[string]string
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if body["status"] != "ok" || body["node"] != "n1" || len(body) != 2 {
		t.Errorf("body = %v, want status ok and node n1", body)
	}
}
