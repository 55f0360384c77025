package check

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/dotkv/dotkv/bench/history"
)

// FinalState is what a read of the key at r=all returned after the run
// healed and converged.
type FinalState struct {
	// Status is the HTTP status of the final read: 200, 300 or 404 make
	// the state usable; anything else (0 for a transport error, 503, …)
	// means the key's final state is unknown.
	Status int `json:"status"`
	// Values are the value IDs of the non-deleted siblings.
	Values []string `json:"values,omitempty"`
	// Tombstones is how many deleted siblings the read saw.
	Tombstones int `json:"tombstones,omitempty"`
}

// Options is what Analyze needs besides the history.
type Options struct {
	// Final holds the final state of every key the workload touched.
	Final map[string]FinalState
	// Strict: the run used strict quorums (pr+pw > N), so stale reads are
	// checked in fault-free phases.
	Strict bool
	// NodeIDs maps node base URL -> node ID, for availability per
	// partition side.
	NodeIDs map[string]string
	// ConvergenceSeconds is measured by the harness (-1: did not converge
	// within its timeout).
	ConvergenceSeconds float64
	// MaxConvergenceSeconds: 0 = no limit; else the convergence check
	// fails above it.
	MaxConvergenceSeconds float64
	// Config is copied into Report.Config.
	Config map[string]any
}

// Names of the checks Analyze reports.
const (
	CheckLost        = "no lost acknowledged writes"
	CheckValidity    = "reads return only written values"
	CheckStale       = "no stale reads in fault-free phases"
	CheckConvergence = "converged after the final heal"
)

// chkMaxLatencyUs bounds what the latency histograms track (1 hour, in
// µs); longer latencies are recorded at the bound.
const chkMaxLatencyUs = 3_600_000_000

