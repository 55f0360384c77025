package handoff

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dotkv/dotkv/internal/wire"
)

// MethodScan is the RPC a receiver pulls a batch of a partition with.
//
// Request: partition (U32), cursor (Bytes; empty: from the start), max
// keys (Uvarint), max bytes (Uvarint). Reply: a status byte; if it is
// statusOK, the records (Uvarint count, then key and raw state encoding,
// both Bytes), the next cursor (Bytes) and done (Byte 0/1).
const MethodScan = "handoff_scan"

// Reply statuses of MethodScan.
const (
	statusOK        byte = 0
	statusBusy      byte = 1 // serving Limit transfers already (or paused)
	statusNotReader byte = 2 // the source does not hold the partition's data
)

// ErrBusy is returned by a pull from a source that serves as many
// transfers as its limit allows (or has transfers paused): the receiver
// backs off and retries, possibly from another source.
var ErrBusy = errors.New("handoff: source busy")

// ErrNotReader is returned by a pull from a node that, in its own view,
// does not hold the partition's data.
var ErrNotReader = errors.New("handoff: source does not hold the partition")

// session is one transfer a source serves: a receiver and a partition.
type session struct {
	to string
	p  uint32
}

// admit reports whether a batch of p for receiver to may be served now:
// its transfer is one the source serves already, or one more fits the
// limit. Transfers not heard of for a CallTimeout are forgotten.
func (e *Engine) admit(to string, p uint32, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.limit == 0 {
		return false
	}
	for s, seen := range e.serving {
		if now.Sub(seen) > e.cfg.CallTimeout {
			delete(e.serving, s)
		}
	}
	s := session{to, p}
	if _, ok := e.serving[s]; !ok && len(e.serving) >= e.limit {
		return false
	}
	e.serving[s] = now
	return true
}

// served records the end of a batch: a finished transfer frees its slot.
func (e *Engine) served(to string, p uint32, done bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := session{to, p}
	if done {
		delete(e.serving, s)
	} else if _, ok := e.serving[s]; ok {
		e.serving[s] = time.Now()
	}
}

// handleScan serves MethodScan.
func (e *Engine) handleScan(_ context.Context, from string, req []byte) ([]byte, error) {
	r := wire.NewReader(req)
	p, cursor := r.U32(), r.Bytes()
	maxKeys, maxBytes := r.Uvarint(), r.Uvarint()
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("handoff scan request: %w", err)
	}
	if len(cursor) == 0 {
		cursor = nil
	}
	if v := e.cfg.View(); int(p) >= v.Partitions() || !v.IsReader(p, e.cfg.Self) {
		return wire.Writer(nil).Byte(statusNotReader), nil
	}
	if !e.admit(from, p, time.Now()) {
		return wire.Writer(nil).Byte(statusBusy), nil
	}
	keys := int(min(max(maxKeys, 1), maxBatchKeys))
	size := int(min(max(maxBytes, 1), maxBatchBytes))
	var body wire.Writer
	n := 0
	next, done, err := e.cfg.Store.ScanPartition(p, cursor, keys, size, func(key, raw []byte) error {
		body = body.Bytes(key).Bytes(raw)
		n++
		return nil
	})
	if err != nil {
		e.served(from, p, true)
		return nil, fmt.Errorf("handoff scan of partition %d for %s: %w", p, from, err)
	}
	e.served(from, p, done)
	if next == nil {
		next = cursor // nothing past the cursor
	}
	out := make(wire.Writer, 0, len(body)+len(next)+16)
	out = out.Byte(statusOK).Uvarint(uint64(n))
	out = append(out, body...)
	out = out.Bytes(next)
	if done {
		return out.Byte(1), nil
	}
	return out.Byte(0), nil
}

// record is one record of a pulled batch; both slices alias the reply.
type record struct{ key, raw []byte }

// batch is a decoded MethodScan reply.
type batch struct {
	records []record
	next    []byte
	done    bool
	bytes   int // raw bytes of the records
}

// encodeScan encodes a MethodScan request.
func encodeScan(p uint32, cursor []byte, maxKeys, maxBytes int) []byte {
	return wire.Writer(nil).U32(p).Bytes(cursor).Uvarint(uint64(maxKeys)).Uvarint(uint64(maxBytes))
}

// decodeScan decodes a MethodScan reply.
func decodeScan(resp []byte) (batch, error) {
	r := wire.NewReader(resp)
	switch st := r.Byte(); {
	case st == statusBusy && r.Len() == 0:
		return batch{}, ErrBusy
	case st == statusNotReader && r.Len() == 0:
		return batch{}, ErrNotReader
	case st != statusOK || len(resp) == 0:
		return batch{}, fmt.Errorf("handoff scan reply: status %d: %w", st, wire.ErrMalformed)
	}
	var b batch
	b.records = make([]record, r.Count(2))
	for i := range b.records {
		b.records[i] = record{r.Bytes(), r.Bytes()}
		b.bytes += len(b.records[i].raw)
	}
	b.next = r.Bytes()
	b.done = r.Byte() == 1
	if err := r.Done(); err != nil {
		return batch{}, fmt.Errorf("handoff scan reply: %w", err)
	}
	return b, nil
}
