package client

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// ErrNoEndpoints is returned for a request without Via by a Client that
// has no endpoints.
var ErrNoEndpoints = errors.New("dotkv: the client has no endpoints")

// ErrorResponse is an error answer of a node: its status and the JSON
// body that names the problem. It is returned as such for statuses no
// more specific type describes (405, the 409s of membership changes, …),
// and embedded in the specific types.
type ErrorResponse struct {
	// Method and Path are the request's ("PUT", "/kv/k%2F1").
	Method, Path string
	// Key is the key of a /kv/ request ("" for other endpoints).
	Key string
	// Endpoint is the base URL of the node that answered.
	Endpoint string
	// Status is the HTTP status; 0 when no answer came (OutcomeUnknown).
	Status int
	// Body is the node's error body; for an answer that is not JSON,
	// Body.Error holds its text and Body.Code is empty.
	Body ErrorBody
}

func (e *ErrorResponse) Error() string {
	return fmt.Sprintf("dotkv: %s: %s", e.request(), e.status())
}

// request names the request and the node it went to.
func (e *ErrorResponse) request() string {
	what := e.Path
	if e.Key != "" {
		what = strconv.Quote(e.Key)
	}
	return e.Method + " " + what + " at " + e.Endpoint
}

// status describes the answer: "409 Conflict (too_many_siblings): …".
func (e *ErrorResponse) status() string {
	s := strconv.Itoa(e.Status) + " " + http.StatusText(e.Status)
	if e.Body.Code != "" {
		s += " (" + e.Body.Code + ")"
	}
	if e.Body.Error != "" {
		s += ": " + e.Body.Error
	}
	return s
}

// Response returns e itself: every error type that embeds an
// ErrorResponse has this method (see AsResponse).
func (e *ErrorResponse) Response() *ErrorResponse { return e }

// AsResponse returns the error answer of a node that err carries, whatever
// its specific type, if a node answered with one.
func AsResponse(err error) (*ErrorResponse, bool) {
	var r interface{ Response() *ErrorResponse }
	if errors.As(err, &r) {
		if resp := r.Response(); resp != nil && resp.Status != 0 {
			return resp, true
		}
	}
	return nil, false
}

// NotFoundError is a 404 not_found of GET or DELETE /kv/{key}: the key is
// absent or deleted. Nothing was written.
type NotFoundError struct {
	ErrorResponse
	// Context is the context token of the key's tombstones ("" if it has
	// none): a write with it replaces them, as a write after a read does.
	Context string
}

// BadRequestError is a 400: an invalid key, parameter, level or timeout
// (bad_key, bad_parameter), or a context token refused (bad_context: read
// for another key, not signed by this cluster, or malformed: read the key
// again). Nothing was written.
type BadRequestError struct{ ErrorResponse }

// UnauthorizedError is a 401: the request has no valid bearer token.
// Nothing was written.
type UnauthorizedError struct{ ErrorResponse }

// ForbiddenError is a 403: the token's role does not allow the request.
// Nothing was written.
type ForbiddenError struct{ ErrorResponse }

// TooManySiblingsError is a 409 too_many_siblings: the write would leave
// the key with more siblings than the node's --max-siblings. Nothing was
// written. Read the key and write back with the read's context (Resolve)
// to replace the siblings.
type TooManySiblingsError struct {
	ErrorResponse
	// Siblings is how many the key holds; MaxSiblings the bound.
	Siblings    int
	MaxSiblings int64
}

// TooLargeError is a 413: the value is above --max-value (too_large), or
// the write would leave a record above --max-record (object_too_large).
// Nothing was written.
type TooLargeError struct {
	ErrorResponse
	// RecordBytes and MaxRecordBytes: the record's size the write would
	// have left, and the bound (object_too_large only).
	RecordBytes, MaxRecordBytes int64
}

// UnavailableError is a 503: the request's levels could not be met, Acks
// of Required replicas answered. A read read nothing. A write with code
// unavailable failed fast: too few replicas were reachable, and nothing
// was written. One with code partial_write was applied by its coordinator
// and sent to the replicas, too few of which acknowledged: those that did
// keep it, and it may spread later (outcome unknown; MaybeApplied reports
// true, as for any other code).
//
// A node that does not serve — it has not joined its cluster yet
// (not_ready), or it is stopping (shutting_down) — answers 503 too, having
// written nothing; the client then fails over to the next endpoint, and
// such answers appear only in an UnreachableError's Attempts.
type UnavailableError struct {
	ErrorResponse
	Acks, Required int
}

// OutcomeUnknownError is a request that got no definite answer: the node
// timed out (504 timeout), failed (500), or the connection was lost or the
// client gave up waiting after the request was sent. A write or delete
// with this error may have been applied, and may appear later; the client
// retries such a request on another endpoint only if it is idempotent
// (reads, and writes with Idempotent).
type OutcomeUnknownError struct {
	// ErrorResponse is the node's answer, if any (Status 0 if none).
	ErrorResponse
	// Err is the transport error when no answer came.
	Err error
}

