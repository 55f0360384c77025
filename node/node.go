// Package node assembles a dotkv node from its parts — storage, the
// internode RPC server and client, gossip membership, the request
// coordinator and the HTTP API — and stops them in order. The CLI and the
// cluster test harness both start nodes through it.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/auth"
	"github.com/dotkv/dotkv/certs"
	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/handoff"
	"github.com/dotkv/dotkv/repair"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/transport"
)

// Config configures a node. DefaultConfig returns the defaults in full
// and Validate checks one; a zero field selects its default, as each field
// says.
type Config struct {
	ID      string
	DataDir string
	// Version is the version of the running binary, reported by /healthz.
	Version string
	// FS, if not nil, replaces the OS filesystem (tests: vfs.NewMem).
	FS vfs.FS
	// HTTPAddr is the client API address (host:port; port 0 picks one).
	HTTPAddr string
	// AdvertiseHTTP is the client API address the node gives the cluster
	// (cluster status, preference lists), host:port. Empty: the bound
	// address, with the gossip host in place of an unspecified host
	// (0.0.0.0 or ::), as a node listening on every interface of a
	// container is reached at its own IP.
	AdvertiseHTTP string
	// GossipAddr enables clustering: memberlist binds here. Empty means a
	// single node with a one-member ring and no RPC.
	GossipAddr string
	// RPCAddr is the internode RPC address; empty means the gossip host
	// with the gossip port + 1.
	RPCAddr string
	// Join lists seed gossip addresses.
	Join []string
	// N, R, W are the cluster defaults (3, quorum, quorum).
	N    int
	R, W replica.Level
	// Fsync and MaxValue as for storage and api.
	Fsync    storage.FsyncMode
	MaxValue int64
	// CacheSize (pebble's block cache) and MemTableSize in bytes, as for
	// storage.Options; zero picks storage.DefaultOptions' sizes.
	CacheSize    int64
	MemTableSize uint64
	// FaultInjection enables the fault filter's admin endpoint.
	FaultInjection bool
	// FastGossip selects gossip's test tuning (a stopped or cut-off node is
	// dead within 1–2 s; a CPU-starved live node is not declared dead).
	FastGossip bool
	// DisableHints turns off sloppy quorums and hinted handoff.
	DisableHints bool
	// MaxSiblings, WarnSiblings and MaxRecordBytes bound what a client
	// write may leave in a key's record, as storage.Limits does (0: its
	// default; negative: no bound, except MaxRecordBytes, which must fit
	// an internode message: at most MaxRecordLimit).
	MaxSiblings, WarnSiblings int
	MaxRecordBytes            int64
	// MaxHints and MaxHintBytes bound the hints kept per target node
	// (0 = unbounded); overflow is counted in /metrics.
	MaxHints     int
	MaxHintBytes int64
	// HintInterval is how often pending hints are offered to live targets
	// (default 200 ms).
	HintInterval time.Duration
	// DisableAAE turns active anti-entropy (and tombstone collection) off.
	DisableAAE bool
	// AAEInterval is the time between anti-entropy exchanges (default 10 s);
	// AAEKeysPerSec bounds the keys they list or sync per second.
	AAEInterval   time.Duration
	AAEKeysPerSec int
	// TombstoneGrace is how long a delete's tombstone is kept, at least,
	// before it may be collected (default 1 h).
	TombstoneGrace time.Duration
	// NewCluster lets a node whose data directory is empty form a new
	// cluster when none of its Join addresses answers; without it such a
	// node waits for them. It has no effect once the directory holds data.
	NewCluster bool
	// Replace names a dead node whose partitions this (empty) node takes
	// over when it joins.
	Replace string
	// TransferLimit is how many partitions this node transfers in, and out,
	// at once (default 2; negative means 0: transfers paused).
	TransferLimit int
	// TransferRate bounds incoming transfer bytes per second (default
	// 64 MiB/s; negative: unlimited).
	TransferRate int64
	// CleanupInterval is how often records of partitions this node does
	// not own are handed to their owners (default 5 s).
	CleanupInterval time.Duration
	// AuthTokenFile, if set, turns access control on: it holds the bearer
	// tokens of the client API and their roles (auth.Parse), reread by
	// Reload. MetricsAuth makes /metrics need a token too (see
	// api.Config.Auth).
	AuthTokenFile string
	MetricsAuth   bool
	// TLS, if its files are set, serves the client API (and the admin
	// address) over HTTPS and the internode RPC over mutual TLS: peers must
	// present a certificate of the CA (see package certs). The files are
	// reread when they change and on Reload. On an injected Network it
	// applies to the client API alone.
	TLS certs.Files
	// GossipKeyFile, if set, encrypts gossip with the keys it holds (see
	// gossip.ParseKeyFile); Reload rereads it and installs its keys, for a
	// rotation. Nodes with other keys cannot join.
	GossipKeyFile string
	// AdminHTTPAddr, if set, serves /admin/ and /debug/ on this address
	// (host:port) instead of on the client API's.
	AdminHTTPAddr string
	// ClusterSecrets, from --cluster-secret-file, sign and verify context
	// tokens: [0] signs, every one verifies (a previous secret, during a
	// rotation). Nil: the node that forms the cluster generates the
	// secret and the others adopt it through gossip (a single node: its
	// own, generated once); each records it in its data directory.
	ClusterSecrets [][]byte
	// Network, if not nil, replaces the node's sockets (tests run whole
	// clusters in memory on it); see Network. It implies clustering.
	Network Network
	Logger  *slog.Logger
}

