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
// that the others declare it dead within a few seconds, that requests
// never wait on it beyond their timeout, and that it is alive again after
// SIGCONT.
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
			seed = gossip
		}
		servers = append(servers, startServer(t, fmt.Sprintf("n%d", i+1), filepath.Join(data, fmt.Sprint(i)), args...))
	}
	waitUntil(t, 15*time.Second, "every node to see three alive members", func() bool {
		for _, s := range servers {
			for _, id := range []string{"n1", "n2", "n3"} {
				if livenessOf(t, s, id) != "alive" {
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
	// While n3 is paused, every write and read through n1 and n2 finishes
	// within its 1 s timeout (quorum from the two live nodes).
	var detected time.Duration
	for i := 0; detected == 0; i++ {
		s := servers[i%2]
		t0 := time.Now()
		r := s.do(t, http.MethodPut, kvPath(fmt.Sprintf("k%d", i)), http.Header{"Content-Type": {"text/plain"}}, []byte("v"), false)
		if d := time.Since(t0); d > 1500*time.Millisecond {
			t.Fatalf("write %d through %s took %v with n3 paused", i, s.id, d)
		}
		if r.Status != http.StatusNoContent {
			t.Fatalf("write %d through %s with n3 paused: %v", i, s.id, r)
		}
		t0 = time.Now()
		if g := s.get(t, fmt.Sprintf("k%d", i)); g.Status != http.StatusOK || time.Since(t0) > 1500*time.Millisecond {
			t.Fatalf("read %d through %s with n3 paused: %v after %v", i, s.id, g, time.Since(t0))
		}
		if livenessOf(t, servers[0], "n3") == "dead" && livenessOf(t, servers[1], "n3") == "dead" {
			detected = time.Since(start)
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("n3 paused for %v and not declared dead (n1 sees %s, n2 sees %s)", time.Since(start),
				livenessOf(t, servers[0], "n3"), livenessOf(t, servers[1], "n3"))
		}
	}
	t.Logf("paused node declared dead by both others after %v", detected)
	if detected > 8*time.Second {
		t.Errorf("detection took %v; the tuning promises a few seconds", detected)
	}
	// Once n3 is dead, w=all fails fast rather than waiting on it.
	t0 := time.Now()
	r := servers[0].do(t, http.MethodPut, kvPath("all")+"?w=all", nil, []byte("v"), false)
	if r.Status != http.StatusServiceUnavailable || time.Since(t0) > 500*time.Millisecond {
		t.Fatalf("w=all with n3 dead: %v after %v, want a fast 503", r, time.Since(t0))
	}

	if err := paused.proc.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	waitUntil(t, 15*time.Second, "n3 to be alive again after SIGCONT", func() bool {
		return livenessOf(t, servers[0], "n3") == "alive" && livenessOf(t, servers[1], "n3") == "alive"
	})
	for _, s := range servers {
		s.proc.stop()
	}
}

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
