package api

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/versioning"
)

// Backend is what the API needs from the request path (replica.Local on a
// single node, the quorum coordinator in a cluster).
type Backend interface {
	// Get returns the merged state of key, read per o.
	Get(ctx context.Context, key []byte, o replica.ReadOptions) (versioning.State, error)
	// Put writes sib with the client's context and returns the context of
	// the new version.
	Put(ctx context.Context, key []byte, vctx versioning.VersionVector, sib versioning.Sibling, o replica.WriteOptions) (versioning.VersionVector, error)
	// LocalState returns this node's own copy of key, without quorum.
	LocalState(key []byte) (versioning.State, bool, error)
	// N is the replication factor: the largest numeric level accepted.
	N() int
	// Ready reports whether the node serves client requests (it has
	// joined its cluster).
	Ready() bool
}

// Config configures the API handler.
type Config struct {
	// NodeID names this node in /healthz.
	NodeID string
	// Version is the version of the running binary, reported by /healthz
	// (which leaves it out if empty).
	Version string
	// MaxValue is the largest accepted value in bytes (default 1 MiB).
	MaxValue int64
	// DefaultTimeout bounds each request unless it sets timeout= (default 1 s).
	DefaultTimeout time.Duration
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
	// Registry receives the API's metrics; nil makes a new one.
	Registry *prometheus.Registry
	// Cluster serves /cluster/status and /cluster/preflist.
	Cluster ClusterView
	// Faults, if not nil, enables /admin/fault (--fault-injection).
	Faults FaultFilter
	// Hints, if not nil, reports pending hints in /cluster/status.
	Hints HintCounter
	// AAE, if not nil, serves /admin/aae.
	AAE AAEView
	// Transfers, if not nil, lists this node's partition transfers in
	// /cluster/status.
	Transfers TransferLister
	// ContextKeys returns the keys that sign and verify context tokens
	// under the cluster secret (docs/design.md §4.8), or nil while this
	// node does not know the secret yet: /kv/ requests then answer 503
	// not_ready. Nil means a random secret of this Server alone (tests):
	// its tokens work on no other server and not after a restart.
	ContextKeys func() *versioning.ContextKeys
	// Auth, if not nil, turns access control on (--auth-token-file):
	// every request but GET /healthz (and /metrics unless MetricsAuth)
	// needs an "Authorization: Bearer <token>" header whose token Auth
	// knows, and a role that allows it (see auth.Role): read for reads of
	// /kv/, /cluster/status and /cluster/preflist/; write for PUT and
	// DELETE of /kv/; admin for /admin/, /debug/, /cluster/leave and
	// /cluster/remove/. Without a valid token the answer is 401
	// unauthorized (with WWW-Authenticate), with one lacking the role 403
	// forbidden. Nil: no access control. Set it only to a non-nil value
	// (a nil *auth.File in it refuses every token).
	Auth Authorizer
	// MetricsAuth makes /metrics need a valid token of any role when Auth
	// is set; otherwise /metrics is open.
	MetricsAuth bool
	// Backup, if not nil, serves GET /admin/backup: a consistent backup of
	// the node's store, as a tar archive.
	Backup Backuper
	// SeparateAdmin makes the handler answer 404 for /admin/ and /debug/,
	// which AdminHandler serves on a separate address (--admin-http).
	SeparateAdmin bool
}

// Limits of the client API.
const (
	// MaxKeyLen is the longest key in bytes.
	MaxKeyLen = 1024
	// DefaultMaxValue is the default largest value in bytes.
	DefaultMaxValue = 1 << 20
	// MaxTimeout is the longest per-request timeout accepted.
	MaxTimeout = 60 * time.Second
)

// Server is the HTTP handler of one node.
type Server struct {
	backend Backend
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *httpMetrics
	refused *prometheus.CounterVec // dotkv_http_auth_refused_total
	mux     *http.ServeMux
}

// New returns the API handler over backend.
func New(backend Backend, cfg Config) *Server {
	if cfg.MaxValue <= 0 {
		cfg.MaxValue = DefaultMaxValue
	}
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = time.Second
	}
	if cfg.Cluster == nil {
		panic("api.New: Config.Cluster is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ContextKeys == nil {
		secret := make([]byte, 32)
		_, _ = rand.Read(secret) // never fails
		keys, err := versioning.NewContextKeys(secret)
		if err != nil {
			panic(err) // a 32-byte secret is valid
		}
		cfg.ContextKeys = func() *versioning.ContextKeys { return keys }
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s := &Server{
		backend: backend,
		cfg:     cfg,
		log:     cfg.Logger,
		reg:     cfg.Registry,
		metrics: newHTTPMetrics(cfg.Registry),
		refused: newRefusedCounter(cfg.Registry, cfg.Auth != nil),
		mux:     http.NewServeMux(),
	}
	cfg.Registry.MustRegister(ringCollector{self: cfg.NodeID, cluster: cfg.Cluster})
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	s.mux.HandleFunc("/debug/pprof/", pprof.Index)
	s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return s
}

// Registry returns the Prometheus registry /metrics serves, so that other
// parts of the node can add their collectors.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// ServeHTTP routes a request. /kv/ and /debug/replica/ are routed by hand
// rather than by ServeMux, which would clean (and redirect) keys holding
// "//", "." or "..". With Config.Auth set, a request is checked before it
// is routed (Config.Auth describes what each endpoint needs).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sc := scopeAll
	if s.cfg.SeparateAdmin {
		sc = scopeClient
	}
	s.serve(w, r, sc)
}

