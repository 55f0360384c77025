package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dotkv/dotkv/bench/history"
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
	// to one of the URLs it returns (the membership nemesis changes the
	// members during a run); it must be safe for concurrent use, and its
	// result is not modified.
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
	// Client sends the requests (nil: NewClient(Concurrency)).
	Client *http.Client
}

// Workload runs clients that read, write with the context they read, and
// delete, recording every operation in a History.
type Workload struct {
	cfg    WorkloadConfig
	hist   *history.History
	t0     time.Time
	phase  func() string
	client *http.Client
	perm   []int

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
	// Scramble key ranks so that hot zipfian keys spread over the ring.
	perm := rand.New(rand.NewPCG(cfg.Seed, 99)).Perm(cfg.Keys)
	client := cfg.Client
	if client == nil {
		client = NewClient(cfg.Concurrency)
	}
	return &Workload{cfg: cfg, hist: hist, t0: t0, phase: phase, client: client,
		perm: perm, touched: map[string]bool{}}, nil
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
		targets := w.cfg.LiveTargets()
		if len(targets) == 0 { // cannot happen with a bench cluster; do not spin
			sleepCtx(ctx, 10*time.Millisecond)
			continue
		}
		node := targets[rng.IntN(len(targets))]
		switch x := rng.IntN(total); {
		case x < w.cfg.Mix.Read:
			w.read(ctx, c, node, key)
		case x < w.cfg.Mix.Read+w.cfg.Mix.Write:
			// Read-modify-write, as applications do: the new value
			// supersedes exactly what the read returned.
			r := w.read(ctx, c, node, key)
			seq++
			w.write(ctx, c, node, key, fmt.Sprintf("c%d-%d", c, seq), r)
		default:
			r := w.read(ctx, c, node, key)
			if r.Outcome == history.OK && r.ReadContext != "" {
				w.delete(ctx, c, node, key, r)
			}
		}
	}
}

func (w *Workload) since() int64 { return int64(time.Since(w.t0)) }

func (w *Workload) query(pairs ...string) string {
	q := url.Values{}
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			q.Set(pairs[i], pairs[i+1])
		}
	}
	q.Set("timeout", strconv.FormatInt(w.cfg.Timeout.Milliseconds(), 10))
	return q.Encode()
}

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
func (w *Workload) finish(ctx context.Context, op history.Op, status int, err error) history.Op {
	op.End = w.since()
	op.Status = status
	switch {
	case err != nil:
		if ctx.Err() != nil && op.Kind == history.OpRead {
			return history.Op{Outcome: history.Info} // not recorded
		}
		op.Outcome, op.Error = history.Info, err.Error()
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		op.Outcome = history.Fail
	case op.Kind == history.OpRead && (status == http.StatusOK || status == http.StatusNotFound):
		op.Outcome = history.OK
	case op.Kind != history.OpRead && status == http.StatusNoContent:
		op.Outcome = history.OK
	default:
		op.Outcome = history.Info
	}
	w.ops.Add(1)
	if op.Outcome == history.OK {
		w.ok.Add(1)
	} else {
		w.fail.Add(1)
	}
	return w.hist.Add(op)
}

type jsonRead struct {
	Context  string `json:"context"`
	Siblings []struct {
		Value   []byte `json:"value"`
		Deleted bool   `json:"deleted"`
	} `json:"siblings"`
}

// ValueID returns the unique ID a workload value starts with.
func ValueID(body []byte) string {
	id, _, _ := bytes.Cut(body, []byte{'|'})
	return string(id)
}

func (w *Workload) read(ctx context.Context, c int, node, key string) history.Op {
	op := history.Op{Client: c, Kind: history.OpRead, Key: key, Node: node, Start: w.since(), Phase: w.phase(),
		Level: w.level("r", w.cfg.R, "pr", w.cfg.PR)}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, node+"/kv/"+key+"?"+w.query("r", w.cfg.R, "pr", w.cfg.PR), nil)
	if err != nil {
		return w.finish(ctx, op, 0, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return w.finish(ctx, op, 0, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return w.finish(ctx, op, resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotFound {
		var jr jsonRead
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, &jr); err != nil {
				return w.finish(ctx, op, resp.StatusCode, fmt.Errorf("decode read: %w", err))
			}
		}
		op.ReadContext = resp.Header.Get("X-Dotkv-Context")
		for _, s := range jr.Siblings {
			if s.Deleted {
				op.Tombstones++
			} else {
				op.Values = append(op.Values, ValueID(s.Value))
			}
		}
	}
	return w.finish(ctx, op, resp.StatusCode, nil)
}

func (w *Workload) write(ctx context.Context, c int, node, key, value string, r history.Op) {
	w.mark(key)
	op := history.Op{Client: c, Kind: history.OpWrite, Key: key, Node: node, Start: w.since(), Phase: w.phase(), Value: value,
		Level: w.level("w", w.cfg.W, "pw", w.cfg.PW)}
	if r.Outcome == history.OK {
		op.Context, op.Covers = r.ReadContext, r.Values
	}
	body := []byte(value + "|")
	if pad := w.cfg.ValueSize - len(body); pad > 0 {
		body = append(body, bytes.Repeat([]byte{'.'}, pad)...)
	}
	w.send(ctx, op, http.MethodPut, node+"/kv/"+key+"?"+w.query("w", w.cfg.W, "pw", w.cfg.PW), body)
}

func (w *Workload) delete(ctx context.Context, c int, node, key string, r history.Op) {
	w.mark(key)
	op := history.Op{Client: c, Kind: history.OpDelete, Key: key, Node: node, Start: w.since(), Phase: w.phase(),
		Context: r.ReadContext, Covers: r.Values, Level: w.level("w", w.cfg.W, "pw", w.cfg.PW)}
	w.send(ctx, op, http.MethodDelete, node+"/kv/"+key+"?"+w.query("w", w.cfg.W, "pw", w.cfg.PW), nil)
}

func (w *Workload) mark(key string) {
	w.mu.Lock()
	w.touched[key] = true
	w.mu.Unlock()
}

// send performs a write or delete. It is not cut short by the end of the
// run (its outcome matters to the checker); the request's own timeout
// bounds it.
func (w *Workload) send(_ context.Context, op history.Op, method, url string, body []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout+5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		w.finish(ctx, op, 0, err)
		return
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if op.Context != "" {
		req.Header.Set("X-Dotkv-Context", op.Context)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		w.finish(ctx, op, 0, err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	w.finish(ctx, op, resp.StatusCode, nil)
}
