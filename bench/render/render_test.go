package render

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/dotkv/dotkv/bench/check"
	"github.com/dotkv/dotkv/bench/history"
)

// renderPhase is one phase of the hand-built sample run.
type renderPhase struct {
	name       string
	fault      bool
	start, end int // seconds
}

var renderPhases = []renderPhase{
	{"healthy", false, 0, 15},
	{"partition-halves", true, 15, 28},
	{"healed", false, 28, 38},
	{"kill n3", true, 38, 48},
	{"healed", false, 48, 60},
}

// sampleRun builds a 60-second run by hand: a history of synthetic ops
// over five phases (two faults), and the report a checker would make of
// it, passing or failing.
func renderSampleRun(pass bool) (check.Report, *history.History) {
	rng := rand.New(rand.NewPCG(7, 42))
	h := &history.History{}
	for _, p := range renderPhases {
		h.AddPhase(history.Phase{Name: p.name, Fault: p.fault, Start: int64(p.start) * 1e9, End: int64(p.end) * 1e9,
			Sides: renderSides(p.name)})
	}
	levels := []string{"w=2&pw=2", "w=1"}
	for sec := 0; sec < 60; sec++ {
		ph := renderPhaseAt(sec)
		n := 45 + rng.IntN(10)
		for i := 0; i < n; i++ {
			start := int64(sec)*1e9 + int64(rng.IntN(1e9))
			ms := math.Exp(rng.NormFloat64()*0.45) * 1.6 // ~1.6 ms median
			outcome, status := history.OK, 204
			node := fmt.Sprintf("http://127.0.0.1%d:8080", 1+rng.IntN(5))
			level := levels[rng.IntN(2)]
			switch ph.name {
			case "partition-halves":
				ms *= 2.5
				if strings.HasSuffix(node, "13:8080") || strings.HasSuffix(node, "14:8080") || strings.HasSuffix(node, "15:8080") {
					if level == "w=2&pw=2" || rng.IntN(3) == 0 {
						outcome, status, ms = history.Info, 504, 900+rng.Float64()*200
					}
				}
			case "kill n3":
				ms *= 1.4
				if strings.HasSuffix(node, "13:8080") {
					outcome, status, ms = history.Info, 0, 0.3+rng.Float64()*0.4
				}
			}
			if rng.IntN(400) == 0 {
				ms *= 20 // the odd GC pause
			}
			kind := history.OpRead
			if rng.IntN(2) == 0 {
				kind = history.OpWrite
			}
			h.Add(history.Op{Client: i % 16, Kind: kind, Key: fmt.Sprintf("k%d", rng.IntN(100)), Node: node,
				Start: start, End: start + int64(ms*1e6), Status: status, Outcome: outcome,
				Level: level, Phase: ph.name})
		}
	}
	ops := h.Ops()

	r := check.Report{
		Config: map[string]any{
			"nodes": 5, "n": 3, "r": 2, "w": 2, "concurrency": 16, "duration": "60s",
			"keys": 100, "distribution": "zipfian", "value_size": 64, "seed": 42,
			"nemesis": []string{"partition-halves", "kill n3"},
		},
		SiblingHistogram: map[int]int{1: 1412, 2: 37, 3: 4},
	}
	var allOK []float64
	for _, o := range ops {
		r.Ops++
		if o.Outcome == history.OK {
			r.OK++
			allOK = append(allOK, renderLatencyMs(o))
		} else {
			r.Failed++
		}
	}
	r.LatencyMs = renderLatencies(allOK)
	r.ThroughputOpsPerSec = float64(r.OK) / 60

	for i, p := range renderPhases {
		pr := check.PhaseReport{Name: p.name, Fault: p.fault, Start: float64(p.start), End: float64(p.end)}
		var lat []float64
		side := map[string][2]int{}
		level := map[string][2]int{}
		for _, o := range ops {
			if renderPhaseIndex(o.Start) != i {
				continue
			}
			pr.Ops++
			ok := 0
			if o.Outcome == history.OK {
				pr.OK++
				ok = 1
				lat = append(lat, renderLatencyMs(o))
			}
			l := level[o.Level]
			level[o.Level] = [2]int{l[0] + ok, l[1] + 1}
			if p.name == "partition-halves" {
				s := "n1,n2"
				if !strings.HasSuffix(o.Node, "11:8080") && !strings.HasSuffix(o.Node, "12:8080") {
					s = "n3,n4,n5"
				}
				c := side[s]
				side[s] = [2]int{c[0] + ok, c[1] + 1}
			}
		}
		pr.ThroughputOpsPerSec = float64(pr.OK) / float64(p.end-p.start)
		pr.LatencyMs = renderLatencies(lat)
		if p.fault {
			pr.AvailabilityByLevel = renderShares(level)
			if len(side) > 0 {
				pr.AvailabilityBySide = renderShares(side)
			}
		}
		r.Phases = append(r.Phases, pr)
	}

	for sec := 0; sec < 60; sec++ {
		b := check.Bucket{Second: sec}
		var lat []float64
		for _, o := range ops {
			if int(o.Start/1e9) != sec {
				continue
			}
			b.Ops++
			if o.Outcome == history.OK {
				b.OK++
				lat = append(lat, renderLatencyMs(o))
			}
		}
		l := renderLatencies(lat)
		b.P50, b.P99 = l.P50, l.P99
		r.Series = append(r.Series, b)
	}

	if pass {
		r.ConvergenceSeconds = 2.4
		r.Checks = []check.Check{
			{Name: "no lost acknowledged writes", Passed: true, Detail: "0 of 1,473 acknowledged writes lost"},
			{Name: "valid reads", Passed: true, Detail: "every value read was written"},
			{Name: "no stale reads", Passed: true, Detail: "0 stale of 612 strict-quorum reads in fault-free phases"},
			{Name: "convergence", Passed: true, Detail: "converged 2.4 s after the final heal"},
		}
		r.Passed = true
		return r, h
	}
	r.ConvergenceSeconds = -1
	r.LostAcknowledgedWrites = 3
	r.Lost = []check.LostWrite{{Key: "k12", Value: "c3-88", Op: 1021}, {Key: "k40", Value: "c7-91", Op: 1109}, {Key: "k40", Value: "c1-93", Op: 1130}}
	r.StaleReads = 150
	for i := 0; i < 150; i++ {
		r.Stale = append(r.Stale, check.StaleRead{Key: fmt.Sprintf("k%d", i%100), ReadOp: 2000 + i, WriteOp: 1990 + i, Missing: fmt.Sprintf("c%d-%d", i%16, i)})
	}
	r.InvalidReads = 1
	r.Invalid = []string{`op 2210 read k7 = "c9-999": no write wrote it`}
	r.Checks = []check.Check{
		{Name: "no lost acknowledged writes", Passed: false, Detail: "3 of 1,473 acknowledged writes lost"},
		{Name: "valid reads", Passed: false, Detail: "1 invalid read"},
		{Name: "no stale reads", Passed: false, Detail: "150 stale reads"},
		{Name: "convergence", Passed: false, Detail: "not converged within 60 s"},
		{Name: "availability", Passed: true, Detail: "informational"},
	}
	return r, h
}

