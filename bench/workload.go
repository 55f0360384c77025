package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dotkv/dotkv/bench/history"
	"github.com/dotkv/dotkv/client"
)

// Mix is the share of reads, writes and deletes (any scale).
type Mix struct{ Read, Write, Delete int }

// ParseMix parses "r:50,w:45,d:5".
func ParseMix(s string) (Mix, error) {
	var m Mix
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), ":")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return Mix{}, fmt.Errorf("--mix %q: want like r:50,w:45,d:5", s)
		}
		switch k {
		case "r":
			m.Read = n
		case "w":
			m.Write = n
		case "d":
			m.Delete = n
		default:
			return Mix{}, fmt.Errorf("--mix %q: unknown kind %q (r, w, d)", s, k)
		}
	}
	if m.Read+m.Write+m.Delete == 0 {
		return Mix{}, fmt.Errorf("--mix %q: all shares are zero", s)
	}
	return m, nil
}

// WorkloadConfig describes the clients.
type WorkloadConfig struct {
	// Targets are the node base URLs the clients send to. If LiveTargets
	// is set, the clients ask it before every operation instead and send
	// to the URLs it returns (the membership nemesis changes the members
	// during a run); it must be safe for concurrent use, and its result
	// is not modified.
	Targets     []string
	LiveTargets func() []string
	Concurrency int
	// Duration and Ops bound the run (either may be 0, not both).
	Duration time.Duration
	Ops      int64
	Keys     int
	Dist     string // uniform | zipfian
	// ValueSize pads each value to this many bytes.
	ValueSize int
	Mix       Mix
	// R, W, PR, PW are per-request levels ("" = the node's default).
	R, W, PR, PW string
	// Timeout is each request's server-side timeout.
	Timeout time.Duration
	Seed    uint64
	// Client sends the requests (nil: NewClient(Concurrency)); with TLS
	// and a token for a secured cluster.
	Client *http.Client
}

// Workload runs clients that read, write with the context they read, and
// delete, recording every operation in a History.
//
// Each client is a client.Client over the targets: it sends each request
// to the next target in turn and fails over to the others when one
// refuses it (a killed node refuses connections, a restarting one answers
// 503 not_ready), so an operation counts as available when the cluster
// answered it, whichever node did. A write whose outcome is unknown is
// never sent again; it is recorded as Info: possibly applied.
type Workload struct {
	cfg    WorkloadConfig
	hist   *history.History
	t0     time.Time
	phase  func() string
	client *http.Client
	perm   []int
	// Options of every read and every write.
	readOpts, writeOpts []client.Option

	mu      sync.Mutex
	touched map[string]bool

	ops, ok, fail atomic.Int64
}

// NewWorkload prepares a workload; phase names the current nemesis phase.
func NewWorkload(cfg WorkloadConfig, hist *history.History, t0 time.Time, phase func() string) (*Workload, error) {
	if cfg.LiveTargets == nil {
		targets := cfg.Targets
		cfg.LiveTargets = func() []string { return targets }
	}
	if len(cfg.LiveTargets()) == 0 || cfg.Concurrency < 1 || cfg.Keys < 1 {
		return nil, fmt.Errorf("workload: need targets, concurrency ≥ 1 and keys ≥ 1")
	}
	if cfg.Duration <= 0 && cfg.Ops <= 0 {
		return nil, fmt.Errorf("workload: need --duration or --ops")
	}
	if cfg.Dist != "uniform" && cfg.Dist != "zipfian" {
		return nil, fmt.Errorf("--dist %q: want uniform or zipfian", cfg.Dist)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if err := (client.Config{Endpoints: cfg.LiveTargets(), Timeout: cfg.Timeout}).Validate(); err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	// Scramble key ranks so that hot zipfian keys spread over the ring.
	perm := rand.New(rand.NewPCG(cfg.Seed, 99)).Perm(cfg.Keys)
	hc := cfg.Client
	if hc == nil {
		hc = NewClient(cfg.Concurrency)
	}
	w := &Workload{cfg: cfg, hist: hist, t0: t0, phase: phase, client: hc, perm: perm, touched: map[string]bool{}}
	for _, l := range []struct {
		opt   func(client.Level) client.Option
		level string
		write bool
	}{{client.R, cfg.R, false}, {client.PR, cfg.PR, false}, {client.W, cfg.W, true}, {client.PW, cfg.PW, true}} {
		switch {
		case l.level == "":
		case l.write:
			w.writeOpts = append(w.writeOpts, l.opt(client.Level(l.level)))
		default:
			w.readOpts = append(w.readOpts, l.opt(client.Level(l.level)))
		}
	}
	w.writeOpts = append(w.writeOpts, client.ContentType("application/octet-stream"))
	return w, nil
}

// Progress returns ops started, acknowledged and failed so far.
func (w *Workload) Progress() (ops, ok, failed int64) {
	return w.ops.Load(), w.ok.Load(), w.fail.Load()
}

// Touched returns every key the workload wrote or deleted.
func (w *Workload) Touched() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.touched))
	for k := range w.touched {
		out = append(out, k)
	}
	return out
}

