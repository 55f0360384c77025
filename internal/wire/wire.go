// Package wire is the tiny binary codec of dotkv's internode messages:
// an append-only writer and a reader that remembers its first error, so
// a message is decoded field by field and checked once.
package wire

import (
	"encoding/binary"
	"errors"
)

// ErrMalformed is returned for truncated or trailing input.
var ErrMalformed = errors.New("wire: malformed message")

// Writer appends fields to a message.
type Writer []byte

// U32 appends a big-endian uint32.
func (w Writer) U32(v uint32) Writer { return binary.BigEndian.AppendUint32(w, v) }

// U64 appends a big-endian uint64.
func (w Writer) U64(v uint64) Writer { return binary.BigEndian.AppendUint64(w, v) }

// Uvarint appends an unsigned varint.
func (w Writer) Uvarint(v uint64) Writer { return binary.AppendUvarint(w, v) }

// Bytes appends a length-prefixed byte string.
func (w Writer) Bytes(v []byte) Writer { return append(w.Uvarint(uint64(len(v))), v...) }

// String appends a length-prefixed string.
func (w Writer) String(v string) Writer { return append(w.Uvarint(uint64(len(v))), v...) }

// Byte appends one byte.
func (w Writer) Byte(v byte) Writer { return append(w, v) }

// Reader reads fields; after the first error every read returns a zero
// value and Done reports the error.
type Reader struct {
	b   []byte
	err error
}

// NewReader reads msg.
func NewReader(msg []byte) *Reader { return &Reader{b: msg} }

func (r *Reader) fail() {
	if r.err == nil {
		r.err = ErrMalformed
	}
}

// U32 reads a big-endian uint32.
func (r *Reader) U32() uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.fail()
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

// U64 reads a big-endian uint64.
func (r *Reader) U64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
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

// Count reads a varint count of items that each take at least minSize
// bytes, refusing counts the rest of the message cannot hold.
func (r *Reader) Count(minSize int) int {
	n := r.Uvarint()
	if r.err == nil && n > uint64(len(r.b)/max(minSize, 1)) {
		r.fail()
		return 0
	}
	return int(n)
}

// Bytes reads a length-prefixed byte string (aliasing the message).
func (r *Reader) Bytes() []byte {
	n := r.Uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// String reads a length-prefixed string.
func (r *Reader) String() string { return string(r.Bytes()) }

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// Len returns how many bytes are left to read.
func (r *Reader) Len() int { return len(r.b) }

// Done returns the first error, or ErrMalformed if bytes are left over.
func (r *Reader) Done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	return r.err
}
