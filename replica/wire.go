package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dotkv/dotkv/versioning"
)

// RPC methods between replicas.
const (
	methodRead      = "read"      // partition, key, as-fallback flag → state
	methodReplicate = "replicate" // partition, key, state → ack (the replica syncs it in)
	methodPut       = "put"       // a client write forwarded to a primary to coordinate
	methodHint      = "hint"      // target, partition, key, state → kept as a hint for target
)

// Result codes of a forwarded put.
const (
	putOK byte = iota
	putUnavailable
	putTimeout
	putNotPrimary
	putFailed
	putBadContext
)

var errWire = errors.New("replica: malformed message")

type wbuf []byte

func (b wbuf) u32(v uint32) wbuf   { return binary.BigEndian.AppendUint32(b, v) }
func (b wbuf) uv(v uint64) wbuf    { return binary.AppendUvarint(b, v) }
func (b wbuf) bytes(v []byte) wbuf { return append(b.uv(uint64(len(v))), v...) }
func (b wbuf) str(v string) wbuf   { return append(b.uv(uint64(len(v))), v...) }
func (b wbuf) byte1(v byte) wbuf   { return append(b, v) }
func (b wbuf) state(st versioning.State) (wbuf, error) {
	enc, err := st.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	return b.bytes(enc), nil
}

type rbuf struct {
	b   []byte
	err error
}

func (r *rbuf) fail() {
	if r.err == nil {
		r.err = errWire
	}
}

func (r *rbuf) u32() uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.fail()
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *rbuf) uv() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) bytes() []byte {
	n := r.uv()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *rbuf) str() string { return string(r.bytes()) }

func (r *rbuf) byte1() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *rbuf) state() versioning.State {
	enc := r.bytes()
	if r.err != nil {
		return versioning.State{}
	}
	st, err := versioning.DecodeState(enc)
	if err != nil {
		r.err = fmt.Errorf("%w: %w", errWire, err)
	}
	return st
}

func (r *rbuf) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	return r.err
}

// putRequest is a client write forwarded to a primary.
type putRequest struct {
	key     []byte
	vctx    versioning.VersionVector
	sib     versioning.Sibling
	w, pw   Level
	timeout time.Duration
}

func (p putRequest) encode() []byte {
	var flags byte
	if p.sib.Deleted {
		flags = 1
	}
	b := wbuf(nil).bytes(p.key).str(versioning.EncodeContext(p.vctx)).byte1(flags).
		str(p.sib.ContentType).bytes(p.sib.Value).uv(uint64(p.sib.Modified)).
		str(p.w.String()).str(p.pw.String()).uv(uint64(p.timeout / time.Millisecond))
	return b
}

func decodePut(data []byte, maxN int) (putRequest, error) {
	r := rbuf{b: data}
	var p putRequest
	p.key = r.bytes()
	token := r.str()
	flags := r.byte1()
	p.sib.ContentType = r.str()
	p.sib.Value = r.bytes()
	p.sib.Modified = int64(r.uv())
	w, pw := r.str(), r.str()
	p.timeout = time.Duration(r.uv()) * time.Millisecond
	if err := r.done(); err != nil {
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
	switch {
	case err == nil:
		return wbuf(nil).byte1(putOK).str(versioning.EncodeContext(vctx))
	case errors.As(err, &ua):
		return wbuf(nil).byte1(putUnavailable).str(ua.Op).str(ua.Kind).uv(uint64(ua.Acks)).uv(uint64(ua.Required))
	case errors.Is(err, errNotPrimary):
		return wbuf(nil).byte1(putNotPrimary)
	case errors.Is(err, versioning.ErrUnissuedDot):
		return wbuf(nil).byte1(putBadContext).str(err.Error())
	case errors.Is(err, errTimeout):
		return wbuf(nil).byte1(putTimeout)
	}
	return wbuf(nil).byte1(putFailed).str(err.Error())
}

func decodePutResult(data []byte) (versioning.VersionVector, error) {
	r := rbuf{b: data}
	switch code := r.byte1(); code {
	case putOK:
		token := r.str()
		if err := r.done(); err != nil {
			return nil, err
		}
		return versioning.DecodeContext(token)
	case putUnavailable:
		ua := &UnavailableError{Op: r.str(), Kind: r.str(), Acks: int(r.uv()), Required: int(r.uv())}
		if err := r.done(); err != nil {
			return nil, err
		}
		return nil, ua
	case putNotPrimary:
		return nil, errNotPrimary
	case putTimeout:
		return nil, fmt.Errorf("forwarded write: %w", errTimeout)
	case putBadContext:
		return nil, fmt.Errorf("forwarded write: %s: %w", r.str(), versioning.ErrUnissuedDot)
	case putFailed:
		return nil, fmt.Errorf("forwarded write failed: %s", r.str())
	default:
		return nil, fmt.Errorf("%w: put result code %d", errWire, code)
	}
}
