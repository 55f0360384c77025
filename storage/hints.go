package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"

	"github.com/dotkv/dotkv/versioning"
)

// ErrHintsFull is returned by PutHint when storing a hint for a new
// (target, key) would exceed the target's HintLimits. Nothing is stored;
// anti-entropy repairs what the dropped hint would have delivered.
var ErrHintsFull = errors.New("storage: hint store full")

// HintLimits bound the hints kept for each target node. A zero field is
// unlimited. The bounds apply to new (target, key) entries only: coalescing
// a write into an existing hint is always allowed, even if it grows the
// target's byte total past MaxBytes, because refusing it would make the
// hint stale rather than save space.
type HintLimits struct {
	// MaxCount is the most distinct keys hinted for one target.
	MaxCount int
	// MaxBytes is the most bytes (stored key plus encoded state) of the
	// hints for one target.
	MaxBytes int64
}

// Hint is one pending hint: the state of Key in Partition that Target has
// not acknowledged yet.
type Hint struct {
	Target    string
	Partition uint32
	Key       []byte
	State     versioning.State
	raw       []byte // the stored bytes when read, for DeleteHintIfUnchanged
}

// hintTotals is one target's pending hints.
type hintTotals struct {
	count int
	bytes int64
}

// hintIndex is the Store's in-memory view of its hints. The totals mirror
// the 'h' range of pebble: rebuilt by scanning it at Open, then adjusted
// under the per-hint lock with every put and delete, so that they move in
// the same order as the stored hints they count.
//
// Hints have their own lock stripes rather than sharing the records':
// nothing then orders a hint lock against a record lock, so a caller may
// store a hint while a record update of the same key is in flight.
type hintIndex struct {
	limits    HintLimits
	overflows atomic.Uint64
	locks     [lockStripes]sync.Mutex

	mu struct {
		sync.Mutex
		byTarget map[string]hintTotals // only targets with pending hints
	}
}

// hintPrefix returns 'h' | uvarint len(target) | target. The length prefix
// makes one target's range disjoint from every other's: "n1" and "n10"
// differ in their length byte.
func hintPrefix(target string) []byte {
	p := make([]byte, 0, 1+binary.MaxVarintLen64+len(target))
	p = append(p, 'h')
	p = binary.AppendUvarint(p, uint64(len(target)))
	return append(p, target...)
}

// hintKey returns hintPrefix(target) | partition (uint32 BE) | key.
func hintKey(target string, partition uint32, key []byte) []byte {
	k := hintPrefix(target)
	k = binary.BigEndian.AppendUint32(k, partition)
	return append(k, key...)
}

// parseHintKey splits a key made by hintKey. The returned key is a copy.
func parseHintKey(hk []byte) (target string, partition uint32, key []byte, err error) {
	if len(hk) == 0 || hk[0] != 'h' {
		return "", 0, nil, fmt.Errorf("hint key %q: missing prefix", hk)
	}
	n, w := binary.Uvarint(hk[1:])
	if w <= 0 || n > uint64(len(hk)-1-w) || uint64(len(hk)-1-w)-n < 4 {
		return "", 0, nil, fmt.Errorf("hint key %q: malformed", hk)
	}
	rest := hk[1+w:]
	target = string(rest[:n])
	rest = rest[n:]
	partition = binary.BigEndian.Uint32(rest)
	key = append([]byte{}, rest[4:]...)
	return target, partition, key, nil
}

// prefixEnd returns the smallest key above every key starting with p, or
// nil if there is none.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func (s *Store) hintLock(hk []byte) *sync.Mutex {
	return &s.hints.locks[xxhash.Sum64(hk)%lockStripes]
}

