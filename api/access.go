package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dotkv/dotkv/auth"
)

// Authorizer tells the role of a bearer token (*auth.File, *auth.Tokens).
// Role reports false for a token it does not know.
type Authorizer interface {
	Role(token string) (auth.Role, bool)
}

// authChallenge is the WWW-Authenticate header of a 401.
const authChallenge = `Bearer realm="dotkv"`

// Reasons a request is refused (the reason label of
// dotkv_http_auth_refused_total).
const (
	refusedMissing   = "missing"   // no Authorization header
	refusedMalformed = "malformed" // not one "Bearer <token>"
	refusedInvalid   = "invalid"   // a token the Authorizer does not know
	refusedForbidden = "forbidden" // a known token without the role needed
)

// Route names: the route label of the request metrics.
const (
	routeKV              = "kv"
	routeDebugReplica    = "debug_replica"
	routeClusterPreflist = "cluster_preflist"
	routeClusterStatus   = "cluster_status"
	routeClusterLeave    = "cluster_leave"
	routeClusterRemove   = "cluster_remove"
	routeAdminAAE        = "admin_aae"
	routeAdminFault      = "admin_fault"
	routeAdminBackup     = "admin_backup"
	routePprof           = "pprof"
	routeHealthz         = "healthz"
	routeMetrics         = "metrics"
	routeOther           = "other"
)

// scope is which endpoints a handler serves.
type scope uint8

const (
	scopeAll    scope = iota // the main handler, with /admin/ and /debug/
	scopeClient              // the main handler with Config.SeparateAdmin
	scopeAdmin               // AdminHandler: /admin/ and /debug/ alone
)

// endpoint is where a request goes and what it needs.
type endpoint struct {
	route string
	// rest is the escaped path after the route's prefix (the key of /kv/).
	rest string
	// need is the role the request needs; the zero Role: none, it is open
	// to anyone.
	need auth.Role
	// admin marks /admin/ and /debug/: served by AdminHandler, and by the
	// main handler unless Config.SeparateAdmin.
	admin bool
}

// classify returns the endpoint of a request with method to the escaped
// path. Every request is classified, with or without access control, so
// that what a route checks is what it serves.
//
// With access control, /healthz is open, and /metrics unless
// Config.MetricsAuth; reads (GET, HEAD) of /kv/, /cluster/status and
// /cluster/preflist/ need read; writes (PUT, POST, DELETE) of /kv/ need
// write; /admin/, /debug/, /cluster/leave and /cluster/remove/ need admin;
// anything else needs a valid token of any role (so that a caller without
// one learns nothing, not even which paths exist).
func (s *Server) classify(method, path string) endpoint {
	switch {
	case hasPrefix(path, "/kv/"):
		need := auth.Read
		switch method {
		case http.MethodPut, http.MethodPost, http.MethodDelete:
			need = auth.Write
		}
		return endpoint{route: routeKV, rest: path[len("/kv/"):], need: need}
	case hasPrefix(path, "/cluster/preflist/"):
		return endpoint{route: routeClusterPreflist, rest: path[len("/cluster/preflist/"):], need: auth.Read}
	case path == "/cluster/status":
		return endpoint{route: routeClusterStatus, need: auth.Read}
	case path == "/cluster/leave":
		return endpoint{route: routeClusterLeave, need: auth.Admin}
	case hasPrefix(path, "/cluster/remove/"):
		return endpoint{route: routeClusterRemove, rest: path[len("/cluster/remove/"):], need: auth.Admin}
	case hasPrefix(path, "/debug/replica/"):
		return endpoint{route: routeDebugReplica, rest: path[len("/debug/replica/"):], need: auth.Admin, admin: true}
	case hasPrefix(path, "/debug/pprof/"):
		return endpoint{route: routePprof, need: auth.Admin, admin: true}
	case path == "/admin/aae":
		return endpoint{route: routeAdminAAE, need: auth.Admin, admin: true}
	case path == "/admin/fault":
		return endpoint{route: routeAdminFault, need: auth.Admin, admin: true}
	case path == "/admin/backup":
		return endpoint{route: routeAdminBackup, need: auth.Admin, admin: true}
	case hasPrefix(path, "/admin/") || hasPrefix(path, "/debug/"):
		return endpoint{route: routeOther, need: auth.Admin, admin: true}
	case path == "/healthz":
		return endpoint{route: routeHealthz}
	case path == "/metrics":
		if s.cfg.MetricsAuth {
			return endpoint{route: routeMetrics, need: auth.Read}
		}
		return endpoint{route: routeMetrics}
	}
	return endpoint{route: routeOther, need: auth.Read}
}

