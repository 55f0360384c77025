//go:build unix

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serversOf returns the PIDs of `dotkv server` processes whose data lives
// under dir (so parallel tests don't see each other's).
func serversOf(t *testing.T, dir string) []string {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", "server --id n[0-9]+ --data "+dir).Output()
	return strings.Fields(string(out))
}

// TestBenchRunPassesAndCleansUp runs a short bench with partition and
// kill nemeses against spawned servers, secured (--secure: TLS, tokens,
// gossip encryption; the partitions go through the admin endpoint with
// the run's admin token): it must pass its checks, write its three
// files, and leave no process behind.
func TestBenchRunPassesAndCleansUp(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	out := t.TempDir()
	data := filepath.Join(t.TempDir(), "cluster")
	r := runDotkvEnv(t, nil, "", "bench", "--spawn", "3", "--duration", "8s", "--nemesis", "partition-halves,kill",
		"--nemesis-interval", "1500ms", "--nemesis-mode", "filter", "--concurrency", "8", "--keys", "200",
		"--out", out, "--data", data, "--seed", "7", "--secure")
	if r.code != 0 {
		t.Fatalf("bench: %v", r)
	}
	if !strings.Contains(r.stdout, "PASS") || !strings.Contains(r.stdout, "lost acknowledged writes") {
		t.Fatalf("summary: %s", r.stdout)
	}
	var rep map[string]any
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ops", "ok", "failed", "lost_acknowledged_writes", "stale_reads", "convergence_seconds", "throughput_ops_per_sec", "latency_ms", "phases"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("report.json lacks %q", k)
		}
	}
	if rep["lost_acknowledged_writes"].(float64) != 0 || rep["ops"].(float64) == 0 {
		t.Errorf("report: lost %v of %v ops", rep["lost_acknowledged_writes"], rep["ops"])
	}
	phases := rep["phases"].([]any)
	var names []string
	for _, p := range phases {
		names = append(names, p.(map[string]any)["name"].(string))
	}
	if j := strings.Join(names, ","); !strings.Contains(j, "partition-halves") || !strings.Contains(j, "kill n") {
		t.Errorf("phases %s lack a partition and a kill", j)
	}
	for _, f := range []string{"history.jsonl", "report.html"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	// The data dir given with --data is kept; its servers must all be gone.
	if left := serversOf(t, data); len(left) > 0 {
		t.Errorf("server processes left behind: %v", left)
	}
	if _, err := os.Stat(filepath.Join(data, "n1")); err != nil {
		t.Errorf("--data directory not kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "secure", "ca.pem")); err != nil {
		t.Errorf("--secure made no CA: %v", err)
	}
	if cfg, _ := rep["config"].(map[string]any); cfg["secure"] != true {
		t.Errorf("report.json's config does not say the run was secure: %v", cfg)
	}
}

// TestBenchInterruptedStopsEverything sends SIGINT mid-run: bench exits,
// stops its servers and removes its data directory.
func TestBenchInterruptedStopsEverything(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	p := startProc(t, "dotkv bench", "bench", "--spawn", "3", "--duration", "60s", "--nemesis", "partition-halves",
		"--nemesis-interval", "1s", "--nemesis-mode", "filter", "--concurrency", "4", "--keys", "100")
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.stderr.String(), "ops/s") {
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("bench did not start its workload: %s", p.stderr)
		}
		time.Sleep(pollInterval)
	}
	// Its own servers are its children; their command lines name the data dir.
	out, _ := exec.Command("pgrep", "-P", strconv.Itoa(p.cmd.Process.Pid)).Output()
	children := strings.Fields(string(out))
	if len(children) != 3 {
		t.Fatalf("bench has %d child processes, want 3 servers", len(children))
	}
	cmdline, err := os.ReadFile("/proc/" + children[0] + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var dir string
	args := strings.Split(string(cmdline), "\x00")
	for i, a := range args {
		if a == "--data" && i+1 < len(args) {
			dir = filepath.Dir(args[i+1])
		}
	}
	if !strings.Contains(dir, "dotkv-bench-") {
		t.Fatalf("server data dir %q is not a bench temp dir", dir)
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("bench did not exit within 30 s of SIGINT")
	}
	for _, pid := range children {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			t.Errorf("server process %s left behind after SIGINT", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data directory %s left behind (stat: %v)", dir, err)
	}
	if !strings.Contains(p.stderr.String(), "interrupted") {
		t.Errorf("stderr does not say it was interrupted: %s", p.stderr)
	}
}

// TestBenchMembershipNemesis runs a bench whose nemesis changes the
// membership of three spawned servers under the workload: a node joins,
// then one leaves (--nemesis-count 2 ends the run after both, however
// long they take). The run must pass its checks, record a join and a
// leave phase, end with three members, and leave no server process
// behind, neither the members' nor the one that left.
func TestBenchMembershipNemesis(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	out := t.TempDir()
	data := filepath.Join(t.TempDir(), "cluster")
	p := startProc(t, "dotkv bench", "bench", "--spawn", "3", "--duration", "6m", "--nemesis-count", "2",
		"--nemesis", "membership", "--nemesis-interval", "1s", "--membership-timeout", "3m", "--nemesis-mode", "filter",
		"--concurrency", "4", "--keys", "100", "--out", out, "--data", data, "--seed", "5")
	select {
	case <-p.done:
	case <-time.After(8 * time.Minute):
		_ = p.cmd.Process.Signal(syscall.SIGINT) // bench stops its servers on SIGINT
		select {
		case <-p.done:
		case <-time.After(time.Minute):
		}
		t.Fatal("bench did not end within 8 minutes")
	}
	if p.waitErr != nil || !strings.Contains(p.stdout.String(), "PASS") {
		t.Fatalf("bench: %v\nstdout:\n%s", p.waitErr, p.stdout)
	}
	var rep struct {
		Lost   int `json:"lost_acknowledged_writes"`
		Ops    int `json:"ops"`
		Phases []struct {
			Name  string `json:"name"`
			Fault bool   `json:"fault"`
		} `json:"phases"`
		Config map[string]any `json:"config"`
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Lost != 0 || rep.Ops == 0 {
		t.Errorf("report: lost %d of %d ops", rep.Lost, rep.Ops)
	}
	var names []string
	leaver := ""
	for _, ph := range rep.Phases {
		names = append(names, ph.Name)
		if id, ok := strings.CutPrefix(ph.Name, "leave "); ok {
			leaver = id
		}
		if (strings.HasPrefix(ph.Name, "join ") || strings.HasPrefix(ph.Name, "leave ")) && ph.Fault {
			t.Errorf("phase %q is marked a fault", ph.Name)
		}
	}
	if j := strings.Join(names, ","); !strings.Contains(j, "join n4") || leaver == "" {
		t.Fatalf("phases %s lack the join of n4 and a leave", j)
	}
	members, _ := rep.Config["members_at_end"].(string)
	if ids := strings.Split(members, ","); len(ids) != 3 || slices.Contains(ids, leaver) || leaver != "n4" && !slices.Contains(ids, "n4") {
		t.Errorf("members at the end: %q, want three, n4 among them unless it left, and not %s", members, leaver)
	}
	// The joiner got a data directory of its own under --data, kept.
	if _, err := os.Stat(filepath.Join(data, "n4")); err != nil {
		t.Errorf("n4's data directory: %v", err)
	}
	if left := serversOf(t, data); len(left) > 0 {
		t.Errorf("server processes left behind: %v", left)
	}
}