// Run drives the clients until ctx is done, the duration passes or the op
// budget is spent.
func (w *Workload) Run(ctx context.Context) {
	if w.cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.cfg.Duration)
		defer cancel()
	}
	var wg sync.WaitGroup
	for c := range w.cfg.Concurrency {
		wg.Go(func() { w.client1(ctx, c) })
	}
	wg.Wait()
	w.client.CloseIdleConnections()
}

func (w *Workload) client1(ctx context.Context, c int) {
	rng := rand.New(rand.NewPCG(w.cfg.Seed, uint64(c)+1))
	var zipf *rand.Zipf
	if w.cfg.Dist == "zipfian" && w.cfg.Keys > 1 {
		zipf = rand.NewZipf(rng, 1.1, 1, uint64(w.cfg.Keys-1))
	}
	// The client's own API client over the live targets, on the shared
	// HTTP client.
	targets := w.cfg.LiveTargets()
	api, err := client.New(client.Config{Endpoints: targets, HTTPClient: w.client, Timeout: w.cfg.Timeout})
	if err != nil { // NewWorkload validated the targets
		panic(fmt.Sprintf("workload client %d: %v", c, err))
	}
	total := w.cfg.Mix.Read + w.cfg.Mix.Write + w.cfg.Mix.Delete
	seq := 0
	for ctx.Err() == nil {
		if w.cfg.Ops > 0 && w.ops.Load() >= w.cfg.Ops {
			return
		}
		rank := rng.IntN(w.cfg.Keys)
		if zipf != nil {
			rank = int(zipf.Uint64())
		}
		key := fmt.Sprintf("k%06d", w.perm[rank])
		if live := w.cfg.LiveTargets(); !slices.Equal(live, targets) {
			if len(live) == 0 { // cannot happen with a bench cluster; do not spin
				sleepCtx(ctx, 10*time.Millisecond)
				continue
			}
			if err := api.SetEndpoints(live); err != nil {
				panic(fmt.Sprintf("workload client %d: %v", c, err))
			}
			targets = live
		}
		switch x := rng.IntN(total); {
		case x < w.cfg.Mix.Read:
			w.read(ctx, api, c, key)
		case x < w.cfg.Mix.Read+w.cfg.Mix.Write:
			// Read-modify-write, as applications do: the new value
			// supersedes exactly what the read returned.
			r := w.read(ctx, api, c, key)
			seq++
			w.write(ctx, api, c, key, fmt.Sprintf("c%d-%d", c, seq), r)
		default:
			r := w.read(ctx, api, c, key)
			if r.Outcome == history.OK && r.ReadContext != "" {
				w.delete(ctx, api, c, key, r)
			}
		}
	}
}

func (w *Workload) since() int64 { return int64(time.Since(w.t0)) }

func (w *Workload) level(pairs ...string) string {
	var parts []string
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			parts = append(parts, pairs[i]+"="+pairs[i+1])
		}
	}
	if len(parts) == 0 {
		return "default"
	}
	return strings.Join(parts, "&")
}

// finish classifies and records an op, and a failure only if the run is
// still going (a request cut off by the end of the run is not an outcome).
// A failed op is Fail if its error says for certain that nothing was
// written (client.MaybeApplied), Info otherwise.
func (w *Workload) finish(ctx context.Context, op history.Op, status int, err error) history.Op {
	op.End = w.since()
	op.Status = status
	switch {
	case err == nil:
		op.Outcome = history.OK
	case ctx.Err() != nil && op.Kind == history.OpRead:
		return history.Op{Outcome: history.Info} // not recorded
	case !client.MaybeApplied(err):
		op.Outcome, op.Error = history.Fail, err.Error()
	default:
		op.Outcome, op.Error = history.Info, err.Error()
	}
	w.ops.Add(1)
	if op.Outcome == history.OK {
		w.ok.Add(1)
	} else {
		w.fail.Add(1)
	}
	return w.hist.Add(op)
}