func (e *OutcomeUnknownError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("dotkv: %s: outcome unknown: %s", e.request(), e.status())
	}
	return fmt.Sprintf("dotkv: %s: outcome unknown: %v", e.request(), e.Err)
}

// Unwrap returns the transport error, if any.
func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// RefusedError is one endpoint's refusal of a request: the node could
// not be reached (Err is the dial or TLS error) or answered that it does
// not serve (Err is an *UnavailableError, not_ready or shutting_down).
// The request was not processed there.
type RefusedError struct {
	Endpoint string
	Err      error
}

func (e *RefusedError) Error() string { return e.Endpoint + ": " + e.Err.Error() }

// Unwrap returns the cause of the refusal.
func (e *RefusedError) Unwrap() error { return e.Err }

// UnreachableError says that every endpoint tried refused the request
// (Attempts, in order). Nothing was written.
type UnreachableError struct {
	Method string
	// Key is the key of a /kv/ request, else the path.
	Key      string
	Attempts []*RefusedError
}

func (e *UnreachableError) Error() string {
	parts := make([]string, len(e.Attempts))
	for i, a := range e.Attempts {
		parts[i] = a.Error()
	}
	return fmt.Sprintf("dotkv: %s %q: no endpoint took the request (nothing written): %s",
		e.Method, e.Key, strings.Join(parts, "; "))
}

// Unwrap returns the refusals.
func (e *UnreachableError) Unwrap() []error {
	out := make([]error, len(e.Attempts))
	for i, a := range e.Attempts {
		out[i] = a
	}
	return out
}

// Endpoint returns the endpoint tried last ("" if none was).
func (e *UnreachableError) Endpoint() string {
	if len(e.Attempts) == 0 {
		return ""
	}
	return e.Attempts[len(e.Attempts)-1].Endpoint
}

// MaybeApplied reports whether a failed write or delete may have been
// applied (and may appear later). It is false only when err says for
// certain that nothing was written: NotFoundError, BadRequestError,
// UnauthorizedError, ForbiddenError, TooManySiblingsError, TooLargeError,
// UnreachableError, and an UnavailableError with code unavailable (or of
// a read). It is true for OutcomeUnknownError, an UnavailableError of a
// write with code partial_write (or any other), any other error (a
// canceled context, say: the request may have been sent), and nil (the
// write was applied).
func MaybeApplied(err error) bool {
	if err == nil {
		return true
	}
	var (
		unreachable *UnreachableError
		unknown     *OutcomeUnknownError
		unavailable *UnavailableError
	)
	switch {
	case errors.As(err, &unreachable):
		return false
	case errors.As(err, &unknown):
		return true
	case errors.As(err, &unavailable):
		switch unavailable.Body.Code {
		case CodeUnavailable, CodeNotReady, CodeShuttingDown:
			return false
		}
		return unavailable.Method != http.MethodGet
	case errors.As(err, new(*NotFoundError)), errors.As(err, new(*BadRequestError)),
		errors.As(err, new(*UnauthorizedError)), errors.As(err, new(*ForbiddenError)),
		errors.As(err, new(*TooManySiblingsError)), errors.As(err, new(*TooLargeError)):
		return false
	}
	return true
}

// errorFor returns the error of an answer that is not a success.
func errorFor(r ErrorResponse) error {
	intv := func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	}
	int64v := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	switch r.Status {
	case http.StatusBadRequest:
		return &BadRequestError{r}
	case http.StatusUnauthorized:
		return &UnauthorizedError{r}
	case http.StatusForbidden:
		return &ForbiddenError{r}
	case http.StatusNotFound:
		if r.Key == "" {
			return &r // an unknown endpoint or node: not a key not found
		}
		return &NotFoundError{ErrorResponse: r, Context: r.Body.Context}
	case http.StatusConflict:
		if r.Body.Code == CodeTooManySiblings {
			return &TooManySiblingsError{ErrorResponse: r, Siblings: intv(r.Body.Siblings), MaxSiblings: int64v(r.Body.MaxSiblings)}
		}
	case http.StatusRequestEntityTooLarge:
		return &TooLargeError{ErrorResponse: r, RecordBytes: int64v(r.Body.RecordBytes), MaxRecordBytes: int64v(r.Body.MaxRecordBytes)}
	case http.StatusServiceUnavailable:
		return &UnavailableError{ErrorResponse: r, Acks: intv(r.Body.Acks), Required: intv(r.Body.Required)}
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
		return &OutcomeUnknownError{ErrorResponse: r}
	}
	return &r
}