// PutHint coalesces st into the hint kept for target about key in
// partition: the stored hint becomes versioning.Sync of the hint already
// there (if any) and st, written with the store's fsync mode. It returns
// the merged state.
//
// A new (target, key) entry that would take the target past its
// HintLimits is refused with an error wrapping ErrHintsFull, stores
// nothing and is counted in HintOverflows. Merging into an existing hint
// is always allowed. A zero st adds nothing and stores nothing.
func (s *Store) PutHint(target string, partition uint32, key []byte, st versioning.State) (versioning.State, error) {
	if s.closed.Load() {
		return versioning.State{}, ErrClosed
	}
	if !ValidNodeID(target) {
		return versioning.State{}, fmt.Errorf("put hint: invalid target node id %q", target)
	}
	hk := hintKey(target, partition, key)
	mu := s.hintLock(hk)
	mu.Lock()
	defer mu.Unlock()

	old, found, err := s.getRaw(hk)
	if err != nil {
		return versioning.State{}, fmt.Errorf("put hint for %s: %w", target, err)
	}
	cur := versioning.State{}
	if found {
		if cur, err = versioning.DecodeState(old); err != nil {
			return versioning.State{}, fmt.Errorf("put hint for %s: decode key %q: %w", target, key, err)
		}
	}
	merged := versioning.Sync(cur, st)
	if merged.IsZero() {
		return merged, nil // nothing to deliver
	}
	enc, err := merged.MarshalBinary()
	if err != nil {
		return versioning.State{}, fmt.Errorf("put hint for %s: encode key %q: %w", target, key, err)
	}
	if found && bytes.Equal(enc, old) {
		return merged, nil // st added nothing: keep the stored bytes
	}

	size := int64(len(hk) + len(enc))
	if !found {
		// Reserve before writing: puts of other new keys for this target
		// run under other locks and must not all pass the same check.
		if err := s.reserveHint(target, size); err != nil {
			return versioning.State{}, fmt.Errorf("put hint for %s, key %q: %w", target, key, err)
		}
	}
	if err := s.db.Set(hk, enc, s.writeOpts); err != nil {
		if !found {
			s.adjustHints(target, -1, -size) // release the reservation
		}
		return versioning.State{}, fmt.Errorf("write hint for %s, key %q: %w", target, key, err)
	}
	if found {
		s.adjustHints(target, 0, size-int64(len(hk)+len(old)))
	}
	return merged, nil
}

// reserveHint counts a new hint of size bytes for target if the target's
// limits allow it, and otherwise returns ErrHintsFull (with the totals)
// and counts an overflow.
func (s *Store) reserveHint(target string, size int64) error {
	lim := s.hints.limits
	s.hints.mu.Lock()
	defer s.hints.mu.Unlock()
	t := s.hints.mu.byTarget[target]
	if (lim.MaxCount > 0 && t.count+1 > lim.MaxCount) || (lim.MaxBytes > 0 && t.bytes+size > lim.MaxBytes) {
		s.hints.overflows.Add(1)
		return fmt.Errorf("%d hints of %d bytes pending, limits %d hints, %d bytes: %w",
			t.count, t.bytes, lim.MaxCount, lim.MaxBytes, ErrHintsFull)
	}
	t.count++
	t.bytes += size
	s.hints.mu.byTarget[target] = t
	return nil
}

// adjustHints adds dCount hints and dBytes bytes to target's totals.
func (s *Store) adjustHints(target string, dCount int, dBytes int64) {
	s.hints.mu.Lock()
	defer s.hints.mu.Unlock()
	t := s.hints.mu.byTarget[target]
	t.count += dCount
	t.bytes += dBytes
	if t.count <= 0 {
		delete(s.hints.mu.byTarget, target)
		return
	}
	s.hints.mu.byTarget[target] = t
}

// GetHint returns the hint kept for target about key in partition; found
// is false when there is none.
func (s *Store) GetHint(target string, partition uint32, key []byte) (versioning.State, bool, error) {
	if s.closed.Load() {
		return versioning.State{}, false, ErrClosed
	}
	raw, found, err := s.getRaw(hintKey(target, partition, key))
	if err != nil || !found {
		return versioning.State{}, false, err
	}
	st, err := versioning.DecodeState(raw)
	if err != nil {
		return versioning.State{}, false, fmt.Errorf("decode hint for %s, key %q: %w", target, key, err)
	}
	return st, true, nil
}

// getRaw returns a copy of the value stored under k.
func (s *Store) getRaw(k []byte) ([]byte, bool, error) {
	val, closer, err := s.lookup(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %q: %w", k, err)
	}
	defer closer.Close()
	return append([]byte(nil), val...), true, nil
}