// Analyze checks a history and summarises it. It is pure: everything it
// needs is in its arguments.
//
// Definitions (docs/design.md §11.2). For a write or delete x, past(x) is the set
// of value IDs its context stands for, transitively: Covers(x) plus the past
// of every write of the same key whose Value is in Covers(x).
//
//   - Lost acknowledged write: an OK write W such that, in Final[W.Key],
//     W.Value is neither one of the Values nor in the past of one of them,
//     and no OK or Info delete of the key has W.Value in its past. Keys
//     with OK writes but no usable final state (missing from Final, or a
//     status other than 200/300/404) are not listed as lost but make the
//     check fail as unverifiable.
//   - Invalid read: an OK read that returned a value no write of the key
//     wrote (phantom). The final state is checked the same way, and a
//     final value in the past of any OK write or delete is resurrected. One
//     entry per read (per key for the final state), naming every bad value.
//     A read that returns a value an acknowledged delete had superseded
//     before the read started is not invalid in itself: during a
//     partition, or before repair under sloppy quorums, a replica may not
//     know of the delete yet (dotkv promises no freshness there). Under
//     strict quorums in a fault-free phase it is a stale read.
//   - Stale read (only if Strict): an OK read R that started in a
//     fault-free phase (or anywhere when there are no phases), and an OK
//     write W of the key that ended before R started, such that W.Value is
//     neither in R.Values nor in the past of one of them, and no non-Fail
//     write or delete of the key with W.Value in its past started before R
//     ended. StaleReads counts such reads; Stale lists every (read, write)
//     pair.
func Analyze(ops []history.Op, phases []history.Phase, opts Options) Report {
	r := Report{
		Config:             opts.Config,
		SiblingHistogram:   map[int]int{},
		ConvergenceSeconds: opts.ConvergenceSeconds,
		Phases:             []PhaseReport{},
		Series:             []Bucket{},
		Checks:             []Check{},
	}
	phaseOf := chkAssignPhases(ops, phases)
	chkStats(&r, ops, phases, phaseOf, opts)

	c := chkConsistency{ops: ops, phases: phases, phaseOf: phaseOf, opts: opts}
	c.run()
	r.Lost, r.LostAcknowledgedWrites = c.lost, len(c.lost)
	r.Invalid, r.InvalidReads = c.invalid, len(c.invalid)
	r.Stale, r.StaleReads = c.stale, c.staleReads

	lostOK := len(c.lost) == 0 && len(c.unverified) == 0
	detail := fmt.Sprintf("%d of %d acknowledged writes lost", len(c.lost), c.ackedWrites)
	if len(c.unverified) > 0 {
		detail += fmt.Sprintf("; %d acknowledged writes on %d keys unverifiable, no usable final state (%s)",
			c.unverifiedWrites, len(c.unverified), chkList(c.unverified, 10))
	}
	r.Checks = append(r.Checks, Check{Name: CheckLost, Passed: lostOK, Detail: detail})
	r.Checks = append(r.Checks, Check{Name: CheckValidity, Passed: len(c.invalid) == 0,
		Detail: fmt.Sprintf("%d invalid of %d reads and %d final states (%d phantom values, %d resurrected)",
			len(c.invalid), c.okReads, c.finalKeys, c.phantoms, c.resurrected)})
	if opts.Strict {
		r.Checks = append(r.Checks, Check{Name: CheckStale, Passed: c.staleReads == 0,
			Detail: fmt.Sprintf("%d stale of %d reads checked (%d missed writes)",
				c.staleReads, c.strictReads, len(c.stale))})
	}
	conv := Check{Name: CheckConvergence}
	switch cs := opts.ConvergenceSeconds; {
	case cs < 0:
		conv.Detail = "did not converge within the harness's timeout"
	case opts.MaxConvergenceSeconds > 0 && cs > opts.MaxConvergenceSeconds:
		conv.Detail = fmt.Sprintf("converged in %.2f s, above the limit of %.2f s", cs, opts.MaxConvergenceSeconds)
	case opts.MaxConvergenceSeconds > 0:
		conv.Passed = true
		conv.Detail = fmt.Sprintf("converged in %.2f s (limit %.2f s)", cs, opts.MaxConvergenceSeconds)
	default:
		conv.Passed = true
		conv.Detail = fmt.Sprintf("converged in %.2f s", cs)
	}
	r.Checks = append(r.Checks, conv)

	r.Passed = true
	for _, ck := range r.Checks {
		r.Passed = r.Passed && ck.Passed
	}
	return r
}

// chkList joins up to n items, saying how many more there are.
func chkList(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(", … %d more", len(items)-n)
}

// ---- consistency ----

// chkConsistency holds the state of the lost/validity/stale checks.
type chkConsistency struct {
	ops     []history.Op
	phases  []history.Phase
	phaseOf []int
	opts    Options

	lost       []LostWrite
	invalid    []string
	stale      []StaleRead
	staleReads int

	ackedWrites, unverifiedWrites   int
	unverified                      []string
	okReads, finalKeys, strictReads int
	phantoms, resurrected           int
	staleOps                        map[int]bool

	invalidOps   []chkInvalid // reads, sorted by op index at the end
	invalidFinal []chkInvalid // final states, sorted by key
}

type chkInvalid struct {
	op   int
	key  string
	text string
}

