// Package api serves dotkv's client HTTP API and its admin and
// observability endpoints (docs/design.md §10):
//
//	PUT    /kv/{key}   body = value; X-Dotkv-Context optional; w, pw, timeout
//	GET    /kv/{key}   r, pr, timeout, repair; 200 one value, 300
//	                   multipart/mixed siblings, JSON with Accept:
//	                   application/json, 404
//	DELETE /kv/{key}   w, pw, timeout; X-Dotkv-Context optional
//	GET    /healthz, /metrics, /debug/replica/{key}, /debug/pprof/
//	GET    /cluster/status, /cluster/preflist/{key}, /admin/aae
//	POST/GET/DELETE /admin/fault (with --fault-injection)
//
// Errors are JSON {"error": "...", "code": "..."} with the status that
// names the problem. Bad input never reaches storage.
//
// # Access control
//
// With Config.Auth set (--auth-token-file, package auth), a request is
// checked before it is routed, against the token of its
// "Authorization: Bearer <token>" header (the scheme in any case):
//
//	GET /healthz                                   open
//	GET /metrics                                   open; any role with Config.MetricsAuth
//	GET, HEAD /kv/, /cluster/status,
//	          /cluster/preflist/                   read
//	PUT, POST, DELETE /kv/                         write
//	/admin/, /debug/, /cluster/leave,
//	/cluster/remove/                               admin
//	anything else                                  any role (then 404 or 405)
//
// A request that needs a token and has no valid one is answered 401
// unauthorized with WWW-Authenticate: Bearer realm="dotkv", whatever its
// path, so that a caller without a token learns nothing; one with a valid
// token without the role is answered 403 forbidden, naming the role
// needed. Refusals are counted
// in dotkv_http_auth_refused_total{reason}. Tokens are never logged.
//
// # Admin address
//
// With Config.SeparateAdmin (--admin-http), the handler answers 404 for
// /admin/ and /debug/, and Server.AdminHandler, served on its own
// listener, serves them alone (under the same access control).
package api
