package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// The client-request path of one node, without a network: requests go
// straight to the handler (ServeHTTP, so metrics included) and answers
// into a reusable writer, so that B/op and allocs/op are the handler's and
// the backend's own. Two backends:
//
//   - local: a single-node coordinator (replica.NewLocal) over pebble on
//     an in-memory filesystem, the whole path of `dotkv server`;
//   - stub: a backend that keeps nothing and answers a fixed state, so
//     that what is left is the api package alone.
//
// The harness itself allocates one key string per fresh-key PUT.
//
//	go test -run='^$' -bench=KV -benchmem ./api
func BenchmarkKV(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 1024)
	backends := []struct {
		name string
		new  func(b *testing.B) api.Backend
	}{
		{"local", newBenchLocal},
		{"stub", func(*testing.B) api.Backend { return newStubBackend(value) }},
	}
	for _, be := range backends {
		// put-new and get are the bare requests; with a query, they are
		// what the bench workload sends: levels and a timeout in the
		// query, reads asking for JSON.
		for _, query := range []string{"", "w=quorum&timeout=5000"} {
			name := "/put-new"
			if query != "" {
				name += "-query"
			}
			b.Run(be.name+name, func(b *testing.B) {
				h := newBenchServer(b, be.new(b))
				req := newBenchRequest(http.MethodPut, value)
				req.URL.RawQuery = query
				var key []byte
				w := newBenchWriter()
				b.SetBytes(int64(len(value)))
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					key = strconv.AppendInt(append(key[:0], "new-"...), int64(i), 10)
					req.URL.Path = "/kv/" + string(key)
					req.reset(value)
					w.reset()
					h.ServeHTTP(w, req.Request)
					w.want(b, http.StatusNoContent)
				}
			})
		}
		b.Run(be.name+"/put-overwrite", func(b *testing.B) {
			h := newBenchServer(b, be.new(b))
			req := newBenchRequest(http.MethodPut, value)
			req.URL.Path = "/kv/key"
			w := newBenchWriter()
			h.ServeHTTP(w, req.Request)
			w.want(b, http.StatusNoContent)
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			for b.Loop() {
				// Write over the last version with its context: one
				// sibling, a context token parsed and one returned.
				req.Header[api.HeaderContext] = []string{w.header.Get(api.HeaderContext)}
				req.reset(value)
				w.reset()
				h.ServeHTTP(w, req.Request)
				w.want(b, http.StatusNoContent)
			}
		})
		for _, query := range []string{"", "r=quorum&timeout=5000"} {
			name := "/get"
			if query != "" {
				name += "-json-query"
			}
			b.Run(be.name+name, func(b *testing.B) {
				h := newBenchServer(b, be.new(b))
				const keys = 1000
				paths := make([]string, keys)
				put := newBenchRequest(http.MethodPut, value)
				w := newBenchWriter()
				for i := range paths {
					paths[i] = "/kv/key-" + strconv.Itoa(i)
					put.URL.Path = paths[i]
					put.reset(value)
					w.reset()
					h.ServeHTTP(w, put.Request)
					w.want(b, http.StatusNoContent)
				}
				req := newBenchRequest(http.MethodGet, nil)
				req.URL.RawQuery = query
				wantLen := len(value)
				if query != "" {
					req.Header.Set("Accept", "application/json")
					wantLen = base64.StdEncoding.EncodedLen(len(value)) // and then some
				}
				b.SetBytes(int64(len(value)))
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					req.URL.Path = paths[i%keys]
					req.reset(nil)
					w.reset()
					h.ServeHTTP(w, req.Request)
					w.want(b, http.StatusOK)
					if w.n < wantLen || query == "" && w.n != wantLen {
						b.Fatalf("GET wrote %d bytes, want %d", w.n, wantLen)
					}
				}
			})
		}
		b.Run(be.name+"/get-missing", func(b *testing.B) {
			if be.name == "stub" {
				b.Skip("the stub holds every key")
			}
			h := newBenchServer(b, be.new(b))
			req := newBenchRequest(http.MethodGet, nil)
			req.URL.Path = "/kv/missing"
			w := newBenchWriter()
			b.ReportAllocs()
			for b.Loop() {
				req.reset(nil)
				w.reset()
				h.ServeHTTP(w, req.Request) // a JSON error body
				w.want(b, http.StatusNotFound)
			}
		})
	}
}

