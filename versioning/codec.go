package versioning

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
)

// Encoding format versions. Version bytes let a later dotkv read what an
// earlier one wrote; an unknown version is an error, never a guess.
const (
	stateFormatV1   = 1
	contextFormatV1 = 1
)

// Limits enforced by the decoders so that a hostile input cannot make a
// node allocate without bound.
const (
	// MaxActorLen is the longest actor ID accepted.
	MaxActorLen = 255
	// MaxActors is the most entries a version vector may hold.
	MaxActors = 4096
	// MaxCounter is the largest event counter accepted. It leaves room
	// above every accepted counter, so that a node asked to issue a dot
	// above a (possibly forged) client context never wraps around.
	MaxCounter = 1 << 62
	// MaxDots is the most extra (non-prefix) events a vector may hold.
	MaxDots = 4096
	// MaxContentTypeLen is the longest content type kept.
	MaxContentTypeLen = 255
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("versioning: malformed encoding")

// ErrEncodingLimit is wrapped by AppendBinary's errors for a state beyond
// the decoders' limits (actors, actor IDs, counters, extra dots): a state
// that could not be read back, which is therefore never stored.
var ErrEncodingLimit = errors.New("versioning: state beyond an encoding limit")

const flagDeleted = 1 << 0

// AppendBinary appends the compact encoding of s to dst:
//
//	byte   format version (1)
//	vv     context: uvarint n, then per actor: uvarint len, actor,
//	       uvarint prefix counter, uvarint number of extra dots, then
//	       each extra dot as the uvarint gap to the previous event minus 1
//	uvarint number of siblings, then per sibling:
//	  uvarint index of its actor in the context, uvarint counter,
//	  byte flags (bit 0: tombstone), varint modified (Unix ms),
//	  uvarint len + content type, uvarint len + value
func (s State) AppendBinary(dst []byte) ([]byte, error) {
	// Refuse what DecodeState would reject: a record written but not
	// readable back is lost.
	if len(s.Context) > MaxActors {
		return nil, fmt.Errorf("encode state: %d actors exceed limit %d: %w", len(s.Context), MaxActors, ErrEncodingLimit)
	}
	dots := 0
	for _, e := range s.Context {
		if len(e.Actor) > MaxActorLen {
			return nil, fmt.Errorf("encode state: actor ID of %d bytes exceeds limit %d: %w", len(e.Actor), MaxActorLen, ErrEncodingLimit)
		}
		if e.Counter > MaxCounter || (len(e.Dots) > 0 && e.Dots[len(e.Dots)-1] > MaxCounter) {
			return nil, fmt.Errorf("encode state: counter of %q exceeds limit %d: %w", e.Actor, uint64(MaxCounter), ErrEncodingLimit)
		}
		dots += len(e.Dots)
	}
	if dots > MaxDots {
		return nil, fmt.Errorf("encode state: %d extra dots exceed limit %d: %w", dots, MaxDots, ErrEncodingLimit)
	}
	if len(dst) == cap(dst) {
		// No room (MarshalBinary's nil, say): grow once, not step by step.
		// A buffer with room, being reused, is not measured against s.
		dst = slices.Grow(dst, s.encodedLenBound())
	}
	dst = append(dst, stateFormatV1)
	dst = appendVV(dst, s.Context)
	dst = binary.AppendUvarint(dst, uint64(len(s.Siblings)))
	for _, sib := range s.Siblings {
		idx, ok := s.Context.find(sib.Dot.Actor)
		if !ok || !s.Context[idx].covers(sib.Dot.Counter) {
			return nil, fmt.Errorf("encode state: sibling %s:%d not covered by its context", sib.Dot.Actor, sib.Dot.Counter)
		}
		if len(sib.ContentType) > MaxContentTypeLen {
			return nil, fmt.Errorf("encode state: content type of %d bytes exceeds limit %d", len(sib.ContentType), MaxContentTypeLen)
		}
		dst = binary.AppendUvarint(dst, uint64(idx))
		dst = binary.AppendUvarint(dst, sib.Dot.Counter)
		var flags byte
		if sib.Deleted {
			flags |= flagDeleted
		}
		dst = append(dst, flags)
		dst = binary.AppendVarint(dst, sib.Modified)
		dst = binary.AppendUvarint(dst, uint64(len(sib.ContentType)))
		dst = append(dst, sib.ContentType...)
		dst = binary.AppendUvarint(dst, uint64(len(sib.Value)))
		dst = append(dst, sib.Value...)
	}
	return dst, nil
}

// MarshalBinary returns the compact encoding of s.
func (s State) MarshalBinary() ([]byte, error) { return s.AppendBinary(nil) }

// encodedLenBound returns the length of s's encoding, or a little more: it
// takes each sibling's actor index to be as long as the largest, so that
// AppendBinary can grow its buffer once without searching the context
// twice.
func (s State) encodedLenBound() int {
	n := 1 + vvEncodedLen(s.Context) + uvarintLen(uint64(len(s.Siblings)))
	idxLen := uvarintLen(uint64(len(s.Context)))
	for _, sib := range s.Siblings {
		n += idxLen + uvarintLen(sib.Dot.Counter) + 1 + varintLen(sib.Modified) +
			uvarintLen(uint64(len(sib.ContentType))) + len(sib.ContentType) +
			uvarintLen(uint64(len(sib.Value))) + len(sib.Value)
	}
	return n
}

// DecodeState parses an encoding made by AppendBinary. The result does not
// alias data: callers pass buffers they hold only briefly (pebble's are
// valid until an iterator moves or a closer runs) and keep the state
// longer. Any input yields a valid State or an error wrapping
// ErrMalformed; it never panics.
func DecodeState(data []byte) (State, error) {
	// One copy up front: every value aliases buf, not the caller's bytes
	// (which, for pebble, are only valid until the iterator moves).
	buf := append([]byte(nil), data...)
	d := decoder{buf: buf}
	if v := d.byte(); d.err == nil && v != stateFormatV1 {
		return State{}, fmt.Errorf("%w: unknown state format %d", ErrMalformed, v)
	}
	var s State
	s.Context = d.vv()
	n := d.count(len(d.buf)) // each sibling takes at least a few bytes
	if n > 0 {
		s.Siblings = make([]Sibling, 0, n)
	}
	for k := 0; k < n && d.err == nil; k++ {
		idx := d.uvarint()
		counter := d.uvarint()
		flags := d.byte()
		modified := d.varint()
		ct := d.bytes(MaxContentTypeLen)
		val := d.bytes(len(d.buf))
		if d.err != nil {
			break
		}
		switch {
		case idx >= uint64(len(s.Context)):
			d.fail("sibling actor index %d out of range", idx)
		case counter == 0 || !s.Context[idx].covers(counter):
			d.fail("sibling counter %d not covered by context", counter)
		case flags&^flagDeleted != 0:
			d.fail("unknown sibling flags %#x", flags)
		}
		if d.err != nil {
			break
		}
		sib := Sibling{
			Dot:         Dot{Actor: s.Context[idx].Actor, Counter: counter},
			Value:       val,
			ContentType: contentType(ct),
			Deleted:     flags&flagDeleted != 0,
			Modified:    modified,
		}
		if k > 0 && s.Siblings[k-1].Dot.Compare(sib.Dot) >= 0 {
			d.fail("siblings not in strictly ascending dot order")
			break
		}
		s.Siblings = append(s.Siblings, sib)
	}
	d.end()
	if d.err != nil {
		return State{}, d.err
	}
	return s, nil
}

// contentType returns ct as a string, without allocating for the most
// common types.
func contentType(ct []byte) string {
	switch string(ct) {
	case "":
		return ""
	case "application/octet-stream":
		return "application/octet-stream"
	case "application/json":
		return "application/json"
	case "text/plain":
		return "text/plain"
	case "text/plain; charset=utf-8":
		return "text/plain; charset=utf-8"
	}
	return string(ct)
}

// EncodeContext returns the opaque, URL-safe token a client sends back as
// X-Dotkv-Context. The empty vector encodes to a valid, non-empty token.
func EncodeContext(v VersionVector) string {
	// The token of a few actors is built on the stack; only the string
	// is allocated.
	var raw [128]byte
	var tok [base64Len128]byte
	b := appendVV(append(raw[:0], contextFormatV1), v)
	return string(base64.RawURLEncoding.AppendEncode(tok[:0], b))
}

// base64Len128 is the unpadded base64 length of 128 bytes.
const base64Len128 = (128*8 + 5) / 6

// DecodeContext parses a token made by EncodeContext. The empty string is
// the empty context (a blind write). Any input yields a valid vector or an
// error wrapping ErrMalformed; it never panics.
func DecodeContext(token string) (VersionVector, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, nil
	}
	token = strings.TrimRight(token, "=")
	// Decode from a copy on the stack (unless the token is long), rather
	// than from the temporary []byte(token) that DecodeString makes.
	var src [192]byte
	raw := make([]byte, base64.RawURLEncoding.DecodedLen(len(token)))
	n, err := base64.RawURLEncoding.Decode(raw, append(src[:0], token...))
	if err != nil {
		return nil, fmt.Errorf("%w: context is not base64url: %v", ErrMalformed, err)
	}
	raw = raw[:n]
	d := decoder{buf: raw}
	if v := d.byte(); d.err == nil && v != contextFormatV1 {
		return nil, fmt.Errorf("%w: unknown context format %d", ErrMalformed, v)
	}
	vv := d.vv()
	d.end()
	if d.err != nil {
		return nil, d.err
	}
	return vv, nil
}

