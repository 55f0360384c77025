package handoff

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/dotkv/dotkv/transport"
	"github.com/dotkv/dotkv/versioning"
)

// mergeWorkers is how many records of a batch are merged at once: with
// fsync=always each merge waits for a WAL sync, and concurrent ones share
// it (pebble commits them as a group).
const mergeWorkers = 8

// maxBackoff caps the wait before a failed or refused transfer is retried.
const maxBackoff = 10 * time.Second

// Engine transfers the partitions this node receives in the membership
// change in progress, and serves the partitions it holds to receivers.
// Its methods are safe for concurrent use.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	limiter *rate.Limiter // nil: unlimited
	m       *metrics
	wake    chan struct{}
	plans   atomic.Int64 // planning passes, for tests

	mu     sync.Mutex
	limit  int
	change string // the change tasks belong to
	// swept: the progress of changes other than change has been deleted.
	swept   bool
	tasks   map[uint32]*task
	serving map[session]time.Time // transfers served out: last batch
	// checked: the partitions of change checkedFor a source was asked
	// about with MethodEmpty (see skipEmpty).
	checkedFor string
	checked    map[uint32]bool
	running    bool // Run is running
}

// task is one incoming partition transfer of the current change.
type task struct {
	p      uint32
	state  string
	from   string // source of the running or last attempt
	keys   int64
	bytes  int64
	fails  int       // consecutive failed attempts
	source int       // rotation over the partition's readers
	retry  time.Time // not started again before
	cancel context.CancelFunc
}

// NewEngine returns an engine for cfg; Register serves its RPC and Run
// drives its transfers.
func NewEngine(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		log:     cfg.Logger,
		m:       newMetrics(cfg.Registerer),
		wake:    make(chan struct{}, 1),
		limit:   cfg.Limit,
		tasks:   map[uint32]*task{},
		serving: map[session]time.Time{},
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Rate > 0 {
		burst := int(min(max(cfg.Rate, int64(cfg.BatchBytes)), 1<<30))
		e.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), burst)
	}
	return e, nil
}

// Register installs the serving RPC (MethodScan).
func (e *Engine) Register(srv interface {
	Handle(method string, fn transport.Handler)
}) {
	srv.Handle(MethodScan, e.handleScan)
	srv.Handle(MethodEmpty, e.handleEmpty)
}

// SetLimit changes how many partitions are transferred in and served out
// at once; 0 pauses every transfer (running ones stop after persisting
// their progress, and resume from it).
func (e *Engine) SetLimit(n int) {
	e.mu.Lock()
	e.limit = max(n, 0)
	e.mu.Unlock()
	e.kick()
}

// Wake makes Run re-plan now rather than at its next interval (the node
// calls it when its view changes).
func (e *Engine) Wake() { e.kick() }

func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Transfers returns this node's incoming transfers of the change in
// progress, by partition.
func (e *Engine) Transfers() []Transfer {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Transfer, 0, len(e.tasks))
	for _, t := range e.tasks {
		out = append(out, Transfer{Partition: t.p, From: t.from, To: e.cfg.Self, State: t.state, Keys: t.keys, Bytes: t.bytes})
	}
	slices.SortFunc(out, func(a, b Transfer) int { return cmp.Compare(a.Partition, b.Partition) })
	return out
}

// Run plans and runs transfers every Interval (and when woken) until ctx
// is done; it returns after every transfer goroutine it started has.
func (e *Engine) Run(ctx context.Context) {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		panic("handoff: Engine.Run called twice")
	}
	e.running = true
	e.mu.Unlock()
	var wg sync.WaitGroup
	defer func() {
		e.mu.Lock()
		for _, t := range e.tasks {
			if t.cancel != nil {
				t.cancel()
			}
		}
		e.mu.Unlock()
		wg.Wait()
		e.mu.Lock()
		e.running = false
		e.mu.Unlock()
	}()
	tick := time.NewTicker(e.cfg.Interval)
	defer tick.Stop()
	for {
		e.skipEmpty(ctx)
		e.plan(ctx, &wg)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-e.wake:
		}
	}
}