// route answers a request in scope sc and returns its route name.
func (s *Server) route(w http.ResponseWriter, r *http.Request, sc scope) string {
	ep, elsewhere := inScope(s.classify(r.Method, r.URL.EscapedPath()), sc)
	if !s.authorize(w, r, ep) {
		return ep.route
	}
	switch ep.route {
	case routeKV:
		s.kv(w, r, ep.rest)
	case routeDebugReplica:
		s.debugReplica(w, r, ep.rest)
	case routeClusterPreflist:
		s.clusterPreflist(w, r, ep.rest)
	case routeClusterStatus:
		if readOnly(w, r, "/cluster/status") {
			s.clusterStatus(w, r)
		}
	case routeClusterLeave:
		s.clusterLeave(w, r)
	case routeClusterRemove:
		s.clusterRemove(w, r, ep.rest)
	case routeAdminAAE:
		s.adminAAE(w, r)
	case routeAdminFault:
		s.adminFault(w, r)
	case routeAdminBackup:
		s.adminBackup(w, r)
	case routePprof:
		s.mux.ServeHTTP(w, r)
	case routeHealthz, routeMetrics:
		if readOnly(w, r, "/"+ep.route) {
			s.mux.ServeHTTP(w, r)
		}
	default:
		writeError(w, http.StatusNotFound, codeNotFound, "no such endpoint: "+r.URL.Path+elsewhere)
	}
	return ep.route
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// healthz answers 200 while this node serves everything it owns ("ok", or
// "leaving" while it hands its partitions off), and 503 while it does not
// ("joining": not ready, or still receiving its partitions) or no longer
// belongs to the cluster ("left", "removed"). Its JSON body names the
// status, the node and, if Config.Version is set, the version of its
// binary.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	status, code := "ok", http.StatusOK
	switch st := s.selfStatus(); {
	case st == gossip.StatusRemoved || st == gossip.StatusLeft:
		status, code = string(st), http.StatusServiceUnavailable
	case !s.backend.Ready() || st == gossip.StatusJoining:
		status, code = string(gossip.StatusJoining), http.StatusServiceUnavailable
	case st == gossip.StatusLeaving:
		status = string(st)
	}
	body := map[string]string{"status": status, "node": s.cfg.NodeID}
	if s.cfg.Version != "" {
		body["version"] = s.cfg.Version
	}
	writeJSON(w, code, body)
}

// selfStatus returns this node's own ring status ("" if its cluster view
// does not list it).
func (s *Server) selfStatus() gossip.Status {
	for _, m := range s.cfg.Cluster.Members() {
		if m.ID == s.cfg.NodeID {
			return m.Status
		}
	}
	return ""
}

// NewHTTPServer returns an http.Server for h with timeouts set, so that a
// slow or idle client cannot hold a connection forever.
func NewHTTPServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      MaxTimeout + 10*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// requestError maps a backend error to a response.
func (s *Server) requestError(w http.ResponseWriter, r *http.Request, op string, err error) {
	var unavail *replica.UnavailableError
	switch {
	case errors.As(err, &unavail):
		code := codeUnavailable // nothing written (or a read)
		if unavail.Op == "write" && unavail.Written {
			code = codePartialWrite
		}
		writeJSON(w, http.StatusServiceUnavailable, errorBody{
			Error: unavail.Error(), Code: code, Acks: &unavail.Acks, Required: &unavail.Required,
		})
	case errors.Is(err, replica.ErrNotReady):
		writeError(w, http.StatusServiceUnavailable, codeNotReady, err.Error())
	case errors.Is(err, versioning.ErrUnissuedDot), errors.Is(err, versioning.ErrEncodingLimit), errors.Is(err, replica.ErrBadContext):
		writeError(w, http.StatusBadRequest, codeBadContext, "X-Dotkv-Context: nothing written: "+err.Error())
	case errors.Is(err, replica.ErrOutcomeUnknown):
		writeError(w, http.StatusGatewayTimeout, codeTimeout, op+" failed: "+err.Error()+
			" (the write may have been applied and may appear later)")
	case errors.Is(err, context.DeadlineExceeded):
		msg := op + " timed out"
		if op == "write" {
			msg += " (outcome unknown: the write may have been applied and may appear later)"
		}
		writeError(w, http.StatusGatewayTimeout, codeTimeout, msg)
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
		writeError(w, 499, "canceled", op+" canceled by client")
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg := op + " failed: " + err.Error()
		if op == "write" {
			msg += " (outcome unknown)"
		}
		writeError(w, http.StatusInternalServerError, codeInternal, msg)
	}
}
