package transport

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCall measures one call of a 1 KiB request with a 1 KiB reply
// over loopback, with 1, 8 and 64 callers sharing one client (so one
// connection); ns/op is per call, client and server both in this process.
// cpu-ns/op is the process's CPU time (user and system, both sides, the
// garbage collector included) per call: on a busy machine, the figure to
// compare rather than ns/op.
func BenchmarkCall(b *testing.B) {
	srv, err := NewServer("b", "127.0.0.1:0", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	benchCalls(b, srv, func(resolve func(string) (string, bool)) *Client {
		return NewClient("a", "", nil, resolve)
	})
}

// BenchmarkCallTLS is BenchmarkCall over mutual TLS (TLS 1.3, ECDSA P-256
// certificates of one CA, as certs.GenerateDev makes them); the
// connection is made, handshake included, before the timing starts.
func BenchmarkCallTLS(b *testing.B) {
	_, src := devSources(b, "a", "b")
	srv, err := NewServer("b", "127.0.0.1:0", nil, nil, WithTLS(src["b"].PeerServer()))
	if err != nil {
		b.Fatal(err)
	}
	benchCalls(b, srv, func(resolve func(string) (string, bool)) *Client {
		return NewClient("a", "", nil, resolve, WithTLS(src["a"].PeerClient()))
	})
}

// benchCalls serves an echo method on srv and calls it through the client
// newClient returns (resolve gives srv's address).
func benchCalls(b *testing.B, srv *Server, newClient func(resolve func(string) (string, bool)) *Client) {
	srv.Handle("echo", func(_ context.Context, _ string, req []byte) ([]byte, error) { return req, nil })
	srv.Serve()
	defer srv.Close()
	addr := srv.Addr()
	cli := newClient(func(string) (string, bool) { return addr, true })
	defer cli.Close()
	req := make([]byte, 1024)
	if _, err := cli.Call(context.Background(), "b", "echo", req); err != nil { // connect
		b.Fatal(err)
	}
	for _, callers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(2 * len(req)))
			var next atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Value
			b.ResetTimer()
			cpu := processCPU()
			for range callers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
						reply, err := cli.Call(ctx, "b", "echo", req)
						cancel()
						if err != nil || len(reply) != len(req) {
							failed.Store(fmt.Errorf("call: %d bytes, %v", len(reply), err))
							return
						}
					}
				})
			}
			wg.Wait()
			if cpu := processCPU() - cpu; cpu > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkReadFrame measures reading one request frame of 1 KiB, the
// common small-frame path of both ends' read loops.
func BenchmarkReadFrame(b *testing.B) {
	enc := encodeFrame(outFrame{kind: frameRequest, id: 1, deadline: 1, method: "replicate", payload: make([]byte, 1024)})
	stream := bytes.Repeat(enc, 64)
	r := bytes.NewReader(stream)
	br := bufio.NewReaderSize(r, 64<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for i := 0; b.Loop(); i++ {
		if i%64 == 0 {
			r.Reset(stream)
			br.Reset(r)
		}
		if _, err := readFrame(br); err != nil {
			b.Fatal(err)
		}
	}
}
