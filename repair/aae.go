package repair

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/transport"
	"github.com/dotkv/dotkv/versioning"
)

// Anti-entropy RPC methods. Each takes and returns a batch, so one
// exchange costs one round trip per tree level whatever the number of
// differing partitions.
const (
	methodRoots  = "aae_roots"  // partitions → roots
	methodMids   = "aae_mids"   // partitions → 32 mid hashes each
	methodLeaves = "aae_leaves" // (partition, mid)s → 32 leaf hashes each
	methodKeys   = "aae_keys"   // (partition, bucket)s → (key, hash) lists
	methodGet    = "aae_get"    // (partition, key)s → stored encodings ("" = absent) of a prefix of them
)

// batchBytes bounds the states in one aae_get reply or one push of
// merged states (a single larger state still goes, alone); batchKeys
// bounds the keys one aae_get names. Both keep messages far below
// transport.MaxMessage.
const (
	batchBytes = 8 << 20
	batchKeys  = 4096
)

// EngineConfig configures active anti-entropy.
type EngineConfig struct {
	Self  string
	Store *storage.Store
	Trees *Trees
	Tombs *Tombstones
	Peer  Peer
	// View returns the current ownership view; Dead reports gossip's
	// verdict.
	View func() *ring.View
	Dead func(id string) bool
	// Interval between exchanges (default 10 s).
	Interval time.Duration
	// KeysPerSec bounds keys listed or synced per second (default 50 000).
	KeysPerSec int
	// TombstoneGrace is how long a tombstone-only record is kept after its
	// newest delete before it may be collected (default 1 h).
	TombstoneGrace time.Duration
	// Now is the clock for the grace period; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer, if not nil, receives the engine's metrics.
	Registerer prometheus.Registerer
}

// Engine runs anti-entropy exchanges and tombstone collection.
type Engine struct {
	cfg     EngineConfig
	limiter *rate.Limiter
	m       aaeMetrics
	mu      sync.Mutex
	next    int          // round-robin position over peers
	looks   atomic.Int64 // Run's looks for peers that came back (tests wait on it)
}

type aaeMetrics struct {
	exchanges, compared, repaired, bytesSent, bytesReceived, purged prometheus.Counter
}

// DefaultEngineConfig returns the defaults NewEngine uses for zero
// fields: an exchange every 10 s, at most 50,000 keys listed or synced a
// second, and tombstones kept at least 1 h.
func DefaultEngineConfig() EngineConfig {
	return EngineConfig{Interval: 10 * time.Second, KeysPerSec: 50_000, TombstoneGrace: time.Hour}
}

// NewEngine returns an engine; Run drives it, Register serves its RPCs.
func NewEngine(cfg EngineConfig) *Engine {
	def := DefaultEngineConfig()
	if cfg.Interval <= 0 {
		cfg.Interval = def.Interval
	}
	if cfg.KeysPerSec <= 0 {
		cfg.KeysPerSec = def.KeysPerSec
	}
	if cfg.TombstoneGrace <= 0 {
		cfg.TombstoneGrace = def.TombstoneGrace
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	e := &Engine{
		cfg:     cfg,
		limiter: rate.NewLimiter(rate.Limit(cfg.KeysPerSec), cfg.KeysPerSec),
		m: aaeMetrics{
			exchanges:     c("dotkv_aae_exchanges_total", "Anti-entropy exchanges this node started."),
			compared:      c("dotkv_aae_keys_compared_total", "Keys compared by (key, version hash) in differing leaves."),
			repaired:      c("dotkv_aae_keys_repaired_total", "Keys synced because the replicas' versions differed."),
			bytesSent:     c("dotkv_aae_bytes_sent_total", "Bytes of anti-entropy requests this node sent."),
			bytesReceived: c("dotkv_aae_bytes_received_total", "Bytes of anti-entropy replies this node received."),
			purged:        c("dotkv_tombstones_purged_total", "Tombstone-only records collected after the grace period."),
		},
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(e.m.exchanges, e.m.compared, e.m.repaired, e.m.bytesSent, e.m.bytesReceived, e.m.purged)
	}
	return e
}

// Register installs the engine's RPC handlers.
func (e *Engine) Register(srv interface {
	Handle(method string, fn transport.Handler)
}) {
	srv.Handle(methodRoots, e.handleRoots)
	srv.Handle(methodMids, e.handleMids)
	srv.Handle(methodLeaves, e.handleLeaves)
	srv.Handle(methodKeys, e.handleKeys)
	srv.Handle(methodGet, e.handleGet)
}

// Run exchanges with the next live peer and collects tombstones every
// interval until ctx is done. A peer that comes back (gossip saw it dead,
// and now does not) is exchanged with at once, without waiting for the
// interval: after a partition heals, replicas converge in one exchange
// rather than in a round of intervals.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	watch := time.NewTicker(min(e.cfg.Interval, 250*time.Millisecond))
	defer watch.Stop()
	dead := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-watch.C:
			for _, peer := range e.returned(dead) {
				e.exchange(ctx, peer)
			}
			continue
		case <-t.C:
		}
		if peer := e.nextPeer(); peer != "" {
			e.exchange(ctx, peer)
		}
		if n, err := e.CollectTombstones(ctx, 10_000); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Debug("tombstone collection stopped", "err", err)
		} else if n > 0 {
			e.cfg.Logger.Info("collected tombstones", "records", n)
		}
	}
}

