//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// memberStatus returns the ring status of member id as the node at s sees
// it ("" if it does not list id).
func memberStatus(t *testing.T, s *server, id string) string {
	t.Helper()
	r := s.do(t, http.MethodGet, "/cluster/status", nil, nil, false)
	var st struct {
		Members []struct{ ID, Status string } `json:"members"`
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		t.Fatalf("decode /cluster/status: %v: %s", err, r.Body)
	}
	for _, m := range st.Members {
		if m.ID == id {
			return m.Status
		}
	}
	return ""
}

// TestLeaveAgainstBinary: `dotkv leave` on one node of three (N=2) hands
// its partitions to the others; its server process then exits 0 saying it
// left, the others see it as left, and every key written before reads
// back from the two that remain with r=all.
func TestLeaveAgainstBinary(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	data := t.TempDir()
	var servers []*server
	var seed string
	for i := range 3 {
		ip := fmt.Sprintf("127.0.0.%d", 71+i)
		gossip, rpc := freeAddrOn(t, ip), freeAddrOn(t, ip)
		args := []string{"--gossip", gossip, "--rpc", rpc, "--n", "2"}
		if seed != "" {
			args = append(args, "--join", seed)
		} else {
			args, seed = append(args, "--new-cluster"), gossip
		}
		servers = append(servers, startServer(t, fmt.Sprintf("n%d", i+1), filepath.Join(data, fmt.Sprint(i)), args...))
	}
	n1, leaver := servers[0], servers[2]
	waitUntil(t, waitLimit, "every node to see three members", func() bool {
		for _, s := range servers {
			for _, id := range []string{"n1", "n2", "n3"} {
				if memberStatus(t, s, id) != "member" {
					return false
				}
			}
		}
		return true
	})
	const keys = 50
	for i := range keys {
		leaver.put(t, fmt.Sprintf("k%d", i), "text/plain", "", []byte(fmt.Sprint(i)))
	}

	r := runDotkv(t, "", "leave", "--addr", leaver.addr)
	if r.code != 0 || !strings.Contains(r.stdout, "n3: leaving") {
		t.Fatalf("dotkv leave: %v, want exit 0 and n3: leaving", r)
	}
	// A second leave is refused: n3 is no longer a member.
	if r := runDotkv(t, "", "leave", "--addr", leaver.addr); r.code != exitError || !strings.Contains(r.stderr, "409") {
		t.Errorf("second dotkv leave: %v, want exit 2 with a 409", r)
	}
	waitUntil(t, waitLimit, "n3's server to exit once it has left", leaver.exited)
	if leaver.waitErr != nil {
		t.Fatalf("n3 exited with %v after leaving, want status 0\nstderr:\n%s", leaver.waitErr, leaver.stderr)
	}
	if !strings.Contains(leaver.stderr.String(), `"msg":"left the cluster"`) {
		t.Errorf("n3's log does not say it left the cluster:\n%s", leaver.stderr)
	}
	waitUntil(t, waitLimit, "n1 to see n3 as left", func() bool { return memberStatus(t, n1, "n3") == "left" })
	for i := range keys {
		k := fmt.Sprintf("k%d", i)
		r := n1.do(t, http.MethodGet, kvPath(k)+"?r=all", nil, nil, false)
		if r.Status != http.StatusOK || string(r.Body) != fmt.Sprint(i) {
			t.Errorf("GET %s?r=all after n3 left: %v", k, r)
		}
	}
	st := runDotkv(t, "", "status", "--addr", n1.addr)
	if st.code != 0 || !strings.Contains(st.stdout, "left") {
		t.Errorf("dotkv status after n3 left: %v", st)
	}
	servers[0].stop()
	servers[1].stop()
}
