package storage

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/dotkv/dotkv/versioning"
)

// Default bounds of a key's record (see Limits).
const (
	DefaultMaxSiblings    = 100
	DefaultWarnSiblings   = 25
	DefaultMaxRecordBytes = 16 << 20
)

// ErrTooManySiblings and ErrRecordTooLarge are wrapped by a LimitError:
// a client write was refused because of the record it would leave.
var (
	ErrTooManySiblings = errors.New("too many siblings")
	ErrRecordTooLarge  = errors.New("record too large")
)

// Limits bound what a client write may leave in a key's record. Only
// client writes (Write, WriteDeferSync) are refused: a merge of replica
// states (replication, hints, read repair, anti-entropy, transfers) is
// always stored whole, since refusing it would drop acknowledged writes,
// and a merge that leaves a record beyond a bound is counted instead
// (LimitCounts). A zero field selects its default; a negative one means
// no bound.
type Limits struct {
	// MaxSiblings is the most siblings a client write may leave (default
	// 100). A blind write adds one; a write with a read's context
	// replaces the siblings that read saw.
	MaxSiblings int
	// WarnSiblings: a write or merge that leaves at least this many
	// siblings is counted, and one that crosses it is logged (default 25,
	// or MaxSiblings if that is lower).
	WarnSiblings int
	// MaxRecordBytes is the largest encoded record a client write may
	// leave (default 16 MiB).
	MaxRecordBytes int64
}

// DefaultLimits returns the bounds Open uses for zero fields.
func DefaultLimits() Limits {
	return Limits{MaxSiblings: DefaultMaxSiblings, WarnSiblings: DefaultWarnSiblings, MaxRecordBytes: DefaultMaxRecordBytes}
}

// withDefaults fills l's zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	def := DefaultLimits()
	if l.MaxSiblings == 0 {
		l.MaxSiblings = def.MaxSiblings
	}
	if l.WarnSiblings == 0 {
		l.WarnSiblings = def.WarnSiblings
		if l.MaxSiblings > 0 {
			l.WarnSiblings = min(l.WarnSiblings, l.MaxSiblings)
		}
	}
	if l.MaxRecordBytes == 0 {
		l.MaxRecordBytes = def.MaxRecordBytes
	}
	return l
}

// Validate reports bounds that contradict each other: a warning threshold
// above the bound itself.
func (l Limits) Validate() error {
	l = l.withDefaults()
	if l.MaxSiblings > 0 && l.WarnSiblings > l.MaxSiblings {
		return fmt.Errorf("sibling warning threshold %d is above the bound of %d siblings", l.WarnSiblings, l.MaxSiblings)
	}
	return nil
}

// LimitError is a client write refused because the record it would leave
// exceeds a bound; nothing was written and no dot was kept. It wraps
// ErrTooManySiblings or ErrRecordTooLarge.
type LimitError struct {
	Err error // ErrTooManySiblings or ErrRecordTooLarge
	// Siblings is how many siblings the key holds.
	Siblings int
	// Would is how many siblings (ErrTooManySiblings) or encoded bytes
	// (ErrRecordTooLarge) the write would have left, and Max the bound.
	Would, Max int64
}

func (e *LimitError) Error() string {
	if errors.Is(e.Err, ErrRecordTooLarge) {
		return fmt.Sprintf("the write would leave a record of %d bytes, above the limit of %d (the key holds %d siblings): "+
			"read the key and write back with its context, replacing the siblings it returns, or write a smaller value", e.Would, e.Max, e.Siblings)
	}
	return fmt.Sprintf("the key holds %d siblings and the write would leave %d, above the limit of %d: "+
		"read the key and write back with its context to replace the siblings it returns", e.Siblings, e.Would, e.Max)
}

// Unwrap makes errors.Is(err, ErrTooManySiblings) (or ErrRecordTooLarge)
// hold.
func (e *LimitError) Unwrap() error { return e.Err }

