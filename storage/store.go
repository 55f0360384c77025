package storage

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/versioning"
)

// FsyncMode says when a write reaches stable storage.
type FsyncMode int

const (
	// FsyncAlways syncs the WAL before a write is acknowledged.
	FsyncAlways FsyncMode = iota
	// FsyncNever leaves syncing to the OS: an unclean stop may lose the
	// latest acknowledged writes on this node.
	FsyncNever
)

// ParseFsyncMode parses "always" or "never".
func ParseFsyncMode(s string) (FsyncMode, error) {
	switch s {
	case "always":
		return FsyncAlways, nil
	case "never":
		return FsyncNever, nil
	}
	return 0, fmt.Errorf("fsync mode %q: want always or never", s)
}

func (m FsyncMode) String() string {
	if m == FsyncNever {
		return "never"
	}
	return "always"
}

// ErrClosed is returned by operations on a closed Store.
var ErrClosed = errors.New("storage: closed")

// ErrCounterExhausted is returned when a dot would have to exceed
// versioning.MaxCounter (only a forged context can ask for that).
var ErrCounterExhausted = errors.New("storage: dot counter exhausted")

// counterBlock is how many dot counters one durable lease covers.
const counterBlock = 1 << 16

// lockStripes is the number of per-key lock stripes.
const lockStripes = 1024

var validNodeID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidNodeID reports whether id can name a node: 1..64 of [A-Za-z0-9_-].
func ValidNodeID(id string) bool { return validNodeID.MatchString(id) }

// Options configure Open.
type Options struct {
	// NodeID is the stable identity of the node owning the directory.
	NodeID string
	// Fsync selects durability; the zero value is FsyncAlways.
	Fsync FsyncMode
	// FS is the filesystem; nil means the OS filesystem. Tests use
	// vfs.NewMem or vfs.NewCrashableMem.
	FS vfs.FS
	// CacheSize is pebble's block cache in bytes; MemTableSize is the
	// size of each of its memtables, of which up to two are in memory (a
	// larger one means fewer flushes and compactions of level 0). Zero
	// picks DefaultOptions' size.
	CacheSize    int64
	MemTableSize uint64
	// Logger receives storage events; nil discards them.
	Logger *slog.Logger
	// Observer, if not nil, is told of every change to a record.
	Observer RecordObserver
	// HintLimits bound the hints kept per target node; the zero value
	// is unlimited.
	HintLimits HintLimits
	// Limits bound what a client write may leave in a key's record; zero
	// fields select DefaultLimits' bounds.
	Limits Limits
}

// DefaultMemTableSize is the default size of a pebble memtable. Against
// 16 MiB, 64 MiB memtables cut the CPU time of a write by about a quarter
// and write amplification from 4.7 to 4.0 (BenchmarkPutMemTable: 500k
// writes of random 1 KiB values), for up to 96 MiB more memory per node
// while it takes writes: fewer level-0 files to flush, compact and search
// in the read before each write.
const DefaultMemTableSize = 64 << 20

// Bounds of the pebble sizes Open accepts.
const (
	minPebbleSize   = 1 << 20
	maxMemTableSize = 4<<30 - 1 // pebble wants memtables below this
)

// DefaultOptions returns the defaults Open uses for zero fields: fsync
// always, a block cache of DefaultCacheSize(1) (from this machine's
// memory), DefaultMemTableSize memtables and DefaultLimits. NodeID has no
// default.
func DefaultOptions() Options {
	return Options{Fsync: FsyncAlways, CacheSize: DefaultCacheSize(1), MemTableSize: DefaultMemTableSize, Limits: DefaultLimits()}
}

// withDefaults fills o's zero sizes and limits from DefaultOptions.
func (o Options) withDefaults() Options {
	o.Limits = o.Limits.withDefaults()
	if o.CacheSize == 0 || o.MemTableSize == 0 {
		def := DefaultOptions()
		if o.CacheSize == 0 {
			o.CacheSize = def.CacheSize
		}
		if o.MemTableSize == 0 {
			o.MemTableSize = def.MemTableSize
		}
	}
	return o
}