// Network is an injected network for a node: its internode RPC, its
// gossip and, optionally, its client API listener. Tests implement it with
// internal/memnet (internal/kvtest adapts it). On an injected network the
// node's fault filter is not used (Filter returns nil): the network makes
// the faults. GossipAddr and RPCAddr are ignored; HTTPAddr too if HTTP
// returns a listener.
type Network interface {
	// RPC returns the node's RPC endpoint.
	RPC(id string) (RPCEndpoint, error)
	// Gossip returns the node's memberlist transport; its advertised
	// address is the node's gossip address. The node's gossip owns it.
	Gossip(id string) (memberlist.NodeAwareTransport, error)
	// HTTP returns the client API's listener, or nil to listen on
	// HTTPAddr.
	HTTP(id string) (net.Listener, error)
}

// RPCEndpoint is a node's RPC endpoint on an injected network: it serves
// the handlers registered on it, from Serve until Close, and carries the
// node's calls, with *transport.Client's error semantics (calls to it
// before Serve fail as not delivered).
type RPCEndpoint interface {
	Handle(method string, fn transport.Handler)
	Serve()
	Call(ctx context.Context, to, method string, req []byte) ([]byte, error)
	// Addr is the address the node advertises for RPC.
	Addr() string
	// Close stops serving and waits for handlers in flight. An endpoint
	// that also has StopServing() (stop serving and wait for the handlers
	// in flight, but keep making calls, as a real RPC server's Close
	// leaves the node's client working) is stopped with it when the
	// node's RPC server stops, and closed with the node's client.
	Close()
}

// rpcServer is the serving side: *transport.Server, or an RPCEndpoint.
type rpcServer interface {
	Handle(method string, fn transport.Handler)
	Serve()
	Addr() string
	Close() error
}

// rpcClient is the calling side: *transport.Client, or an RPCEndpoint.
type rpcClient interface {
	Call(ctx context.Context, to, method string, req []byte) ([]byte, error)
	Close()
}

// endpointServer adapts an RPCEndpoint to rpcServer.
type endpointServer struct{ RPCEndpoint }

// Close stops serving. An endpoint that can stop serving without ending
// its own calls (memnet's StopServing) does only that, as a real server
// does: the background engines still call other nodes until they stop.
// Its client side closes it later.
func (e endpointServer) Close() error {
	if s, ok := e.RPCEndpoint.(interface{ StopServing() }); ok {
		s.StopServing()
		return nil
	}
	e.RPCEndpoint.Close()
	return nil
}

// endpointClient adapts an RPCEndpoint to rpcClient.
type endpointClient struct{ RPCEndpoint }

func (e endpointClient) Close() { e.RPCEndpoint.Close() } // closing twice is safe