// vvEncodedLen returns the length of appendVV's encoding of v.
func vvEncodedLen(v VersionVector) int {
	n := uvarintLen(uint64(len(v)))
	for _, e := range v {
		n += uvarintLen(uint64(len(e.Actor))) + len(e.Actor) + uvarintLen(e.Counter) + uvarintLen(uint64(len(e.Dots)))
		prev := e.Counter
		for _, d := range e.Dots {
			n += uvarintLen(d - prev - 1)
			prev = d
		}
	}
	return n
}

// uvarintLen returns the length of binary.AppendUvarint's encoding of x.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// varintLen returns the length of binary.AppendVarint's encoding of x.
func varintLen(x int64) int {
	ux := uint64(x) << 1 // zig-zag, as binary.AppendVarint
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

func appendVV(dst []byte, v VersionVector) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	for _, e := range v {
		dst = binary.AppendUvarint(dst, uint64(len(e.Actor)))
		dst = append(dst, e.Actor...)
		dst = binary.AppendUvarint(dst, e.Counter)
		dst = binary.AppendUvarint(dst, uint64(len(e.Dots)))
		prev := e.Counter
		for _, d := range e.Dots {
			dst = binary.AppendUvarint(dst, d-prev-1) // gaps; the first dot is > Counter+1
			prev = d
		}
	}
	return dst
}

