package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The wire format: every frame is
//
//	size   u32   bytes after this field
//	kind   u8    frameHello | frameRequest | frameReply
//	id     u64   the call's ID on its connection (0 in a hello)
//
// followed by, for a request:
//
//	deadline i64  Unix nanoseconds after which the receiver drops the call (0: none)
//	mlen     u8   method length, then the method
//	payload       the request body
//
// for a reply:
//
//	status u8     statusOK, or why the call failed (the payload is then a message)
//	payload       the reply body
//
// and for a hello (the first frame a caller sends on a new connection):
//
//	magic "DKV" and version u8, then the caller's node ID.
//
// All integers are big-endian.
const (
	frameHello byte = iota + 1
	frameRequest
	frameReply
)

// Reply statuses.
const (
	statusOK byte = iota
	statusError
	statusUnknownMethod
	statusTooLarge
	statusExpired
)

const (
	protoMagic   = "DKV"
	protoVersion = 1
	// baseHeader is size + kind + id.
	baseHeader = 4 + 1 + 8
	// maxHeader bounds a frame's header: a request's, with the longest
	// method name.
	maxHeader = baseHeader + 8 + 1 + 255
	// maxFrame bounds a frame's size field.
	maxFrame = MaxMessage + maxHeader
	// maxNodeID bounds the node ID a hello carries (node IDs are at most
	// 64 bytes).
	maxNodeID = 255
	// maxHelloFrame bounds a hello's size field: the first frame of a
	// connection is read before its caller is known, so it must be small.
	maxHelloFrame = 1 + 8 + uint32(len(protoMagic)) + 1 + maxNodeID
)

var errFrame = errors.New("transport: malformed frame")

// frame is a decoded frame; payload aliases the buffer it was read into.
type frame struct {
	kind     byte
	id       uint64
	deadline int64  // requests
	method   string // requests
	status   byte   // replies
	payload  []byte
}

// outFrame is a frame queued for writing. Its header is encoded by the
// writer, so queueing allocates nothing beyond the queue slot.
type outFrame struct {
	kind     byte
	id       uint64
	deadline int64
	method   string
	status   byte
	payload  []byte
	call     *call // the client call this request belongs to, if any
}

// appendHeader appends f's header (with the size field) to b.
func appendHeader(b []byte, f *outFrame) []byte {
	size := 1 + 8 + len(f.payload)
	switch f.kind {
	case frameRequest:
		size += 8 + 1 + len(f.method)
	case frameReply:
		size++
	}
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	b = append(b, f.kind)
	b = binary.BigEndian.AppendUint64(b, f.id)
	switch f.kind {
	case frameRequest:
		b = binary.BigEndian.AppendUint64(b, uint64(f.deadline))
		b = append(b, byte(len(f.method)))
		b = append(b, f.method...)
	case frameReply:
		b = append(b, f.status)
	}
	return b
}

// writeFrame writes f to w (buffered: the caller flushes).
func writeFrame(w *bufio.Writer, scratch []byte, f *outFrame) error {
	if _, err := w.Write(appendHeader(scratch[:0], f)); err != nil {
		return err
	}
	_, err := w.Write(f.payload)
	return err
}

// readFrame reads one frame of at most maxFrame bytes from r into a new
// buffer, which the frame's payload (and nothing else) keeps alive.
func readFrame(r *bufio.Reader) (frame, error) { return readFrameMax(r, maxFrame) }

// readFrameMax reads one frame whose size field is at most max.
func readFrameMax(r *bufio.Reader, max uint32) (frame, error) {
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return frame{}, err
	}
	size := binary.BigEndian.Uint32(sz[:])
	if size < 1+8 || size > max {
		return frame{}, fmt.Errorf("%w: size %d", errFrame, size)
	}
	buf, err := readBody(r, int(size))
	if err != nil {
		return frame{}, err
	}
	return parseFrame(buf)
}

// readChunk is the largest frame body read into a buffer of its declared
// size at once. A larger one is read into a buffer that doubles as its
// bytes arrive, so that memory follows the bytes received, not the size
// a peer declares: a 4-byte header cannot make the reader allocate more
// than readChunk.
const readChunk = 1 << 20

// readBody reads a frame body of size bytes. Like io.ReadFull, it
// returns io.EOF if no byte of it could be read and io.ErrUnexpectedEOF
// if some could.
func readBody(r io.Reader, size int) ([]byte, error) {
	if size <= readChunk {
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	buf := make([]byte, readChunk)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	for len(buf) < size {
		next := make([]byte, min(size, 2*len(buf)))
		n := copy(next, buf)
		if _, err := io.ReadFull(r, next[n:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		buf = next
	}
	return buf, nil
}

// parseFrame decodes a frame's bytes after its size field.
func parseFrame(buf []byte) (frame, error) {
	f := frame{kind: buf[0], id: binary.BigEndian.Uint64(buf[1:9])}
	rest := buf[9:]
	switch f.kind {
	case frameHello:
	case frameRequest:
		if len(rest) < 9 {
			return frame{}, fmt.Errorf("%w: short request header", errFrame)
		}
		f.deadline = int64(binary.BigEndian.Uint64(rest))
		mlen := int(rest[8])
		rest = rest[9:]
		if len(rest) < mlen {
			return frame{}, fmt.Errorf("%w: method length %d", errFrame, mlen)
		}
		f.method, rest = string(rest[:mlen]), rest[mlen:]
	case frameReply:
		if len(rest) < 1 {
			return frame{}, fmt.Errorf("%w: short reply header", errFrame)
		}
		f.status, rest = rest[0], rest[1:]
	default:
		return frame{}, fmt.Errorf("%w: kind %d", errFrame, f.kind)
	}
	f.payload = rest
	return f, nil
}

// helloPayload is a hello's body: magic, version, the caller's node ID.
func helloPayload(self string) []byte {
	return append(append([]byte(protoMagic), protoVersion), self...)
}

// parseHello returns the caller's node ID from a hello frame.
func parseHello(f frame) (string, error) {
	p := f.payload
	if f.kind != frameHello || len(p) < len(protoMagic)+1 || string(p[:len(protoMagic)]) != protoMagic {
		return "", fmt.Errorf("%w: not a dotkv RPC hello", errFrame)
	}
	if v := p[len(protoMagic)]; v != protoVersion {
		return "", fmt.Errorf("%w: protocol version %d, want %d", errFrame, v, protoVersion)
	}
	return string(p[len(protoMagic)+1:]), nil
}
