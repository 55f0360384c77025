package client

import (
	"strconv"
	"time"
)

// Level is a consistency level of a request: how many replicas must
// answer (r, w) or how many of them must be primaries (pr, pw). One,
// Quorum, All, or Replicas(k). The node checks it: an invalid level is a
// BadRequestError.
type Level string

// The named levels. Quorum is ⌊N/2⌋+1 of the key's N replicas.
const (
	One    Level = "one"
	Quorum Level = "quorum"
	All    Level = "all"
)

// Replicas returns the level of k replicas (1..N; a number above the
// cluster's members is capped by the node).
func Replicas(k int) Level { return Level(strconv.Itoa(k)) }

// Option adjusts one request.
type Option func(*options)

// options are a request's settings.
type options struct {
	vctx        string
	contentType string
	r, pr       Level
	w, pw       Level
	timeout     time.Duration
	idempotent  bool
	syncRepair  bool
	via         string
}

// Context sends the context token of a read with a write or delete (Put,
// Delete): the write then replaces the siblings that read returned.
// Without it a Put is blind (it adds a sibling) and a Delete deletes what
// a read at the default level sees. Get ignores it.
func Context(token string) Option { return func(o *options) { o.vctx = token } }

// ContentType sets the value's content type (Put; default: the node's,
// application/octet-stream).
func ContentType(ct string) Option { return func(o *options) { o.contentType = ct } }

// R sets the read level of a Get (default: the node's, quorum).
func R(l Level) Option { return func(o *options) { o.r = l } }

// PR sets how many primaries must answer a Get (default: none).
func PR(l Level) Option { return func(o *options) { o.pr = l } }

// W sets the write level of a Put or Delete (default: the node's,
// quorum).
func W(l Level) Option { return func(o *options) { o.w = l } }

// PW sets how many primaries must acknowledge a Put or Delete (default:
// none).
func PW(l Level) Option { return func(o *options) { o.pw = l } }

// Timeout sets the request's timeout on the node (at most 60 s; rounded up
// to milliseconds), overriding Config.Timeout. The client waits for each
// node's answer up to the timeout plus Config.Grace.
func Timeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// Idempotent lets the client retry a Put or Delete on the next endpoint
// when its outcome on one is unknown (a timeout, a lost connection).
// Without it such a request is never sent twice, since dotkv writes are
// not idempotent: the same blind write sent twice makes two siblings.
// Give it for a write whose repetition does no harm to the application.
// Reads are always retried.
func Idempotent() Option { return func(o *options) { o.idempotent = true } }

// SyncRepair makes a Get repair stale replicas before it answers
// (repair=sync) instead of in the background.
func SyncRepair() Option { return func(o *options) { o.syncRepair = true } }

// Via sends the request to endpoint alone (a base URL, which need not be
// one of the client's endpoints), with no failover: for requests about a
// node, such as Status, or to read through a given node.
func Via(endpoint string) Option { return func(o *options) { o.via = endpoint } }
