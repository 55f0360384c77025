package handoff

import (
	"context"
	"slices"

	"github.com/dotkv/dotkv/internal/wire"
)

// MethodEmpty asks a source which of some partitions it holds no record
// of (and is a reader of): those need no transfer. A cluster's first
// joins, and any join into sparse data, would otherwise pay a scan and a
// Merkle comparison for each of a thousand empty partitions.
//
// Request: Uvarint count, then each partition (U32). Reply: Uvarint
// count, then each empty partition (U32).
const MethodEmpty = "handoff_empty"

// emptyBatch is the most partitions one MethodEmpty call asks about.
const emptyBatch = 4096

// handleEmpty serves MethodEmpty.
func (e *Engine) handleEmpty(_ context.Context, _ string, req []byte) ([]byte, error) {
	r := wire.NewReader(req)
	n := r.Count(4)
	asked := make([]uint32, 0, n)
	for range n {
		asked = append(asked, r.U32())
	}
	if err := r.Done(); err != nil {
		return nil, err
	}
	held, err := e.cfg.Store.Partitions()
	if err != nil {
		return nil, err
	}
	v := e.cfg.View()
	var empty []uint32
	for _, p := range asked {
		if int(p) < v.Partitions() && v.IsReader(p, e.cfg.Self) {
			if _, found := slices.BinarySearch(held, p); !found {
				empty = append(empty, p)
			}
		}
	}
	w := wire.Writer(nil).Uvarint(uint64(len(empty)))
	for _, p := range empty {
		w = w.U32(p)
	}
	return w, nil
}

// skipEmpty asks each source of the partitions this node still has to
// receive which of them it holds nothing of, and reports those received
// at once: merging nothing needs no transfer. Writes to such a partition
// during the change reach this node directly (it is a write owner), and
// the switch waits for every receiver, as for any transfer.
func (e *Engine) skipEmpty(ctx context.Context) {
	v := e.cfg.View()
	change := v.Change()
	if change == "" {
		return
	}
	e.mu.Lock()
	if change != e.change {
		e.mu.Unlock()
		return // plan takes the new change in first
	}
	if e.checkedFor != change {
		e.checkedFor, e.checked = change, map[uint32]bool{}
	}
	paused := e.limit == 0
	bySource := map[string][]uint32{}
	for p := range uint32(v.Partitions()) {
		if !slices.Contains(v.Receiving(p), e.cfg.Self) {
			continue
		}
		if t := e.tasks[p]; t != nil && (t.state == StateDone || t.cancel != nil || t.keys > 0) {
			continue
		}
		if e.checked[p] {
			continue // asked already in this change: it held records
		}
		for _, n := range v.Readers(p) {
			if n != e.cfg.Self && e.cfg.Live(n) {
				bySource[n] = append(bySource[n], p)
				break
			}
		}
	}
	e.mu.Unlock()
	if paused {
		return
	}
	for src, parts := range bySource {
		for len(parts) > 0 {
			batch := parts[:min(len(parts), emptyBatch)]
			parts = parts[len(batch):]
			w := wire.Writer(nil).Uvarint(uint64(len(batch)))
			for _, p := range batch {
				w = w.U32(p)
			}
			cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
			resp, err := e.cfg.Peer.Call(cctx, src, MethodEmpty, w)
			cancel()
			if err != nil {
				e.log.Debug("ask a source for its empty partitions", "from", src, "err", err)
				break
			}
			r := wire.NewReader(resp)
			n := r.Count(4)
			empty := make([]uint32, 0, n)
			for range n {
				empty = append(empty, r.U32())
			}
			if r.Done() != nil {
				break
			}
			e.mu.Lock()
			if e.checkedFor != change {
				e.mu.Unlock()
				return
			}
			for _, p := range batch {
				e.checked[p] = true
			}
			var report []uint32
			for _, p := range empty {
				t := e.tasks[p]
				if t == nil {
					t = &task{p: p}
					e.tasks[p] = t
				}
				if t.cancel == nil && t.state != StateDone {
					t.state, t.from = StateDone, src
					report = append(report, p)
				}
			}
			e.mu.Unlock()
			for _, p := range report {
				e.cfg.MarkReceived(change, p)
			}
			if len(report) > 0 {
				e.log.Debug("empty partitions received without transfer", "change", change, "from", src, "partitions", len(report))
			}
		}
	}
}