// inScope returns ep as a handler of scope sc serves it: an endpoint of
// the other handler is an unknown one (a valid token of any role, then
// 404), with the reason why it is not found.
func inScope(ep endpoint, sc scope) (endpoint, string) {
	switch {
	case sc == scopeClient && ep.admin:
		return endpoint{route: routeOther, need: auth.Read}, " (/admin/ and /debug/ are served on this node's admin address, --admin-http)"
	case sc == scopeAdmin && !ep.admin:
		return endpoint{route: routeOther, need: auth.Read}, " (the admin address serves /admin/ and /debug/ alone)"
	}
	return ep, ""
}

// authorize checks that r may reach ep. If not, it answers 401 (no valid
// bearer token) or 403 (a token without the role ep needs) and reports
// false. Without an Authorizer every request may.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, ep endpoint) bool {
	if s.cfg.Auth == nil || ep.need == 0 {
		return true
	}
	token, reason := bearerToken(r.Header)
	var role auth.Role
	if reason == "" {
		var ok bool
		if role, ok = s.cfg.Auth.Role(token); !ok {
			reason = refusedInvalid
		} else if !role.Allows(ep.need) {
			reason = refusedForbidden
		}
	}
	if reason == "" {
		return true
	}
	s.refused.WithLabelValues(reason).Inc()
	// Neither the token nor the Authorization header is ever logged.
	s.log.Debug("request refused", "reason", reason, "method", r.Method, "route", ep.route, "remote", r.RemoteAddr)
	switch reason {
	case refusedForbidden:
		writeError(w, http.StatusForbidden, codeForbidden, "forbidden: "+r.Method+" "+r.URL.Path+
			" needs a token with the "+ep.need.String()+" role (this one has "+role.String()+")")
	case refusedMissing:
		w.Header().Set("WWW-Authenticate", authChallenge)
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "this node requires a bearer token: send Authorization: Bearer <token>")
	case refusedMalformed:
		w.Header().Set("WWW-Authenticate", authChallenge)
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "malformed Authorization header: want one \"Authorization: Bearer <token>\"")
	default:
		w.Header().Set("WWW-Authenticate", authChallenge)
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "invalid bearer token")
	}
	return false
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header (the scheme in any case, one or more spaces before the token),
// or why there is none: refusedMissing or refusedMalformed.
func bearerToken(h http.Header) (token, reason string) {
	vals := h.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", refusedMissing
	case len(vals) > 1:
		return "", refusedMalformed
	}
	scheme, rest, ok := strings.Cut(vals[0], " ")
	token = strings.TrimLeft(rest, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", refusedMalformed
	}
	return token, ""
}

// newRefusedCounter returns dotkv_http_auth_refused_total, registered on
// reg, with every reason at 0 if access control is on.
func newRefusedCounter(reg prometheus.Registerer, on bool) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dotkv_http_auth_refused_total",
		Help: "Requests refused by access control (--auth-token-file), by reason: missing (no Authorization header), " +
			"malformed, invalid (an unknown token), forbidden (a token without the role needed).",
	}, []string{"reason"})
	if on {
		for _, reason := range []string{refusedMissing, refusedMalformed, refusedInvalid, refusedForbidden} {
			c.WithLabelValues(reason)
		}
	}
	reg.MustRegister(c)
	return c
}

// AdminHandler returns the handler of this node's admin address
// (--admin-http): /admin/ and /debug/ (/debug/replica/ and Go's profiler
// /debug/pprof/) alone, under the same access control as the main handler
// (they need an admin token when Config.Auth is set); any other path is
// 404. Serve it on its own listener with NewHTTPServer, and set
// Config.SeparateAdmin so that the main handler stops serving them.
func (s *Server) AdminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, scopeAdmin)
	})
}

// serve routes a request in scope sc and records its metrics.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, sc scope) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	route := s.route(rec, r, sc)
	s.metrics.observe(route, r.Method, rec.status, time.Since(start))
}