func renderSides(name string) [][]string {
	if name == "partition-halves" {
		return [][]string{{"n1", "n2"}, {"n3", "n4", "n5"}}
	}
	return nil
}

func renderPhaseAt(sec int) renderPhase {
	for _, p := range renderPhases {
		if sec >= p.start && sec < p.end {
			return p
		}
	}
	return renderPhases[len(renderPhases)-1]
}

func renderPhaseIndex(startNs int64) int {
	sec := int(startNs / 1e9)
	for i, p := range renderPhases {
		if sec >= p.start && sec < p.end {
			return i
		}
	}
	return len(renderPhases) - 1
}

func renderLatencyMs(o history.Op) float64 { return float64(o.End-o.Start) / 1e6 }

func renderLatencies(ms []float64) check.Latencies {
	if len(ms) == 0 {
		return check.Latencies{}
	}
	s := append([]float64(nil), ms...)
	sort.Float64s(s)
	q := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return check.Latencies{P50: q(0.5), P95: q(0.95), P99: q(0.99), P999: q(0.999), Max: s[len(s)-1]}
}

func renderShares(m map[string][2]int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = float64(v[0]) / float64(v[1])
	}
	return out
}

func TestWriteFiles(t *testing.T) {
	for _, pass := range []bool{true, false} {
		t.Run(fmt.Sprint("pass=", pass), func(t *testing.T) {
			r, h := renderSampleRun(pass)
			dir := filepath.Join(t.TempDir(), "not", "yet")
			if err := WriteFiles(dir, r, h); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"report.json", "history.jsonl", "report.html"} {
				st, err := os.Stat(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if st.Size() == 0 {
					t.Errorf("%s is empty", f)
				}
			}

			raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(raw, []byte("\n  \"ops\": ")) {
				t.Errorf("report.json is not indented:\n%.200s", raw)
			}
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"ops", "ok", "failed", "lost_acknowledged_writes", "stale_reads",
				"convergence_seconds", "throughput_ops_per_sec", "latency_ms", "phases"} {
				if _, ok := m[k]; !ok {
					t.Errorf("report.json lacks %q", k)
				}
			}
			if m["ops"] != float64(r.Ops) || m["passed"] != pass {
				t.Errorf("report.json: ops %v passed %v, want %d %v", m["ops"], m["passed"], r.Ops, pass)
			}
			checkRenderLatencyKeys(t, "latency_ms", m["latency_ms"])
			phases, _ := m["phases"].([]any)
			if len(phases) != len(renderPhases) {
				t.Fatalf("report.json has %d phases, want %d", len(phases), len(renderPhases))
			}
			for i, p := range phases {
				pm, _ := p.(map[string]any)
				for _, k := range []string{"name", "start", "end", "ops", "ok", "throughput_ops_per_sec", "latency_ms"} {
					if _, ok := pm[k]; !ok {
						t.Errorf("phase %d lacks %q", i, k)
					}
				}
				checkRenderLatencyKeys(t, fmt.Sprintf("phases[%d].latency_ms", i), pm["latency_ms"])
			}

			ops, err := history.ReadJSONL(filepath.Join(dir, "history.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			if len(ops) != r.Ops {
				t.Errorf("history.jsonl has %d ops, want %d", len(ops), r.Ops)
			}

			page, err := os.ReadFile(filepath.Join(dir, "report.html"))
			if err != nil {
				t.Fatal(err)
			}
			// With the history at hand the page adds a latency histogram.
			if !bytes.Contains(page, []byte(`class="bar-ok"`)) {
				t.Error("report.html has no latency histogram")
			}
			checkPageWellFormed(t, string(page))
		})
	}
}

