package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dotkv/dotkv/bench/check"
	"github.com/dotkv/dotkv/bench/history"
	"github.com/dotkv/dotkv/bench/render"
	"github.com/dotkv/dotkv/client"
)

// Config is one bench run.
type Config struct {
	// Spawn starts this many nodes; otherwise Targets is a running cluster.
	Spawn   int
	Targets []string
	Spawner SpawnOptions

	Workload WorkloadConfig

	Nemesis         []string
	NemesisInterval time.Duration
	NemesisMode     string // filter | iptables
	// NemesisCount, if > 0, ends the run (before Workload.Duration or
	// Ops if need be) once the nemesis has injected this many faults,
	// each followed by its healed interval.
	NemesisCount int
	// MembershipTimeout bounds each change of the membership nemesis
	// (0: MembershipStepTimeout).
	MembershipTimeout time.Duration

	// ConvergenceTimeout bounds the wait after the final heal;
	// MaxConvergence fails the run above it (0 = no limit).
	ConvergenceTimeout time.Duration
	MaxConvergence     time.Duration
	// Strict: the workload uses strict quorums (pr+pw > N); stale reads
	// in fault-free phases are checked.
	Strict bool

	// Out, if not empty, receives report.json, history.jsonl, report.html.
	Out string
	// Progress receives the live progress line (nil: none).
	Progress io.Writer
}