// Validate reports options Open cannot work with; zero sizes are valid
// (they select the defaults).
func (o Options) Validate() error {
	if !ValidNodeID(o.NodeID) {
		return fmt.Errorf("invalid node id %q (want 1..64 of A-Z a-z 0-9 _ -)", o.NodeID)
	}
	if o.HintLimits.MaxCount < 0 || o.HintLimits.MaxBytes < 0 {
		return fmt.Errorf("negative hint limits %+v", o.HintLimits)
	}
	if o.Fsync != FsyncAlways && o.Fsync != FsyncNever {
		return fmt.Errorf("unknown fsync mode %d", int(o.Fsync))
	}
	if o.CacheSize != 0 && o.CacheSize < minPebbleSize {
		return fmt.Errorf("cache size %s: want at least %s", FormatSize(o.CacheSize), FormatSize(minPebbleSize))
	}
	if o.MemTableSize != 0 && (o.MemTableSize < minPebbleSize || o.MemTableSize >= maxMemTableSize) {
		return fmt.Errorf("memtable size %s: want at least %s and less than 4GiB", FormatSize(int64(o.MemTableSize)), FormatSize(minPebbleSize))
	}
	return o.Limits.Validate()
}

// Store is a node's pebble database of records and metadata.
type Store struct {
	db        *pebble.DB
	fs        vfs.FS // the data directory's filesystem
	dir       string // the data directory
	log       *slog.Logger
	nodeID    string
	actor     string
	inc       uint64
	writeOpts *pebble.WriteOptions
	observer  RecordObserver
	locks     [lockStripes]sync.Mutex
	closed    atomic.Bool
	hints     hintIndex
	// limits bound client writes' records (defaults filled in).
	limits      Limits
	limitCounts limitCounters

	counter struct {
		sync.Mutex
		last   uint64 // last counter issued
		leased uint64 // durable upper bound: counters ≤ leased may be issued
	}
}

// Metadata keys.
var (
	metaNodeID  = metaKey("node_id")
	metaInc     = metaKey("incarnation")
	metaClean   = metaKey("clean_shutdown")
	metaFsync   = metaKey("fsync")
	metaCounter = metaKey("counter_lease")
)

func metaKey(name string) []byte { return append([]byte{'m'}, name...) }

// Open opens (creating if needed) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	o = o.withDefaults()
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	popts := &pebble.Options{
		FS:                 o.FS,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{log},
		CacheSize:          o.CacheSize,
		MemTableSize:       o.MemTableSize,
	}
	// Bloom filters make the common miss (a write to a new key, a read of
	// an absent one) skip sstables instead of searching every level.
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	if popts.FS == nil {
		popts.FS = vfs.Default
	}
	db, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	log.Info("opened pebble", "dir", dir, "cache_size", FormatSize(o.CacheSize),
		"memtable_size", FormatSize(int64(o.MemTableSize)))
	s := &Store{db: db, fs: popts.FS, dir: dir, log: log, nodeID: o.NodeID, writeOpts: pebble.Sync, observer: o.Observer, limits: o.Limits}
	if o.Fsync == FsyncNever {
		s.writeOpts = pebble.NoSync
	}
	if err := s.init(o); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if err := s.loadHints(o.HintLimits); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if err := s.removeStaleBackups(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return s, nil
}

// init reads and renews the node metadata: identity, incarnation, the
// dirty-shutdown marker and the counter lease, all in one synced batch.
func (s *Store) init(o Options) error {
	storedID, haveID, err := s.getMeta(metaNodeID)
	if err != nil {
		return err
	}
	if haveID && string(storedID) != o.NodeID {
		return fmt.Errorf("data directory belongs to node %q, not %q", storedID, o.NodeID)
	}
	_, clean, err := s.getMeta(metaClean)
	if err != nil {
		return err
	}
	lastFsync, _, err := s.getMeta(metaFsync)
	if err != nil {
		return err
	}
	s.inc, err = s.getUint(metaInc)
	if err != nil {
		return err
	}
	leased, err := s.getUint(metaCounter)
	if err != nil {
		return err
	}
	restored, err := s.restoredFromBackup()
	if err != nil {
		return err
	}
	switch {
	case s.inc == 0:
		s.inc = newIncarnation()
		s.log.Info("new data directory", "incarnation", s.inc)
	case restored:
		old := s.inc
		s.inc = newIncarnation()
		s.log.Warn("data directory restored from a backup: taking a new incarnation, so that no dot issued after the backup is issued again",
			"old_incarnation", old, "incarnation", s.inc)
	case haveID && !clean && string(lastFsync) == FsyncNever.String():
		old := s.inc
		s.inc = newIncarnation()
		s.log.Warn("previous stop was unclean with fsync=never: taking a new incarnation",
			"old_incarnation", old, "incarnation", s.inc)
	}
	s.actor = o.NodeID + "." + strconv.FormatUint(s.inc, 36)
	s.counter.last = leased
	s.counter.leased = leased + counterBlock

	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(metaNodeID, []byte(o.NodeID), nil)
	_ = b.Set(metaInc, binary.BigEndian.AppendUint64(nil, s.inc), nil)
	_ = b.Set(metaFsync, []byte(o.Fsync.String()), nil)
	_ = b.Set(metaCounter, binary.BigEndian.AppendUint64(nil, s.counter.leased), nil)
	_ = b.Delete(metaClean, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	if restored {
		// Only once the new incarnation is durable: a crash before this
		// takes yet another one, which is harmless.
		return s.clearRestoredMarker()
	}
	return nil
}

func newIncarnation() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux; it panics otherwise
	v := binary.BigEndian.Uint64(b[:]) & (1<<48 - 1)
	return max(v, 1)
}