// decoder reads a byte slice and remembers the first error; later reads
// return zero values, so callers check d.err once per record.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.buf) == 0 {
		d.fail("truncated")
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// count reads a length that must not exceed limit.
func (d *decoder) count(limit int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(limit) {
		d.fail("count %d exceeds limit %d", n, limit)
		return 0
	}
	return int(n)
}

// bytes reads a length-prefixed byte string of at most limit bytes,
// aliasing the decoder's buffer.
func (d *decoder) bytes(limit int) []byte {
	n := d.count(limit)
	if d.err != nil {
		return nil
	}
	if n > len(d.buf) {
		d.fail("truncated")
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) vv() VersionVector {
	n := d.count(min(MaxActors, len(d.buf)))
	if d.err != nil || n == 0 {
		return nil
	}
	v := make(VersionVector, 0, n)
	// The actor IDs are gathered into names (on the stack unless they are
	// long) and become one string at the end, which they all share.
	var namesBuf [256]byte
	var endsBuf [16]int
	names, ends := namesBuf[:0], endsBuf[:0]
	var prevActor []byte
	totalDots := 0
	for k := 0; k < n; k++ {
		actor := d.bytes(MaxActorLen)
		counter := d.uvarint()
		nd := d.count(min(MaxDots-totalDots, len(d.buf)))
		if d.err != nil {
			return nil
		}
		totalDots += nd
		e := Entry{Counter: counter}
		if nd > 0 {
			e.Dots = make([]uint64, 0, nd)
		}
		prev := counter
		for range nd {
			gap := d.uvarint()
			if d.err != nil {
				return nil
			}
			if len(e.Dots) == 0 && gap == 0 {
				d.fail("dot %d of actor %q not normalised into its prefix", prev+1, string(actor))
				return nil
			}
			next := prev + gap + 1
			if next <= prev || next > MaxCounter {
				d.fail("dot counter above %d for actor %q", uint64(MaxCounter), string(actor))
				return nil
			}
			e.Dots = append(e.Dots, next)
			prev = next
		}
		switch {
		case len(actor) == 0:
			d.fail("empty actor")
		case counter > MaxCounter:
			d.fail("counter %d above %d for actor %q", counter, uint64(MaxCounter), string(actor))
		case counter == 0 && nd == 0:
			d.fail("empty entry for actor %q", string(actor))
		case k > 0 && bytes.Compare(prevActor, actor) >= 0:
			d.fail("actors not in strictly ascending order")
		}
		if d.err != nil {
			return nil
		}
		prevActor = actor
		names = append(names, actor...)
		ends = append(ends, len(names))
		v = append(v, e)
	}
	all, from := string(names), 0
	for k, to := range ends {
		v[k].Actor = all[from:to]
		from = to
	}
	return v
}

func (d *decoder) end() {
	if d.err == nil && len(d.buf) != 0 {
		d.fail("%d trailing bytes", len(d.buf))
	}
}
