package main

import (
	"strings"
	"testing"
)

// TestMembershipCLIAgainstBinary: on a node without gossip, leave and
// remove are the server's 409 (exit 2 with its message); wrong arguments
// are usage errors; status prints the members table with its ring columns.
func TestMembershipCLIAgainstBinary(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	s := startServer(t, "n1", t.TempDir())

	for _, args := range [][]string{
		{"leave", "--addr", s.addr},
		{"remove", "--addr", s.addr, "n2"},
		{"remove", "--addr", s.addr, "--force", "n2"},
	} {
		r := runDotkv(t, "", args...)
		if r.code != exitError || r.stdout != "" || !strings.Contains(r.stderr, "409") || !strings.Contains(r.stderr, "gossip") {
			t.Errorf("%q on a single node: %v, want exit 2 with the server's 409 message", args, r)
		}
	}
	for _, args := range [][]string{
		{"remove", "--addr", s.addr},
		{"remove", "--addr", s.addr, "n2", "--force"}, // flags go before ID
		{"remove", "--addr", s.addr, "n2", "n3"},
		{"leave", "--addr", s.addr, "n1"},
		{"leave", "--force", "--addr", s.addr},
		{"remove", "--addr", "127.0.0.1:1", "n2"},
		{"leave", "--addr", "127.0.0.1:1"},
	} {
		if r := runDotkv(t, "", args...); r.code != exitError || r.stderr == "" {
			t.Errorf("%q: %v, want exit 2 with a message", args, r)
		}
	}

	r := runDotkv(t, "", "status", "--addr", s.addr)
	if r.code != 0 {
		t.Fatalf("status: %v", r)
	}
	lines := strings.Split(r.stdout, "\n")
	header := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "ID ") {
			header = i
		}
	}
	if header < 0 || header+1 >= len(lines) {
		t.Fatalf("status printed no members table: %q", r.stdout)
	}
	if got := strings.Fields(lines[header]); strings.Join(got, " ") != "ID STATUS LIVENESS RING VERSION PARTITIONS HTTP HINTS" {
		t.Errorf("status header %q", lines[header])
	}
	if got := strings.Fields(lines[header+1]); len(got) != 7 || got[0] != "n1" || got[1] != "member" || got[2] != "alive" ||
		got[4] != "1024" || got[5] != s.addr {
		t.Errorf("status row of n1: %q", lines[header+1])
	}
	if !strings.Contains(r.stdout, "ring version ") || strings.Contains(r.stdout, "PARTITION\tFROM") || strings.Contains(r.stdout, "FROM") {
		t.Errorf("status of a single node: %q, want the ring version and no transfers table", r.stdout)
	}
	s.stop()
}
