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
package api