// returned updates dead (the members gossip saw dead at the last look)
// and returns those that are no longer dead.
func (e *Engine) returned(dead map[string]bool) []string {
	defer e.looks.Add(1)
	var back []string
	seen := map[string]bool{}
	for _, m := range e.cfg.View().Members() {
		if m == e.cfg.Self {
			continue
		}
		seen[m] = true
		switch d := e.cfg.Dead(m); {
		case d:
			dead[m] = true
		case dead[m]:
			delete(dead, m)
			back = append(back, m)
		}
	}
	for m := range dead {
		if !seen[m] {
			delete(dead, m)
		}
	}
	return back
}

// returnedChecks is how many times Run looked for peers coming back.
func (e *Engine) returnedChecks() int64 { return e.looks.Load() }

// exchange runs one exchange with peer and logs what it repaired.
func (e *Engine) exchange(ctx context.Context, peer string) {
	st, err := e.Exchange(ctx, peer)
	if err != nil && ctx.Err() == nil {
		e.cfg.Logger.Debug("anti-entropy exchange failed", "peer", peer, "err", err)
	} else if st.KeysRepaired > 0 {
		e.cfg.Logger.Info("anti-entropy repaired keys", "peer", peer, "keys", st.KeysRepaired, "bytes", st.BytesSent+st.BytesReceived)
	}
}

