package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/dotkv/dotkv/bench/check"
	"github.com/dotkv/dotkv/bench/history"
)

// pageListLimit bounds the lost writes, stale reads and invalid reads the page
// lists.
const pageListLimit = 100

// WriteFiles writes report.json (indented), history.jsonl and report.html
// into dir (created if missing). h may be nil: history.jsonl is then empty.
func WriteFiles(dir string, r check.Report, h *history.History) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report dir: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report.json: %w", err)
	}

	var phases []history.Phase
	var ops []history.Op
	var hist bytes.Buffer
	if h != nil {
		phases, ops = h.Phases(), h.Ops()
		if err := h.WriteJSONL(&hist); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "history.jsonl"), hist.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write history.jsonl: %w", err)
	}

	var page bytes.Buffer
	if err := writeHTML(&page, r, phases, ops); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.html"), page.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write report.html: %w", err)
	}
	return nil
}

// WriteHTML renders the page: a self-contained HTML document (inline CSS
// and SVG, no scripts, no external assets). phases shade the fault
// windows; when empty, r.Phases do.
func WriteHTML(w io.Writer, r check.Report, phases []history.Phase) error {
	return writeHTML(w, r, phases, nil)
}

// writeHTML is WriteHTML with the history's ops, which, when present, add
// a histogram of op latencies.
func writeHTML(w io.Writer, r check.Report, phases []history.Phase, ops []history.Op) error {
	if err := pageTemplate.Execute(w, buildPage(r, phases, ops)); err != nil {
		return fmt.Errorf("render report.html: %w", err)
	}
	return nil
}