// plan brings the tasks in line with the view: it drops the tasks of a
// change no longer in progress, adds the partitions this node receives,
// stops transfers over the limit and starts queued ones up to it.
func (e *Engine) plan(ctx context.Context, wg *sync.WaitGroup) {
	defer e.plans.Add(1)
	v := e.cfg.View()
	change := v.Change()
	// Partitions received in an earlier run: gossip may not have heard it,
	// and repeating it is harmless. Reported outside the lock.
	var again []uint32
	defer func() {
		for _, p := range again {
			e.cfg.MarkReceived(change, p)
		}
	}()

	e.mu.Lock()
	defer e.mu.Unlock()
	if change != e.change {
		for _, t := range e.tasks {
			if t.cancel != nil {
				t.cancel()
			}
		}
		if len(e.tasks) > 0 {
			if change == "" { // the change completed
				e.log.Debug("membership change completed", "change", e.change)
			} else {
				e.log.Info("membership change moved on: dropping its transfers", "old", e.change, "new", change)
			}
		}
		e.tasks = map[uint32]*task{}
		e.change, e.swept = change, false
	}
	if !e.swept {
		e.sweep(change)
	}
	if change == "" {
		return
	}
	for p := range uint32(v.Partitions()) {
		receiving := slices.Contains(v.Receiving(p), e.cfg.Self)
		t := e.tasks[p]
		switch {
		case receiving && t == nil:
			t = &task{p: p, state: StateQueued}
			e.tasks[p] = t
			if e.doneBefore(change, p) {
				t.state = StateDone
				again = append(again, p)
			}
		case !receiving && t != nil && t.state != StateDone:
			// Received as far as the view says (or no longer ours to receive).
			if t.cancel != nil {
				t.cancel()
			}
			delete(e.tasks, p)
			continue
		case t == nil:
			continue
		}
		if t.state != StateDone && t.cancel == nil {
			if cands := e.sources(p); len(cands) > 0 {
				t.from = cands[t.source%len(cands)]
			}
		}
	}

	// Running transfers over the limit stop (0: all of them).
	var active []*task
	for _, t := range e.tasks {
		if t.cancel != nil {
			active = append(active, t)
		}
	}
	slices.SortFunc(active, func(a, b *task) int { return cmp.Compare(a.p, b.p) })
	for _, t := range active[min(e.limit, len(active)):] {
		t.cancel()
	}
	running := min(e.limit, len(active))

	var ready []*task
	now := time.Now()
	for _, t := range e.tasks {
		switch {
		case t.state == StateDone || t.cancel != nil:
		case e.limit == 0:
			t.state = StatePaused
		default:
			if t.state == StatePaused {
				t.state = StateQueued
			}
			if !now.Before(t.retry) {
				ready = append(ready, t)
			}
		}
	}
	slices.SortFunc(ready, func(a, b *task) int { return cmp.Compare(a.p, b.p) })
	for _, t := range ready {
		if running >= e.limit {
			break
		}
		if len(e.sources(t.p)) == 0 {
			continue // no live source now: wait
		}
		running++
		tctx, cancel := context.WithCancel(ctx)
		t.cancel = cancel
		t.state = StateRunning
		e.m.active.Inc()
		wg.Go(func() {
			err := e.transfer(tctx, change, t)
			e.finish(tctx, change, t, err)
			cancel()
		})
	}
}

// sources returns the live readers of p other than this node, in the
// view's order.
func (e *Engine) sources(p uint32) []string {
	var out []string
	for _, n := range e.cfg.View().Readers(p) {
		if n != e.cfg.Self && e.cfg.Live(n) {
			out = append(out, n)
		}
	}
	return out
}

// finish records the end of an attempt.
func (e *Engine) finish(ctx context.Context, change string, t *task, err error) {
	e.m.active.Dec()
	e.mu.Lock()
	defer e.mu.Unlock()
	t.cancel = nil
	switch {
	case err == nil:
		t.state, t.fails = StateDone, 0
		e.log.Debug("partition received", "change", change, "partition", t.p, "from", t.from, "keys", t.keys, "bytes", t.bytes)
	case ctx.Err() != nil:
		// Stopped (limit lowered, change moved on, shutdown): not a failure.
		t.state = StateQueued
		if e.limit == 0 {
			t.state = StatePaused
		}
	default:
		t.fails++
		t.source++ // try the next source
		backoff := min(e.cfg.Interval<<min(t.fails, 10), maxBackoff)
		t.retry = time.Now().Add(backoff)
		if errors.Is(err, ErrBusy) {
			t.state = StateQueued
			e.log.Debug("transfer source busy", "partition", t.p, "from", t.from, "retry_in", backoff)
		} else {
			t.state = StateFailed
			e.m.failures.Inc()
			e.log.Warn("partition transfer failed", "change", change, "partition", t.p, "from", t.from, "err", err, "retry_in", backoff)
		}
	}
	e.kick() // a slot is free
}

// progressName is the metadata name of a transfer's progress: "c" and
// the cursor of the last batch merged, or "d" once it is done.
func progressName(change string, p uint32) string {
	return "handoff/" + change + "/" + strconv.FormatUint(uint64(p), 10)
}

// sweep deletes the persisted progress of every change but current (all
// of it when current is ""): a change never comes back once it has ended.
func (e *Engine) sweep(current string) {
	// Names are handoff/<change>/<p>; "0" sorts right after "/".
	var err error
	if current == "" {
		err = e.cfg.Store.DeleteMetaRange("handoff/", "handoff0")
	} else {
		err = e.cfg.Store.DeleteMetaRange("handoff/", "handoff/"+current+"/")
		if err == nil {
			err = e.cfg.Store.DeleteMetaRange("handoff/"+current+"0", "handoff0")
		}
	}
	if err != nil {
		e.log.Warn("delete the progress of ended transfers", "err", err)
		return
	}
	e.swept = true
}