// Close marks a clean shutdown (after syncing every earlier write) and
// closes pebble. Calling Close twice is safe.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	// A synced write syncs the WAL up to and including every earlier write.
	err := s.db.Set(metaClean, []byte{1}, pebble.Sync)
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// NodeID returns the node ID the store belongs to.
func (s *Store) NodeID() string { return s.nodeID }

// Actor returns the actor ID this node stamps on the dots it issues:
// the node ID plus the incarnation.
func (s *Store) Actor() string { return s.actor }

// Incarnation returns the current incarnation number.
func (s *Store) Incarnation() uint64 { return s.inc }

// recordKey returns 'r' | partition | bucket | key: a partition is one
// contiguous range, and so is each Merkle leaf bucket within it.
func recordKey(partition uint32, key []byte) []byte {
	k := make([]byte, 0, recordPrefixLen+len(key))
	k = append(k, 'r')
	k = binary.BigEndian.AppendUint32(k, partition)
	k = binary.BigEndian.AppendUint16(k, Bucket(key))
	return append(k, key...)
}

// recordPrefixLen is the length of 'r' | partition | bucket.
const recordPrefixLen = 1 + 4 + 2

func (s *Store) lock(key []byte) *sync.Mutex {
	return &s.locks[xxhash.Sum64(key)%lockStripes]
}

// Get returns the stored state of key in partition; found is false when
// the node holds nothing for it.
func (s *Store) Get(partition uint32, key []byte) (st versioning.State, found bool, err error) {
	if s.closed.Load() {
		return versioning.State{}, false, ErrClosed
	}
	return s.get(recordKey(partition, key))
}

func (s *Store) get(rk []byte) (versioning.State, bool, error) {
	val, closer, err := s.lookup(rk)
	if errors.Is(err, pebble.ErrNotFound) {
		return versioning.State{}, false, nil
	}
	if err != nil {
		return versioning.State{}, false, fmt.Errorf("get record %q: %w", rk[recordPrefixLen:], err)
	}
	defer closer.Close()
	st, err := versioning.DecodeState(val)
	if err != nil {
		return versioning.State{}, false, fmt.Errorf("decode record %q: %w", rk[recordPrefixLen:], err)
	}
	return st, true, nil
}

// Update atomically replaces key's state with fn(current). fn runs under
// the key's lock and must not call back into the Store for the same key.
// If fn returns an error nothing is written; if the new state encodes to
// the stored bytes, nothing is written either. The new state is durable
// (per the fsync mode) when Update returns, and the record observer has
// seen the change. Update is a merge as far as the Limits go: it is never
// refused for them, and a result beyond them is counted.
func (s *Store) Update(partition uint32, key []byte, fn func(cur versioning.State) (versioning.State, error)) (versioning.State, error) {
	st, _, err := s.update(partition, key, fn, nil, false)
	return st, err
}

// noSync is what a deferred sync waits for when writes are not synced.
func noSync() error { return nil }

