package replica

import (
	"errors"
	"fmt"

	"github.com/dotkv/dotkv/storage"
)

// ErrUnavailable is wrapped by UnavailableError: the quorum could not be met.
var ErrUnavailable = errors.New("quorum not reached")

// ErrOutcomeUnknown is wrapped by the error of a forwarded write whose
// primary may have received it but did not answer (its connection was
// lost, or it failed mid-request): the write may have been applied, and
// is never forwarded again.
var ErrOutcomeUnknown = errors.New("outcome unknown")

// ErrBadContext is wrapped by the error of a write refused for its
// client's context, nothing written: one that names a write its
// coordinator never issued (versioning.ErrUnissuedDot), or that would make
// the key's version vector exceed the encoding's limits
// (versioning.ErrEncodingLimit). A forwarded write carries it back.
var ErrBadContext = errors.New("the write's context was refused")

// UnavailableError says how many replicas acknowledged of how many the
// request needed. A write with Written false failed fast, before anything
// was written: too few of its replicas were reachable (Acks counts those).
// One with Written true was applied by its coordinator and sent to the
// replicas, too few of which acknowledged: those that did keep it, and it
// may still spread (outcome unknown).
type UnavailableError struct {
	Op       string // "read" or "write"
	Kind     string // "replicas" or "primaries"
	Acks     int
	Required int
	Written  bool
}

func (e *UnavailableError) Error() string {
	switch {
	case e.Op != "write":
		return fmt.Sprintf("%s: %d of %d required %s answered", e.Op, e.Acks, e.Required, e.Kind)
	case e.Written:
		return fmt.Sprintf("write: %d of %d required %s acknowledged (outcome unknown: the write was applied "+
			"and the replicas that have it keep it; it may still spread)", e.Acks, e.Required, e.Kind)
	}
	return fmt.Sprintf("write: %d of %d required %s reachable: nothing was written", e.Acks, e.Required, e.Kind)
}

// Unwrap makes errors.Is(err, ErrUnavailable) hold.
func (e *UnavailableError) Unwrap() error { return ErrUnavailable }

// LimitError is a client write refused because the record it would leave
// exceeds a bound of the store (storage.Limits: --max-siblings,
// --max-record); nothing was written. A forwarded write carries it back
// from the primary that refused it. errors.Is matches it with
// ErrTooManySiblings or ErrRecordTooLarge.
type LimitError = storage.LimitError

// The limits a LimitError names.
var (
	ErrTooManySiblings = storage.ErrTooManySiblings
	ErrRecordTooLarge  = storage.ErrRecordTooLarge
)