func (c *chkConsistency) run() {
	byKey := map[string][]int{}
	for i := range c.ops {
		byKey[c.ops[i].Key] = append(byKey[c.ops[i].Key], i)
	}
	for k := range c.opts.Final {
		if _, ok := byKey[k]; !ok {
			byKey[k] = nil
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := newChkKey(c.ops, k, byKey[k])
		c.checkLost(g)
		c.checkValidity(g)
		if c.opts.Strict {
			c.checkStale(g)
		}
	}

	sort.Slice(c.lost, func(i, j int) bool { return c.lost[i].Op < c.lost[j].Op })
	sort.Slice(c.stale, func(i, j int) bool {
		if c.stale[i].ReadOp != c.stale[j].ReadOp {
			return c.stale[i].ReadOp < c.stale[j].ReadOp
		}
		return c.stale[i].WriteOp < c.stale[j].WriteOp
	})
	sort.Slice(c.invalidOps, func(i, j int) bool { return c.invalidOps[i].op < c.invalidOps[j].op })
	for _, iv := range c.invalidOps {
		c.invalid = append(c.invalid, iv.text)
	}
	for _, iv := range c.invalidFinal { // keys were visited in order
		c.invalid = append(c.invalid, iv.text)
	}
}

// chkKey is the cover graph of one key: a node per written value ID, an
// edge from a value to each value its write's context covered.
type chkKey struct {
	key    string
	ops    []history.Op
	idx    []int            // the key's ops (indices into ops)
	ids    map[string]int32 // written value ID -> node
	writer []int            // node -> index into ops of the (first) write of it
	edges  [][]int32        // node -> covered nodes
	stamp  []uint32         // scratch for walks
	gen    uint32
}

func newChkKey(ops []history.Op, key string, idx []int) *chkKey {
	g := &chkKey{key: key, ops: ops, idx: idx, ids: map[string]int32{}}
	for _, i := range idx {
		o := &ops[i]
		if o.Kind != history.OpWrite || o.Value == "" {
			continue
		}
		if _, ok := g.ids[o.Value]; !ok {
			g.ids[o.Value] = int32(len(g.writer))
			g.writer = append(g.writer, i)
		}
	}
	g.edges = make([][]int32, len(g.writer))
	g.stamp = make([]uint32, len(g.writer))
	for _, i := range idx {
		o := &ops[i]
		if o.Kind != history.OpWrite || o.Value == "" {
			continue
		}
		n := g.ids[o.Value]
		g.edges[n] = g.appendNodes(g.edges[n], o.Covers)
	}
	return g
}

// appendNodes appends the nodes of the written values among vals.
func (g *chkKey) appendNodes(dst []int32, vals []string) []int32 {
	for _, v := range vals {
		if n, ok := g.ids[v]; ok {
			dst = append(dst, n)
		}
	}
	return dst
}

// walk visits every node reachable from roots (roots included) for which
// visit returns true, descending only from those. It returns the stack for
// reuse.
func (g *chkKey) walk(stack []int32, visit func(int32) bool) []int32 {
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !visit(n) {
			continue
		}
		stack = append(stack, g.edges[n]...)
	}
	return stack
}

// reach marks, in a fresh generation of g.stamp, every node reachable
// from vals (themselves included); test membership with g.reached.
func (g *chkKey) reach(vals []string) {
	g.gen++
	if g.gen == 0 { // wrapped: clear
		clear(g.stamp)
		g.gen = 1
	}
	gen := g.gen
	g.walk(g.appendNodes(nil, vals), func(n int32) bool {
		if g.stamp[n] == gen {
			return false
		}
		g.stamp[n] = gen
		return true
	})
}

func (g *chkKey) reached(n int32) bool { return g.stamp[n] == g.gen }

// earliest computes, for each node, the smallest t(o) over the ops o
// (writes or deletes passing keep) whose past contains it, and which op
// that was (index into ops; -1 and MaxInt64 when none). Ops are processed
// by increasing t, so a walk stops at nodes already marked: their past was
// marked by an earlier op with a smaller t.
func (g *chkKey) earliest(keep func(*history.Op) bool, t func(*history.Op) int64) ([]int64, []int) {
	at := make([]int64, len(g.writer))
	by := make([]int, len(g.writer))
	for i := range at {
		at[i], by[i] = math.MaxInt64, -1
	}
	var src []int
	for _, i := range g.idx {
		o := &g.ops[i]
		if (o.Kind == history.OpWrite || o.Kind == history.OpDelete) && len(o.Covers) > 0 && keep(o) {
			src = append(src, i)
		}
	}
	sort.SliceStable(src, func(a, b int) bool { return t(&g.ops[src[a]]) < t(&g.ops[src[b]]) })
	var stack []int32
	for _, i := range src {
		ti := t(&g.ops[i])
		stack = g.walk(g.appendNodes(stack[:0], g.ops[i].Covers), func(n int32) bool {
			if by[n] >= 0 {
				return false
			}
			at[n], by[n] = ti, i
			return true
		})
	}
	return at, by
}

