package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// allocated returns the bytes allocated on the heap while fn ran.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// hugeHeader is a frame header declaring maxFrame bytes, of kind.
func hugeHeader(kind byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, maxFrame), kind)
}

// TestHugeSizeFieldAllocatesWhatArrives: a frame whose header claims
// 64 MiB, followed by a few bytes and the end of the connection, makes
// readFrame allocate about readChunk, not what the header claims.
func TestHugeSizeFieldAllocatesWhatArrives(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sent := make(chan error, 1)
	go func() {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			sent <- err
			return
		}
		_, err = nc.Write(append(hugeHeader(frameRequest), make([]byte, 100)...))
		sent <- errors.Join(err, nc.Close())
	}()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetReadDeadline(time.Now().Add(time.Minute)) // a hang fails, it does not block the suite
	br := bufio.NewReaderSize(nc, 64<<10)
	var rerr error
	n := allocated(func() { _, rerr = readFrame(br) })
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rerr, io.ErrUnexpectedEOF) {
		t.Fatalf("readFrame: %v; want io.ErrUnexpectedEOF", rerr)
	}
	if n > 4<<20 {
		t.Fatalf("a frame claiming %d bytes with 100 sent allocated %d bytes", maxFrame, n)
	}
	t.Logf("allocated %d bytes", n)
}

// TestReadBody: bodies of every size around the chunk boundaries read
// back exactly, and a short one is an unexpected EOF (io.EOF if none of
// it arrived), as with io.ReadFull.
func TestReadBody(t *testing.T) {
	for _, size := range []int{0, 1, readChunk - 1, readChunk, readChunk + 1, 2 * readChunk, 3*readChunk + 5} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7)
		}
		got, err := readBody(bytes.NewReader(append(data, 1, 2, 3)), size)
		if err != nil || !bytes.Equal(got, data) || cap(got) != size {
			t.Errorf("size %d: %d bytes (cap %d), %v", size, len(got), cap(got), err)
		}
		if size == 0 {
			continue
		}
		if _, err := readBody(bytes.NewReader(nil), size); err != io.EOF {
			t.Errorf("size %d, nothing sent: %v; want io.EOF", size, err)
		}
		if _, err := readBody(bytes.NewReader(data[:size-1]), size); size > 1 && err != io.ErrUnexpectedEOF {
			t.Errorf("size %d, one byte short: %v; want io.ErrUnexpectedEOF", size, err)
		}
	}
}

// TestHelloSizeIsCapped: the first frame of a connection, read before
// the caller is known, is refused as soon as its header declares more
// than a hello can hold; the server allocates nothing like the size
// declared, and closes the connection.
func TestHelloSizeIsCapped(t *testing.T) {
	br := bufio.NewReader(bytes.NewReader(append(hugeHeader(frameHello), "DKV\x01a"...)))
	if _, err := readFrameMax(br, maxHelloFrame); !errors.Is(err, errFrame) {
		t.Fatalf("a hello claiming %d bytes: %v; want errFrame", maxFrame, err)
	}
	hello := encodeFrame(outFrame{kind: frameHello, payload: helloPayload(string(bytes.Repeat([]byte{'n'}, maxNodeID)))})
	if f, err := readFrameMax(bufio.NewReader(bytes.NewReader(hello)), maxHelloFrame); err != nil || f.kind != frameHello {
		t.Fatalf("a hello with the longest node ID: %v", err)
	}

	srv, err := NewServer("b", "127.0.0.1:0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Serve()
	defer srv.Close()
	n := allocated(func() {
		nc, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.Write(append(hugeHeader(frameHello), "DKV\x01a"...)); err != nil {
			t.Fatal(err)
		}
		// The server closes the connection (it would otherwise wait for
		// the 64 MiB, or for its hello timeout).
		_ = nc.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := nc.Read(make([]byte, 1)); err == nil {
			t.Fatal("the server answered an oversized hello")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the server kept a connection whose hello claimed 64 MiB")
		}
	})
	if n > 4<<20 {
		t.Fatalf("an oversized hello: %d bytes allocated", n)
	}
}