// Node is a running dotkv node.
type Node struct {
	cfg        Config
	log        *slog.Logger
	store      *storage.Store
	filter     *transport.Filter
	rpc        rpcServer
	client     rpcClient
	membership *gossip.Membership
	coord      *replica.Coordinator
	deliverer  *repair.Deliverer
	handoff    *handoff.Engine
	cleaner    *repair.Cleaner
	trees      *repair.Trees
	tombs      *repair.Tombstones
	aae        *repair.Engine
	reg        *prometheus.Registry
	ctx        context.Context // the node's own goroutines run until stop
	stop       context.CancelFunc
	wg         sync.WaitGroup
	http       *http.Server
	httpLn     net.Listener
	httpDone   chan error
	keys       contextKeys   // signs context tokens (secret.go)
	tokens     *auth.File    // the client API's access tokens (nil: no access control)
	tls        *certs.Source // nil: no TLS
	admin      *http.Server
	adminLn    net.Listener
	adminDone  chan error
}

// MaxRecordLimit is the largest MaxRecordBytes a node accepts: half an
// internode message (transport.MaxMessage), so that a record at the bound
// still replicates, with room for the merges that may grow it beyond.
const MaxRecordLimit = transport.MaxMessage / 2

// limits returns the record limits cfg asks for.
func (cfg Config) limits() storage.Limits {
	return storage.Limits{MaxSiblings: cfg.MaxSiblings, WarnSiblings: cfg.WarnSiblings, MaxRecordBytes: cfg.MaxRecordBytes}
}

// Start opens the store, starts every part and serves until Close. It
// refuses a configuration that Validate refuses before it creates
// anything.
func Start(cfg Config) (_ *Node, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("node", cfg.ID)
	n := &Node{cfg: cfg, log: log, httpDone: make(chan error, 1)}
	defer func() {
		if err != nil {
			_ = n.closeParts() // the start error is the one to report
		}
	}()
	if cfg.FS == nil {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	n.trees, n.tombs = repair.NewTrees(), repair.NewTombstones()
	sopts := cfg.storageOptions()
	sopts.Logger = log
	sopts.Observer = func(p uint32, key, old, cur []byte) {
		n.trees.Observe(p, key, old, cur)
		n.tombs.Observe(p, key, old, cur)
	}
	n.store, err = storage.Open(cfg.DataDir, sopts)
	if err != nil {
		return nil, err
	}
	if err := n.initContextKeys(cfg.GossipAddr != "" || cfg.Network != nil); err != nil {
		return nil, err
	}
	if err := n.initTLS(); err != nil {
		return nil, err
	}
	// The Merkle trees and the tombstone index live in memory: rebuild
	// them before anything can write.
	rebuildStart := time.Now()
	records, err := repair.Rebuild(n.store, n.trees, n.tombs)
	if err != nil {
		return nil, fmt.Errorf("rebuild anti-entropy trees: %w", err)
	}
	log.Info("rebuilt anti-entropy trees", "records", records, "took", time.Since(rebuildStart).String(),
		"tombstones", n.tombs.Len())
	if cfg.Network != nil {
		n.httpLn, err = cfg.Network.HTTP(cfg.ID)
		if err != nil {
			return nil, fmt.Errorf("listen for HTTP on the injected network: %w", err)
		}
	}
	if n.httpLn == nil {
		n.httpLn, err = net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
		}
	}
	n.httpLn = n.tlsListener(n.httpLn)
	n.reg = prometheus.NewRegistry()
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		limitCollector{n.store})
	rcfg := replica.Config{N: cfg.N, R: cfg.R, W: cfg.W, Logger: log, DisableHints: cfg.DisableHints, Metrics: replica.NewMetrics(n.reg)}
	var view api.ClusterView
	if cfg.GossipAddr == "" && cfg.Network == nil {
		n.coord, err = replica.NewLocal(cfg.ID, n.store, rcfg)
		if err != nil {
			return nil, err
		}
		view = api.SingleNode(cfg.ID, n.advertisedHTTP(), n.coord.View())
		// No peers to exchange with, but tombstones still get collected.
		n.aae = n.newEngine(nil, n.coord.View, func(string) bool { return false })
	} else {
		if err := n.startCluster(rcfg); err != nil {
			return nil, err
		}
		view = n.membership
	}
	if !cfg.DisableAAE {
		n.goEngine(n.aae.Run)
	}
	apiCfg := api.Config{NodeID: cfg.ID, Version: cfg.Version, MaxValue: cfg.MaxValue, Logger: log, Cluster: view, Registry: n.reg,
		Hints: n.store, AAE: n.trees, ContextKeys: n.keys.p.Load, Backup: n.store}
	if n.handoff != nil {
		apiCfg.Transfers = n.handoff
	}
	if cfg.FaultInjection && n.filter != nil {
		apiCfg.Faults = n.filter
	}
	if err := n.initAccess(&apiCfg); err != nil {
		return nil, err
	}
	handler := api.New(n.coord, apiCfg)
	if err := n.serveAdmin(handler); err != nil {
		return nil, err
	}
	n.http = api.NewHTTPServer(cfg.HTTPAddr, handler, log)
	go func() { n.httpDone <- n.http.Serve(n.httpLn) }()
	log.Info("serving", "http", n.HTTPAddr(), "gossip", n.GossipAddr(), "rpc", n.RPCAddr(),
		"data", cfg.DataDir, "fsync", cfg.Fsync.String(), "actor", n.store.Actor())
	return n, nil
}