// ScanHints returns up to limit (> 0) of target's hints in (partition,
// key) order, starting after the hint after (nil: from the first). Passing
// the last hint of one batch as after of the next visits every hint that
// stays pending exactly once. The hints may be handed to
// DeleteHintIfUnchanged once their target acknowledged them.
func (s *Store) ScanHints(target string, after *Hint, limit int) (hints []Hint, err error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if limit <= 0 {
		return nil, fmt.Errorf("scan hints for %s: limit %d, want > 0", target, limit)
	}
	prefix := hintPrefix(target)
	opts := &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)}
	if after != nil {
		if after.Target != target {
			return nil, fmt.Errorf("scan hints for %s: resuming after a hint for %s", target, after.Target)
		}
		// The smallest key above after's: its key with a zero byte appended.
		opts.LowerBound = append(hintKey(target, after.Partition, after.Key), 0)
	}
	iter, err := s.db.NewIter(opts)
	if err != nil {
		return nil, fmt.Errorf("scan hints for %s: %w", target, err)
	}
	defer func() {
		if cerr := iter.Close(); cerr != nil && err == nil {
			hints, err = nil, fmt.Errorf("scan hints for %s: %w", target, cerr)
		}
	}()
	for valid := iter.First(); valid && len(hints) < limit; valid = iter.Next() {
		_, partition, key, err := parseHintKey(iter.Key())
		if err != nil {
			return nil, err
		}
		val, err := iter.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("scan hints for %s, key %q: %w", target, key, err)
		}
		raw := append([]byte(nil), val...)
		st, err := versioning.DecodeState(raw)
		if err != nil {
			return nil, fmt.Errorf("decode hint for %s, key %q: %w", target, key, err)
		}
		hints = append(hints, Hint{Target: target, Partition: partition, Key: key, State: st, raw: raw})
	}
	if err := iter.Error(); err != nil {
		return nil, fmt.Errorf("scan hints for %s: %w", target, err)
	}
	return hints, nil
}

// DeleteHintIfUnchanged deletes h, a hint returned by ScanHints, if the
// store still holds exactly what the scan read, and reports whether it
// deleted it. A hint that coalesced a newer write since the scan holds
// state the target has not acknowledged, so it stays. The delete uses the
// store's fsync mode.
func (s *Store) DeleteHintIfUnchanged(h Hint) (bool, error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	if h.raw == nil {
		return false, fmt.Errorf("delete hint for %s, key %q: hint was not read by ScanHints", h.Target, h.Key)
	}
	hk := hintKey(h.Target, h.Partition, h.Key)
	mu := s.hintLock(hk)
	mu.Lock()
	defer mu.Unlock()
	cur, found, err := s.getRaw(hk)
	if err != nil {
		return false, fmt.Errorf("delete hint for %s: %w", h.Target, err)
	}
	if !found || !bytes.Equal(cur, h.raw) {
		return false, nil
	}
	if err := s.db.Delete(hk, s.writeOpts); err != nil {
		return false, fmt.Errorf("delete hint for %s, key %q: %w", h.Target, h.Key, err)
	}
	s.adjustHints(h.Target, -1, -int64(len(hk)+len(cur)))
	return true, nil
}

// HintCounts returns the number of pending hints per target, listing only
// targets with at least one.
func (s *Store) HintCounts() map[string]int {
	s.hints.mu.Lock()
	defer s.hints.mu.Unlock()
	out := make(map[string]int, len(s.hints.mu.byTarget))
	for target, t := range s.hints.mu.byTarget {
		out[target] = t.count
	}
	return out
}

// HintBytes returns the bytes (stored keys plus encoded states) of the
// hints pending for target.
func (s *Store) HintBytes(target string) int64 {
	s.hints.mu.Lock()
	defer s.hints.mu.Unlock()
	return s.hints.mu.byTarget[target].bytes
}

// HintOverflows returns how many hints PutHint refused with ErrHintsFull
// since Open.
func (s *Store) HintOverflows() uint64 { return s.hints.overflows.Load() }

// loadHints rebuilds the per-target totals from the stored hints; Open
// calls it before the store is shared.
func (s *Store) loadHints(limits HintLimits) (err error) {
	s.hints.limits = limits
	s.hints.mu.byTarget = map[string]hintTotals{}
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'h'}, UpperBound: []byte{'h' + 1}})
	if err != nil {
		return fmt.Errorf("load hints: %w", err)
	}
	defer func() {
		if cerr := iter.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("load hints: %w", cerr)
		}
	}()
	for valid := iter.First(); valid; valid = iter.Next() {
		target, _, _, err := parseHintKey(iter.Key())
		if err != nil {
			return fmt.Errorf("load hints: %w", err)
		}
		val, err := iter.ValueAndErr()
		if err != nil {
			return fmt.Errorf("load hints for %s: %w", target, err)
		}
		t := s.hints.mu.byTarget[target]
		t.count++
		t.bytes += int64(len(iter.Key()) + len(val))
		s.hints.mu.byTarget[target] = t
	}
	if err := iter.Error(); err != nil {
		return fmt.Errorf("load hints: %w", err)
	}
	return nil
}