func checkRenderLatencyKeys(t *testing.T, where string, v any) {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Errorf("%s is %T, not an object", where, v)
		return
	}
	for _, k := range []string{"p50", "p95", "p99", "p999", "max"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s lacks %q", where, k)
		}
	}
}

func TestWriteFilesNilHistory(t *testing.T) {
	r, _ := renderSampleRun(true)
	dir := t.TempDir()
	if err := WriteFiles(dir, r, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "history.jsonl")); err != nil || st.Size() != 0 {
		t.Errorf("history.jsonl: %v, %v; want an empty file", st, err)
	}
}

var renderBandLabelRE = regexp.MustCompile(`<text class="band-label"[^>]*>([^<]*)</text>`)

func TestWriteHTML(t *testing.T) {
	const hostile = `<script>alert("pwned")</script>`
	for _, pass := range []bool{true, false} {
		t.Run(fmt.Sprint("pass=", pass), func(t *testing.T) {
			r, h := renderSampleRun(pass)
			phases := h.Phases()
			// A hostile fault phase, check and config value.
			phases = append(phases, history.Phase{Name: hostile, Fault: true, Start: 55e9, End: 58e9})
			r.Phases = append(r.Phases, check.PhaseReport{Name: hostile, Fault: true, Start: 55, End: 58, Ops: 1})
			r.Checks = append(r.Checks, check.Check{Name: "hostile", Passed: true, Detail: hostile})
			r.Config["note"] = hostile

			var b bytes.Buffer
			if err := WriteHTML(&b, r, phases); err != nil {
				t.Fatal(err)
			}
			page := b.String()
			checkPageWellFormed(t, page)

			if strings.Contains(page, "<script") || strings.Contains(page, `alert("pwned")`) {
				t.Error("hostile phase name not escaped")
			}
			if !strings.Contains(page, "&lt;script&gt;") {
				t.Error("escaped hostile name missing")
			}
			if !strings.Contains(page, "<svg") {
				t.Error("no <svg")
			}

			want, other := "PASS", "FAIL"
			if !pass {
				want, other = other, want
			}
			if !strings.Contains(page, `<div class="verdict" id="verdict">`+want+`</div>`) {
				t.Errorf("verdict %s missing", want)
			}
			if strings.Contains(page, `id="verdict">`+other) {
				t.Errorf("verdict %s shown", other)
			}
			if !strings.Contains(page, `<title>dotkv bench — `+want+`</title>`) {
				t.Error("page title lacks the verdict")
			}

			// One shaded band per fault phase in each of the two time charts,
			// each labelled with the fault's name.
			var faults []string
			for _, p := range phases {
				if p.Fault {
					faults = append(faults, p.Name)
				}
			}
			if got := strings.Count(page, `<rect class="band"`); got != 2*len(faults) {
				t.Errorf("%d bands, want %d (two charts × %d faults)", got, 2*len(faults), len(faults))
			}
			labels := map[string]int{}
			for _, m := range renderBandLabelRE.FindAllStringSubmatch(page, -1) {
				labels[html.UnescapeString(m[1])]++
			}
			for _, f := range faults {
				if labels[f] != 2 {
					t.Errorf("fault %q labelled %d times, want 2 (labels: %v)", f, labels[f], labels)
				}
			}
			for _, healthy := range []string{"healthy", "healed"} {
				if labels[healthy] != 0 {
					t.Errorf("fault-free phase %q shaded", healthy)
				}
			}

			// Key numbers and sections.
			for _, s := range []string{"Throughput", "p99 latency", "Lost writes", "Stale reads", "Convergence",
				"Latency percentiles by phase", "Phases", "Checks", "Run configuration", "partition-halves",
				"n3,n4,n5", "w=2&amp;pw=2", "zipfian"} {
				if !strings.Contains(page, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			if pass {
				if !strings.Contains(page, "No consistency violations found") {
					t.Error("pass headline missing")
				}
				return
			}
			for _, s := range []string{"k12", "c3-88", "c9-999", "showing the first 100 of 150", "not converged",
				`<span class="pill fail">FAIL</span>`} {
				if !strings.Contains(page, html.EscapeString(s)) && !strings.Contains(page, s) {
					t.Errorf("failing page lacks %q", s)
				}
			}
			// Stale reads are listed up to the first 100: read ops #2000 to #2099.
			if !strings.Contains(page, `<td class="num">#2099</td>`) || strings.Contains(page, `<td class="num">#2100</td>`) {
				t.Error("stale reads not listed up to the first 100")
			}
		})
	}
}

// Without phases from the history, WriteHTML shades the report's.
func TestWriteHTMLReportPhases(t *testing.T) {
	r, _ := renderSampleRun(true)
	var b bytes.Buffer
	if err := WriteHTML(&b, r, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(b.String(), `<rect class="band"`); got != 4 {
		t.Errorf("%d bands, want 4", got)
	}
	if strings.Contains(b.String(), `class="bar-ok"`) {
		t.Error("histogram drawn without ops")
	}
}

// An empty report still renders.
func TestWriteHTMLEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHTML(&b, check.Report{}, nil); err != nil {
		t.Fatal(err)
	}
	checkPageWellFormed(t, b.String())
	if !strings.Contains(b.String(), `id="verdict">FAIL<`) {
		t.Error("an empty report that did not pass shows no FAIL")
	}
	var s bytes.Buffer
	WriteSummary(&s, check.Report{})
	if renderLastLine(s.String()) != "FAIL" {
		t.Errorf("summary of an empty report ends %q", renderLastLine(s.String()))
	}
}

func TestWriteSummary(t *testing.T) {
	for _, pass := range []bool{true, false} {
		t.Run(fmt.Sprint("pass=", pass), func(t *testing.T) {
			r, _ := renderSampleRun(pass)
			r.Phases[0].Name = "healthy\tat\nfirst"
			var b bytes.Buffer
			WriteSummary(&b, r)
			out := b.String()
			t.Logf("\n%s", out)

			want := "PASS"
			if !pass {
				want = "FAIL: no lost acknowledged writes, valid reads, no stale reads, convergence"
			}
			if got := renderLastLine(out); got != want {
				t.Errorf("last line %q, want %q", got, want)
			}
			if first := strings.SplitN(out, "\n", 2)[0]; first != "dotkv bench: "+strings.SplitN(want, ":", 2)[0] {
				t.Errorf("first line %q", first)
			}

			lines := strings.Split(out, "\n")
			next := 0 // phases share names: find their rows in order
			for i, p := range r.Phases {
				name := strings.Join(strings.Fields(termSafe(p.Name)), " ")
				found := false
				for j := next; j < len(lines); j++ {
					l := lines[j]
					f := strings.Join(strings.Fields(l), " ")
					if strings.HasPrefix(f, name+" ") {
						found, next = true, j+1
						rest := strings.Fields(strings.TrimPrefix(f, name+" "))
						fault := map[bool]string{true: "yes", false: "-"}[p.Fault]
						if rest[0] != fault || rest[2] != humanCount(p.Ops) || rest[3] != humanCount(p.OK) {
							t.Errorf("phase %d row %q", i, l)
						}
						break
					}
				}
				if !found {
					t.Errorf("no row for phase %q", p.Name)
				}
			}
			for _, s := range []string{"throughput", "p99.9", "lost acknowledged writes", "stale reads",
				"invalid reads", "convergence", "side n3,n4,n5", "level w=2&pw=2"} {
				if !strings.Contains(out, s) {
					t.Errorf("summary lacks %q", s)
				}
			}
			checkMarks := strings.Count(out, "\n  PASS  ") + strings.Count(out, "\n  FAIL  ")
			if checkMarks != len(r.Checks) {
				t.Errorf("%d check rows, want %d", checkMarks, len(r.Checks))
			}
			if !pass && !strings.Contains(out, "not converged") {
				t.Error("summary lacks 'not converged'")
			}
		})
	}
}

// TestSampleReport renders the committable sample page,
// testdata/sample-report.html.
func TestSampleReport(t *testing.T) {
	r, h := renderSampleRun(true)
	var b bytes.Buffer
	if err := writeHTML(&b, r, h.Phases(), h.Ops()); err != nil {
		t.Fatal(err)
	}
	checkPageWellFormed(t, b.String())
	if b.Len() > 200<<10 {
		t.Errorf("sample page is %d bytes", b.Len())
	}
	path := filepath.Join("testdata", "sample-report.html")
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b.Bytes()) {
		return
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Skipf("cannot write the sample: %v", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Skipf("cannot write the sample: %v", err)
	}
}

func renderLastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

var (
	renderTagRE     = regexp.MustCompile(`<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:[^>"']|"[^"]*"|'[^']*')*?)(/?)>`)
	renderSVGRE     = regexp.MustCompile(`(?s)<svg.*?</svg>`)
	renderVoidElems = map[string]bool{"meta": true, "link": true, "br": true, "hr": true, "img": true, "input": true}
)

// checkWellFormed checks that the page's tags nest and close, that no
// script or external resource is referenced, and that each inline SVG is
// well-formed XML.
func checkPageWellFormed(t *testing.T, page string) {
	t.Helper()
	if !strings.HasPrefix(page, "<!DOCTYPE html>") {
		t.Error("no doctype")
	}
	body := page
	// CSS holds no tags; skip it so selectors like "a > b" do not count.
	if i, j := strings.Index(body, "<style>"), strings.Index(body, "</style>"); i >= 0 && j > i {
		body = body[:i+len("<style>")] + body[j:]
	}
	var stack []string
	for _, m := range renderTagRE.FindAllStringSubmatch(body, -1) {
		closing, name, selfClose := m[1] == "/", strings.ToLower(m[2]), m[4] == "/"
		switch {
		case renderVoidElems[name] || selfClose:
		case !closing:
			stack = append(stack, name)
		case len(stack) == 0 || stack[len(stack)-1] != name:
			t.Fatalf("</%s> closes %v", name, stack)
		default:
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 {
		t.Errorf("unclosed tags: %v", stack)
	}
	for _, bad := range []string{"<script", "http://", "https://", "@import", "url("} {
		if strings.Contains(body, bad) {
			t.Errorf("page references %q", bad)
		}
	}
	for i, s := range renderSVGRE.FindAllString(page, -1) {
		d := xml.NewDecoder(strings.NewReader(s))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("svg %d is not well-formed: %v", i, err)
				break
			}
		}
	}
}

func TestChartScales(t *testing.T) {
	for _, c := range []struct {
		span float64
		n    int
		want float64
	}{{60, 10, 10}, {100, 5, 20}, {7, 5, 2}, {0.9, 5, 0.2}, {1234, 5, 500}} {
		if got := niceStep(c.span, c.n); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("niceStep(%v, %d) = %v, want %v", c.span, c.n, got, c.want)
		}
	}
	a := logAxis(0.7, 35, 0, 100, tickMs)
	if a.lo != 0.1 || a.hi != 100 || a.px(0.1) != 0 || a.px(100) != 100 || math.Abs(a.px(10)-66.67) > 0.01 {
		t.Errorf("logAxis(0.7, 35): %+v", a)
	}
	var labels []string
	for _, v := range a.ticks {
		labels = append(labels, a.tickText(v))
	}
	if got := strings.Join(labels, " "); got != "0.1 ms 1 ms 10 ms 100 ms" {
		t.Errorf("log ticks %q", got)
	}
	a = logAxis(2, 80, 0, 100, tickMs)
	if got := len(a.ticks); got != 7 { // 1 2 5 10 20 50 100
		t.Errorf("two-decade log axis has %d ticks: %v", got, a.ticks)
	}
	l := linearAxis(87, 5, 100, 0, tickCount)
	if l.hi != 100 || len(l.ticks) != 6 || l.px(50) != 50 {
		t.Errorf("linearAxis(87): %+v", l)
	}

	// A wide latency range is drawn on a log scale, with gaps where a second
	// had no ok ops.
	var series []check.Bucket
	for s := 0; s < 1200; s++ {
		b := check.Bucket{Second: s, Ops: 100, OK: 100, P50: 1, P99: 4}
		switch {
		case s >= 300 && s < 310:
			b.OK, b.P50, b.P99 = 0, 0, 0
		case s >= 600 && s < 700:
			b.P50, b.P99 = 200, 2000
		}
		series = append(series, b)
	}
	c, logScale := latencyChart(series, []faultBand{{"slow disk", 600, 700}}, 1200)
	if !logScale {
		t.Error("latency from 1 ms to 2 s not on a log scale")
	}
	hits, bands := 0, 0
	for _, e := range c.Els {
		switch e.Class {
		case "hit":
			hits++
		case "band":
			bands++
		case "line-p50":
			if strings.Count(e.D, "M") != 2 {
				t.Errorf("p50 line has %d runs, want 2 (a gap at 300–310s)", strings.Count(e.D, "M"))
			}
		}
	}
	if hits == 0 || hits > maxHoverRects {
		t.Errorf("%d hover rects for 1200 s, want 1..%d", hits, maxHoverRects)
	}
	if bands != 1 {
		t.Errorf("%d bands, want 1", bands)
	}
}

func TestHumanFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{humanCount(0), "0"}, {humanCount(999), "999"}, {humanCount(1000), "1,000"},
		{humanCount(-1234567), "-1,234,567"},
		{humanRate(44.04), "44.0"}, {humanRate(1234.4), "1,234"}, {compactRate(123456), "123.5k"},
		{humanMs(0), "—"}, {humanMs(0.42), "0.42 ms"}, {humanMs(12.34), "12.3 ms"}, {humanMs(250), "250 ms"},
		{humanMs(1500), "1.50 s"},
		{humanShare(0, 0), "—"}, {humanShare(1, 1), "100%"}, {humanShare(9999, 10000), "99.99%"},
		{humanShare(1, 3), "33.3%"},
		{humanConvergence(-1), "not converged"}, {humanConvergence(2.44), "2.4 s"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