// nextPeer returns the next live ring member, round robin.
func (e *Engine) nextPeer() string {
	var peers []string
	for _, m := range e.cfg.View().Members() {
		if m != e.cfg.Self && !e.cfg.Dead(m) {
			peers = append(peers, m)
		}
	}
	if len(peers) == 0 {
		return ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.next++
	return peers[e.next%len(peers)]
}

// Stats describes one exchange.
type Stats struct {
	Partitions, DifferingPartitions int
	KeysCompared, KeysRepaired      int
	BytesSent, BytesReceived        int
	RoundTrips                      int
}

// shared returns the partitions both nodes replicate and neither is
// still receiving (a partition transfer fills those; an exchange would
// only duplicate it).
func shared(r *ring.View, a, b string) []uint32 {
	var out []uint32
	for _, p := range r.Owned(a) {
		if r.IsPrimary(p, b) && r.IsReader(p, a) && r.IsReader(p, b) {
			out = append(out, p)
		}
	}
	return out
}

// Exchange compares every partition this node and peer both replicate,
// top-down, and syncs the keys of differing leaves in both directions
// through versioning.Sync (never losing a sibling).
func (e *Engine) Exchange(ctx context.Context, peer string) (Stats, error) {
	return e.ExchangePartitions(ctx, peer, shared(e.cfg.View(), e.cfg.Self, peer))
}

// ExchangePartitions runs Exchange's comparison and sync on exactly the
// given partitions, whoever owns them: a node that received a partition
// confirms its copy against the source with it (one Merkle comparison
// that also syncs any key written during the transfer).
func (e *Engine) ExchangePartitions(ctx context.Context, peer string, parts []uint32) (Stats, error) {
	x := &peerExchange{e: e, ctx: ctx, peer: peer}
	e.m.exchanges.Inc()
	defer func() {
		e.m.bytesSent.Add(float64(x.st.BytesSent))
		e.m.bytesReceived.Add(float64(x.st.BytesReceived))
		e.m.compared.Add(float64(x.st.KeysCompared))
		e.m.repaired.Add(float64(x.st.KeysRepaired))
	}()
	x.st.Partitions = len(parts)
	level := make([]treePos, len(parts))
	for i, p := range parts {
		level[i] = treePos{p: p}
	}
	// Descend the trees one level per round trip, only into what differs:
	// roots → differing partitions' mids → differing mids' leaves.
	steps := []struct {
		method string
		encode func(wire.Writer, treePos) wire.Writer
		local  func(treePos) []uint64
		child  func(treePos, int) treePos
	}{
		{methodRoots, func(w wire.Writer, t treePos) wire.Writer { return w.U32(t.p) },
			func(t treePos) []uint64 { return []uint64{e.cfg.Trees.Root(t.p)} },
			func(t treePos, _ int) treePos { return t }},
		{methodMids, func(w wire.Writer, t treePos) wire.Writer { return w.U32(t.p) },
			func(t treePos) []uint64 { m := e.cfg.Trees.Mids(t.p); return m[:] },
			func(t treePos, j int) treePos { return treePos{t.p, j} }},
		{methodLeaves, func(w wire.Writer, t treePos) wire.Writer { return w.U32(t.p).Uvarint(uint64(t.i)) },
			func(t treePos) []uint64 { l := e.cfg.Trees.Leaves(t.p, t.i); return l[:] },
			func(t treePos, j int) treePos { return treePos{t.p, t.i*fanout + j} }},
	}
	for i, step := range steps {
		if len(level) == 0 {
			return x.st, nil
		}
		var err error
		if level, err = x.descend(step.method, level, step.encode, step.local, step.child); err != nil {
			return x.st, err
		}
		if i == 0 {
			x.st.DifferingPartitions = len(level)
		}
	}
	if len(level) == 0 {
		return x.st, nil
	}
	differing, remote, err := x.differingKeys(level)
	if err != nil || len(differing) == 0 {
		return x.st, err
	}
	return x.st, x.sync(differing, remote)
}

// treePos is a node of one partition's tree: the root, mid i or leaf i.
type treePos struct {
	p uint32
	i int
}

// keyPos is a key of a partition.
type keyPos struct {
	p   uint32
	key string
}

// peerExchange is one anti-entropy exchange with one peer.
type peerExchange struct {
	e    *Engine
	ctx  context.Context
	peer string
	st   Stats
}

// call sends one request, counting round trips and bytes.
func (x *peerExchange) call(method string, req []byte) (*wire.Reader, error) {
	x.st.RoundTrips++
	x.st.BytesSent += len(req)
	resp, err := x.e.cfg.Peer.Call(x.ctx, x.peer, method, req)
	x.st.BytesReceived += len(resp)
	if err != nil {
		return nil, fmt.Errorf("anti-entropy %s with %s: %w", method, x.peer, err)
	}
	return wire.NewReader(resp), nil
}

// descend asks the peer for the hashes under each tree node of level and
// returns the children whose hash differs from ours.
func (x *peerExchange) descend(method string, level []treePos, encode func(wire.Writer, treePos) wire.Writer,
	local func(treePos) []uint64, child func(treePos, int) treePos) ([]treePos, error) {
	req := wire.Writer(nil).Uvarint(uint64(len(level)))
	for _, t := range level {
		req = encode(req, t)
	}
	r, err := x.call(method, req)
	if err != nil {
		return nil, err
	}
	var next []treePos
	for _, t := range level {
		for j, h := range local(t) {
			if r.U64() != h {
				next = append(next, child(t, j))
			}
		}
	}
	return next, r.Done()
}

// differingKeys compares the (key, version hash) lists of differing
// leaves and returns the keys whose versions differ, sorted, with the
// peer's hashes (0: the peer does not hold the key).
func (x *peerExchange) differingKeys(leaves []treePos) ([]keyPos, map[keyPos]uint64, error) {
	req := wire.Writer(nil).Uvarint(uint64(len(leaves)))
	for _, t := range leaves {
		req = req.U32(t.p).Uvarint(uint64(t.i))
	}
	r, err := x.call(methodKeys, req)
	if err != nil {
		return nil, nil, err
	}
	remote := map[keyPos]uint64{}
	for _, t := range leaves {
		for range r.Count(9) {
			k := r.Bytes()
			remote[keyPos{t.p, string(k)}] = r.U64()
		}
	}
	if err := r.Done(); err != nil {
		return nil, nil, err
	}
	local := map[keyPos]uint64{}
	for _, t := range leaves {
		if err := x.e.cfg.Store.ScanBucket(t.p, uint16(t.i), func(key, raw []byte) error {
			local[keyPos{t.p, string(key)}] = keyHash(key, raw)
			return nil
		}); err != nil {
			return nil, nil, err
		}
	}
	var differing []keyPos
	for k, h := range remote {
		if local[k] != h {
			differing = append(differing, k)
		}
	}
	for k := range local {
		if _, ok := remote[k]; !ok {
			differing = append(differing, k)
		}
	}
	x.st.KeysCompared = len(remote) + len(local)
	if err := x.e.wait(x.ctx, x.st.KeysCompared); err != nil {
		return nil, nil, err
	}
	slices.SortFunc(differing, func(a, b keyPos) int {
		return cmp.Or(cmp.Compare(a.p, b.p), cmp.Compare(a.key, b.key))
	})
	return differing, remote, nil
}

// sync merges the differing keys both ways: it pulls the peer's versions
// into our records and pushes the merges back. Both go in batches — the
// peer bounds each reply to about batchBytes of states, and each push
// holds about as much — so that no message nears the transport's limit
// however much the replicas differ (one message over it would fail this
// exchange, and every later one the same way).
func (x *peerExchange) sync(differing []keyPos, remote map[keyPos]uint64) error {
	e := x.e
	var push []storage.Hint
	pushBytes := 0
	flush := func() error {
		if len(push) == 0 {
			return nil
		}
		msg, err := encodeBatch(push)
		if err != nil {
			return err
		}
		if _, err = x.call(MethodMergeStates, msg); err != nil {
			return err
		}
		x.st.KeysRepaired += len(push)
		push, pushBytes = nil, 0
		return nil
	}
	reconcile := func(k keyPos, rs versioning.State, theyHave bool) error {
		key := []byte(k.key)
		ours, _, err := e.cfg.Store.Get(k.p, key)
		if err != nil {
			return err
		}
		switch {
		case !theyHave && e.expired(ours):
			return nil // a collectible tombstone the peer already dropped
		case ours.IsZero() && theyHave && e.expired(rs):
			return nil // and the other way round
		}
		merged := versioning.Sync(ours, rs)
		if theyHave && !merged.Equal(ours) {
			if merged, err = e.cfg.Store.Merge(k.p, key, rs); err != nil {
				return err
			}
		}
		if merged.Equal(rs) {
			x.st.KeysRepaired++ // only our side needed it
			return nil
		}
		enc, err := merged.MarshalBinary()
		if err != nil {
			return err
		}
		push = append(push, storage.Hint{Partition: k.p, Key: key, State: merged})
		if pushBytes += len(key) + len(enc); pushBytes >= batchBytes {
			return flush()
		}
		return nil
	}

	// The differing keys the peer holds: fetch their states.
	var fetch []keyPos
	for _, k := range differing {
		if remote[k] != 0 {
			fetch = append(fetch, k)
		}
	}
	for len(fetch) > 0 {
		ask := fetch[:min(len(fetch), batchKeys)]
		req := wire.Writer(nil).Uvarint(uint64(len(ask)))
		for _, k := range ask {
			req = req.U32(k.p).String(k.key)
		}
		r, err := x.call(methodGet, req)
		if err != nil {
			return err
		}
		got := 0 // the reply holds the states of a prefix of ask
		for ; got < len(ask) && r.Len() > 0; got++ {
			k := ask[got]
			raw := r.Bytes()
			var rs versioning.State
			if len(raw) > 0 {
				if rs, err = versioning.DecodeState(raw); err != nil {
					return fmt.Errorf("anti-entropy: %s's state of %q: %w", x.peer, k.key, err)
				}
			}
			if err := reconcile(k, rs, len(raw) > 0); err != nil {
				return err
			}
		}
		if err := r.Done(); err != nil {
			return err
		}
		if got == 0 {
			return fmt.Errorf("anti-entropy: %s returned no state of %d keys asked", x.peer, len(ask))
		}
		fetch = fetch[got:]
	}
	// The differing keys only we hold.
	for _, k := range differing {
		if remote[k] == 0 {
			if err := reconcile(k, versioning.State{}, false); err != nil {
				return err
			}
		}
	}
	return flush()
}

// wait takes n keys from the rate limiter, in bursts it can grant.
func (e *Engine) wait(ctx context.Context, n int) error {
	for n > 0 {
		take := min(n, e.limiter.Burst())
		if err := e.limiter.WaitN(ctx, take); err != nil {
			return err
		}
		n -= take
	}
	return nil
}

// expired reports whether st holds only tombstones, all older than the
// grace period.
func (e *Engine) expired(st versioning.State) bool {
	if len(st.Siblings) == 0 || !st.Deleted() {
		return false
	}
	cutoff := e.cfg.Now().Add(-e.cfg.TombstoneGrace).UnixMilli()
	for _, s := range st.Siblings {
		if s.Modified > cutoff {
			return false
		}
	}
	return true
}

// CollectTombstones deletes up to limit tombstone-only records whose
// grace period has passed and that every other primary of their key holds
// as well (only tombstones, nothing newer) or has already dropped. Until
// then a tombstone stays, so no hint, read repair, anti-entropy exchange
// or returning node can bring back the value it deleted. It returns how
// many records it deleted.
func (e *Engine) CollectTombstones(ctx context.Context, limit int) (int, error) {
	r := e.cfg.View()
	purged := 0
	unreachable := map[string]bool{} // primaries a call failed to this round
	for _, k := range e.cfg.Tombs.snapshot(limit) {
		if ctx.Err() != nil {
			return purged, ctx.Err()
		}
		key := []byte(k.key)
		raw, ok, err := e.cfg.Store.GetRaw(k.p, key)
		if err != nil {
			return purged, err
		}
		if !ok {
			continue
		}
		ours, err := versioning.DecodeState(raw)
		if err != nil || !e.expired(ours) || r.Moving(k.p) || !r.IsPrimary(k.p, e.cfg.Self) {
			continue // not while the partition moves, nor where this node is no owner
		}
		if !e.othersHold(ctx, r, k.p, key, ours, unreachable) {
			continue
		}
		deleted, err := e.cfg.Store.DeleteIfUnchanged(k.p, key, raw)
		if err != nil {
			return purged, err
		}
		if deleted {
			purged++
			e.m.purged.Inc()
		}
	}
	return purged, nil
}

// othersHold asks every other primary of the key for its state. A
// primary gossip sees dead, or that a call already failed to this round
// (unreachable), cannot confirm: it is not asked again, so that a
// primary whose packets are dropped costs one call timeout a round, not
// one per tombstone (which would stall the anti-entropy loop for hours).
func (e *Engine) othersHold(ctx context.Context, r *ring.View, p uint32, key []byte, ours versioning.State, unreachable map[string]bool) bool {
	for _, node := range r.Primaries(p) {
		if node == e.cfg.Self {
			continue
		}
		if unreachable[node] || e.cfg.Dead(node) {
			return false // cannot confirm: keep the tombstone
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := e.cfg.Peer.Call(cctx, node, methodGet, wire.Writer(nil).Uvarint(1).U32(p).Bytes(key))
		cancel()
		if err != nil {
			unreachable[node] = true
			return false // cannot confirm: keep the tombstone
		}
		rd := wire.NewReader(resp)
		raw := rd.Bytes()
		if rd.Done() != nil {
			return false
		}
		if len(raw) == 0 {
			continue // already collected there (or never held: nothing to bring back)
		}
		theirs, err := versioning.DecodeState(raw)
		if err != nil || !theirs.Deleted() || !versioning.Sync(ours, theirs).Equal(ours) {
			return false
		}
	}
	return true
}

// readPartitions decodes a request that lists partitions.
func (e *Engine) readPartitions(req []byte) ([]uint32, error) {
	r := wire.NewReader(req)
	parts := make([]uint32, r.Count(4))
	for i := range parts {
		parts[i] = r.U32()
		if err := e.checkPartition(parts[i], i, 1); err != nil {
			return nil, err
		}
	}
	return parts, r.Done()
}

// checkPartition refuses the i-th entry of a query when it names a
// partition the ring does not have, or when the query has more entries
// than the ring has partitions times per (the entries a partition can
// need): replies grow by up to 256 bytes an entry, so an unbounded query
// could make this node build gigabytes.
func (e *Engine) checkPartition(p uint32, i, per int) error {
	q := e.cfg.View().Partitions()
	if int(p) >= q || i >= q*per {
		return fmt.Errorf("%w: partition %d (entry %d) of a ring of %d", wire.ErrMalformed, p, i, q)
	}
	return nil
}

func (e *Engine) handleRoots(_ context.Context, _ string, req []byte) ([]byte, error) {
	parts, err := e.readPartitions(req)
	if err != nil {
		return nil, err
	}
	out := wire.Writer(nil)
	for _, root := range e.cfg.Trees.Roots(parts) {
		out = out.U64(root)
	}
	return out, nil
}

func (e *Engine) handleMids(_ context.Context, _ string, req []byte) ([]byte, error) {
	parts, err := e.readPartitions(req)
	if err != nil {
		return nil, err
	}
	out := wire.Writer(nil)
	for _, p := range parts {
		for _, h := range e.cfg.Trees.Mids(p) {
			out = out.U64(h)
		}
	}
	return out, nil
}

func (e *Engine) handleLeaves(_ context.Context, _ string, req []byte) ([]byte, error) {
	r := wire.NewReader(req)
	n := r.Count(5)
	out := wire.Writer(nil)
	for i := range n {
		p, mid := r.U32(), r.Uvarint()
		if mid >= midCount {
			return nil, wire.ErrMalformed
		}
		if err := e.checkPartition(p, i, midCount); err != nil {
			return nil, err
		}
		for _, h := range e.cfg.Trees.Leaves(p, int(mid)) {
			out = out.U64(h)
		}
	}
	return out, r.Done()
}

func (e *Engine) handleKeys(_ context.Context, _ string, req []byte) ([]byte, error) {
	r := wire.NewReader(req)
	n := r.Count(5)
	out := wire.Writer(nil)
	for i := range n {
		p, bucket := r.U32(), r.Uvarint()
		if bucket >= leafCount {
			return nil, wire.ErrMalformed
		}
		if err := e.checkPartition(p, i, leafCount); err != nil {
			return nil, err
		}
		var keys [][]byte
		var hashes []uint64
		if err := e.cfg.Store.ScanBucket(p, uint16(bucket), func(key, raw []byte) error {
			keys = append(keys, slices.Clone(key))
			hashes = append(hashes, keyHash(key, raw))
			return nil
		}); err != nil {
			return nil, err
		}
		out = out.Uvarint(uint64(len(keys)))
		for i, k := range keys {
			out = out.Bytes(k).U64(hashes[i])
		}
	}
	return out, r.Done()
}

func (e *Engine) handleGet(_ context.Context, _ string, req []byte) ([]byte, error) {
	r := wire.NewReader(req)
	n := r.Count(5)
	out := wire.Writer(nil)
	for i := range n {
		p, key := r.U32(), r.Bytes()
		if i > 0 && len(out) >= batchBytes {
			continue // enough for one reply: the caller asks again for the rest
		}
		raw, _, err := e.cfg.Store.GetRaw(p, key)
		if err != nil {
			return nil, err
		}
		out = out.Bytes(raw)
	}
	return out, r.Done()
}