// LimitCounts counts what the Limits saw since Open.
type LimitCounts struct {
	// SiblingWarnings: writes and merges that left a record with at least
	// WarnSiblings siblings.
	SiblingWarnings uint64
	// RefusedSiblings and RefusedBytes: client writes refused with
	// ErrTooManySiblings and ErrRecordTooLarge.
	RefusedSiblings, RefusedBytes uint64
	// OverSiblings and OverBytes: merges of replica states that left a
	// record beyond MaxSiblings or MaxRecordBytes (kept whole).
	OverSiblings, OverBytes uint64
}

// limitCounters are the Store's LimitCounts.
type limitCounters struct {
	warnings, refusedSiblings, refusedBytes, overSiblings, overBytes atomic.Uint64
}

// LimitCounts returns what the record limits counted since Open.
func (s *Store) LimitCounts() LimitCounts {
	c := &s.limitCounts
	return LimitCounts{
		SiblingWarnings: c.warnings.Load(),
		RefusedSiblings: c.refusedSiblings.Load(), RefusedBytes: c.refusedBytes.Load(),
		OverSiblings: c.overSiblings.Load(), OverBytes: c.overBytes.Load(),
	}
}

// Limits returns the bounds the store enforces, defaults filled in.
func (s *Store) Limits() Limits { return s.limits }

// admitSiblings refuses a client write with context ctx to cur if the
// siblings it would leave (those ctx does not cover, plus its own) exceed
// the bound. It runs before a dot is issued.
func (s *Store) admitSiblings(cur versioning.State, ctx versioning.VersionVector) error {
	max := s.limits.MaxSiblings
	if max < 0 || len(cur.Siblings) < max { // even covering nothing, the write leaves ≤ max
		return nil
	}
	would := 1
	for _, sib := range cur.Siblings {
		if !ctx.Covers(sib.Dot) {
			would++
		}
	}
	if would <= max {
		return nil
	}
	s.limitCounts.refusedSiblings.Add(1)
	return &LimitError{Err: ErrTooManySiblings, Siblings: len(cur.Siblings), Would: int64(would), Max: int64(max)}
}

// admitBytes refuses a client write that would leave a record encoded in
// size bytes, above the bound.
func (s *Store) admitBytes(cur versioning.State, size int) error {
	if max := s.limits.MaxRecordBytes; max >= 0 && int64(size) > max {
		s.limitCounts.refusedBytes.Add(1)
		return &LimitError{Err: ErrRecordTooLarge, Siblings: len(cur.Siblings), Would: int64(size), Max: max}
	}
	return nil
}

// noteLimits counts (and logs when it crosses a threshold) a record
// change from cur, encoded in oldSize bytes, to next, encoded in size;
// merge tells a merge of replica states from a client write.
func (s *Store) noteLimits(key []byte, cur, next versioning.State, oldSize, size int, merge bool) {
	l, n := s.limits, len(next.Siblings)
	if l.WarnSiblings >= 0 && n >= l.WarnSiblings {
		s.limitCounts.warnings.Add(1)
		if len(cur.Siblings) < l.WarnSiblings {
			s.log.Warn("key has many siblings: clients should read it and write back with its context",
				"key", string(key), "siblings", n, "warn_siblings", l.WarnSiblings, "max_siblings", l.MaxSiblings)
		}
	}
	if !merge {
		return
	}
	if l.MaxSiblings >= 0 && n > l.MaxSiblings {
		s.limitCounts.overSiblings.Add(1)
		if len(cur.Siblings) <= l.MaxSiblings {
			s.log.Warn("a merge of replica states left more siblings than --max-siblings; kept whole",
				"key", string(key), "siblings", n, "max_siblings", l.MaxSiblings)
		}
	}
	if l.MaxRecordBytes >= 0 && int64(size) > l.MaxRecordBytes {
		s.limitCounts.overBytes.Add(1)
		if int64(oldSize) <= l.MaxRecordBytes {
			s.log.Warn("a merge of replica states left a record above --max-record; kept whole",
				"key", string(key), "bytes", size, "max_record_bytes", l.MaxRecordBytes)
		}
	}
}
