package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
)

// partitionPrefix returns 'r' | partition: the prefix of every record key
// of partition p.
func partitionPrefix(p uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{'r'}, p)
}

// ScanPartition calls fn for the records of partition p in stored order
// (bucket by bucket), starting after the cursor after (nil: from the
// start). It stops once it has passed maxKeys records or maxBytes bytes of
// raw values (a limit ≤ 0 is no limit; at least one record is passed if
// any is left), and returns the cursor of the last record passed, to give
// as after to the next call, and whether the partition holds no records
// past it. A batch is read from one pebble iterator, so it is a consistent
// snapshot; records written between batches may or may not be seen.
//
// The cursor is opaque: the internal key of the last record (nil if no
// record was passed, in which case done is true). key and raw are valid
// only during fn; an error from fn stops the scan and is returned.
func (s *Store) ScanPartition(p uint32, after []byte, maxKeys, maxBytes int, fn func(key, raw []byte) error) (next []byte, done bool, err error) {
	if s.closed.Load() {
		return nil, false, ErrClosed
	}
	lo := partitionPrefix(p)
	hi := prefixEnd(lo)
	if after != nil && (len(after) < recordPrefixLen || !bytes.HasPrefix(after, lo)) {
		return nil, false, fmt.Errorf("scan partition %d: cursor %q is not a record of that partition", p, after)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, false, fmt.Errorf("scan partition %d: %w", p, err)
	}
	defer func() {
		if cerr := it.Close(); err == nil && cerr != nil {
			next, done, err = nil, false, fmt.Errorf("scan partition %d: %w", p, cerr)
		}
	}()
	var valid bool
	if after == nil {
		valid = it.First()
	} else {
		// The smallest key above after is after|0x00.
		valid = it.SeekGE(append(bytes.Clone(after), 0))
	}
	keys, size := 0, 0
	for ; valid; valid = it.Next() {
		if (maxKeys > 0 && keys >= maxKeys) || (maxBytes > 0 && size >= maxBytes) {
			break
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, false, fmt.Errorf("scan partition %d: %w", p, err)
		}
		k := it.Key()
		if err := fn(k[recordPrefixLen:], v); err != nil {
			return nil, false, err
		}
		next = append(next[:0], k...)
		keys++
		size += len(v)
	}
	if err := it.Error(); err != nil {
		return nil, false, fmt.Errorf("scan partition %d: %w", p, err)
	}
	return next, !valid, nil
}

// Partitions returns the partitions that hold at least one record,
// ascending. It seeks from partition to partition rather than reading
// every record.
func (s *Store) Partitions() (_ []uint32, err error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'r'}, UpperBound: []byte{'s'}})
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	defer func() {
		if cerr := it.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("list partitions: %w", cerr)
		}
	}()
	var parts []uint32
	for valid := it.First(); valid; {
		k := it.Key()
		if len(k) < recordPrefixLen {
			return nil, fmt.Errorf("list partitions: malformed record key %q", k)
		}
		p := binary.BigEndian.Uint32(k[1:5])
		parts = append(parts, p)
		if p == math.MaxUint32 {
			break
		}
		valid = it.SeekGE(partitionPrefix(p + 1))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	return parts, nil
}
