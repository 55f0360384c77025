package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunLoadCountsOpsAndErrors(t *testing.T) {
	var puts, gets atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/kv/load-13":
			http.Error(w, "boom", http.StatusInternalServerError)
		case r.Method == http.MethodPut:
			puts.Add(1)
			w.WriteHeader(http.StatusNoContent)
		default:
			gets.Add(1)
			_, _ = w.Write([]byte("v"))
		}
	}))
	defer srv.Close()
	client := NewClient(4)
	defer client.CloseIdleConnections()
	res, err := RunLoad(context.Background(), client, LoadConfig{
		Targets: []string{srv.URL}, Op: "put", Concurrency: 4, MaxOps: 100, ValueSize: 10, Duration: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 99 || res.Errors != 1 || puts.Load() != 99 || res.FirstError == "" {
		t.Fatalf("put load: ops=%d errors=%d server puts=%d first=%q", res.Ops, res.Errors, puts.Load(), res.FirstError)
	}
	if res.Throughput() <= 0 || res.Percentile(99) <= 0 {
		t.Fatalf("throughput %v, p99 %v", res.Throughput(), res.Percentile(99))
	}
	res, err = RunLoad(context.Background(), client, LoadConfig{
		Targets: []string{srv.URL}, Op: "get", Concurrency: 2, MaxOps: 50, Keys: 10, Duration: 10 * time.Second,
	})
	if err != nil || res.Ops != 50 || gets.Load() != 50 {
		t.Fatalf("get load: %+v err=%v gets=%d", res, err, gets.Load())
	}
	if _, err := RunLoad(context.Background(), client, LoadConfig{Targets: []string{srv.URL}, Op: "post", Concurrency: 1, MaxOps: 1}); err == nil {
		t.Fatal("unknown op accepted")
	}
}
