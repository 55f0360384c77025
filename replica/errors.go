package replica

import (
	"errors"
	"fmt"

	"github.com/dotkv/dotkv/storage"
)

// ErrUnavailable is wrapped by UnavailableError: the quorum could not be met.
var ErrUnavailable = errors.New("quorum not reached")

// ErrBadContext is wrapped by the error of a write refused for its
// client's context, nothing written: one that names a write its
// coordinator never issued (versioning.ErrUnissuedDot), or that would make
// the key's version vector exceed the encoding's limits
// (versioning.ErrEncodingLimit). A forwarded write carries it back.
var ErrBadContext = errors.New("the write's context was refused")

// UnavailableError says how many replicas acknowledged of how many the
// request needed. For a write it does not mean the write had no effect:
// replicas that did acknowledge keep it, and it may spread later.
type UnavailableError struct {
	Op       string // "read" or "write"
	Kind     string // "replicas" or "primaries"
	Acks     int
	Required int
}

func (e *UnavailableError) Error() string {
	msg := fmt.Sprintf("%s: %d of %d required %s answered", e.Op, e.Acks, e.Required, e.Kind)
	if e.Op == "write" {
		msg += " (outcome unknown: acknowledging replicas keep the write)"
	}
	return msg
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