// ValueID returns the unique ID a workload value starts with.
func ValueID(body []byte) string {
	id, _, _ := bytes.Cut(body, []byte{'|'})
	return string(id)
}

// readStatus is the status a node answers a read of obj with: 200 for one
// sibling, 300 for several.
func readStatus(obj *client.Object) int {
	if len(obj.Siblings) == 1 {
		return http.StatusOK
	}
	return http.StatusMultipleChoices
}

// answered returns the node that answered err, or the last one tried, and
// the status of its answer (0 for none).
func answered(err error) (node string, status int) {
	var unreachable *client.UnreachableError
	var unknown *client.OutcomeUnknownError
	switch {
	case errors.As(err, &unreachable):
		return unreachable.Endpoint(), 0
	case errors.As(err, &unknown):
		return unknown.Endpoint, unknown.Status
	}
	if r, ok := client.AsResponse(err); ok {
		return r.Endpoint, r.Status
	}
	return "", 0
}

func (w *Workload) read(ctx context.Context, api *client.Client, c int, key string) history.Op {
	op := history.Op{Client: c, Kind: history.OpRead, Key: key, Start: w.since(), Phase: w.phase(),
		Level: w.level("r", w.cfg.R, "pr", w.cfg.PR)}
	obj, err := api.Get(ctx, key, w.readOpts...)
	var nf *client.NotFoundError
	switch {
	case err == nil:
		op.Node, op.ReadContext = obj.Endpoint, obj.Context
		for _, s := range obj.Siblings {
			if s.Deleted {
				op.Tombstones++
			} else {
				op.Values = append(op.Values, ValueID(s.Value))
			}
		}
		return w.finish(ctx, op, readStatus(obj), nil)
	case errors.As(err, &nf):
		// Absent or deleted: an answer, with the tombstones' context.
		op.Node, op.ReadContext = nf.Endpoint, nf.Context
		return w.finish(ctx, op, http.StatusNotFound, nil)
	}
	var status int
	op.Node, status = answered(err)
	return w.finish(ctx, op, status, err)
}

func (w *Workload) write(ctx context.Context, api *client.Client, c int, key, value string, r history.Op) {
	w.mark(key)
	op := history.Op{Client: c, Kind: history.OpWrite, Key: key, Start: w.since(), Phase: w.phase(), Value: value,
		Level: w.level("w", w.cfg.W, "pw", w.cfg.PW)}
	if r.Outcome == history.OK {
		op.Context, op.Covers = r.ReadContext, r.Values
	}
	body := []byte(value + "|")
	if pad := w.cfg.ValueSize - len(body); pad > 0 {
		body = append(body, bytes.Repeat([]byte{'.'}, pad)...)
	}
	w.send(ctx, api, op, func(ctx context.Context, opts []client.Option) (*client.WriteResult, error) {
		return api.Put(ctx, key, body, opts...)
	})
}

func (w *Workload) delete(ctx context.Context, api *client.Client, c int, key string, r history.Op) {
	w.mark(key)
	op := history.Op{Client: c, Kind: history.OpDelete, Key: key, Start: w.since(), Phase: w.phase(),
		Context: r.ReadContext, Covers: r.Values, Level: w.level("w", w.cfg.W, "pw", w.cfg.PW)}
	w.send(ctx, api, op, func(ctx context.Context, opts []client.Option) (*client.WriteResult, error) {
		return api.Delete(ctx, key, opts...)
	})
}

func (w *Workload) mark(key string) {
	w.mu.Lock()
	w.touched[key] = true
	w.mu.Unlock()
}

// send performs a write or delete, never twice (its outcome matters to
// the checker). It is not cut short by the end of the run; the client's
// bounds on each attempt bound it.
func (w *Workload) send(ctx context.Context, api *client.Client, op history.Op,
	do func(context.Context, []client.Option) (*client.WriteResult, error)) {
	ctx = context.WithoutCancel(ctx)
	opts := w.writeOpts
	if op.Context != "" {
		opts = append(slices.Clip(opts), client.Context(op.Context))
	}
	res, err := do(ctx, opts)
	if err != nil {
		var status int
		op.Node, status = answered(err)
		w.finish(ctx, op, status, err)
		return
	}
	op.Node = res.Endpoint
	w.finish(ctx, op, http.StatusNoContent, nil)
}