// chkFinalUsable reports whether a final read's status describes the key.
func chkFinalUsable(f FinalState) bool {
	return f.Status == 200 || f.Status == 300 || f.Status == 404
}

func (c *chkConsistency) checkLost(g *chkKey) {
	var acked []int
	for _, i := range g.idx {
		o := &c.ops[i]
		if o.Kind == history.OpWrite && o.Outcome == history.OK {
			acked = append(acked, i)
		}
	}
	c.ackedWrites += len(acked)
	if len(acked) == 0 {
		return
	}
	f, ok := c.opts.Final[g.key]
	if !ok || !chkFinalUsable(f) {
		c.unverified = append(c.unverified, g.key)
		c.unverifiedWrites += len(acked)
		return
	}
	// Everything the final values hold or supersede, and everything a
	// possibly applied delete superseded.
	roots := g.appendNodes(nil, f.Values)
	for _, i := range g.idx {
		o := &c.ops[i]
		if o.Kind == history.OpDelete && (o.Outcome == history.OK || o.Outcome == history.Info) {
			roots = g.appendNodes(roots, o.Covers)
		}
	}
	covered := make([]bool, len(g.writer))
	g.walk(roots, func(n int32) bool {
		if covered[n] {
			return false
		}
		covered[n] = true
		return true
	})
	for _, i := range acked {
		o := &c.ops[i]
		if n, ok := g.ids[o.Value]; ok && covered[n] {
			continue
		}
		c.lost = append(c.lost, LostWrite{Key: g.key, Value: o.Value, Op: o.Index})
	}
}

func (c *chkConsistency) checkValidity(g *chkKey) {
	okOp := func(o *history.Op) bool { return o.Outcome == history.OK }
	var delAt []int64
	var delBy []int
	hasDelete := false
	for _, i := range g.idx {
		if o := &c.ops[i]; o.Kind == history.OpDelete && o.Outcome == history.OK {
			hasDelete = true
			break
		}
	}
	if hasDelete {
		delAt, delBy = g.earliest(func(o *history.Op) bool { return o.Kind == history.OpDelete && okOp(o) },
			func(o *history.Op) int64 { return o.End })
	}
	for _, i := range g.idx {
		o := &c.ops[i]
		if o.Kind != history.OpRead || o.Outcome != history.OK {
			continue
		}
		c.okReads++
		var bad []string
		for _, v := range o.Values {
			n, ok := g.ids[v]
			switch {
			case !ok:
				c.phantoms++
				bad = append(bad, "phantom value "+v)
			case delAt != nil && delAt[n] < o.Start && c.opts.Strict && c.faultFree(i):
				// The delete was acknowledged by a strict quorum before
				// this read began, in a fault-free phase: a stale read.
				c.markStale(o.Index)
				c.stale = append(c.stale, StaleRead{Key: g.key, ReadOp: o.Index, WriteOp: c.ops[delBy[n]].Index,
					Missing: "the delete of " + v})
			}
		}
		if len(bad) > 0 {
			c.invalidOps = append(c.invalidOps, chkInvalid{op: o.Index, key: g.key,
				text: fmt.Sprintf("op %d key %s: %s", o.Index, g.key, strings.Join(bad, "; "))})
		}
	}

	f, ok := c.opts.Final[g.key]
	if !ok || !chkFinalUsable(f) {
		return
	}
	c.finalKeys++
	if len(f.Values) == 0 {
		return
	}
	_, supBy := g.earliest(okOp, func(o *history.Op) int64 { return o.End })
	var bad []string
	for _, v := range f.Values {
		n, ok := g.ids[v]
		switch {
		case !ok:
			c.phantoms++
			bad = append(bad, "phantom value "+v)
		case supBy[n] >= 0:
			c.resurrected++
			so := &c.ops[supBy[n]]
			bad = append(bad, fmt.Sprintf("resurrected value %s (superseded by %s op %d)", v, so.Kind, so.Index))
		}
	}
	if len(bad) > 0 {
		c.invalidFinal = append(c.invalidFinal, chkInvalid{op: -1, key: g.key,
			text: fmt.Sprintf("final key %s: %s", g.key, strings.Join(bad, "; "))})
	}
}

