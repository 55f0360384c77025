package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotkv/dotkv/bench/history"
)

// TestWorkloadFailsOverAndRecordsOutcomes: a target that refuses
// connections costs no operation (the next target answers it); a write
// whose outcome is unknown (504) is recorded as Info and never sent
// again; one refused for a limit (409) as Fail.
func TestWorkloadFailsOverAndRecordsOutcomes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	node := func(putStatus int, putBody string, puts *atomic.Int64) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			if r.Method == http.MethodGet {
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, `{"error":"key not found","code":"not_found"}`)
				return
			}
			puts.Add(1)
			w.WriteHeader(putStatus)
			_, _ = io.WriteString(w, putBody)
		}))
	}
	var putsOK, putsTimeout, putsRefused atomic.Int64
	ok := node(http.StatusNoContent, "", &putsOK)
	timeout := node(http.StatusGatewayTimeout, `{"error":"write timed out (outcome unknown)","code":"timeout"}`, &putsTimeout)
	refused := node(http.StatusConflict, `{"error":"nothing written","code":"too_many_siblings","siblings":3,"max_siblings":3}`, &putsRefused)
	for _, s := range []*httptest.Server{ok, timeout, refused} {
		defer s.Close()
	}
	hist := &history.History{}
	wl, err := NewWorkload(WorkloadConfig{Targets: []string{dead, ok.URL, timeout.URL, refused.URL}, Concurrency: 4, Ops: 600,
		Keys: 50, Dist: "uniform", Mix: Mix{Read: 50, Write: 50}, Seed: 1, Timeout: time.Second},
		hist, time.Now(), func() string { return "kill n1" })
	if err != nil {
		t.Fatal(err)
	}
	wl.Run(context.Background())

	writes := map[string]int{}
	for _, op := range hist.Ops() {
		want := map[string]string{ok.URL: history.OK, timeout.URL: history.Info, refused.URL: history.Fail}[op.Node]
		if op.Kind == history.OpRead {
			want = history.OK
		} else {
			writes[op.Node]++
		}
		if op.Node == dead || op.Outcome != want {
			t.Fatalf("op %+v: outcome %s on %s, want %s (and none on the dead node)", op, op.Outcome, op.Node, want)
		}
	}
	// Every write reached one node once: none was sent again elsewhere.
	for url, n := range map[string]*atomic.Int64{ok.URL: &putsOK, timeout.URL: &putsTimeout, refused.URL: &putsRefused} {
		if int64(writes[url]) != n.Load() || n.Load() == 0 {
			t.Errorf("%s: %d writes recorded, %d received", url, writes[url], n.Load())
		}
	}
	if ops, okOps, failed := wl.Progress(); ops != int64(len(hist.Ops())) || okOps+failed != ops {
		t.Errorf("progress %d ok %d failed %d of %d ops recorded", ops, okOps, failed, len(hist.Ops()))
	}
}