// WriteSummary prints the terminal summary: overall numbers, one row per
// phase, availability by side and level, the checks, and a final line
// "PASS" or "FAIL: <failed checks>".
func WriteSummary(w io.Writer, r check.Report) {
	failed := failedCheckNames(r)
	pass := reportPassed(r)
	word := "PASS"
	if !pass {
		word = "FAIL"
	}
	fmt.Fprintf(w, "dotkv bench: %s\n\n", word)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  ops\t%s\tok %s\tfailed %s\t(%s ok)\n",
		humanCount(r.Ops), humanCount(r.OK), humanCount(r.Failed), humanShare(r.OK, r.Ops))
	fmt.Fprintf(tw, "  throughput\t%s ops/s\n", humanRate(r.ThroughputOpsPerSec))
	l := r.LatencyMs
	fmt.Fprintf(tw, "  latency\tp50 %s\tp95 %s\tp99 %s\tp99.9 %s\tmax %s\n",
		humanMs(l.P50), humanMs(l.P95), humanMs(l.P99), humanMs(l.P999), humanMs(l.Max))
	fmt.Fprintf(tw, "  lost acknowledged writes\t%s\n", humanCount(r.LostAcknowledgedWrites))
	fmt.Fprintf(tw, "  stale reads\t%s\n", humanCount(r.StaleReads))
	fmt.Fprintf(tw, "  invalid reads\t%s\n", humanCount(r.InvalidReads))
	fmt.Fprintf(tw, "  convergence\t%s\n", humanConvergence(r.ConvergenceSeconds))
	tw.Flush()

	if len(r.Phases) > 0 {
		fmt.Fprintln(w)
		rows := [][]string{{"phase", "fault", "seconds", "ops", "ok", "avail", "ops/s", "p50", "p99"}}
		for _, p := range r.Phases {
			fault := "-"
			if p.Fault {
				fault = "yes"
			}
			rows = append(rows, []string{
				termSafe(p.Name), fault, strconv.FormatFloat(p.End-p.Start, 'f', 1, 64),
				humanCount(p.Ops), humanCount(p.OK), humanShare(p.OK, p.Ops),
				humanRate(p.ThroughputOpsPerSec), humanMs(p.LatencyMs.P50), humanMs(p.LatencyMs.P99),
			})
		}
		writeColumns(w, "  ", rows, []bool{false, false, true, true, true, true, true, true, true})
	}

	var avail [][3]string
	for _, p := range r.Phases {
		for _, k := range sortedMapKeys(p.AvailabilityBySide) {
			avail = append(avail, [3]string{p.Name, "side " + k, humanPct(p.AvailabilityBySide[k])})
		}
		for _, k := range sortedMapKeys(p.AvailabilityByLevel) {
			avail = append(avail, [3]string{p.Name, "level " + k, humanPct(p.AvailabilityByLevel[k])})
		}
		for _, k := range sortedMapKeys(p.AvailabilityBySideAndLevel) {
			avail = append(avail, [3]string{p.Name, "side " + k, humanPct(p.AvailabilityBySideAndLevel[k])})
		}
	}
	if len(avail) > 0 {
		fmt.Fprintln(w, "\navailability by side / level")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, a := range avail {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", termSafe(a[0]), termSafe(a[1]), a[2])
		}
		tw.Flush()
	}

	if len(r.Checks) > 0 {
		fmt.Fprintln(w, "\nchecks")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, c := range r.Checks {
			mark := "PASS"
			if !c.Passed {
				mark = "FAIL"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", mark, termSafe(c.Name), termSafe(c.Detail))
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	switch {
	case pass:
		fmt.Fprintln(w, "PASS")
	case len(failed) > 0:
		fmt.Fprintf(w, "FAIL: %s\n", termSafe(strings.Join(failed, ", ")))
	default:
		fmt.Fprintln(w, "FAIL")
	}
}

// writeColumns writes rows as columns two spaces apart, right-aligning
// the columns whose right is true.
func writeColumns(w io.Writer, indent string, rows [][]string, right []bool) {
	var width []int
	for _, row := range rows {
		for i, cell := range row {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		b.WriteString(indent)
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			if i > 0 {
				b.WriteString("  ")
			}
			if i < len(right) && right[i] {
				b.WriteString(pad + cell)
			} else if i < len(row)-1 {
				b.WriteString(cell + pad)
			} else {
				b.WriteString(cell)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

// reportPassed is the run's verdict: Passed, and no check failed.
func reportPassed(r check.Report) bool {
	return r.Passed && len(failedCheckNames(r)) == 0
}

func failedCheckNames(r check.Report) []string {
	var names []string
	for _, c := range r.Checks {
		if !c.Passed {
			names = append(names, c.Name)
		}
	}
	return names
}

// termSafe replaces control characters, which would break the summary's
// columns or the terminal, with spaces.
func termSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// ---- number formatting ----

// humanCount formats n with thousands separators.
func humanCount(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// humanRate formats an ops/s rate.
func humanRate(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case v >= 100:
		return humanCount(int(math.Round(v)))
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}

// compactRate formats a rate for a card: as humanRate up to 9,999, then
// in thousands ("12.3k").
func compactRate(v float64) string {
	if v >= 9999.5 && !math.IsInf(v, 0) {
		return strconv.FormatFloat(v/1000, 'f', 1, 64) + "k"
	}
	return humanRate(v)
}

// humanMs formats a latency in milliseconds, switching to seconds above
// one second.
func humanMs(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0) || v <= 0:
		return "—"
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + " s"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	}
}

// humanShare formats ok/ops as a percentage ("—" for no ops).
func humanShare(ok, ops int) string {
	if ops <= 0 {
		return "—"
	}
	return humanPct(float64(ok) / float64(ops))
}

// humanPct formats a share in [0,1] as a percentage.
func humanPct(share float64) string {
	if math.IsNaN(share) {
		return "—"
	}
	p := share * 100
	if p >= 99.995 || p == 0 {
		return strconv.FormatFloat(p, 'f', 0, 64) + "%"
	}
	if p > 99.9 {
		return strconv.FormatFloat(p, 'f', 2, 64) + "%"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

func humanConvergence(s float64) string {
	if s < 0 {
		return "not converged"
	}
	return strconv.FormatFloat(s, 'f', 1, 64) + " s"
}

func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ---- page model ----

type pageData struct {
	Pass         bool
	Verdict      string // "PASS" or "FAIL"
	VerdictLine  string
	FailedChecks []string
	Cards        []card

	Throughput   *svgChart
	Latency      *svgChart
	LatencyLog   bool
	Histogram    *svgChart
	Distribution *svgChart

	Phases   []phaseRow
	Checks   []check.Check
	Siblings *svgChart

	Lost, Stale, Invalid listInfo
	LostRows             []check.LostWrite
	StaleRows            []check.StaleRead
	InvalidRows          []string
	Config               []kv
}

type card struct {
	Label, Value, Unit, Sub string
	Tone                    string // "good", "bad", "warn" or ""
}

type kv struct{ Key, Value string }

type availChip struct {
	Label, Value, Tone string
}

type phaseRow struct {
	Name            string
	Fault           bool
	Window, Seconds string
	Ops, OK, Avail  string
	AvailTone       string
	Throughput      string
	P50, P99, Max   string
	Sides, Levels   []availChip
}

type listInfo struct {
	Count, Shown int
	More         string
}

func buildPage(r check.Report, phases []history.Phase, ops []history.Op) pageData {
	pass := reportPassed(r)
	p := pageData{Pass: pass, Verdict: "PASS", FailedChecks: failedCheckNames(r)}
	n := len(r.Checks)
	switch {
	case !pass:
		p.Verdict = "FAIL"
		if len(p.FailedChecks) > 0 {
			p.VerdictLine = fmt.Sprintf("%d of %d checks failed", len(p.FailedChecks), n)
		} else {
			p.VerdictLine = "the run did not pass"
		}
	case n == 1:
		p.VerdictLine = "the check passed"
	case n > 0:
		p.VerdictLine = fmt.Sprintf("all %d checks passed", n)
	default:
		p.VerdictLine = "no checks were run"
	}

	tone := func(bad bool) string {
		if bad {
			return "bad"
		}
		return "good"
	}
	conv := card{Label: "Convergence", Sub: "after the final heal"}
	if r.ConvergenceSeconds < 0 {
		conv.Value, conv.Tone = "never", "bad"
		conv.Sub = "roots never agreed"
	} else {
		conv.Value, conv.Unit = strconv.FormatFloat(r.ConvergenceSeconds, 'f', 1, 64), "s"
	}
	p99v, p99u := splitUnit(humanMs(r.LatencyMs.P99))
	p.Cards = []card{
		{Label: "Throughput", Value: compactRate(r.ThroughputOpsPerSec), Unit: "ops/s",
			Sub: humanCount(r.OK) + " ok of " + humanCount(r.Ops) + " ops"},
		{Label: "p99 latency", Value: p99v, Unit: p99u,
			Sub: "p50 " + humanMs(r.LatencyMs.P50) + " · max " + humanMs(r.LatencyMs.Max)},
		{Label: "Availability", Value: strings.TrimSuffix(humanShare(r.OK, r.Ops), "%"), Unit: "%",
			Sub: humanCount(r.Failed) + " failed or indeterminate"},
		{Label: "Lost writes", Value: humanCount(r.LostAcknowledgedWrites), Tone: tone(r.LostAcknowledgedWrites > 0),
			Sub: "acknowledged, then gone"},
		{Label: "Stale reads", Value: humanCount(r.StaleReads), Tone: tone(r.StaleReads > 0),
			Sub: "strict quorums, no faults"},
		{Label: "Invalid reads", Value: humanCount(r.InvalidReads), Tone: tone(r.InvalidReads > 0),
			Sub: "values nobody wrote"},
		conv,
	}
	if r.Ops == 0 {
		p.Cards[2].Unit = ""
	}

	bands := faultBands(r, phases)
	end := runEnd(r, phases)
	if len(r.Series) > 0 {
		p.Throughput = throughputChart(r.Series, bands, end)
		p.Latency, p.LatencyLog = latencyChart(r.Series, bands, end)
	}
	p.Histogram = histogramChart(ops, r.LatencyMs)
	p.Distribution = distributionChart(r)
	p.Siblings = siblingChart(r.SiblingHistogram)

	for _, ph := range r.Phases {
		row := phaseRow{
			Name:       ph.Name,
			Fault:      ph.Fault,
			Window:     fmt.Sprintf("%.1f – %.1f s", ph.Start, ph.End),
			Seconds:    strconv.FormatFloat(ph.End-ph.Start, 'f', 1, 64),
			Ops:        humanCount(ph.Ops),
			OK:         humanCount(ph.OK),
			Avail:      humanShare(ph.OK, ph.Ops),
			AvailTone:  availTone(ph.OK, ph.Ops),
			Throughput: humanRate(ph.ThroughputOpsPerSec),
			P50:        humanMs(ph.LatencyMs.P50),
			P99:        humanMs(ph.LatencyMs.P99),
			Max:        humanMs(ph.LatencyMs.Max),
		}
		for _, k := range sortedMapKeys(ph.AvailabilityBySide) {
			v := ph.AvailabilityBySide[k]
			row.Sides = append(row.Sides, availChip{Label: k, Value: humanPct(v), Tone: shareTone(v)})
		}
		for _, k := range sortedMapKeys(ph.AvailabilityByLevel) {
			v := ph.AvailabilityByLevel[k]
			row.Levels = append(row.Levels, availChip{Label: k, Value: humanPct(v), Tone: shareTone(v)})
		}
		for _, k := range sortedMapKeys(ph.AvailabilityBySideAndLevel) {
			v := ph.AvailabilityBySideAndLevel[k]
			row.Sides = append(row.Sides, availChip{Label: k, Value: humanPct(v), Tone: shareTone(v)})
		}
		p.Phases = append(p.Phases, row)
	}
	p.Checks = r.Checks

	p.LostRows = r.Lost[:min(len(r.Lost), pageListLimit)]
	p.Lost = listOf(max(r.LostAcknowledgedWrites, len(r.Lost)), len(p.LostRows))
	p.StaleRows = r.Stale[:min(len(r.Stale), pageListLimit)]
	p.Stale = listOf(max(r.StaleReads, len(r.Stale)), len(p.StaleRows))
	p.InvalidRows = r.Invalid[:min(len(r.Invalid), pageListLimit)]
	p.Invalid = listOf(max(r.InvalidReads, len(r.Invalid)), len(p.InvalidRows))

	for _, k := range sortedMapKeys(r.Config) {
		p.Config = append(p.Config, kv{k, configValue(r.Config[k])})
	}
	return p
}

func listOf(count, shown int) listInfo {
	l := listInfo{Count: count, Shown: shown}
	if count > shown {
		l.More = fmt.Sprintf("showing the first %s of %s", humanCount(shown), humanCount(count))
	}
	return l
}

// splitUnit splits "12.3 ms" into "12.3" and "ms".
func splitUnit(s string) (string, string) {
	if i := strings.LastIndexByte(s, ' '); i > 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

func availTone(ok, ops int) string {
	if ops <= 0 {
		return ""
	}
	return shareTone(float64(ok) / float64(ops))
}

func shareTone(v float64) string {
	switch {
	case v >= 0.99:
		return "good"
	case v >= 0.5:
		return "warn"
	default:
		return "bad"
	}
}

func configValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "—"
	case string:
		return v
	case fmt.Stringer:
		return v.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// ---- SVG charts ----

// svgChart is an SVG drawing as a list of primitives, which the template
// renders (and escapes) in order.
type svgChart struct {
	W, H  float64
	Label string
	Els   []svgEl
}

// svgEl is one primitive: Kind "rect" (X, Y, W, H), "line" (X, Y to X2,
// Y2), "path" (D), "circle" (X, Y, radius W) or "text" (X, Y, Anchor,
// Text). Title, if any, becomes its tooltip.
type svgEl struct {
	Kind, Class string
	X, Y, W, H  float64
	X2, Y2      float64
	D           string
	Anchor      string
	Text, Title string
}

func (c *svgChart) rect(class string, x, y, w, h float64, title string) {
	if w < 0 {
		x, w = x+w, -w
	}
	if h < 0 {
		y, h = y+h, -h
	}
	c.Els = append(c.Els, svgEl{Kind: "rect", Class: class, X: x, Y: y, W: w, H: h, Title: title})
}

func (c *svgChart) line(class string, x1, y1, x2, y2 float64) {
	c.Els = append(c.Els, svgEl{Kind: "line", Class: class, X: x1, Y: y1, X2: x2, Y2: y2})
}

func (c *svgChart) path(class, d string) {
	if d != "" {
		c.Els = append(c.Els, svgEl{Kind: "path", Class: class, D: d})
	}
}

func (c *svgChart) circle(class string, x, y, r float64, title string) {
	c.Els = append(c.Els, svgEl{Kind: "circle", Class: class, X: x, Y: y, W: r, Title: title})
}

func (c *svgChart) text(class string, x, y float64, anchor, s string) {
	c.Els = append(c.Els, svgEl{Kind: "text", Class: class, X: x, Y: y, Anchor: anchor, Text: s})
}

// pathBuilder builds a path's d, breaking the line where points are missing.
type pathBuilder struct {
	b    strings.Builder
	open bool
}

func (p *pathBuilder) point(x, y float64) {
	if p.open {
		p.b.WriteByte('L')
	} else {
		p.b.WriteByte('M')
	}
	p.b.WriteString(svgNum(x))
	p.b.WriteByte(',')
	p.b.WriteString(svgNum(y))
	p.open = true
}

func (p *pathBuilder) gap()           { p.open = false }
func (p *pathBuilder) String() string { return p.b.String() }

func svgNum(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// plotFrame is a chart's plotting area inside its viewBox.
type plotFrame struct {
	W, H, L, R, T, B float64
}

func (f plotFrame) left() float64   { return f.L }
func (f plotFrame) right() float64  { return f.W - f.R }
func (f plotFrame) top() float64    { return f.T }
func (f plotFrame) bottom() float64 { return f.H - f.B }

// chartAxis maps data values to pixels, linearly or logarithmically.
type chartAxis struct {
	lo, hi   float64 // domain
	p0, p1   float64 // pixels
	log      bool
	ticks    []float64
	tickText func(float64) string
}

func (a chartAxis) px(v float64) float64 {
	var t float64
	if a.log {
		v = math.Max(v, a.lo)
		t = (math.Log10(v) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
	} else {
		t = (v - a.lo) / (a.hi - a.lo)
	}
	if math.IsNaN(t) {
		t = 0
	}
	return a.p0 + t*(a.p1-a.p0)
}

// niceStep returns a 1-2-5 step that splits span into about n parts.
func niceStep(span float64, n int) float64 {
	if span <= 0 || n <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	switch r := raw / mag; {
	case r <= 1:
		return mag
	case r <= 2:
		return 2 * mag
	case r <= 5:
		return 5 * mag
	default:
		return 10 * mag
	}
}

// linearAxis is an axis from 0 to a nice value at or above max.
func linearAxis(max float64, n int, p0, p1 float64, text func(float64) string) chartAxis {
	if max <= 0 || math.IsNaN(max) || math.IsInf(max, 0) {
		max = 1
	}
	step := niceStep(max, n)
	hi := math.Ceil(max/step-1e-9) * step
	a := chartAxis{lo: 0, hi: hi, p0: p0, p1: p1, tickText: text}
	for v := 0.0; v <= hi+step/2; v += step {
		a.ticks = append(a.ticks, v)
	}
	return a
}

// logAxis is a log axis over whole decades covering [min, max], with
// ticks at decades, and at 2 and 5 when it spans at most two decades.
func logAxis(min, max float64, p0, p1 float64, text func(float64) string) chartAxis {
	lo := math.Pow(10, math.Floor(math.Log10(min)))
	hi := math.Pow(10, math.Ceil(math.Log10(max)))
	if hi <= lo {
		hi = lo * 10
	}
	a := chartAxis{lo: lo, hi: hi, p0: p0, p1: p1, log: true, tickText: text}
	fine := hi/lo <= 100
	for d := lo; d <= hi*1.0001; d *= 10 {
		a.ticks = append(a.ticks, d)
		if fine && d*10 <= hi*1.0001 {
			a.ticks = append(a.ticks, 2*d, 5*d)
		}
	}
	sort.Float64s(a.ticks)
	return a
}

// tickMs labels a latency tick.
func tickMs(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'g', 4, 64) + " s"
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + " ms"
}

// tickCount labels a count tick compactly (1.5k, 2M).
func tickCount(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
}

func tickSeconds(v float64) string { return strconv.FormatFloat(v, 'g', 5, 64) + "s" }

// yGrid draws horizontal grid lines with labels on the left.
func (c *svgChart) yGrid(f plotFrame, y chartAxis) {
	for _, t := range y.ticks {
		py := y.px(t)
		c.line("grid", f.left(), py, f.right(), py)
		c.text("tick", f.left()-8, py+4, "end", y.tickText(t))
	}
}

// xAxis draws the bottom axis line and tick labels.
func (c *svgChart) xAxis(f plotFrame, x chartAxis, title string) {
	for _, t := range x.ticks {
		px := x.px(t)
		c.line("tickmark", px, f.bottom(), px, f.bottom()+5)
		c.text("tick", px, f.bottom()+19, "middle", x.tickText(t))
	}
	c.line("axis", f.left(), f.bottom(), f.right(), f.bottom())
	if title != "" {
		c.text("axis-title", f.right(), f.H-4, "end", title)
	}
}

// faultBand is a fault window in seconds.
type faultBand struct {
	Name       string
	Start, End float64
}

func faultBands(r check.Report, phases []history.Phase) []faultBand {
	var bands []faultBand
	if len(phases) > 0 {
		for _, p := range phases {
			if p.Fault {
				bands = append(bands, faultBand{p.Name, float64(p.Start) / 1e9, float64(p.End) / 1e9})
			}
		}
		return bands
	}
	for _, p := range r.Phases {
		if p.Fault {
			bands = append(bands, faultBand{p.Name, p.Start, p.End})
		}
	}
	return bands
}

// runEnd is the last second the time charts show.
func runEnd(r check.Report, phases []history.Phase) float64 {
	end := 0.0
	for _, b := range r.Series {
		end = math.Max(end, float64(b.Second+1))
	}
	for _, p := range phases {
		end = math.Max(end, float64(p.End)/1e9)
	}
	for _, p := range r.Phases {
		end = math.Max(end, p.End)
	}
	if end <= 0 {
		end = 1
	}
	return end
}

// timeChartFrame is the frame of the time charts.
var timeChartFrame = plotFrame{W: 1000, H: 300, L: 64, R: 16, T: 14, B: 40}

func timeAxis(f plotFrame, end float64) chartAxis {
	a := linearAxis(end, 10, f.left(), f.right(), tickSeconds)
	// Show the run as it is, not padded to the next tick.
	a.hi = end
	for len(a.ticks) > 0 && a.ticks[len(a.ticks)-1] > end+1e-9 {
		a.ticks = a.ticks[:len(a.ticks)-1]
	}
	return a
}

// drawBands shades the fault windows and labels them, stacking the labels
// of windows too close to label side by side.
func (c *svgChart) drawBands(f plotFrame, x chartAxis, bands []faultBand) {
	lastEnd := map[int]float64{}
	for _, b := range bands {
		end := b.End
		if end <= b.Start {
			end = x.hi
		}
		x0 := x.px(math.Max(b.Start, x.lo))
		x1 := x.px(math.Min(end, x.hi))
		c.rect("band", x0, f.top(), x1-x0, f.bottom()-f.top(),
			fmt.Sprintf("%s: %.1f – %.1f s", b.Name, b.Start, end))
		c.line("band-edge", x0, f.top(), x0, f.bottom())
		c.line("band-edge", x1, f.top(), x1, f.bottom())
		row := 0
		for ; row < 3; row++ {
			if e, ok := lastEnd[row]; !ok || x0 >= e {
				break
			}
		}
		label := shortenLabel(b.Name, 32)
		lastEnd[row] = x0 + 4 + 6.6*float64(len([]rune(label))) + 6
		c.text("band-label", x0+5, f.top()+14+float64(row)*15, "start", label)
	}
}

// shorten cuts s to n runes with an ellipsis.
func shortenLabel(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func throughputChart(series []check.Bucket, bands []faultBand, end float64) *svgChart {
	f := timeChartFrame
	c := &svgChart{W: f.W, H: f.H, Label: "Throughput over time: ok and failed operations per second, fault windows shaded"}
	s := sortedSeries(series)
	peak := 0.0
	for _, b := range s {
		peak = math.Max(peak, float64(b.Ops))
	}
	x := timeAxis(f, end)
	y := linearAxis(peak, 5, f.bottom(), f.top(), tickCount)
	c.drawBands(f, x, bands)
	c.yGrid(f, y)

	var ok, fail, area pathBuilder
	anyFail := false
	for i, b := range s {
		anyFail = anyFail || b.Ops > b.OK
		px := x.px(float64(b.Second) + 0.5)
		if i == 0 {
			area.point(px, y.px(0))
		}
		area.point(px, y.px(float64(b.OK)))
		ok.point(px, y.px(float64(b.OK)))
		fail.point(px, y.px(float64(b.Ops-b.OK)))
		if i == len(s)-1 {
			area.point(px, y.px(0))
		}
	}
	d := area.String()
	if d != "" {
		d += "Z"
	}
	c.path("area-ok", d)
	if anyFail {
		c.path("line-fail", fail.String())
	}
	c.path("line-ok", ok.String())
	c.xAxis(f, x, "seconds since start")
	c.text("axis-title", f.left()-8, f.top()-2, "end", "ops/s")
	c.hoverRects(f, x, s, func(g []check.Bucket) string {
		ok, ops := 0, 0
		for _, b := range g {
			ok, ops = ok+b.OK, ops+b.Ops
		}
		if len(g) == 1 {
			return fmt.Sprintf("%d–%ds: %s ok, %s failed", g[0].Second, g[0].Second+1, humanCount(ok), humanCount(ops-ok))
		}
		n := float64(len(g))
		return fmt.Sprintf("%d–%ds: %s ok/s, %s failed/s on average", g[0].Second, g[len(g)-1].Second+1,
			humanRate(float64(ok)/n), humanRate(float64(ops-ok)/n))
	})
	return c
}

func latencyChart(series []check.Bucket, bands []faultBand, end float64) (*svgChart, bool) {
	f := timeChartFrame
	c := &svgChart{W: f.W, H: f.H, Label: "Latency over time: p50 and p99 per second, fault windows shaded"}
	s := sortedSeries(series)
	lo, hi := math.Inf(1), 0.0
	for _, b := range s {
		for _, v := range []float64{b.P50, b.P99} {
			if v > 0 && !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	x := timeAxis(f, end)
	var y chartAxis
	logScale := hi > 0 && hi/lo > 30
	if logScale {
		y = logAxis(lo, hi, f.bottom(), f.top(), tickMs)
	} else {
		y = linearAxis(hi, 5, f.bottom(), f.top(), tickMs)
	}
	c.drawBands(f, x, bands)
	c.yGrid(f, y)
	var p50, p99 pathBuilder
	for _, b := range s {
		px := x.px(float64(b.Second) + 0.5)
		if b.P50 > 0 {
			p50.point(px, y.px(b.P50))
		} else {
			p50.gap()
		}
		if b.P99 > 0 {
			p99.point(px, y.px(b.P99))
		} else {
			p99.gap()
		}
	}
	c.path("line-p99", p99.String())
	c.path("line-p50", p50.String())
	// Lone points (between gaps) would not show as lines: dot them.
	for i, b := range s {
		alone := func(get func(check.Bucket) float64) bool {
			return get(b) > 0 && (i == 0 || get(s[i-1]) <= 0 || s[i-1].Second != b.Second-1) &&
				(i == len(s)-1 || get(s[i+1]) <= 0 || s[i+1].Second != b.Second+1)
		}
		px := x.px(float64(b.Second) + 0.5)
		if alone(func(b check.Bucket) float64 { return b.P99 }) {
			c.circle("dot-p99", px, y.px(b.P99), 2.5, "")
		}
		if alone(func(b check.Bucket) float64 { return b.P50 }) {
			c.circle("dot-p50", px, y.px(b.P50), 2.5, "")
		}
	}
	c.xAxis(f, x, "seconds since start")
	c.hoverRects(f, x, s, func(g []check.Bucket) string {
		if len(g) == 1 {
			return fmt.Sprintf("%d–%ds: p50 %s, p99 %s", g[0].Second, g[0].Second+1, humanMs(g[0].P50), humanMs(g[0].P99))
		}
		var p50, p99 float64
		for _, b := range g {
			p50, p99 = math.Max(p50, b.P50), math.Max(p99, b.P99)
		}
		return fmt.Sprintf("%d–%ds: p50 up to %s, p99 up to %s", g[0].Second, g[len(g)-1].Second+1, humanMs(p50), humanMs(p99))
	})
	return c, logScale
}

// maxHoverRects bounds the tooltip rectangles of a time chart; longer runs
// group seconds.
const maxHoverRects = 240

// hoverRects lays invisible rectangles with tooltips over the plot, one a
// second, or one per group of seconds on long runs.
func (c *svgChart) hoverRects(f plotFrame, x chartAxis, s []check.Bucket, title func([]check.Bucket) string) {
	if len(s) == 0 {
		return
	}
	step := (s[len(s)-1].Second - s[0].Second + maxHoverRects) / maxHoverRects
	for i := 0; i < len(s); {
		j := i + 1
		for j < len(s) && s[j].Second < s[i].Second+step {
			j++
		}
		x0, x1 := x.px(float64(s[i].Second)), x.px(float64(s[j-1].Second+1))
		c.rect("hit", x0, f.top(), x1-x0, f.bottom()-f.top(), title(s[i:j]))
		i = j
	}
}

func sortedSeries(series []check.Bucket) []check.Bucket {
	s := append([]check.Bucket(nil), series...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].Second < s[j].Second })
	return s
}

// histogramChart draws op counts by latency bucket (log-spaced), ok ops
// and failed or indeterminate ones stacked, with the overall percentiles
// marked. It returns nil without ops.
func histogramChart(ops []history.Op, overall check.Latencies) *svgChart {
	var lat []float64
	var okOp []bool
	lo, hi := math.Inf(1), 0.0
	for _, o := range ops {
		if o.End <= o.Start {
			continue
		}
		ms := float64(o.End-o.Start) / 1e6
		lat = append(lat, ms)
		okOp = append(okOp, o.Outcome == history.OK)
		lo, hi = math.Min(lo, ms), math.Max(hi, ms)
	}
	if len(lat) == 0 {
		return nil
	}
	lo = math.Max(lo, 0.01)
	hi = math.Max(hi, lo*1.01)
	dLo, dHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dHi <= dLo {
		dHi = dLo + 1
	}
	perDecade := 10.0
	if dHi-dLo > 3 {
		perDecade = 5
	}
	// Trim empty bins at the ends of the decade range.
	first := math.Floor((math.Log10(lo) - dLo) * perDecade)
	last := math.Ceil((math.Log10(hi) - dLo) * perDecade)
	if last <= first {
		last = first + 1
	}
	nBins := int(last - first)
	edge := func(i int) float64 { return math.Pow(10, dLo+(first+float64(i))/perDecade) }
	okN, failN := make([]int, nBins), make([]int, nBins)
	for i, ms := range lat {
		bi := int(math.Floor((math.Log10(math.Max(ms, lo))-dLo)*perDecade - first))
		bi = min(max(bi, 0), nBins-1)
		if okOp[i] {
			okN[bi]++
		} else {
			failN[bi]++
		}
	}
	peak := 0
	for i := range okN {
		peak = max(peak, okN[i]+failN[i])
	}

	f := plotFrame{W: 1000, H: 280, L: 64, R: 16, T: 24, B: 40}
	c := &svgChart{W: f.W, H: f.H, Label: "Histogram of operation latencies, ok and failed stacked, log-spaced buckets"}
	x := chartAxis{lo: edge(0), hi: edge(nBins), p0: f.left(), p1: f.right(), log: true, tickText: tickMs}
	for d := math.Pow(10, dLo); d <= x.hi*1.0001; d *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if v := d * m; v >= x.lo*0.9999 && v <= x.hi*1.0001 && (m == 1 || dHi-dLo <= 2) {
				x.ticks = append(x.ticks, v)
			}
		}
	}
	y := linearAxis(float64(peak), 5, f.bottom(), f.top(), tickCount)
	c.yGrid(f, y)
	for i := range okN {
		x0, x1 := x.px(edge(i))+1, x.px(edge(i+1))-1
		title := fmt.Sprintf("%s – %s: %s ok, %s failed", humanMs(edge(i)), humanMs(edge(i+1)),
			humanCount(okN[i]), humanCount(failN[i]))
		if okN[i] > 0 {
			c.rect("bar-ok", x0, y.px(float64(okN[i])), x1-x0, y.px(0)-y.px(float64(okN[i])), title)
		}
		if failN[i] > 0 {
			top := float64(okN[i] + failN[i])
			c.rect("bar-fail", x0, y.px(top), x1-x0, y.px(float64(okN[i]))-y.px(top), title)
		}
	}
	lastX := math.Inf(-1)
	row := 0
	for _, m := range []struct {
		name string
		v    float64
	}{{"p50", overall.P50}, {"p99", overall.P99}, {"p99.9", overall.P999}} {
		if m.v <= 0 || m.v < x.lo || m.v > x.hi {
			continue
		}
		px := x.px(m.v)
		if px-lastX < 90 {
			row++
		} else {
			row = 0
		}
		lastX = px
		c.line("marker", px, f.top()-4+float64(row)*14, px, f.bottom())
		c.text("marker-label", px+4, f.top()+6+float64(row)*14, "start", m.name+" "+humanMs(m.v))
	}
	c.xAxis(f, x, "latency (log scale)")
	c.text("axis-title", f.left()-8, f.top()-8, "end", "ops")
	return c
}

// distributionChart draws, for the run and each phase, its latency
// percentiles as graduated segments on a log axis.
func distributionChart(r check.Report) *svgChart {
	type row struct {
		name  string
		fault bool
		l     check.Latencies
	}
	rows := []row{{"whole run", false, r.LatencyMs}}
	for _, p := range r.Phases {
		rows = append(rows, row{p.Name, p.Fault, p.LatencyMs})
	}
	lo, hi := math.Inf(1), 0.0
	for _, rw := range rows {
		for _, v := range []float64{rw.l.P50, rw.l.P95, rw.l.P99, rw.l.P999, rw.l.Max} {
			if v > 0 && !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if hi == 0 {
		return nil
	}
	const rowH = 30.0
	f := plotFrame{W: 1000, L: 190, R: 150, T: 10, B: 40}
	f.H = f.T + f.B + rowH*float64(len(rows))
	c := &svgChart{W: f.W, H: f.H, Label: "Latency percentiles p50, p95, p99, p99.9 and max for the run and each phase"}
	x := logAxis(lo, hi, f.left(), f.right(), tickMs)
	for _, t := range x.ticks {
		c.line("grid", x.px(t), f.top(), x.px(t), f.bottom())
	}
	for i, rw := range rows {
		cy := f.top() + rowH*float64(i) + rowH/2
		cls := "row-label"
		if i == 0 {
			cls = "row-label overall"
		} else if rw.fault {
			cls = "row-label fault"
			c.rect("row-fault", 0, cy-rowH/2, f.W, rowH, "")
		}
		c.text(cls, f.left()-12, cy+4, "end", shortenLabel(rw.name, 26))
		l := rw.l
		if l.P50 <= 0 {
			c.text("row-note", f.left()+4, cy+4, "start", "no successful ops")
			continue
		}
		title := fmt.Sprintf("%s: p50 %s · p95 %s · p99 %s · p99.9 %s · max %s", rw.name,
			humanMs(l.P50), humanMs(l.P95), humanMs(l.P99), humanMs(l.P999), humanMs(l.Max))
		// Percentiles are monotone in a well-formed report; clamp anyway.
		p95 := math.Max(l.P95, l.P50)
		p99 := math.Max(l.P99, p95)
		p999 := math.Max(l.P999, p99)
		mx := math.Max(l.Max, p999)
		c.line("whisker", x.px(p999), cy, x.px(mx), cy)
		c.line("whisker", x.px(mx), cy-6, x.px(mx), cy+6)
		c.rect("seg3", x.px(p99), cy-6, x.px(p999)-x.px(p99), 12, title)
		c.rect("seg2", x.px(p95), cy-8, x.px(p99)-x.px(p95), 16, title)
		c.rect("seg1", x.px(l.P50), cy-8, x.px(p95)-x.px(l.P50), 16, title)
		c.circle("p50-dot", x.px(l.P50), cy, 4.5, title)
		c.text("row-value", f.right()+14, cy+4, "start", "p99 "+humanMs(l.P99))
	}
	c.xAxis(f, x, "latency (log scale)")
	return c
}

// siblingChart draws reads by number of siblings returned.
func siblingChart(h map[int]int) *svgChart {
	if len(h) == 0 {
		return nil
	}
	keys := make([]int, 0, len(h))
	total, peak := 0, 0
	for k, v := range h {
		keys = append(keys, k)
		total += v
		peak = max(peak, v)
	}
	sort.Ints(keys)
	const rowH = 26.0
	f := plotFrame{W: 1000, L: 110, R: 170, T: 4, B: 4}
	f.H = f.T + f.B + rowH*float64(len(keys))
	c := &svgChart{W: f.W, H: f.H, Label: "Reads by number of siblings returned"}
	for i, k := range keys {
		y := f.top() + rowH*float64(i)
		label := fmt.Sprintf("%d siblings", k)
		if k == 1 {
			label = "1 sibling"
		}
		c.text("row-label", f.left()-12, y+rowH/2+4, "end", label)
		w := 0.0
		if peak > 0 {
			w = (f.right() - f.left()) * float64(h[k]) / float64(peak)
		}
		c.rect("bar-sib", f.left(), y+5, math.Max(w, 1), rowH-10, "")
		c.text("row-value", f.left()+math.Max(w, 1)+8, y+rowH/2+4, "start",
			fmt.Sprintf("%s reads (%s)", humanCount(h[k]), humanShare(h[k], total)))
	}
	return c
}

// ---- template ----

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"n": svgNum,
}).Parse(pageHTML))

const pageHTML = `{{define "chart"}}<svg class="chart" viewBox="0 0 {{n .W}} {{n .H}}" role="img" aria-label="{{.Label}}">
{{range .Els}}{{if eq .Kind "rect"}}<rect class="{{.Class}}" x="{{n .X}}" y="{{n .Y}}" width="{{n .W}}" height="{{n .H}}">{{with .Title}}<title>{{.}}</title>{{end}}</rect>
{{else if eq .Kind "line"}}<line class="{{.Class}}" x1="{{n .X}}" y1="{{n .Y}}" x2="{{n .X2}}" y2="{{n .Y2}}"></line>
{{else if eq .Kind "path"}}<path class="{{.Class}}" d="{{.D}}"></path>
{{else if eq .Kind "circle"}}<circle class="{{.Class}}" cx="{{n .X}}" cy="{{n .Y}}" r="{{n .W}}">{{with .Title}}<title>{{.}}</title>{{end}}</circle>
{{else if eq .Kind "text"}}<text class="{{.Class}}" x="{{n .X}}" y="{{n .Y}}" text-anchor="{{.Anchor}}">{{.Text}}</text>
{{end}}{{end}}</svg>{{end}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>dotkv bench — {{.Verdict}}</title>
<style>
:root {
  --ink: #0f172a; --muted: #64748b; --faint: #94a3b8; --line: #e2e8f0; --bg: #f1f5f9;
  --pass: #15803d; --pass-2: #22c55e; --fail: #b91c1c; --fail-2: #ef4444;
  --ok: #2563eb; --bad: #dc2626; --p50: #0d9488; --p99: #7c3aed; --fault: #f59e0b;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif;
  font-variant-numeric: tabular-nums;
}
.hero { color: #fff; padding: 36px 0 72px; }
.hero.pass { background: linear-gradient(135deg, var(--pass) 0%, #16a34a 60%, var(--pass-2) 100%); }
.hero.fail { background: linear-gradient(135deg, var(--fail) 0%, #dc2626 60%, var(--fail-2) 100%); }
.wrap { max-width: 1160px; margin: 0 auto; padding: 0 28px; }
.hero .wrap { display: flex; align-items: center; gap: 28px; flex-wrap: wrap; }
.verdict {
  font-size: 72px; line-height: 1; font-weight: 800; letter-spacing: .04em;
  padding: 14px 30px; border: 3px solid rgba(255,255,255,.85); border-radius: 18px;
  background: rgba(255,255,255,.12);
}
.hero .what { font-size: 13px; text-transform: uppercase; letter-spacing: .14em; opacity: .85; font-weight: 600; }
.hero h1 { margin: 2px 0 6px; font-size: 28px; font-weight: 700; }
.hero .why { font-size: 16px; opacity: .95; }
.hero .why b { font-weight: 700; }
.cards {
  display: grid; grid-template-columns: repeat(auto-fit, minmax(136px, 1fr)); gap: 14px;
  margin-top: -44px;
}
.card {
  background: #fff; border-radius: 14px; padding: 14px 16px 12px;
  box-shadow: 0 1px 2px rgba(15,23,42,.06), 0 4px 14px rgba(15,23,42,.06);
  border-top: 4px solid #cbd5e1;
}
.card.good { border-top-color: var(--pass-2); }
.card.bad { border-top-color: var(--bad); background: #fef2f2; }
.card .label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .07em; font-weight: 600; }
.card .value { font-size: 26px; font-weight: 750; line-height: 1.15; margin-top: 4px; white-space: nowrap; }
.card.bad .value { color: var(--bad); }
.card .unit { font-size: 13px; font-weight: 600; color: var(--muted); margin-left: 3px; }
.card .sub { font-size: 12px; color: var(--muted); margin-top: 2px; }
.panel {
  background: #fff; border-radius: 14px; padding: 22px 24px 18px; margin-top: 22px;
  box-shadow: 0 1px 2px rgba(15,23,42,.06), 0 4px 14px rgba(15,23,42,.05);
}
.panel-head { display: flex; align-items: baseline; justify-content: space-between; gap: 16px; flex-wrap: wrap; margin-bottom: 8px; }
h2 { margin: 0; font-size: 18px; font-weight: 700; }
.note { color: var(--muted); font-size: 13px; margin: 2px 0 0; }
.legend { display: flex; gap: 16px; flex-wrap: wrap; font-size: 13px; color: #334155; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.sw { display: inline-block; width: 18px; height: 4px; border-radius: 2px; }
.sw.box { height: 12px; width: 14px; border-radius: 3px; }
.sw.ok { background: var(--ok); } .sw.bad { background: var(--bad); }
.sw.p50 { background: var(--p50); } .sw.p99 { background: var(--p99); }
.sw.fault { background: rgba(245,158,11,.28); border: 1px dashed rgba(217,119,6,.8); }
.sw.seg1 { background: #1e40af; } .sw.seg2 { background: #60a5fa; } .sw.seg3 { background: #bfdbfe; }
.sw.whisker { background: #94a3b8; height: 2px; }
svg.chart { display: block; width: 100%; height: auto; margin-top: 6px; overflow: visible; }
svg text { font-family: inherit; font-size: 12px; fill: #475569; }
.grid { stroke: #e2e8f0; stroke-width: 1; }
.axis { stroke: #94a3b8; stroke-width: 1; }
.tickmark { stroke: #94a3b8; }
.tick { fill: #64748b; }
.axis-title { fill: #94a3b8; font-size: 11px; letter-spacing: .04em; }
.band { fill: var(--fault); fill-opacity: .15; }
.band-edge { stroke: #d97706; stroke-opacity: .55; stroke-dasharray: 4 3; }
.band-label { fill: #b45309; font-size: 11.5px; font-weight: 700; paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
.area-ok { fill: var(--ok); fill-opacity: .10; }
.line-ok { fill: none; stroke: var(--ok); stroke-width: 2.2; stroke-linejoin: round; }
.line-fail { fill: none; stroke: var(--bad); stroke-width: 1.6; stroke-linejoin: round; }
.line-p50 { fill: none; stroke: var(--p50); stroke-width: 2.2; stroke-linejoin: round; }
.line-p99 { fill: none; stroke: var(--p99); stroke-width: 2.2; stroke-linejoin: round; }
.dot-p50 { fill: var(--p50); } .dot-p99 { fill: var(--p99); }
.hit { fill: #0f172a; fill-opacity: 0; }
.hit:hover { fill-opacity: .06; }
.bar-ok { fill: var(--ok); fill-opacity: .85; }
.bar-fail { fill: var(--bad); fill-opacity: .85; }
.bar-ok:hover, .bar-fail:hover { fill-opacity: 1; }
.bar-sib { fill: #6366f1; fill-opacity: .8; }
.marker { stroke: #0f172a; stroke-opacity: .55; stroke-dasharray: 3 3; }
.marker-label { fill: #0f172a; font-size: 11.5px; font-weight: 600; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
.row-label { fill: #334155; font-size: 13px; }
.row-label.overall { font-weight: 700; fill: var(--ink); }
.row-label.fault { fill: #b45309; font-weight: 600; }
.row-fault { fill: var(--fault); fill-opacity: .08; }
.row-value { fill: #334155; font-size: 12.5px; }
.row-note { fill: var(--faint); font-style: italic; }
.seg1 { fill: #1e40af; } .seg2 { fill: #60a5fa; } .seg3 { fill: #bfdbfe; }
.whisker { stroke: #94a3b8; stroke-width: 2; }
.p50-dot { fill: #fff; stroke: #1e40af; stroke-width: 2.5; }
@media (max-width: 860px) { .verdict { font-size: 52px; } .hero h1 { font-size: 22px; } }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th {
  text-align: left; font-size: 11.5px; text-transform: uppercase; letter-spacing: .06em;
  color: var(--muted); font-weight: 650; padding: 8px 10px; border-bottom: 2px solid var(--line); white-space: nowrap;
}
td { padding: 9px 10px; border-bottom: 1px solid #f1f5f9; vertical-align: top; }
tbody tr:hover td { background: #f8fafc; }
th.num, td.num { text-align: right; white-space: nowrap; }
tr.fault td:first-child { box-shadow: inset 4px 0 0 var(--fault); }
.phase-name { font-weight: 600; word-break: break-word; }
.tag { display: inline-block; font-size: 11px; font-weight: 700; letter-spacing: .05em; text-transform: uppercase;
  border-radius: 999px; padding: 1px 8px; margin-left: 6px; vertical-align: 1px; }
.tag.fault { background: #fef3c7; color: #92400e; }
.pill { display: inline-block; min-width: 52px; text-align: center; font-size: 12px; font-weight: 800; letter-spacing: .06em;
  border-radius: 999px; padding: 3px 10px; }
.pill.pass { background: #dcfce7; color: #166534; }
.pill.fail { background: #fee2e2; color: #991b1b; }
.good { color: #15803d; } .warn { color: #b45309; } .bad { color: #b91c1c; }
td.good, td.warn, td.bad { font-weight: 650; }
.chips { display: flex; flex-wrap: wrap; gap: 4px; }
.chip { display: inline-flex; gap: 6px; font-size: 12px; color: #334155; background: #f1f5f9; border-radius: 6px; padding: 1px 7px; white-space: nowrap; }
.chip b { font-weight: 650; }
.chip.good b { color: #15803d; } .chip.warn b { color: #b45309; } .chip.bad b { color: #b91c1c; }
.dim { color: var(--faint); }
tr.failed td { background: #fef2f2; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 12.5px; }
td code { word-break: break-all; }
.empty { color: var(--pass); font-weight: 600; margin: 6px 0 2px; }
.count { font-size: 13px; color: var(--muted); font-weight: 500; margin-left: 6px; }
.count.bad { color: var(--bad); font-weight: 700; }
dl.config { display: grid; grid-template-columns: max-content 1fr; gap: 6px 24px; margin: 8px 0 0; font-size: 14px; }
dl.config dt { color: var(--muted); }
dl.config dd { margin: 0; word-break: break-word; }
footer { color: var(--faint); font-size: 12.5px; text-align: center; padding: 26px 0 36px; }
footer a { color: var(--muted); }
@media print { .hero { -webkit-print-color-adjust: exact; print-color-adjust: exact; } .panel { break-inside: avoid; box-shadow: none; border: 1px solid var(--line); } }
</style>
</head>
<body>
<header class="hero {{if .Pass}}pass{{else}}fail{{end}}">
<div class="wrap">
<div class="verdict" id="verdict">{{.Verdict}}</div>
<div>
<div class="what">dotkv bench report</div>
<h1>{{if .Pass}}No consistency violations found{{else}}The run failed its checks{{end}}</h1>
<div class="why">{{.VerdictLine}}{{if .FailedChecks}}: {{range $i, $c := .FailedChecks}}{{if $i}}, {{end}}<b>{{$c}}</b>{{end}}{{end}}</div>
</div>
</div>
</header>
<main class="wrap">
<section class="cards" aria-label="key numbers">
{{range .Cards}}<div class="card {{.Tone}}"><div class="label">{{.Label}}</div><div class="value">{{.Value}}{{with .Unit}}<span class="unit">{{.}}</span>{{end}}</div><div class="sub">{{.Sub}}</div></div>
{{end}}</section>

{{with .Throughput}}<section class="panel">
<div class="panel-head"><div><h2>Throughput</h2><p class="note">Operations per second, by the second they started in. Shaded: fault windows.</p></div>
<div class="legend"><span><i class="sw ok"></i>ok ops/s</span><span><i class="sw bad"></i>failed or indeterminate ops/s</span><span><i class="sw box fault"></i>fault</span></div></div>
{{template "chart" .}}
</section>{{end}}

{{with .Latency}}<section class="panel">
<div class="panel-head"><div><h2>Latency</h2><p class="note">p50 and p99 of each second's ok operations{{if $.LatencyLog}}, log scale{{end}}. Shaded: fault windows.</p></div>
<div class="legend"><span><i class="sw p50"></i>p50</span><span><i class="sw p99"></i>p99</span><span><i class="sw box fault"></i>fault</span></div></div>
{{template "chart" .}}
</section>{{end}}

{{with .Histogram}}<section class="panel">
<div class="panel-head"><div><h2>Latency histogram</h2><p class="note">Every operation by how long it took; buckets are log-spaced. Dashed: the run's percentiles.</p></div>
<div class="legend"><span><i class="sw box ok"></i>ok</span><span><i class="sw box bad"></i>failed or indeterminate</span></div></div>
{{template "chart" .}}
</section>{{end}}

{{with .Distribution}}<section class="panel">
<div class="panel-head"><div><h2>Latency percentiles by phase</h2><p class="note">Circle at p50; bars to p95, p99 and p99.9; line to the maximum.</p></div>
<div class="legend"><span><i class="sw box seg1"></i>p50–p95</span><span><i class="sw box seg2"></i>p95–p99</span><span><i class="sw box seg3"></i>p99–p99.9</span><span><i class="sw whisker"></i>to max</span></div></div>
{{template "chart" .}}
</section>{{end}}

{{if .Phases}}<section class="panel">
<div class="panel-head"><div><h2>Phases</h2><p class="note">Ops are counted in the phase they started in. Availability is the share of ops that succeeded.</p></div></div>
<div class="table-wrap"><table>
<thead><tr><th>Phase</th><th>Window</th><th class="num">Ops</th><th class="num">OK</th><th class="num">Availability</th><th class="num">Ops/s</th><th class="num">p50</th><th class="num">p99</th><th class="num">Max</th><th>By side</th><th>By level</th></tr></thead>
<tbody>
{{range .Phases}}<tr{{if .Fault}} class="fault"{{end}}>
<td><span class="phase-name">{{.Name}}</span>{{if .Fault}}<span class="tag fault">fault</span>{{end}}</td>
<td class="num dim">{{.Window}}</td>
<td class="num">{{.Ops}}</td><td class="num">{{.OK}}</td>
<td class="num {{.AvailTone}}">{{.Avail}}</td>
<td class="num">{{.Throughput}}</td><td class="num">{{.P50}}</td><td class="num">{{.P99}}</td><td class="num">{{.Max}}</td>
<td>{{if .Sides}}<div class="chips">{{range .Sides}}<span class="chip {{.Tone}}">{{.Label}}<b>{{.Value}}</b></span>{{end}}</div>{{else}}<span class="dim">—</span>{{end}}</td>
<td>{{if .Levels}}<div class="chips">{{range .Levels}}<span class="chip {{.Tone}}"><span class="mono">{{.Label}}</span><b>{{.Value}}</b></span>{{end}}</div>{{else}}<span class="dim">—</span>{{end}}</td>
</tr>
{{end}}</tbody></table></div>
</section>{{end}}

<section class="panel">
<div class="panel-head"><h2>Checks</h2></div>
{{if .Checks}}<div class="table-wrap"><table>
<thead><tr><th style="width:90px">Verdict</th><th>Check</th><th>Detail</th></tr></thead>
<tbody>
{{range .Checks}}<tr{{if not .Passed}} class="failed"{{end}}><td>{{if .Passed}}<span class="pill pass">PASS</span>{{else}}<span class="pill fail">FAIL</span>{{end}}</td><td><b>{{.Name}}</b></td><td>{{.Detail}}</td></tr>
{{end}}</tbody></table></div>{{else}}<p class="note">No checks were run.</p>{{end}}
</section>

<section class="panel">
<div class="panel-head"><h2>Lost acknowledged writes<span class="count{{if .Lost.Count}} bad{{end}}">{{.Lost.Count}}</span></h2>{{with .Lost.More}}<span class="note">{{.}}</span>{{end}}</div>
{{if .LostRows}}<div class="table-wrap"><table>
<thead><tr><th>Key</th><th>Value</th><th class="num">Write op</th></tr></thead>
<tbody>{{range .LostRows}}<tr><td><code>{{.Key}}</code></td><td><code>{{.Value}}</code></td><td class="num">#{{.Op}}</td></tr>
{{end}}</tbody></table></div>{{else if .Lost.Count}}<p class="note">Not listed.</p>{{else}}<p class="empty">✓ None: every acknowledged write survived or was superseded.</p>{{end}}
</section>

<section class="panel">
<div class="panel-head"><h2>Stale reads<span class="count{{if .Stale.Count}} bad{{end}}">{{.Stale.Count}}</span></h2>{{with .Stale.More}}<span class="note">{{.}}</span>{{end}}</div>
{{if .StaleRows}}<div class="table-wrap"><table>
<thead><tr><th>Key</th><th class="num">Read op</th><th class="num">Missed write op</th><th>Missing value</th></tr></thead>
<tbody>{{range .StaleRows}}<tr><td><code>{{.Key}}</code></td><td class="num">#{{.ReadOp}}</td><td class="num">#{{.WriteOp}}</td><td><code>{{.Missing}}</code></td></tr>
{{end}}</tbody></table></div>{{else if .Stale.Count}}<p class="note">Not listed.</p>{{else}}<p class="empty">✓ None: strict-quorum reads saw every write acknowledged before them.</p>{{end}}
</section>

<section class="panel">
<div class="panel-head"><h2>Invalid reads<span class="count{{if .Invalid.Count}} bad{{end}}">{{.Invalid.Count}}</span></h2>{{with .Invalid.More}}<span class="note">{{.}}</span>{{end}}</div>
{{if .InvalidRows}}<div class="table-wrap"><table>
<thead><tr><th>Read</th></tr></thead>
<tbody>{{range .InvalidRows}}<tr><td><code>{{.}}</code></td></tr>
{{end}}</tbody></table></div>{{else if .Invalid.Count}}<p class="note">Not listed.</p>{{else}}<p class="empty">✓ None: every value read was written by some write of its key.</p>{{end}}
</section>

{{with .Siblings}}<section class="panel">
<div class="panel-head"><div><h2>Siblings per read</h2><p class="note">How many concurrent values reads returned.</p></div></div>
{{template "chart" .}}
</section>{{end}}

<section class="panel">
<div class="panel-head"><h2>Run configuration</h2></div>
{{if .Config}}<dl class="config">
{{range .Config}}<dt>{{.Key}}</dt><dd class="mono">{{.Value}}</dd>
{{end}}</dl>{{else}}<p class="note">Not recorded.</p>{{end}}
</section>
</main>
<footer>dotkv bench · data: <a href="report.json">report.json</a> · <a href="history.jsonl">history.jsonl</a></footer>
</body>
</html>
`