func (c *chkConsistency) checkStale(g *chkKey) {
	var reads, writes []int
	for _, i := range g.idx {
		o := &c.ops[i]
		if o.Outcome != history.OK {
			continue
		}
		switch o.Kind {
		case history.OpRead:
			if c.faultFree(i) {
				reads = append(reads, i)
			}
		case history.OpWrite:
			if o.Value != "" {
				writes = append(writes, i)
			}
		}
	}
	c.strictReads += len(reads)
	if len(reads) == 0 || len(writes) == 0 {
		return
	}
	// supStart[n]: the earliest start of a non-Fail write or delete whose
	// past holds n — from then on a read may legitimately miss n.
	supStart, _ := g.earliest(func(o *history.Op) bool { return o.Outcome != history.Fail },
		func(o *history.Op) int64 { return o.Start })
	sort.SliceStable(reads, func(a, b int) bool { return c.ops[reads[a]].Start < c.ops[reads[b]].Start })
	sort.SliceStable(writes, func(a, b int) bool { return c.ops[writes[a]].End < c.ops[writes[b]].End })

	// Sweep reads by start. active holds the acknowledged writes that
	// ended before the current read started and that nothing started
	// before it supersedes; a write superseded by an op that started
	// before this read can be dropped for every later read too.
	var active []int
	wi := 0
	for _, ri := range reads {
		r := &c.ops[ri]
		for wi < len(writes) && c.ops[writes[wi]].End < r.Start {
			active = append(active, writes[wi])
			wi++
		}
		keep := active[:0]
		for _, wj := range active {
			if supStart[g.ids[c.ops[wj].Value]] >= r.Start {
				keep = append(keep, wj)
			}
		}
		active = keep
		reachDone, stale := false, false
		var seen map[string]bool // r.Values as a set, when there are many
		if len(active) > 0 && len(r.Values) > 16 {
			seen = make(map[string]bool, len(r.Values))
			for _, v := range r.Values {
				seen[v] = true
			}
		}
		for _, wj := range active {
			w := &c.ops[wj]
			n := g.ids[w.Value]
			if supStart[n] < r.End {
				continue
			}
			if seen != nil && seen[w.Value] || seen == nil && chkContains(r.Values, w.Value) {
				continue
			}
			if !reachDone {
				g.reach(r.Values)
				reachDone = true
			}
			if g.reached(n) {
				continue
			}
			stale = true
			c.stale = append(c.stale, StaleRead{Key: g.key, ReadOp: r.Index, WriteOp: w.Index, Missing: w.Value})
		}
		if stale {
			c.markStale(r.Index)
		}
	}
}

// faultFree reports whether op i started in a phase without a fault.
func (c *chkConsistency) faultFree(i int) bool {
	p := c.phaseOf[i]
	return p < 0 || !c.phases[p].Fault
}

// markStale counts a stale read once, whichever rule found it.
func (c *chkConsistency) markStale(op int) {
	if c.staleOps == nil {
		c.staleOps = map[int]bool{}
	}
	if !c.staleOps[op] {
		c.staleOps[op] = true
		c.staleReads++
	}
}