// Run performs a bench run and returns its report. The cluster it spawned
// is stopped and every fault healed before Run returns, also on error or
// when ctx is cancelled (Ctrl-C).
func Run(ctx context.Context, cfg Config) (check.Report, error) {
	var c *Cluster
	var err error
	if cfg.Spawn > 0 {
		c, err = Spawn(ctx, cfg.Spawn, cfg.Spawner)
	} else {
		c, err = Attach(ctx, cfg.Targets)
	}
	if err != nil {
		return check.Report{}, err
	}
	defer c.Stop()

	hist := &history.History{}
	t0 := time.Now()
	nem, err := NewNemesis(c, cfg.Nemesis, cfg.NemesisInterval, cfg.NemesisMode, cfg.Workload.Seed, hist, t0)
	if err != nil {
		return check.Report{}, err
	}
	defer nem.Close() // heals and removes iptables rules on every path
	nem.SetMembershipTimeout(cfg.MembershipTimeout)
	nem.SetLimit(cfg.NemesisCount)
	// Ctrl-C cuts a membership change short; the end of the workload lets
	// it complete.
	stopAbort := context.AfterFunc(ctx, nem.Abort)
	defer stopAbort()
	wcfg := cfg.Workload
	wcfg.Targets = c.URLs()
	wcfg.LiveTargets = c.URLs // the members change under the membership nemesis
	wcfg.Client = c.NewHTTPClient(max(wcfg.Concurrency, 1), 30*time.Second)
	started := len(wcfg.Targets)
	wl, err := NewWorkload(wcfg, hist, t0, nem.Phase)
	if err != nil {
		return check.Report{}, err
	}

	runCtx, stopRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var nemErr error
	wg.Go(func() {
		if nemErr = nem.Run(runCtx); nemErr != nil {
			stopRun() // the run has failed: do not wait for its duration
		}
	})
	wg.Go(func() {
		select {
		case <-nem.Finished():
			stopRun()
		case <-runCtx.Done():
		}
	})
	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		wg.Go(func() { progress(cfg.Progress, wl, nem, t0, progressDone) })
	}
	wl.Run(runCtx)
	stopRun()
	close(progressDone)
	wg.Wait()
	if err := nem.Close(); err != nil {
		return check.Report{}, fmt.Errorf("heal: %w", err)
	}
	if nemErr != nil {
		return check.Report{}, nemErr
	}
	if ctx.Err() != nil {
		return check.Report{}, ctx.Err()
	}

	// Heal is done: wait for convergence, then read every key at r=all.
	if cfg.Progress != nil {
		fmt.Fprintln(cfg.Progress, "healed; waiting for convergence …")
	}
	healed := time.Now()
	if err := c.CheckRunning(); err != nil && cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "warning: %v\n", err)
	}
	if c.Spawned() {
		_ = c.WaitFormed(ctx, cfg.ConvergenceTimeout)
	}
	conv := -1.0
	if err := c.WaitConverged(ctx, cfg.ConvergenceTimeout); err == nil {
		conv = time.Since(healed).Seconds()
	} else if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "not converged: %v\n", err)
	}
	final, err := c.FinalReads(ctx, wl.Touched())
	if err != nil {
		return check.Report{}, err
	}
	rep := check.Analyze(hist.Ops(), hist.Phases(), check.Options{
		Final:                 final,
		Strict:                cfg.Strict,
		NodeIDs:               c.NodeIDs(),
		ConvergenceSeconds:    conv,
		MaxConvergenceSeconds: cfg.MaxConvergence.Seconds(),
		Config:                describe(cfg, c, started),
	})
	if cfg.Out != "" {
		if err := render.WriteFiles(cfg.Out, rep, hist); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// describe is the run's configuration for the report; started is the
// number of nodes the run began with (the members at the end may differ).
func describe(cfg Config, c *Cluster, started int) map[string]any {
	w := cfg.Workload
	var members []string
	for _, nd := range c.Nodes() {
		members = append(members, nd.ID)
	}
	m := map[string]any{
		"nodes": started, "spawned": c.Spawned(), "targets": c.URLs(),
		"duration_s": w.Duration.Seconds(), "ops_limit": w.Ops, "concurrency": w.Concurrency, "keys": w.Keys,
		"dist": w.Dist, "value_size": w.ValueSize, "mix": fmt.Sprintf("r:%d,w:%d,d:%d", w.Mix.Read, w.Mix.Write, w.Mix.Delete),
		"r": w.R, "w": w.W, "pr": w.PR, "pw": w.PW, "timeout_ms": w.Timeout.Milliseconds(), "seed": w.Seed,
		"nemesis": strings.Join(cfg.Nemesis, ","), "nemesis_interval_s": cfg.NemesisInterval.Seconds(), "nemesis_count": cfg.NemesisCount,
		"nemesis_mode": cfg.NemesisMode, "server_args": strings.Join(cfg.Spawner.Args, " "), "secure": cfg.Spawner.Secure,
	}
	if !slices.Contains(cfg.Nemesis, "membership") {
		return m
	}
	m["members_at_end"] = strings.Join(members, ",")
	return m
}

// progress prints a live progress line every second.
func progress(w io.Writer, wl *Workload, nem *Nemesis, t0 time.Time, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastOps int64
	for {
		select {
		case <-done:
			fmt.Fprintln(w)
			return
		case <-t.C:
		}
		ops, ok, failed := wl.Progress()
		fmt.Fprintf(w, "\r%5.0fs  %-22s ops %8d  ok %8d  failed %6d  %6d ops/s   ",
			time.Since(t0).Seconds(), nem.Phase(), ops, ok, failed, ops-lastOps)
		lastOps = ops
	}
}

// WaitConverged waits until every current member's Merkle roots agree for
// every partition two or more of them replicate, and none holds hints.
func (c *Cluster) WaitConverged(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, why := c.converged(ctx)
		if ok {
			return nil
		}
		last = why
		if time.Now().After(deadline) {
			return fmt.Errorf("not converged after %v: %s", timeout, last)
		}
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func (c *Cluster) converged(ctx context.Context) (bool, string) {
	roots := map[string]string{}
	for _, nd := range c.Nodes() {
		st, err := c.status(ctx, nd.URL)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", nd.ID, err)
		}
		for target, n := range st.HintsPending {
			if n > 0 {
				return false, fmt.Sprintf("%s holds %d hints for %s", nd.ID, n, target)
			}
		}
		aae, err := c.api.AAE(ctx, client.Via(nd.URL))
		if err != nil {
			return false, fmt.Sprintf("%s: %v", nd.ID, err)
		}
		for p, r := range aae.Roots {
			if prev, seen := roots[p]; seen && prev != r {
				return false, fmt.Sprintf("partition %s differs on %s", p, nd.ID)
			}
			roots[p] = r
		}
	}
	return true, ""
}

// FinalReads reads every key at r=all through the current members,
// retrying failures.
func (c *Cluster) FinalReads(ctx context.Context, keys []string) (map[string]check.FinalState, error) {
	out := make(map[string]check.FinalState, len(keys))
	urls := c.URLs()
	if len(urls) == 0 {
		return nil, errors.New("final reads: the cluster has no members")
	}
	hc := c.NewHTTPClient(4, 10*time.Second)
	defer hc.CloseIdleConnections()
	api, err := client.New(client.Config{Endpoints: urls, HTTPClient: hc, Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("final reads: %w", err)
	}
	for _, key := range keys {
		var last error
		for attempt := 0; ; attempt++ {
			if attempt == 20 {
				return nil, fmt.Errorf("final read of %s: %w", key, last)
			}
			fs, err := finalRead(ctx, api, key)
			if err == nil {
				out[key] = fs
				break
			}
			last = err
			if !sleepCtx(ctx, 200*time.Millisecond) {
				return nil, ctx.Err()
			}
		}
	}
	return out, nil
}

// finalRead reads key at r=all. The status is the node's: 404, or 200
// for one sibling and 300 for several.
func finalRead(ctx context.Context, api *client.Client, key string) (check.FinalState, error) {
	obj, err := api.Get(ctx, key, client.R(client.All))
	if errors.As(err, new(*client.NotFoundError)) {
		return check.FinalState{Status: http.StatusNotFound}, nil
	}
	if err != nil {
		return check.FinalState{}, fmt.Errorf("GET %s at r=all: %w", key, err)
	}
	fs := check.FinalState{Status: readStatus(obj)}
	for _, s := range obj.Siblings {
		if s.Deleted {
			fs.Tombstones++
		} else {
			fs.Values = append(fs.Values, ValueID(s.Value))
		}
	}
	return fs, nil
}
