package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dotkv/dotkv/internal/fuzzcheck"
)

// encodeFrame is a frame's bytes on the wire, as the writer sends them.
func encodeFrame(f outFrame) []byte {
	return append(appendHeader(nil, &f), f.payload...)
}

// FuzzReadFrame reads an arbitrary byte stream as a connection's frames,
// as both ends' read loops do: readFrame until it fails, then parseHello
// on each frame. No input may panic; every frame read must re-encode
// (appendHeader) to exactly the bytes it was read from, since the format
// has a single encoding; a frame must never be longer than maxFrame; and
// a hello that parses must be the helloPayload of the ID it names.
// Reading the stream must allocate in proportion to its length, whatever
// sizes its frames declare (fuzzcheck.Allocs).
func FuzzReadFrame(f *testing.F) {
	hello := encodeFrame(outFrame{kind: frameHello, payload: helloPayload("n1")})
	req := encodeFrame(outFrame{kind: frameRequest, id: 7, deadline: 1 << 60, method: "replicate", payload: []byte("body")})
	reply := encodeFrame(outFrame{kind: frameReply, id: 7, status: statusError, payload: []byte("no")})
	empty := encodeFrame(outFrame{kind: frameReply, id: 1 << 63})
	f.Add(bytes.Join([][]byte{hello, req, reply}, nil))
	f.Add(hello)
	f.Add(req)
	f.Add(append(append([]byte(nil), empty...), empty...))
	f.Add(req[:len(req)-1])                                                                            // truncated payload
	f.Add([]byte{0, 0, 0, 9, frameRequest, 0, 0, 0, 0, 0, 0, 0, 0})                                    // short request header
	f.Add([]byte{0, 0, 0, 19, frameRequest, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 'x'}) // method longer than the frame
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, frameHello})                                                  // size over maxFrame
	f.Add([]byte{0, 0, 0, 3, frameHello, 0, 0})                                                        // size under the header
	f.Add([]byte{0, 0, 0, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0})                                               // unknown kind
	f.Add(encodeFrame(outFrame{kind: frameHello, payload: []byte("DKV\x02n1")}))                       // another version
	f.Add(append([]byte{0x04, 0, 0, 0, frameRequest}, make([]byte, 3<<20)...))                         // 64 MiB declared, 3 MiB present
	f.Fuzz(func(t *testing.T, stream []byte) {
		fuzzcheck.Allocs(t, "reading the frames of a stream", len(stream), func() {
			br := bufio.NewReader(bytes.NewReader(stream))
			for {
				if _, err := readFrame(br); err != nil {
					return
				}
			}
		})
		cr := &countingReader{r: bytes.NewReader(stream)}
		br := bufio.NewReader(cr)
		pos := 0 // where the next frame starts
		for pos < len(stream) {
			if rest := stream[pos:]; len(rest) >= 4 {
				size := binary.BigEndian.Uint32(rest)
				if size > maxFrame {
					if _, err := readFrame(br); !errors.Is(err, errFrame) {
						t.Fatalf("size %d over maxFrame: %v", size, err)
					}
					return
				}
			}
			fr, err := readFrame(br)
			if err != nil {
				if !errors.Is(err, errFrame) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("readFrame: unexpected error %v", err)
				}
				return
			}
			end := cr.n - br.Buffered()
			raw := stream[pos:end]
			pos = end
			if len(raw) > maxFrame+4 {
				t.Fatalf("read a frame of %d bytes", len(raw))
			}
			out := outFrame{kind: fr.kind, id: fr.id, deadline: fr.deadline, method: fr.method, status: fr.status, payload: fr.payload}
			if enc := encodeFrame(out); !bytes.Equal(enc, raw) {
				t.Fatalf("frame %+v re-encodes as\n%x, read from\n%x", fr, enc, raw)
			}
			if fr.kind != frameRequest && (fr.method != "" || fr.deadline != 0) {
				t.Fatalf("a frame of kind %d has a method or deadline: %+v", fr.kind, fr)
			}
			if id, err := parseHello(fr); err == nil {
				if fr.kind != frameHello || !bytes.Equal(helloPayload(id), fr.payload) {
					t.Fatalf("parseHello accepted %+v as %q", fr, id)
				}
			} else if !errors.Is(err, errFrame) {
				t.Fatalf("parseHello: unexpected error %v", err)
			}
			_ = replyResult(fr) // the client maps any status to a result
		}
	})
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzServeConn sends an arbitrary byte stream to a real RPC server over
// a real TCP connection, as a caller that speaks any bytes at all might,
// and reads what the server answers. The server must not crash, must call
// a handler only with the request it was sent, and must answer only with
// reply frames for IDs of requests it read (it may drop the connection at
// any point).
func FuzzServeConn(f *testing.F) {
	hello := encodeFrame(outFrame{kind: frameHello, payload: helloPayload("a")})
	req := func(id uint64, method string, payload string) []byte {
		return encodeFrame(outFrame{kind: frameRequest, id: id, method: method, payload: []byte(payload)})
	}
	f.Add(bytes.Join([][]byte{hello, req(1, "echo", "hi"), req(2, "inline", "yo"), req(3, "fail", ""), req(4, "nope", "")}, nil))
	f.Add(bytes.Join([][]byte{hello, req(1, "echo", "hi"), req(1, "echo", "again")}, nil))
	f.Add(bytes.Join([][]byte{hello, encodeFrame(outFrame{kind: frameRequest, id: 5, deadline: 1, method: "echo"})}, nil))
	f.Add(bytes.Join([][]byte{hello, encodeFrame(outFrame{kind: frameReply, id: 5})}, nil))
	f.Add(bytes.Join([][]byte{hello, hello}, nil))
	f.Add(req(1, "echo", "no hello"))
	f.Add(encodeFrame(outFrame{kind: frameHello, payload: []byte("DKV\x09a")}))
	f.Add(append(bytes.Clone(hello), 0, 0, 0, 12, frameRequest, 0))
	f.Add([]byte{0x04, 0, 0, 0, frameHello, 0, 0, 0, 0, 0, 0, 0, 0, 'D', 'K', 'V', 1})                      // a 64 MiB hello
	f.Add(append(bytes.Clone(hello), append([]byte{0x04, 0, 0, 0, frameRequest}, make([]byte, 100)...)...)) // a 64 MiB request, 100 bytes sent

	srv, err := NewServer("b", "127.0.0.1:0", nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen [][]byte // request payloads the handlers were given
	)
	record := func(_ context.Context, from string, req []byte) ([]byte, error) {
		mu.Lock()
		seen = append(seen, bytes.Clone(req))
		mu.Unlock()
		if from != "a" {
			return nil, fmt.Errorf("called from %q", from)
		}
		return req, nil
	}
	srv.Handle("echo", record)
	srv.HandleInline("inline", record)
	srv.Handle("fail", func(context.Context, string, []byte) ([]byte, error) { return nil, errors.New("no") })
	srv.Serve()
	f.Cleanup(func() { _ = srv.Close() })

	f.Fuzz(func(t *testing.T, stream []byte) {
		// The requests in the stream, as the server should read them.
		sent := map[uint64]bool{}
		payloads := map[string]bool{}
		cr := &countingReader{r: bytes.NewReader(stream)}
		br := bufio.NewReader(cr)
		end := 0
		for end < len(stream) {
			fr, err := readFrame(br)
			if err != nil {
				break
			}
			end = cr.n - br.Buffered()
			if fr.kind == frameRequest {
				sent[fr.id] = true
				payloads[string(fr.payload)] = true
			}
		}

		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		go func() {
			_, _ = c.Write(stream)
			_ = c.(*net.TCPConn).CloseWrite()
		}()
		rbr := bufio.NewReader(c)
		for {
			fr, err := readFrame(rbr)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("the server neither answered nor closed the connection within 20 s")
				}
				break
			}
			if fr.kind != frameReply || !sent[fr.id] {
				t.Fatalf("the server sent %+v; requests sent: %v", fr, sent)
			}
		}
		// Wait for the server to be done with the connection and its
		// handlers, so that what they saw belongs to this stream.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Microsecond) {
			srv.mu.RLock()
			open := len(srv.mu.conns)
			srv.mu.RUnlock()
			if open == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the server kept the connection 20 s after it ended")
			}
		}
		srv.calls.Wait()
		mu.Lock()
		got := seen
		seen = nil
		mu.Unlock()
		for _, p := range got {
			if !payloads[string(p)] {
				t.Fatalf("a handler was given %q, which no request of the stream carried", p)
			}
		}
	})
}
