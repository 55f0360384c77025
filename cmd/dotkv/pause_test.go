//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// freeAddrOn returns a free TCP port on ip.
func freeAddrOn(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("find a free port on %s: %v", ip, err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// livenessOf returns how the node at s sees member id.
func livenessOf(t *testing.T, s *server, id string) string {
	t.Helper()
	r := s.do(t, http.MethodGet, "/cluster/status", nil, nil, false)
	var st struct {
		Members []struct{ ID, Liveness string } `json:"members"`
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		t.Fatalf("decode /cluster/status: %v: %s", err, r.Body)
	}
	for _, m := range st.Members {
		if m.ID == id {
			return m.Liveness
		}
	}
	return ""
}

// TestPausedNodeIsRoutedAround runs three server processes with the
// production failure-detector tuning, pauses one with SIGSTOP, and checks
// that the others declare it dead, that quorum requests succeed without
// it all along, that once it is dead a w=all write is refused before
// anything is written rather than waiting on it, and that it is alive
// again after SIGCONT. How long detection and requests took is logged,
// not asserted (a busy machine stretches both).
func TestPausedNodeIsRoutedAround(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	data := t.TempDir()
	var servers []*server
	var seed string
	for i := range 3 {
		ip := fmt.Sprintf("127.0.0.%d", 61+i)
		gossip, rpc := freeAddrOn(t, ip), freeAddrOn(t, ip)
		args := []string{"--gossip", gossip, "--rpc", rpc}
		if seed != "" {
			args = append(args, "--join", seed)
		} else {
			args, seed = append(args, "--new-cluster"), gossip
		}
		servers = append(servers, startServer(t, fmt.Sprintf("n%d", i+1), filepath.Join(data, fmt.Sprint(i)), args...))
	}
	waitUntil(t, waitLimit, "every node to see three alive members", func() bool {
		for _, s := range servers {
			for _, id := range []string{"n1", "n2", "n3"} {
				if livenessOf(t, s, id) != "alive" || memberStatus(t, s, id) != "member" {
					return false
				}
			}
		}
		return true
	})

	paused := servers[2]
	if err := paused.proc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_ = paused.proc.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	start := time.Now()
	// While n3 is paused, every write and read through n1 and n2 succeeds
	// (quorum from the two live nodes): none waits on n3, which would end
	// in a timeout.
	var detected, slowest time.Duration
	for i := 0; detected == 0; i++ {
		s := servers[i%2]
		t0 := time.Now()
		r := s.do(t, http.MethodPut, kvPath(fmt.Sprintf("k%d", i)), http.Header{"Content-Type": {"text/plain"}}, []byte("v"), false)
		slowest = max(slowest, time.Since(t0))
		if r.Status != http.StatusNoContent {
			t.Fatalf("write %d through %s with n3 paused: %v", i, s.id, r)
		}
		t0 = time.Now()
		g := s.get(t, fmt.Sprintf("k%d", i))
		slowest = max(slowest, time.Since(t0))
		if g.Status != http.StatusOK {
			t.Fatalf("read %d through %s with n3 paused: %v", i, s.id, g)
		}
		if livenessOf(t, servers[0], "n3") == "dead" && livenessOf(t, servers[1], "n3") == "dead" {
			detected = time.Since(start)
		}
		if time.Since(start) > waitLimit {
			t.Fatalf("n3 paused for %v and not declared dead (n1 sees %s, n2 sees %s)", time.Since(start),
				livenessOf(t, servers[0], "n3"), livenessOf(t, servers[1], "n3"))
		}
	}
	t.Logf("paused node declared dead by both others after %v; slowest request meanwhile %v", detected, slowest)
	// Once n3 is dead, a w=all write is refused before it is applied
	// anywhere (503 unavailable, 2 of 3 replicas), not sent to n3 and
	// waited on (that would apply it on n1 and n2 and end in a timeout).
	r := servers[0].do(t, http.MethodPut, kvPath("all")+"?w=all", nil, []byte("v"), false)
	var e struct {
		Code           string
		Acks, Required int
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || r.Status != http.StatusServiceUnavailable ||
		e.Code != "unavailable" || e.Acks != 2 || e.Required != 3 {
		t.Fatalf("w=all with n3 dead: %v, want 503 unavailable, 2 of 3 replicas", r)
	}
	for _, s := range servers[:2] {
		if g := s.get(t, "all"); g.Status != http.StatusNotFound {
			t.Fatalf("the refused w=all write was applied: read through %s: %v", s.id, g)
		}
	}

	if err := paused.proc.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	waitUntil(t, waitLimit, "n3 to be alive again after SIGCONT", func() bool {
		return livenessOf(t, servers[0], "n3") == "alive" && livenessOf(t, servers[1], "n3") == "alive"
	})
	for _, s := range servers {
		s.proc.stop()
	}
}

// waitLimit bounds a wait on a cluster condition. It is generous, so that
// a busy machine does not fail the test; a wait returns as soon as its
// condition holds.
const waitLimit = time.Minute

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