// update is Update; with deferSync it returns as soon as the write is
// visible, and sync waits until it is durable (it must be called once).
// admit, if not nil, makes this a client write: it sees the state before
// and the new state's encoded size, and an error it returns stores
// nothing; without it the change is a merge of replica states.
func (s *Store) update(partition uint32, key []byte, fn func(cur versioning.State) (versioning.State, error),
	admit func(cur versioning.State, size int) error, deferSync bool,
) (_ versioning.State, sync func() error, _ error) {
	if s.closed.Load() {
		return versioning.State{}, nil, ErrClosed
	}
	rk := recordKey(partition, key)
	mu := s.lock(key)
	mu.Lock()
	defer mu.Unlock()
	old, closer, err := s.lookup(rk)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		old, closer = nil, nil
	case err != nil:
		return versioning.State{}, nil, fmt.Errorf("get record %q: %w", key, err)
	default:
		defer closer.Close() // old stays valid until then, also across the Set below
	}
	var cur versioning.State
	if old != nil {
		if cur, err = versioning.DecodeState(old); err != nil {
			return versioning.State{}, nil, fmt.Errorf("decode record %q: %w", key, err)
		}
	}
	next, err := fn(cur)
	if err != nil {
		return versioning.State{}, nil, err
	}
	if old == nil && next.IsZero() {
		return next, noSync, nil // nothing to keep (e.g. a merge of an empty state): no empty record
	}
	enc, err := next.MarshalBinary()
	if err != nil {
		return versioning.State{}, nil, fmt.Errorf("encode record %q: %w", key, err)
	}
	if old != nil && bytes.Equal(old, enc) {
		return next, noSync, nil // nothing new (e.g. a replica merging what it has)
	}
	if admit != nil {
		if err := admit(cur, len(enc)); err != nil {
			return versioning.State{}, nil, err
		}
	}
	sync = noSync
	if deferSync && s.writeOpts.Sync {
		// The write is visible at once; its WAL sync is waited for later,
		// so the caller can overlap it with other work (replication).
		b := s.db.NewBatch()
		_ = b.Set(rk, enc, nil)
		if err := s.db.ApplyNoSyncWait(b, s.writeOpts); err != nil {
			_ = b.Close()
			return versioning.State{}, nil, fmt.Errorf("write record %q: %w", key, err)
		}
		sync = func() error {
			err := b.SyncWait()
			if cerr := b.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("sync record %q: %w", key, err)
			}
			return nil
		}
	} else if err := s.db.Set(rk, enc, s.writeOpts); err != nil {
		return versioning.State{}, nil, fmt.Errorf("write record %q: %w", key, err)
	}
	s.noteLimits(key, cur, next, len(old), len(enc), admit == nil)
	if s.observer != nil {
		s.observer(partition, key, old, enc)
	}
	return next, sync, nil
}

// Write applies a client write coordinated by this node: it issues a fresh
// dot of this node's actor, applies versioning's Update with the client's
// context ctx, and stores the result. sib's Dot is filled in. It returns
// the new stored state and the dot issued.
//
// A write that would leave the record beyond the store's Limits is refused
// with a *LimitError and stores nothing; its dot is taken back unless
// another write was issued one since (a skipped counter is harmless: the
// counter is shared by every key).
func (s *Store) Write(partition uint32, key []byte, ctx versioning.VersionVector, sib versioning.Sibling) (versioning.State, versioning.Dot, error) {
	st, dot, sync, err := s.WriteDeferSync(partition, key, ctx, sib)
	if err != nil {
		return st, dot, err
	}
	return st, dot, sync()
}

// WriteDeferSync is Write, except that with fsync=always it returns as
// soon as the write is visible, before it is durable: sync (which must be
// called exactly once) waits until it is. A coordinator overlaps that wait
// with replication, so a write costs one fsync of latency, not two.
func (s *Store) WriteDeferSync(partition uint32, key []byte, ctx versioning.VersionVector, sib versioning.Sibling) (_ versioning.State, _ versioning.Dot, sync func() error, _ error) {
	var dot versioning.Dot
	st, sync, err := s.update(partition, key, func(cur versioning.State) (versioning.State, error) {
		// The sibling bound is checked before a dot is issued.
		if err := s.admitSiblings(cur, ctx); err != nil {
			return versioning.State{}, err
		}
		c, err := s.nextCounter(cur.Context.Max(s.actor), ctx.Max(s.actor))
		if err != nil {
			return versioning.State{}, err
		}
		dot = versioning.Dot{Actor: s.actor, Counter: c}
		sib.Dot = dot
		next, err := cur.Update(ctx, sib)
		if err != nil {
			s.releaseCounter(c)
		}
		return next, err
	}, func(cur versioning.State, size int) error {
		err := s.admitBytes(cur, size)
		if err != nil {
			s.releaseCounter(dot.Counter)
		}
		return err
	}, true)
	if err != nil {
		if dot.Counter != 0 && errors.Is(err, versioning.ErrEncodingLimit) {
			// The client's context made a state beyond the encoding's
			// limits (versioning.MaxActors...): nothing was stored.
			s.releaseCounter(dot.Counter)
		}
		return versioning.State{}, versioning.Dot{}, nil, err
	}
	return st, dot, sync, nil
}