func chkContains(vals []string, v string) bool {
	for _, x := range vals {
		if x == v {
			return true
		}
	}
	return false
}

// ---- phases and statistics ----

// chkAssignPhases returns, for each op, the index of the phase it started
// in (phases taken as half-open [Start, End)); an op outside every phase
// goes to the nearest one. -1 when there are no phases.
func chkAssignPhases(ops []history.Op, phases []history.Phase) []int {
	out := make([]int, len(ops))
	if len(phases) == 0 {
		for i := range out {
			out[i] = -1
		}
		return out
	}
	order := make([]int, len(phases))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return phases[order[a]].Start < phases[order[b]].Start })
	for i := range ops {
		t := ops[i].Start
		// k: the last phase (in start order) with Start <= t.
		k := sort.Search(len(order), func(j int) bool { return phases[order[j]].Start > t }) - 1
		switch {
		case k < 0:
			out[i] = order[0]
		case t < phases[order[k]].End:
			out[i] = order[k]
		default:
			// In a gap or after the end: the nearer of this phase's end
			// and the next one's start.
			best := order[k]
			if k+1 < len(order) && phases[order[k+1]].Start-t < t-phases[order[k]].End {
				best = order[k+1]
			}
			out[i] = best
		}
	}
	return out
}

// chkLat accumulates latencies of OK ops for percentiles.
type chkLat struct {
	h     *hdrhistogram.Histogram
	maxUs int64
}

func newChkLat() *chkLat { return &chkLat{h: hdrhistogram.New(1, chkMaxLatencyUs, 3)} }

func chkLatencyUs(o *history.Op) int64 {
	us := (o.End - o.Start + 500) / 1000
	return min(max(us, 0), chkMaxLatencyUs)
}

func (l *chkLat) add(us int64) {
	_ = l.h.RecordValue(us) // in range by construction
	l.maxUs = max(l.maxUs, us)
}

func (l *chkLat) reset() { l.h.Reset(); l.maxUs = 0 }

// latencies returns the percentiles in ms; HDR values are the highest
// equivalent of their bucket, capped at the exact maximum.
func (l *chkLat) latencies() Latencies {
	if l.h.TotalCount() == 0 {
		return Latencies{}
	}
	q := l.h.ValueAtPercentilesSlice([]float64{50, 95, 99, 99.9})
	ms := func(us int64) float64 { return float64(min(us, l.maxUs)) / 1000 }
	return Latencies{P50: ms(q[0]), P95: ms(q[1]), P99: ms(q[2]), P999: ms(q[3]), Max: ms(l.maxUs)}
}

// chkShare counts ops and OK ops.
type chkShare struct{ ops, ok int }

func chkShares(m map[string]*chkShare) map[string]float64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]float64, len(m))
	for k, s := range m {
		if s.ops > 0 {
			out[k] = float64(s.ok) / float64(s.ops)
		}
	}
	return out
}

func chkNormURL(u string) string { return strings.TrimRight(u, "/") }

