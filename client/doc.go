// Package client is the Go client of dotkv's HTTP API (docs/design.md
// §10). It imports only the standard library.
//
//	c, err := client.New(client.Config{
//		Endpoints: []string{"http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080"},
//		Timeout:   time.Second,
//	})
//	obj, err := c.Get(ctx, "cart:42")                   // every sibling, and the context
//	_, err = c.Put(ctx, "cart:42", merged, client.Context(obj.Context))
//
// # Contexts and siblings
//
// A read returns every sibling of the key (concurrent writes leave
// several, and a delete concurrent with a write a tombstone) and an
// opaque context token. A write with that token (the Context option)
// replaces exactly the siblings the read returned; one without is blind
// and adds a sibling. Resolve reads, merges the siblings with the
// caller's function, and writes back with the context. The token is good
// only for the key it was read for, on its own cluster.
//
// # Failover
//
// A Client sends each request to its endpoints one after the other,
// starting at the next one in turn, until one takes it. It moves on when a
// node refuses the request — the connection fails, or the node answers
// that it does not serve (503 not_ready while it joins, shutting_down
// while it stops) — since such a node processed nothing. It never sends a
// write twice when its outcome on a node is unknown (a 504 or 500, the
// connection lost after the request was sent), unless the caller says the
// write is idempotent (the Idempotent option): a write sent twice makes
// two siblings. Reads are retried on any failure. An endpoint that refused
// a request is tried after the others for Config.Cooldown.
//
// # Errors
//
// A node's error answers are typed, for errors.As: *NotFoundError (404,
// with the tombstones' context, for a write after a delete),
// *BadRequestError (400, among them a refused context: bad_context),
// *UnauthorizedError (401), *ForbiddenError (403),
// *TooManySiblingsError (409), *TooLargeError (413), *UnavailableError
// (503: levels not met, with Acks and Required; for a write, code
// unavailable if it failed fast, partial_write if it was applied but too
// few replicas acknowledged), and *OutcomeUnknownError (504, 500, or no
// answer after the request was sent). When every endpoint
// refused the request the error is an *UnreachableError. AsResponse
// returns the answer any of them carries (status, code, message).
//
// Nothing was written for a NotFoundError, BadRequestError,
// UnauthorizedError, ForbiddenError, TooManySiblingsError, TooLargeError,
// UnreachableError, and an UnavailableError with code unavailable. A write
// that failed with an OutcomeUnknownError or a partial_write
// UnavailableError may have been applied and may appear later.
// MaybeApplied tells the two apart.
//
// # JSON shapes
//
// The API's JSON shapes are declared once, here (ErrorBody, ReadJSON,
// ClusterStatus, Preflist, …): the server encodes them and every client
// decodes them.
package client