// doneBefore reports whether this node finished receiving p for change
// before (in an earlier run).
func (e *Engine) doneBefore(change string, p uint32) bool {
	v, ok, err := e.cfg.Store.GetMeta(progressName(change, p))
	if err != nil {
		e.log.Warn("read transfer progress", "partition", p, "err", err)
		return false
	}
	return ok && len(v) > 0 && v[0] == 'd'
}

// transfer runs one attempt at receiving p: it pulls batches from the
// cursor persisted by earlier attempts, then confirms the copy and
// reports it.
func (e *Engine) transfer(ctx context.Context, change string, t *task) error {
	name := progressName(change, t.p)
	e.mu.Lock()
	from := t.from
	e.mu.Unlock()
	if from == "" {
		return errors.New("no live source")
	}
	prog, _, err := e.cfg.Store.GetMeta(name)
	if err != nil {
		return fmt.Errorf("read progress of partition %d: %w", t.p, err)
	}
	var cursor []byte
	if len(prog) > 0 && prog[0] == 'c' {
		cursor = prog[1:]
	}
	e.log.Debug("transferring partition", "change", change, "partition", t.p, "from", from, "resume", cursor != nil)
	for {
		b, err := e.pull(ctx, from, t.p, cursor)
		if err != nil {
			return err
		}
		if err := e.wait(ctx, b.bytes); err != nil {
			return err
		}
		if err := e.merge(t.p, b.records); err != nil {
			return err
		}
		if len(b.next) > 0 {
			cursor = b.next
			if err := e.cfg.Store.SetMeta(name, append([]byte{'c'}, cursor...)); err != nil {
				return fmt.Errorf("persist progress of partition %d: %w", t.p, err)
			}
		}
		e.m.keys.Add(float64(len(b.records)))
		e.m.bytes.Add(float64(b.bytes))
		e.mu.Lock()
		t.keys += int64(len(b.records))
		t.bytes += int64(b.bytes)
		t.fails = 0
		e.mu.Unlock()
		if b.done {
			break
		}
	}

	e.mu.Lock()
	t.state = StateConfirming
	e.mu.Unlock()
	if e.cfg.Confirm != nil {
		if err := e.cfg.Confirm(ctx, from, []uint32{t.p}); err != nil {
			return fmt.Errorf("confirm partition %d with %s: %w", t.p, from, err)
		}
		// The other readers may hold writes the source missed (a hint
		// for it still on its way): compare with them too, best effort.
		for _, n := range e.sources(t.p) {
			if n == from {
				continue
			}
			if err := e.cfg.Confirm(ctx, n, []uint32{t.p}); err != nil {
				e.log.Debug("compare a received partition with another reader", "partition", t.p, "reader", n, "err", err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := e.cfg.Store.SetMeta(name, []byte{'d'}); err != nil {
		return fmt.Errorf("persist end of partition %d: %w", t.p, err)
	}
	e.mu.Lock()
	t.state = StateDone // before the view may switch p
	e.mu.Unlock()
	e.cfg.MarkReceived(change, t.p)
	return nil
}

// pull fetches one batch of p after cursor from source.
func (e *Engine) pull(ctx context.Context, source string, p uint32, cursor []byte) (batch, error) {
	cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	resp, err := e.cfg.Peer.Call(cctx, source, MethodScan, encodeScan(p, cursor, e.cfg.BatchKeys, e.cfg.BatchBytes))
	if err != nil {
		return batch{}, fmt.Errorf("pull partition %d from %s: %w", p, source, err)
	}
	b, err := decodeScan(resp)
	if err != nil {
		return batch{}, fmt.Errorf("pull partition %d from %s: %w", p, source, err)
	}
	return b, nil
}

// wait takes n bytes from the rate limiter, in bursts it can grant.
func (e *Engine) wait(ctx context.Context, n int) error {
	if e.limiter == nil {
		return nil
	}
	for n > 0 {
		take := min(n, e.limiter.Burst())
		if err := e.limiter.WaitN(ctx, take); err != nil {
			return err
		}
		n -= take
	}
	return nil
}

// merge syncs a batch's records into the store, several at once.
func (e *Engine) merge(p uint32, recs []record) error {
	states := make([]versioning.State, len(recs))
	for i, r := range recs {
		st, err := versioning.DecodeState(r.raw)
		if err != nil {
			return fmt.Errorf("decode record %q of partition %d: %w", r.key, p, err)
		}
		states[i] = st
	}
	var (
		next atomic.Int64
		errs = make([]error, mergeWorkers)
		wg   sync.WaitGroup
	)
	for w := range min(mergeWorkers, len(recs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(recs) || errs[w] != nil {
					return
				}
				if _, err := e.cfg.Store.Merge(p, recs[i].key, states[i]); err != nil {
					errs[w] = fmt.Errorf("merge record %q of partition %d: %w", recs[i].key, p, err)
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
