package replica

import (
	"errors"
	"fmt"

	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/versioning"
)

// RPC methods between replicas.
const (
	methodRead      = "read"      // epoch, partition, key, as-fallback flag → state
	methodReplicate = "replicate" // epoch, write owners, partition, key, state → ack (the replica syncs it in)
	methodPut       = "put"       // a client write forwarded to a primary to coordinate
	methodHint      = "hint"      // epoch, target, partition, key, state → kept as a hint for target
)

// Result codes of a forwarded put.
const (
	putOK byte = iota
	putUnavailable
	putTimeout
	putNotPrimary
	putFailed
	putBadContext
	putTooManySiblings // siblings held, siblings the write would leave, bound
	putTooLarge        // siblings held, record bytes the write would leave, bound
)

var errWire = wire.ErrMalformed

// appendState appends st's encoding as a length-prefixed field.
func appendState(w wire.Writer, st versioning.State) (wire.Writer, error) {
	enc, err := st.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	return w.Bytes(enc), nil
}

// maxOwners bounds the write owners a copy may list: N plus the nodes
// receiving the partition, far below it.
const maxOwners = 64

// appendOwners appends a list of node IDs (a copy's write owners).
func appendOwners(w wire.Writer, ids []string) wire.Writer {
	w = w.Uvarint(uint64(len(ids)))
	for _, id := range ids {
		w = w.String(id)
	}
	return w
}

// readOwners reads a list written by appendOwners.
func readOwners(r *wire.Reader) ([]string, error) {
	n := r.Count(1)
	if n > maxOwners {
		return nil, fmt.Errorf("%w: %d owners", errWire, n)
	}
	ids := make([]string, 0, n)
	for range n {
		ids = append(ids, r.String())
	}
	return ids, nil
}

// readState reads a field written by appendState; it must be the
// message's last field.
func readState(r *wire.Reader) (versioning.State, error) {
	enc := r.Bytes()
	if err := r.Done(); err != nil {
		return versioning.State{}, err
	}
	st, err := versioning.DecodeState(enc)
	if err != nil {
		return versioning.State{}, fmt.Errorf("%w: %w", errWire, err)
	}
	return st, nil
}

// putRequest is a client write forwarded to a primary.
type putRequest struct {
	key   []byte
	vctx  versioning.VersionVector
	sib   versioning.Sibling
	w, pw Level
}

func (p putRequest) encode() []byte {
	var flags byte
	if p.sib.Deleted {
		flags = 1
	}
	return wire.Writer(nil).Bytes(p.key).String(versioning.EncodeContext(p.vctx)).Byte(flags).
		String(p.sib.ContentType).Bytes(p.sib.Value).Uvarint(uint64(p.sib.Modified)).
		String(p.w.String()).String(p.pw.String())
}

func decodePut(data []byte, maxN int) (putRequest, error) {
	r := wire.NewReader(data)
	var p putRequest
	p.key = r.Bytes()
	token := r.String()
	flags := r.Byte()
	p.sib.ContentType = r.String()
	p.sib.Value = r.Bytes()
	p.sib.Modified = int64(r.Uvarint())
	w, pw := r.String(), r.String()
	if err := r.Done(); err != nil {
		return p, err
	}
	p.sib.Deleted = flags&1 != 0
	var err error
	if p.vctx, err = versioning.DecodeContext(token); err != nil {
		return p, err
	}
	if p.w, err = ParseLevel(w, maxN); err != nil {
		return p, err
	}
	if p.pw, err = ParseLevel(pw, maxN); err != nil {
		return p, err
	}
	return p, nil
}

// encodePutResult encodes the coordinator's answer to a forwarded put.
func encodePutResult(vctx versioning.VersionVector, err error) []byte {
	var ua *UnavailableError
	var le *LimitError
	w := wire.Writer(nil)
	switch {
	case err == nil:
		return w.Byte(putOK).String(versioning.EncodeContext(vctx))
	case errors.As(err, &le):
		code := putTooManySiblings
		if errors.Is(le.Err, ErrRecordTooLarge) {
			code = putTooLarge
		}
		return w.Byte(code).Uvarint(uint64(le.Siblings)).Uvarint(uint64(le.Would)).Uvarint(uint64(le.Max))
	case errors.As(err, &ua):
		written := byte(0)
		if ua.Written {
			written = 1
		}
		return w.Byte(putUnavailable).String(ua.Op).String(ua.Kind).Uvarint(uint64(ua.Acks)).Uvarint(uint64(ua.Required)).Byte(written)
	case errors.Is(err, errNotPrimary):
		return w.Byte(putNotPrimary)
	case errors.Is(err, versioning.ErrUnissuedDot), errors.Is(err, versioning.ErrEncodingLimit), errors.Is(err, ErrBadContext):
		return w.Byte(putBadContext).String(err.Error())
	case errors.Is(err, errTimeout):
		return w.Byte(putTimeout)
	}
	return w.Byte(putFailed).String(err.Error())
}

func decodePutResult(data []byte) (versioning.VersionVector, error) {
	r := wire.NewReader(data)
	switch code := r.Byte(); code {
	case putOK:
		token := r.String()
		if err := r.Done(); err != nil {
			return nil, err
		}
		return versioning.DecodeContext(token)
	case putUnavailable:
		ua := &UnavailableError{Op: r.String(), Kind: r.String(), Acks: int(r.Uvarint()), Required: int(r.Uvarint())}
		if r.Len() > 0 { // absent from nodes of an older dotkv: written (outcome unknown)
			ua.Written = r.Byte() != 0
		} else {
			ua.Written = true
		}
		if err := r.Done(); err != nil {
			return nil, err
		}
		return nil, ua
	case putNotPrimary:
		return nil, errNotPrimary
	case putTooManySiblings, putTooLarge:
		le := &LimitError{Err: ErrTooManySiblings, Siblings: int(r.Uvarint()), Would: int64(r.Uvarint()), Max: int64(r.Uvarint())}
		if err := r.Done(); err != nil {
			return nil, err
		}
		if code == putTooLarge {
			le.Err = ErrRecordTooLarge
		}
		return nil, le
	case putTimeout:
		return nil, fmt.Errorf("forwarded write: %w", errTimeout)
	case putBadContext:
		return nil, fmt.Errorf("forwarded write: %s: %w", r.String(), ErrBadContext)
	case putFailed:
		return nil, fmt.Errorf("forwarded write failed: %s", r.String())
	default:
		return nil, fmt.Errorf("%w: put result code %d", errWire, code)
	}
}