func (n *Node) startCluster(rcfg replica.Config) error {
	cfg := n.cfg
	gcfg := gossip.Config{
		NodeID:     cfg.ID,
		GossipAddr: cfg.GossipAddr,
		HTTPAddr:   n.advertisedHTTP(),
		Join:       cfg.Join,
		Partitions: ring.DefaultPartitions,
		N:          cfg.N,
		Store:      n.store,
		NewCluster: cfg.NewCluster,
		Replace:    cfg.Replace,
		Fast:       cfg.FastGossip,
		Logger:     n.log,
		// The secret of context tokens: the file's, or gossip's.
		ExternalSecret: cfg.ClusterSecrets != nil,
		OnSecret:       n.onSecret,
	}
	var err error
	if cfg.GossipKeyFile != "" {
		if gcfg.Keys, err = gossip.LoadKeyFile(cfg.GossipKeyFile); err != nil {
			return err
		}
	}
	if cfg.Network != nil {
		ep, err := cfg.Network.RPC(cfg.ID)
		if err != nil {
			return fmt.Errorf("RPC endpoint on the injected network: %w", err)
		}
		n.rpc, n.client = endpointServer{ep}, endpointClient{ep}
		if gcfg.Transport, err = cfg.Network.Gossip(cfg.ID); err != nil {
			return fmt.Errorf("gossip transport on the injected network: %w", err)
		}
	} else {
		rpcAddr := cfg.RPCAddr
		if rpcAddr == "" {
			host, port, err := net.SplitHostPort(cfg.GossipAddr)
			if err != nil {
				return fmt.Errorf("--gossip %q: %w", cfg.GossipAddr, err)
			}
			p, err := strconv.Atoi(port)
			if err != nil || p == 0 {
				return fmt.Errorf("--gossip %q: a fixed port is needed to derive --rpc (gossip port + 1)", cfg.GossipAddr)
			}
			rpcAddr = net.JoinHostPort(host, strconv.Itoa(p+1))
		}
		n.filter = transport.NewFilter(nil)
		srv, err := transport.NewServer(cfg.ID, rpcAddr, n.filter, n.log, n.rpcTLS(true))
		if err != nil {
			return err
		}
		n.rpc = srv
		if n.tls != nil {
			n.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "dotkv_rpc_tls_refused_total",
				Help: "Internode RPC connections refused in the TLS handshake (no certificate of the cluster CA).",
			}, func() float64 { return float64(srv.TLSRefused()) }))
		}
		gcfg.Filter = n.filter
	}
	gcfg.RPCAddr = n.rpc.Addr()
	n.membership, err = gossip.Start(gcfg)
	if err != nil {
		return err
	}
	if n.filter != nil {
		n.filter.SetResolver(n.membership.Hosts)
		rpcHost, _, _ := net.SplitHostPort(n.rpc.Addr())
		n.client = transport.NewClient(cfg.ID, rpcHost, n.filter, func(id string) (string, bool) {
			m, ok := n.membership.Member(id)
			return m.RPC, ok && m.RPC != ""
		}, n.rpcTLS(false))
	}
	n.coord, err = replica.NewCoordinator(cfg.ID, n.store, livenessView{n.membership}, n.client, rcfg)
	if err != nil {
		return err
	}
	n.coord.Register(n.rpc)
	n.rpc.Handle(repair.MethodMergeStates, repair.HandleMergeStates(n.store, func(key []byte) uint32 {
		return n.membership.View().PartitionOf(key)
	}))

	dead := func(id string) bool { return n.membership.Liveness(id) == gossip.Dead }
	n.deliverer = repair.NewDeliverer(repair.DelivererConfig{
		Store:    n.store,
		Peer:     n.client,
		Dead:     dead,
		View:     n.membership.View,
		Self:     cfg.ID,
		Local:    n.store,
		Interval: cfg.HintInterval,
		Logger:   n.log,
	})
	n.reg.MustRegister(hintCollector{n.store, n.deliverer, func() []string { return n.membership.View().Members() }})
	n.aae = n.newEngine(n.client, n.membership.View, dead)
	n.aae.Register(n.rpc)

	// Membership changes: partitions move in by transfer, and records of
	// partitions this node no longer owns go to their owners.
	hcfg := handoff.DefaultConfig()
	hcfg.Self, hcfg.Store, hcfg.Peer = cfg.ID, n.store, n.client
	hcfg.View, hcfg.Live = n.membership.View, func(id string) bool { return !dead(id) }
	hcfg.MarkReceived = n.membership.MarkReceived
	hcfg.Confirm = func(ctx context.Context, peer string, parts []uint32) error {
		_, err := n.aae.ExchangePartitions(ctx, peer, parts)
		return err
	}
	switch {
	case cfg.TransferLimit < 0:
		hcfg.Limit = 0
	case cfg.TransferLimit > 0:
		hcfg.Limit = cfg.TransferLimit
	}
	switch {
	case cfg.TransferRate < 0:
		hcfg.Rate = 0
	case cfg.TransferRate > 0:
		hcfg.Rate = cfg.TransferRate
	}
	hcfg.Logger, hcfg.Registerer = n.log, n.reg
	if n.handoff, err = handoff.NewEngine(hcfg); err != nil {
		return fmt.Errorf("partition transfers: %w", err)
	}
	n.handoff.Register(n.rpc)
	ccfg := repair.DefaultCleanerConfig()
	ccfg.Self, ccfg.Store, ccfg.Peer, ccfg.View, ccfg.Dead, ccfg.Logger = cfg.ID, n.store, n.client, n.membership.View, dead, n.log
	if cfg.CleanupInterval > 0 {
		ccfg.Interval = cfg.CleanupInterval
	}
	if n.cleaner, err = repair.NewCleaner(ccfg); err != nil {
		return fmt.Errorf("stranded-record cleanup: %w", err)
	}
	n.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "dotkv_records_handed_off_total",
		Help: "Records of partitions this node does not own, handed to their owners and dropped here.",
	}, func() float64 { return float64(n.cleaner.Moved()) }))
	n.rpc.Serve()
	n.goEngine(n.deliverer.Run)
	n.goEngine(n.handoff.Run)
	n.goEngine(n.cleaner.Run)
	return nil
}