func newBenchServer(b *testing.B, backend api.Backend) *api.Server {
	b.Helper()
	r, err := ring.New([]string{"solo"}, ring.DefaultPartitions, 1)
	if err != nil {
		b.Fatal(err)
	}
	return api.New(backend, api.Config{NodeID: "solo", Cluster: api.SingleNode("solo", "", ring.Stable(r, 1))})
}

func newBenchLocal(b *testing.B) api.Backend {
	b.Helper()
	store, err := storage.Open("data", storage.Options{NodeID: "solo", FS: vfs.NewMem(), Fsync: storage.FsyncNever})
	if err != nil {
		b.Fatal(err)
	}
	c, err := replica.NewLocal("solo", store, replica.DefaultConfig())
	if err != nil {
		_ = store.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		if err := store.Close(); err != nil {
			b.Error(err)
		}
	})
	return c
}

// stubBackend keeps nothing: every key holds one sibling of value.
type stubBackend struct {
	st versioning.State
}

func newStubBackend(value []byte) *stubBackend {
	st, err := versioning.State{}.Update(nil, versioning.Sibling{
		Dot: versioning.Dot{Actor: "solo", Counter: 1}, Value: value, ContentType: "application/octet-stream",
	})
	if err != nil {
		panic(err)
	}
	return &stubBackend{st: st}
}

func (s *stubBackend) Get(context.Context, []byte, replica.ReadOptions) (versioning.State, error) {
	return s.st, nil
}

func (s *stubBackend) Put(_ context.Context, _ []byte, vctx versioning.VersionVector, _ versioning.Sibling, _ replica.WriteOptions) (versioning.VersionVector, error) {
	return s.st.Context, nil
}

func (s *stubBackend) LocalState([]byte) (versioning.State, bool, error) { return s.st, true, nil }
func (s *stubBackend) N() int                                            { return 1 }
func (s *stubBackend) Ready() bool                                       { return true }

// benchRequest is one *http.Request reused across iterations.
type benchRequest struct {
	*http.Request
	body *bytes.Reader
}

func newBenchRequest(method string, value []byte) *benchRequest {
	body := bytes.NewReader(nil)
	r := &http.Request{
		Method:     method,
		URL:        &url.URL{},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Body:       io.NopCloser(body),
		Host:       "bench",
		RemoteAddr: "192.0.2.1:1234",
		RequestURI: "/kv/",
	}
	if method == http.MethodPut {
		r.Header.Set("Content-Type", "application/octet-stream")
	}
	return &benchRequest{Request: r, body: body}
}

// reset rewinds the body to value.
func (r *benchRequest) reset(value []byte) {
	r.body.Reset(value)
	r.ContentLength = int64(len(value))
}

// benchWriter is a ResponseWriter that keeps the status and headers and
// counts the body, reused across iterations (as net/http reuses a
// connection's buffers).
type benchWriter struct {
	header http.Header
	status int
	n      int
}

func newBenchWriter() *benchWriter { return &benchWriter{header: http.Header{}} }

func (w *benchWriter) reset() {
	clear(w.header)
	w.status, w.n = 0, 0
}

func (w *benchWriter) Header() http.Header { return w.header }

func (w *benchWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

// want fails b unless the response had status. (It is no b.Helper: that
// costs as much as some of what the benchmarks measure.)
func (w *benchWriter) want(b *testing.B, status int) {
	if w.status != status {
		b.Fatalf("response status %d, want %d", w.status, status)
	}
}