// chkStats fills the counts, throughput, latencies, phases, sibling
// histogram and series of r.
func chkStats(r *Report, ops []history.Op, phases []history.Phase, phaseOf []int, opts Options) {
	ids := make(map[string]string, len(opts.NodeIDs))
	for u, id := range opts.NodeIDs {
		ids[chkNormURL(u)] = id
	}
	type phaseAcc struct {
		ops, ok int
		lat     *chkLat
		sideOf  map[string]string // node ID -> side key
		bySide  map[string]*chkShare
		byLevel map[string]*chkShare
		// bySideLevel: "side | level" → share, where the quorum rules
		// show (a minority side at pw=quorum vs w=1).
		bySideLevel map[string]*chkShare
	}
	acc := make([]phaseAcc, len(phases))
	for p, ph := range phases {
		a := &acc[p]
		a.lat = newChkLat()
		a.byLevel = map[string]*chkShare{}
		if len(ph.Sides) > 0 {
			a.sideOf = map[string]string{}
			a.bySide = map[string]*chkShare{}
			a.bySideLevel = map[string]*chkShare{}
			for _, side := range ph.Sides {
				sk := strings.Join(side, ",")
				a.bySide[sk] = &chkShare{}
				for _, id := range side {
					a.sideOf[id] = sk
				}
			}
		}
	}

	all := newChkLat()
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	firstEnd := int64(math.MaxInt64)
	for i := range ops {
		o := &ops[i]
		r.Ops++
		ok := o.Outcome == history.OK
		var us int64
		if ok {
			r.OK++
			us = chkLatencyUs(o)
			all.add(us)
			if o.Kind == history.OpRead {
				r.SiblingHistogram[len(o.Values)+o.Tombstones]++
			}
		} else {
			r.Failed++
		}
		first, last = min(first, o.Start), max(last, o.End)
		firstEnd = min(firstEnd, o.End)
		if p := phaseOf[i]; p >= 0 {
			a := &acc[p]
			a.ops++
			bump := func(s *chkShare) {
				s.ops++
				if ok {
					s.ok++
				}
			}
			if ok {
				a.ok++
				a.lat.add(us)
			}
			lvl := o.Level
			if lvl == "" {
				lvl = "default"
			}
			s := a.byLevel[lvl]
			if s == nil {
				s = &chkShare{}
				a.byLevel[lvl] = s
			}
			bump(s)
			if a.sideOf != nil {
				if sk, found := a.sideOf[ids[chkNormURL(o.Node)]]; found {
					bump(a.bySide[sk])
					sl := a.bySideLevel[sk+" | "+lvl]
					if sl == nil {
						sl = &chkShare{}
						a.bySideLevel[sk+" | "+lvl] = sl
					}
					bump(sl)
				}
			}
		}
	}
	if len(ops) > 0 && last > first {
		r.ThroughputOpsPerSec = float64(r.OK) / (float64(last-first) / 1e9)
	}
	r.LatencyMs = all.latencies()

	for p, ph := range phases {
		a := &acc[p]
		pr := PhaseReport{
			Name: ph.Name, Fault: ph.Fault,
			Start: float64(ph.Start) / 1e9, End: float64(ph.End) / 1e9,
			Ops: a.ops, OK: a.ok,
			LatencyMs:                  a.lat.latencies(),
			AvailabilityBySide:         chkShares(a.bySide),
			AvailabilityByLevel:        chkShares(a.byLevel),
			AvailabilityBySideAndLevel: chkShares(a.bySideLevel),
		}
		if ph.End > ph.Start {
			pr.ThroughputOpsPerSec = float64(a.ok) / (float64(ph.End-ph.Start) / 1e9)
		}
		r.Phases = append(r.Phases, pr)
	}

	// Series: one bucket per second of completion time, contiguous from
	// the first completion to the last.
	if len(ops) == 0 {
		return
	}
	sec := func(t int64) int64 { // floor division
		s := t / 1e9
		if t < 0 && t%1e9 != 0 {
			s--
		}
		return s
	}
	s0, s1 := sec(firstEnd), sec(last)
	n := int(s1 - s0 + 1)
	buckets := make([]Bucket, n)
	lats := make([][]int64, n)
	for i := range buckets {
		buckets[i].Second = int(s0) + i
	}
	for i := range ops {
		o := &ops[i]
		b := int(sec(o.End) - s0)
		buckets[b].Ops++
		if o.Outcome == history.OK {
			buckets[b].OK++
			lats[b] = append(lats[b], chkLatencyUs(o))
		}
	}
	h := newChkLat()
	for b := range buckets {
		if len(lats[b]) == 0 {
			continue
		}
		h.reset()
		for _, us := range lats[b] {
			h.add(us)
		}
		l := h.latencies()
		buckets[b].P50, buckets[b].P99 = l.P50, l.P99
	}
	r.Series = buckets
}
