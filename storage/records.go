package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
)

// Buckets is the number of key buckets within a partition: the leaves of
// the anti-entropy Merkle tree. Records are stored bucket by bucket, so a
// leaf's keys are one contiguous range.
const Buckets = 1024

// Bucket returns the bucket of key within its partition. It uses the low
// bits of the key's hash; the partition uses the high bits.
func Bucket(key []byte) uint16 { return uint16(xxhash.Sum64(key) & (Buckets - 1)) }

// RecordObserver is told of every change to a record, under the record's
// lock, after the change was written: old and new are the stored
// encodings (old nil: the record was absent; new nil: it was deleted).
// It must be fast and must not call back into the Store; the slices are
// valid only during the call.
type RecordObserver func(partition uint32, key, old, new []byte)

// GetRaw returns the stored encoding of a record (a copy).
func (s *Store) GetRaw(partition uint32, key []byte) ([]byte, bool, error) {
	if s.closed.Load() {
		return nil, false, ErrClosed
	}
	val, closer, err := s.lookup(recordKey(partition, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get record %q: %w", key, err)
	}
	defer closer.Close()
	return bytes.Clone(val), true, nil
}

// DeleteIfUnchanged deletes a record only if its stored encoding still
// equals raw (tombstone collection: a write that arrived since the caller
// looked must win). It reports whether it deleted.
func (s *Store) DeleteIfUnchanged(partition uint32, key, raw []byte) (bool, error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	rk := recordKey(partition, key)
	mu := s.lock(key)
	mu.Lock()
	defer mu.Unlock()
	cur, closer, err := s.lookup(rk)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get record %q: %w", key, err)
	}
	defer closer.Close()
	if !bytes.Equal(cur, raw) {
		return false, nil
	}
	if err := s.db.Delete(rk, s.writeOpts); err != nil {
		return false, fmt.Errorf("delete record %q: %w", key, err)
	}
	if s.observer != nil {
		s.observer(partition, key, cur, nil)
	}
	return true, nil
}

// ScanBucket calls fn for every record of one bucket of a partition, in
// key order. key and raw are valid only during the call.
func (s *Store) ScanBucket(partition uint32, bucket uint16, fn func(key, raw []byte) error) error {
	lo := []byte{'r'}
	lo = binary.BigEndian.AppendUint32(lo, partition)
	lo = binary.BigEndian.AppendUint16(lo, bucket)
	return s.scan(lo, prefixEnd(lo), func(k, v []byte) error { return fn(k[recordPrefixLen:], v) })
}

// ScanRecords calls fn for every record, partition by partition. key and
// raw are valid only during the call. Use it where nothing writes
// concurrently (rebuilding derived state at start), or accept that
// concurrent writes may or may not be seen.
func (s *Store) ScanRecords(fn func(partition uint32, key, raw []byte) error) error {
	return s.scan([]byte{'r'}, []byte{'s'}, func(k, v []byte) error {
		if len(k) < recordPrefixLen {
			return fmt.Errorf("malformed record key %q", k)
		}
		return fn(binary.BigEndian.Uint32(k[1:5]), k[recordPrefixLen:], v)
	})
}

func (s *Store) scan(lo, hi []byte, fn func(k, v []byte) error) (err error) {
	if s.closed.Load() {
		return ErrClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("scan records: %w", err)
	}
	defer func() {
		if cerr := it.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("scan records: %w", cerr)
		}
	}()
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("scan records: %w", err)
		}
		if err := fn(it.Key(), v); err != nil {
			return err
		}
	}
	return it.Error()
}
