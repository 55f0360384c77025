package transport

import (
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
func BenchmarkCall(b *testing.B) {
	srv, err := NewServer("b", "127.0.0.1:0", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	srv.Handle("echo", func(_ context.Context, _ string, req []byte) ([]byte, error) { return req, nil })
	srv.Serve()
	defer srv.Close()
	addr := srv.Addr()
	cli := NewClient("a", "", nil, func(string) (string, bool) { return addr, true })
	defer cli.Close()
	req := make([]byte, 1024)
	for _, callers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(2 * len(req)))
			var next atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Value
			b.ResetTimer()
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
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
		})
	}
}