// newEngine returns the anti-entropy and tombstone-collection engine.
func (n *Node) newEngine(peer repair.Peer, r func() *ring.View, dead func(string) bool) *repair.Engine {
	return repair.NewEngine(repair.EngineConfig{
		Self: n.cfg.ID, Store: n.store, Trees: n.trees, Tombs: n.tombs, Peer: peer,
		View:           r,
		Dead:           dead,
		Interval:       n.cfg.AAEInterval,
		KeysPerSec:     n.cfg.AAEKeysPerSec,
		TombstoneGrace: n.cfg.TombstoneGrace,
		Logger:         n.log,
		Registerer:     n.reg,
	})
}

// goFunc runs f in a goroutine the node owns: Close cancels its context
// and waits for it.
func (n *Node) goFunc(f func(ctx context.Context)) {
	if n.stop == nil {
		n.ctx, n.stop = context.WithCancel(context.Background())
	}
	n.wg.Go(func() { f(n.ctx) })
}

// goEngine runs a background engine that moves data between nodes (hint
// delivery, anti-entropy, transfers, cleanup) like goFunc, once the node
// is ready, and stops it if the cluster refuses this node: a removed
// node's old data must not flow back into the cluster.
func (n *Node) goEngine(f func(ctx context.Context)) {
	if n.membership == nil {
		n.goFunc(f)
		return
	}
	refused, ready := n.membership.RefusedCh(), n.membership.ReadyCh()
	n.goFunc(func(ctx context.Context) {
		select {
		case <-ready:
		case <-refused:
			return
		case <-ctx.Done():
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			select {
			case <-refused:
				cancel()
			case <-ctx.Done():
			}
		})
		f(ctx)
		cancel()
		wg.Wait()
	})
}

