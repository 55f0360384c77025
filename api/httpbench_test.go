package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/storage"
)

// BenchmarkHTTP compares the real handler (parsing, versioning, pebble
// with --fsync never, metrics) with a bare net/http handler that only
// reads the body, both over loopback with keep-alive clients. The ratio of
// their ns/op is the figure that matters: the real handler should reach at
// least half the bare one's throughput.
//
//	go test -run=^$ -bench=HTTP -benchtime=20000x ./api
func BenchmarkHTTP(b *testing.B) {
	value := bytes.Repeat([]byte("x"), 1024)
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodGet {
			_, _ = w.Write(value)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	for _, method := range []string{http.MethodPut, http.MethodGet} {
		b.Run("bare/"+method, func(b *testing.B) { runHTTPBench(b, bare, method, value) })
		for _, mode := range []storage.FsyncMode{storage.FsyncNever, storage.FsyncAlways} {
			b.Run(fmt.Sprintf("dotkv/fsync=%s/%s", mode, method), func(b *testing.B) {
				store, err := storage.Open(b.TempDir(), storage.Options{NodeID: "bench", Fsync: mode})
				if err != nil {
					b.Fatal(err)
				}
				defer store.Close()
				backend, err := replica.NewLocal("bench", store, replica.Config{})
				if err != nil {
					b.Fatal(err)
				}
				runHTTPBench(b, New(backend, Config{NodeID: "bench", Cluster: SingleNode("bench", "", backend.View())}), method, value)
			})
		}
	}
}

const benchKeys = 4096

func runHTTPBench(b *testing.B, h http.Handler, method string, value []byte) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	if method == http.MethodGet { // load the keys the readers fetch
		for i := range benchKeys {
			if err := benchDo(client, http.MethodPut, fmt.Sprintf("%s/kv/key-%d", srv.URL, i), value); err != nil {
				b.Fatal(err)
			}
		}
	}
	var n atomic.Int64
	b.SetParallelism(32) // 64 concurrent clients on 2 cores
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// Writes go to fresh keys (blind writes to one key would pile up
			// siblings); reads cycle over the loaded keys.
			var body []byte
			url := fmt.Sprintf("%s/kv/new-%d", srv.URL, n.Add(1))
			if method == http.MethodPut {
				body = value
			} else {
				url = fmt.Sprintf("%s/kv/key-%d", srv.URL, n.Add(1)%benchKeys)
			}
			if err := benchDo(client, method, url, body); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchDo(c *http.Client, method, url string, body []byte) error {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return nil
}