// Merge syncs a state received from another replica into the local one.
// It is never refused for the Limits (see Limits).
func (s *Store) Merge(partition uint32, key []byte, remote versioning.State) (versioning.State, error) {
	return s.Update(partition, key, func(cur versioning.State) (versioning.State, error) {
		return versioning.Sync(cur, remote), nil
	})
}

// releaseCounter takes back counter c, issued for a write that was then
// refused, if no counter was issued after it: the next write gets it
// again. Nothing holds c (the write stored nothing and answered no
// context), so reissuing it is safe.
func (s *Store) releaseCounter(c uint64) {
	s.counter.Lock()
	defer s.counter.Unlock()
	if s.counter.last == c {
		s.counter.last = c - 1
	}
}

// nextCounter issues a counter above every counter issued before and
// above stateFloor (the highest event of this actor the key's state holds),
// renewing the durable lease first when the block is used up. ctxFloor is
// the client context's highest event of this actor, which cannot exceed
// what this actor issued unless the context was forged.
func (s *Store) nextCounter(stateFloor, ctxFloor uint64) (uint64, error) {
	s.counter.Lock()
	defer s.counter.Unlock()
	if ctxFloor > s.counter.last {
		return 0, fmt.Errorf("context claims event %d of %s, last issued %d: %w",
			ctxFloor, s.actor, s.counter.last, versioning.ErrUnissuedDot)
	}
	floor := stateFloor
	if floor >= versioning.MaxCounter {
		return 0, fmt.Errorf("issue a dot above counter %d: %w", floor, ErrCounterExhausted)
	}
	c := max(s.counter.last, floor) + 1
	if c > s.counter.leased {
		lease := c + counterBlock
		if err := s.db.Set(metaCounter, binary.BigEndian.AppendUint64(nil, lease), pebble.Sync); err != nil {
			return 0, fmt.Errorf("renew counter lease: %w", err)
		}
		s.counter.leased = lease
	}
	s.counter.last = c
	return c, nil
}

func (s *Store) getMeta(k []byte) ([]byte, bool, error) {
	val, closer, err := s.lookup(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read metadata %s: %w", k[1:], err)
	}
	defer closer.Close()
	return append([]byte(nil), val...), true, nil
}

func (s *Store) getUint(k []byte) (uint64, error) {
	v, ok, err := s.getMeta(k)
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("metadata %s: want 8 bytes, have %d", k[1:], len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// pebbleLogger adapts slog to pebble's Logger.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error("pebble fatal: " + msg)
	panic("pebble: " + msg)
}

// GetMeta returns the metadata value stored under name by SetMeta.
func (s *Store) GetMeta(name string) ([]byte, bool, error) {
	if s.closed.Load() {
		return nil, false, ErrClosed
	}
	return s.getMeta(metaKey("x/" + name))
}

// SetMeta durably (synced) stores a metadata value for other packages,
// e.g. the gossip layer's ring membership. Names live in their own
// namespace, apart from the store's own metadata.
func (s *Store) SetMeta(name string, value []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.db.Set(metaKey("x/"+name), value, pebble.Sync); err != nil {
		return fmt.Errorf("write metadata %s: %w", name, err)
	}
	return nil
}

// DeleteMetaRange durably deletes the metadata values whose names fall
// in [from, to).
func (s *Store) DeleteMetaRange(from, to string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.db.DeleteRange(metaKey("x/"+from), metaKey("x/"+to), pebble.Sync); err != nil {
		return fmt.Errorf("delete metadata [%s, %s): %w", from, to, err)
	}
	return nil
}

// lookupOpts makes point lookups consult the bloom filters of every level.
var lookupOpts = pebble.IterOptions{UseL6Filters: true}

// lookup returns the value stored under k, or pebble.ErrNotFound, as
// pebble's DB.Get does; val is valid until closer is closed. Unlike
// DB.Get it consults the bottom level's bloom filters too: most data lives
// there, and without them every write to a new key (each one reads first)
// loads and decompresses a data block of the bottom level.
func (s *Store) lookup(k []byte) (val []byte, closer io.Closer, err error) {
	it, err := s.db.NewIter(&lookupOpts)
	if err != nil {
		return nil, nil, err
	}
	if !it.SeekPrefixGE(k) || !bytes.Equal(it.Key(), k) {
		err := it.Close()
		if err == nil {
			err = pebble.ErrNotFound
		}
		return nil, nil, err
	}
	val, err = it.ValueAndErr()
	if err != nil {
		_ = it.Close()
		return nil, nil, err
	}
	return val, it, nil
}