// AAE returns the node's anti-entropy engine.
func (n *Node) AAE() *repair.Engine { return n.aae }

// hintCollector exports the hint store's and the deliverer's counts:
// pending hints for every member (0 when none, so that the series does not
// vanish once delivered) and for any other target.
type hintCollector struct {
	store     *storage.Store
	deliverer *repair.Deliverer
	members   func() []string
}

var (
	hintsPendingDesc   = prometheus.NewDesc("dotkv_hints_pending", "Hints kept for a target node, not yet delivered.", []string{"target"}, nil)
	hintOverflowsDesc  = prometheus.NewDesc("dotkv_hint_overflows_total", "Hints refused because a target's hint bound was reached.", nil, nil)
	hintsDeliveredDesc = prometheus.NewDesc("dotkv_hints_delivered_total", "Hints delivered to their target and deleted.", nil, nil)
)

func (c hintCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- hintsPendingDesc
	ch <- hintOverflowsDesc
	ch <- hintsDeliveredDesc
}

func (c hintCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.store.HintCounts()
	for _, m := range c.members() {
		if _, ok := counts[m]; !ok && m != c.store.NodeID() {
			ch <- prometheus.MustNewConstMetric(hintsPendingDesc, prometheus.GaugeValue, 0, m)
		}
	}
	for target, n := range counts {
		ch <- prometheus.MustNewConstMetric(hintsPendingDesc, prometheus.GaugeValue, float64(n), target)
	}
	ch <- prometheus.MustNewConstMetric(hintOverflowsDesc, prometheus.CounterValue, float64(c.store.HintOverflows()))
	ch <- prometheus.MustNewConstMetric(hintsDeliveredDesc, prometheus.CounterValue, float64(c.deliverer.Delivered()))
}

// limitCollector exports what the store's record limits counted.
type limitCollector struct{ store *storage.Store }

var (
	siblingWarningsDesc = prometheus.NewDesc("dotkv_sibling_warnings_total",
		"Writes and merges that left a key with at least --warn-siblings siblings.", nil, nil)
	writesRefusedDesc = prometheus.NewDesc("dotkv_writes_refused_total",
		"Client writes refused (nothing written) because the key's record would exceed a limit.", []string{"limit"}, nil)
	overLimitMergesDesc = prometheus.NewDesc("dotkv_over_limit_merges_total",
		"Merges of replica states (replication, hints, read repair, anti-entropy, transfers) that left a record beyond a limit; kept whole.", []string{"limit"}, nil)
)

func (c limitCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- siblingWarningsDesc
	ch <- writesRefusedDesc
	ch <- overLimitMergesDesc
}

func (c limitCollector) Collect(ch chan<- prometheus.Metric) {
	lc := c.store.LimitCounts()
	ch <- prometheus.MustNewConstMetric(siblingWarningsDesc, prometheus.CounterValue, float64(lc.SiblingWarnings))
	ch <- prometheus.MustNewConstMetric(writesRefusedDesc, prometheus.CounterValue, float64(lc.RefusedSiblings), "max_siblings")
	ch <- prometheus.MustNewConstMetric(writesRefusedDesc, prometheus.CounterValue, float64(lc.RefusedBytes), "max_record")
	ch <- prometheus.MustNewConstMetric(overLimitMergesDesc, prometheus.CounterValue, float64(lc.OverSiblings), "max_siblings")
	ch <- prometheus.MustNewConstMetric(overLimitMergesDesc, prometheus.CounterValue, float64(lc.OverBytes), "max_record")
}

// livenessView adapts gossip membership to the coordinator's Cluster.
type livenessView struct{ m *gossip.Membership }

func (v livenessView) View() *ring.View    { return v.m.View() }
func (v livenessView) Dead(id string) bool { return v.m.Liveness(id) == gossip.Dead }
func (v livenessView) Ready() bool         { return v.m.Ready() }
func (v livenessView) Suspect(id string) bool {
	return v.m.Liveness(id) == gossip.Suspect
}

// Left returns a channel closed once the node has left its cluster (a
// graceful leave completed); nil on a single node.
func (n *Node) Left() <-chan struct{} {
	if n.membership == nil {
		return nil
	}
	return n.membership.Left()
}

// HTTPAddr returns the client API's bound address.
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// advertisedHTTP returns the client API address the node gives the
// cluster (Config.AdvertiseHTTP).
func (n *Node) advertisedHTTP() string {
	if n.cfg.AdvertiseHTTP != "" {
		return n.cfg.AdvertiseHTTP
	}
	bound := n.httpLn.Addr().String()
	host, port, err := net.SplitHostPort(bound)
	if err != nil || !unspecified(host) {
		return bound
	}
	if gossipHost, _, err := net.SplitHostPort(n.cfg.GossipAddr); err == nil && !unspecified(gossipHost) {
		return net.JoinHostPort(gossipHost, port)
	}
	return bound
}

// unspecified reports whether host names no one address: empty, 0.0.0.0
// or ::.
func unspecified(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// GossipAddr returns the bound gossip address ("" on a single node).
func (n *Node) GossipAddr() string {
	if n.membership == nil {
		return ""
	}
	return n.membership.GossipAddr()
}

// RPCAddr returns the bound RPC address ("" on a single node).
func (n *Node) RPCAddr() string {
	if n.rpc == nil {
		return ""
	}
	return n.rpc.Addr()
}

// Store returns the node's store (tests inspect it).
func (n *Node) Store() *storage.Store { return n.store }

// Filter returns the node's fault filter (nil on a single node or an
// injected network).
func (n *Node) Filter() *transport.Filter { return n.filter }

// Membership returns the node's gossip membership (nil on a single node).
func (n *Node) Membership() *gossip.Membership { return n.membership }

// Wait blocks until the HTTP server fails, the cluster refuses this node
// (it was removed and came back with its old data), or ctx is done.
func (n *Node) Wait(ctx context.Context) error {
	var refused <-chan struct{}
	if n.membership != nil {
		refused = n.membership.RefusedCh()
	}
	select {
	case err := <-n.httpDone:
		n.httpDone <- err
		return fmt.Errorf("http server: %w", err)
	case <-refused:
		return n.membership.Refused()
	case <-ctx.Done():
		return nil
	}
}

// Close stops the node cleanly, outside in, so that no request reaches a
// part that has stopped (docs/design.md §5.9):
//
//  1. HTTP: stop accepting client requests; those in flight finish.
//  2. The coordinator stops accepting work — peers' RPCs on the request
//     path are answered at once with a refusal that says nothing was
//     applied (a forwarded write goes to the next primary) — and drains
//     the requests in flight, local and forwarded, and the replication
//     and read repair they started (up to drainGrace, then what is left
//     is cancelled and becomes hints).
//  3. RPC: the server stops; the other handlers in flight (hint delivery,
//     anti-entropy, transfers) finish.
//  4. The background engines stop, then gossip leaves, then the store
//     syncs and closes.
//
// No acknowledged write is lost, and nothing touches the store once it is
// closed.
func (n *Node) Close() error {
	if n.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.http.Shutdown(ctx); err != nil {
			n.log.Warn("http shutdown", "err", err)
		}
		if err := <-n.httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Warn("http server", "err", err)
		}
		n.http = nil
	}
	n.closeAdmin()
	return n.closeParts()
}

// drainGrace bounds how long Close waits for the requests in flight and
// for the replication and read repair they started.
const drainGrace = 5 * time.Second

// closeParts stops what Start started, in Close's order; after a failed
// Start, the parts that were started.
func (n *Node) closeParts() error {
	var errs []error
	if n.httpLn != nil && n.http == nil {
		_ = n.httpLn.Close()
	}
	n.closeAdmin()
	if n.coord != nil {
		ctx, cancel := context.WithTimeout(context.Background(), drainGrace)
		n.coord.Shutdown(ctx)
		cancel()
	}
	if n.rpc != nil {
		// Stops reading calls and waits for the handlers in flight; peers'
		// calls fail as not delivered from here on.
		errs = append(errs, n.rpc.Close())
	}
	if n.stop != nil {
		n.stop()
		n.wg.Wait()
	}
	if n.membership != nil {
		errs = append(errs, n.membership.Close())
	}
	if n.client != nil {
		n.client.Close()
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}

// Transfers lists this node's partition transfers (nil on a single node).
func (n *Node) Transfers() []handoff.Transfer {
	if n.handoff == nil {
		return nil
	}
	return n.handoff.Transfers()
}
