//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// devRun is a `dotkv dev --nodes 3` under test.
type devRun struct {
	*proc
	data             string
	port, gossipPort string   // --port and --gossip-port
	addrs            []string // HTTP host:port of n1, n2, n3, from the banner
	pids             []int    // of n1, n2, n3, from the banner
}

// devBannerLine is a node's line in dev's banner: id, HTTP address, pid.
var devBannerLine = regexp.MustCompile(`(?m)^ +(n\d+) +https?://(\S+) +\S+ +\S+ +(\d+)$`)

// devArgs is the command line of a 3-node dev on data and the ports.
func devArgs(data, port, gossipPort string, extra ...string) []string {
	return append([]string{"dev", "--nodes", "3", "--data", data, "--port", port, "--gossip-port", gossipPort}, extra...)
}

// startDevProc starts `dotkv dev` on data with free ports and waits until
// it prints its banner (ok) or exits (not ok). Should another test take
// one of its ports meanwhile (dev then refuses, or a node fails to bind),
// it tries other ports. When the test ends, dev is stopped (SIGTERM) if it
// still runs, and any server of data killed, so that a failing test leaves
// no process behind.
func startDevProc(t *testing.T, data string, extra ...string) (d *devRun, ok bool) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		d = &devRun{data: data, port: portOf(freeAddr(t)), gossipPort: portOf(freeAddr(t))}
		d.proc = startProc(t, "dotkv dev", devArgs(data, d.port, d.gossipPort, extra...)...)
		t.Cleanup(func() { cleanUpDev(t, d) })
		deadline := time.Now().Add(3 * startTimeout)
		for {
			if d.banner(t) {
				return d, true
			}
			if d.exited() {
				if busy := d.stderr.String(); (strings.Contains(busy, "is in use") || strings.Contains(busy, "address already in use")) && attempt < 5 {
					t.Logf("dev on ports %s/%s: a port was taken; trying others", d.port, d.gossipPort)
					break
				}
				return d, false
			}
			if time.Now().After(deadline) {
				t.Fatalf("dev printed no banner within %v", 3*startTimeout)
			}
			time.Sleep(pollInterval)
		}
	}
}

// startDevAgain starts a dev on prev's data directory and ports (its
// nodes find each other at the addresses their data records), once prev
// has stopped, and waits for its banner.
func startDevAgain(t *testing.T, prev *devRun, extra ...string) *devRun {
	t.Helper()
	d := &devRun{data: prev.data, port: prev.port, gossipPort: prev.gossipPort}
	d.proc = startProc(t, "dotkv dev", devArgs(d.data, d.port, d.gossipPort, extra...)...)
	t.Cleanup(func() { cleanUpDev(t, d) })
	deadline := time.Now().Add(3 * startTimeout)
	for {
		if d.banner(t) {
			return d
		}
		if d.exited() || time.Now().After(deadline) {
			t.Fatalf("dev on %s again printed no banner (exited: %v)\nstderr:\n%s", d.data, d.exited(), d.stderr)
		}
		time.Sleep(pollInterval)
	}
}

// banner reports whether dev has printed its banner, and if so records
// the three nodes' HTTP addresses and pids from it.
func (d *devRun) banner(t *testing.T) bool {
	m := devBannerLine.FindAllStringSubmatch(d.stdout.String(), -1)
	if len(m) != 3 {
		return false
	}
	for _, l := range m {
		d.addrs, d.pids = append(d.addrs, l[2]), append(d.pids, atoi(t, l[3]))
	}
	return true
}

// startDev is startDevProc for a dev that must start.
func startDev(t *testing.T, data string, extra ...string) *devRun {
	t.Helper()
	d, ok := startDevProc(t, data, extra...)
	if !ok {
		t.Fatalf("dev exited before printing its banner: %v\nstderr:\n%s", d.waitErr, d.stderr)
	}
	return d
}

// cleanUpDev stops d if it still runs and kills the servers of its data
// that outlive it.
func cleanUpDev(t *testing.T, d *devRun) {
	if !d.exited() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(stopTimeout):
		}
	}
	for _, pid := range serversOf(t, d.data) {
		if n, err := strconv.Atoi(pid); err == nil {
			t.Errorf("server pid %d of %s left behind; killing it", n, d.data)
			_ = syscall.Kill(n, syscall.SIGKILL)
		}
	}
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// state reads DATA/dev.json.
func (d *devRun) state(t *testing.T) devState {
	t.Helper()
	st, err := readDevState(d.data)
	if err != nil {
		t.Fatalf("read dev state: %v", err)
	}
	if len(st.Nodes) != 3 {
		t.Fatalf("dev state lists %d nodes, want 3: %+v", len(st.Nodes), st)
	}
	return st
}

// waitOutput waits until dev's stdout holds s.
func (d *devRun) waitOutput(t *testing.T, s string) {
	t.Helper()
	waitUntil(t, waitLimit, "dev to print "+strconv.Quote(s), func() bool {
		if d.exited() {
			t.Fatalf("dev exited (%v) before printing %q\nstdout:\n%s", d.waitErr, s, d.stdout)
		}
		return strings.Contains(d.stdout.String(), s)
	})
}

// runDevRestart runs `dotkv dev restart --data DATA id`, which may wait
// for a node to start on a busy machine for longer than cliTimeout.
func runDevRestart(t *testing.T, data, id string) cliResult {
	t.Helper()
	return runDevCommand(t, "dev", "restart", "--data", data, id)
}

// runDevCommand runs dotkv with args to completion, allowing for a node
// restart that takes long on a busy machine.
func runDevCommand(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), devRequestTimeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dotkvBin(t), args...)
	cmd.Env = cleanEnv()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("dotkv %q: %v", args, err)
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// alive reports whether process pid exists (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil { // no /proc here
		return syscall.Kill(pid, 0) == nil
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// TestDevKillRestartHangup breaks a dev cluster as the first Dynamo
// experiment does: kill -9 of n1 (the node the others joined) is
// reported, with the commands to bring it back, while n2 and n3 keep
// answering reads and writes; `dotkv dev restart n1`, from outside, brings
// it back and it answers again; SIGHUP (the terminal closing) stops dev
// and leaves no server running.
func TestDevKillRestartHangup(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	d := startDev(t, t.TempDir())
	seen := slices.Clone(d.pids) // every server pid, to check none is left
	var pids []string
	for _, pid := range d.pids {
		pids = append(pids, strconv.Itoa(pid))
	}
	if servers := serversOf(t, d.data); !sameSet(servers, pids) {
		t.Fatalf("server processes of %s: %v; the banner says %v", d.data, servers, pids)
	}
	st := d.state(t)
	if st.PID != d.cmd.Process.Pid {
		t.Errorf("dev.json names pid %d, dev is %d", st.PID, d.cmd.Process.Pid)
	}
	for i, n := range st.Nodes {
		if n.Status != "running" || n.PID != d.pids[i] {
			t.Errorf("dev.json after the banner: %s is %s (pid %d), want running (pid %d)", n.ID, n.Status, n.PID, d.pids[i])
		}
	}
	if r := runDotkv(t, "", "put", "--addr", d.addrs[0], "--w", "all", "before", "v1"); r.code != 0 {
		t.Fatalf("put before the kill: %v", r)
	}

	n1 := d.pids[0]
	if err := syscall.Kill(n1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.waitOutput(t, "n1 (pid "+strconv.Itoa(n1)+") died: signal: killed; n2 and n3 keep running.")
	out := d.stdout.String()
	byHand := "or by hand:  " + shellJoin([]string{dotkvBin(t), "server", "--id", "n1", "--data", filepath.Join(d.data, "n1")})
	if !strings.Contains(out, byHand) {
		t.Errorf("the report of n1's death lacks %q:\n%s", byHand, out)
	}
	if byHand := "or by hand:  " + shellJoin(st.Nodes[0].Argv) + "\n"; !strings.Contains(out, byHand) {
		t.Errorf("the report of n1's death lacks its command line in dev.json, %q:\n%s", byHand, out)
	}
	if restart := "restart it:  " + shellJoin([]string{dotkvBin(t), "dev", "restart", "--data", d.data, "n1"}); !strings.Contains(out, restart) {
		t.Errorf("the report of n1's death lacks %q:\n%s", restart, out)
	}
	// The others keep answering, and dev keeps running.
	if r := runDotkv(t, "", "put", "--addr", d.addrs[1], "during", "v2"); r.code != 0 {
		t.Fatalf("put through n2 with n1 dead: %v", r)
	}
	if r := runDotkv(t, "", "get", "--addr", d.addrs[2], "during"); r.code != 0 || !strings.Contains(r.stdout, "v2") {
		t.Fatalf("get through n3 with n1 dead: %v", r)
	}
	if r := runDotkv(t, "", "get", "--addr", d.addrs[1], "before"); r.code != 0 || !strings.Contains(r.stdout, "v1") {
		t.Fatalf("get through n2 with n1 dead: %v", r)
	}
	if d.exited() {
		t.Fatalf("dev exited after n1 died: %v", d.waitErr)
	}
	if st := d.state(t); st.Nodes[0].Status != "signal: killed" || st.Nodes[1].Status != "running" || st.Nodes[2].Status != "running" {
		t.Errorf("dev.json with n1 killed: %+v", st.Nodes)
	}

	// While something else holds its address, n1 cannot come back.
	ln, err := net.Listen("tcp", d.addrs[0])
	if err != nil {
		t.Fatalf("hold n1's address: %v", err)
	}
	r := runDevRestart(t, d.data, "n1")
	ln.Close()
	if r.code != exitError || !strings.Contains(r.stderr, "n1's HTTP address "+d.addrs[0]+" (tcp) is in use") {
		t.Errorf("dotkv dev restart n1 with its address taken: %v; want exit 2 saying so", r)
	}

	// Brought back from another process, n1 answers again.
	r = runDevRestart(t, d.data, "n1")
	if r.code != 0 || !strings.Contains(r.stdout, "n1 restarted") {
		t.Fatalf("dotkv dev restart n1: %v", r)
	}
	back := d.state(t).Nodes[0]
	seen = append(seen, back.PID)
	if back.Status != "running" || back.PID == n1 || !alive(back.PID) {
		t.Fatalf("dev.json after the restart: n1 is %s, pid %d (was %d)", back.Status, back.PID, n1)
	}
	if argv := procArgv(back.PID); argv != nil && !slices.Equal(argv, st.Nodes[0].Argv) {
		t.Errorf("restarted n1 runs %q, want %q", argv, st.Nodes[0].Argv)
	}
	d.waitOutput(t, "n1 restarted (pid "+strconv.Itoa(back.PID)+")")
	if r := runDotkv(t, "", "get", "--addr", d.addrs[0], "during"); r.code != 0 || !strings.Contains(r.stdout, "v2") {
		t.Fatalf("get through the restarted n1: %v", r)
	}
	if r := runDotkv(t, "", "put", "--addr", d.addrs[0], "--w", "all", "after", "v3"); r.code != 0 {
		t.Fatalf("put with w=all through the restarted n1: %v", r)
	}

	// A running node is restarted too (stopped, then started), and that
	// is no death.
	n2 := d.pids[1]
	// (--data after the node, as other commands take their flags.)
	if r := runDevCommand(t, "dev", "restart", "n2", "--data", d.data); r.code != 0 || !strings.Contains(r.stdout, "n2 restarted") {
		t.Fatalf("dotkv dev restart n2 (running): %v", r)
	}
	now := d.state(t).Nodes[1]
	seen = append(seen, now.PID)
	if now.PID == n2 || now.Status != "running" || alive(n2) {
		t.Errorf("after restarting n2 (pid %d): dev.json says %+v", n2, now)
	}
	if strings.Contains(d.stdout.String(), "n2 (pid "+strconv.Itoa(n2)+") died") {
		t.Errorf("dev reported the restart of n2 as a death:\n%s", d.stdout)
	}
	if r := runDotkv(t, "", "get", "--addr", d.addrs[1], "--r", "all", "after"); r.code != 0 || !strings.Contains(r.stdout, "v3") {
		t.Fatalf("get with r=all through the restarted n2: %v", r)
	}
	// Restarting a node that does not exist is refused.
	if r := runDevRestart(t, d.data, "n9"); r.code != exitError || !strings.Contains(r.stderr, `no node "n9"`) {
		t.Errorf("dotkv dev restart n9: %v; want exit 2 naming n9", r)
	}
	if r := runDevCommand(t, "dev", "restart", "--data", d.data, "n1", "n2"); r.code != exitError || !strings.Contains(r.stderr, `unexpected "n2"`) {
		t.Errorf("dotkv dev restart n1 n2: %v; want exit 2 refusing n2", r)
	}

	// The terminal closes: no dotkv process is left.
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(2 * stopTimeout):
		t.Fatalf("dev did not exit within %v of SIGHUP", 2*stopTimeout)
	}
	if d.waitErr != nil || !strings.Contains(d.stdout.String(), "hangup: stopping the nodes") || !strings.Contains(d.stdout.String(), "stopped cleanly") {
		t.Errorf("dev after SIGHUP: %v, stdout:\n%s", d.waitErr, d.stdout)
	}
	if left := serversOf(t, d.data); len(left) > 0 {
		t.Errorf("server processes left after SIGHUP: %v", left)
	}
	for _, pid := range seen {
		if alive(pid) {
			t.Errorf("server pid %d still runs after SIGHUP", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(d.data, devStateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s outlives dev (stat: %v)", devStateFile, err)
	}
	if r := runDevRestart(t, d.data, "n1"); r.code != exitError || !strings.Contains(r.stderr, "no dotkv dev runs on") {
		t.Errorf("dotkv dev restart with no dev: %v; want exit 2 saying so", r)
	}
}

// TestDevKilledLeavesNoServer: a dev killed with SIGKILL, which can stop
// nothing itself, leaves no server running: each got SIGTERM from the
// kernel when dev died.
func TestDevKilledLeavesNoServer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux has a parent-death signal")
	}
	dotkvBin(t)
	t.Parallel()
	d := startDev(t, t.TempDir())
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	waitUntil(t, waitLimit, "the servers of a killed dev to stop", func() bool { return len(serversOf(t, d.data)) == 0 })
	for _, pid := range d.pids {
		if alive(pid) {
			t.Errorf("server pid %d still runs after dev was killed", pid)
		}
	}
}

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestDevRefusesASecondDev: a second `dotkv dev` on the data directory of
// a running one, or on its addresses, exits 2 at once naming the first
// (its pid and addresses), prints no banner, starts no server, and leaves
// the first one serving.
func TestDevRefusesASecondDev(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	d := startDev(t, t.TempDir())
	first := strconv.Itoa(d.cmd.Process.Pid)
	before := serversOf(t, d.data)

	start := time.Now()
	r := runDotkv(t, "", devArgs(d.data, d.port, d.gossipPort)...)
	t.Logf("a second dev on the same data directory exited in %v", time.Since(start)) // no bound asserted: the machine may be busy
	if r.code != exitError || !strings.Contains(r.stderr, "another dotkv dev (pid "+first+")") || !strings.Contains(r.stderr, "n1 http://"+d.addrs[0]) {
		t.Errorf("a second dev on the same data: %v; want exit 2 naming pid %s and %s", r, first, d.addrs[0])
	}
	if strings.Contains(r.stdout, "node(s)") {
		t.Errorf("a refused dev printed the banner: %q", r.stdout)
	}

	other := t.TempDir()
	start = time.Now()
	r = runDotkv(t, "", devArgs(other, d.port, d.gossipPort)...)
	t.Logf("a second dev on the same addresses exited in %v", time.Since(start))
	if r.code != exitError || !strings.Contains(r.stderr, "n1's HTTP address "+d.addrs[0]+" (tcp) is in use") || !strings.Contains(r.stderr, "a node of dotkv dev pid "+first) {
		t.Errorf("a second dev on the same addresses: %v; want exit 2 naming %s and dev pid %s", r, d.addrs[0], first)
	}
	if strings.Contains(r.stdout, "node(s)") {
		t.Errorf("a refused dev printed the banner: %q", r.stdout)
	}
	if left := serversOf(t, other); len(left) > 0 {
		t.Errorf("a refused dev started servers: %v", left)
	}

	// The first one is unharmed.
	if after := serversOf(t, d.data); !sameSet(after, before) {
		t.Errorf("the first dev's servers were %v, now %v", before, after)
	}
	if st := d.state(t); strconv.Itoa(st.PID) != first {
		t.Errorf("dev.json names pid %d, want the first dev's %s", st.PID, first)
	}
	if r := runDotkv(t, "", "put", "--addr", d.addrs[2], "--w", "all", "k", "v"); r.code != 0 {
		t.Errorf("put with w=all through the first dev's n3: %v", r)
	}
	d.stop()
	if left := serversOf(t, d.data); len(left) > 0 {
		t.Errorf("server processes left after SIGTERM: %v", left)
	}
}

// TestDevStartupErrorNamesTheNode: when a node cannot start (here n3,
// whose data directory is a file), dev exits 2 naming that node, its
// addresses and why, not another node's, and stops the others.
func TestDevStartupErrorNamesTheNode(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "n3"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d, ok := startDevProc(t, data)
	if ok {
		t.Fatalf("dev started with n3's data directory a file:\n%s", d.stdout)
	}
	nodes := devLayout(3, data, data, atoi(t, d.port), atoi(t, d.gossipPort))
	// Dev's error comes last, after the nodes' own output (which names
	// their addresses).
	msg := d.stderr.String()
	if i := strings.LastIndex(msg, "dotkv: dev: "); i >= 0 {
		msg = msg[i:]
	}
	if d.cmd.ProcessState.ExitCode() != exitError || !strings.HasPrefix(msg, "dotkv: dev: ") || !strings.Contains(msg, "node n3 ("+nodes[2].http+", gossip "+nodes[2].gossip+") exited during start-up: exit status 2") || !strings.Contains(msg, "not a directory") {
		t.Errorf("dev with n3 unable to start: %v\nstderr:\n%s", d.waitErr, d.stderr)
	}
	if strings.Contains(msg, nodes[0].http) || strings.Contains(msg, nodes[0].gossip) {
		t.Errorf("the start-up error names n1's addresses (%s, %s):\n%s", nodes[0].http, nodes[0].gossip, msg)
	}
	if left := serversOf(t, data); len(left) > 0 {
		t.Errorf("server processes left after a failed start: %v", left)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestShellJoin: commands dev prints can be pasted into a shell.
func TestShellJoin(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"/usr/bin/dotkv", "server", "--id", "n1", "--http", "127.0.0.11:8080"}, "/usr/bin/dotkv server --id n1 --http 127.0.0.11:8080"},
		{[]string{"dotkv", "--data", "/my data/it's"}, `dotkv --data '/my data/it'\''s'`},
		{[]string{"a", "", "$HOME", "x;y"}, `a '' '$HOME' 'x;y'`},
	} {
		if got := shellJoin(c.args); got != c.want {
			t.Errorf("shellJoin(%q) = %s, want %s", c.args, got, c.want)
		}
	}
}

// TestNodeOutput: a node's output is passed on in whole lines, and its
// last lines are kept, the one without an end included once flushed.
func TestNodeOutput(t *testing.T) {
	var sink strings.Builder
	o := &nodeOutput{w: &lockedWriter{w: &sink}}
	for _, chunk := range []string{"l1\nl", "2\n", "l3", "\nl4\nl5\nl6\nl7\nl8\nl9\nl1", "0"} {
		if n, err := o.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
		if s := sink.String(); s != "" && !strings.HasSuffix(s, "\n") {
			t.Fatalf("passed on half a line: %q", s)
		}
	}
	o.flush()
	want := "l1\nl2\nl3\nl4\nl5\nl6\nl7\nl8\nl9\nl10\n"
	if sink.String() != want {
		t.Errorf("passed on %q, want %q", sink.String(), want)
	}
	if got := o.last(); !slices.Equal(got, []string{"l3", "l4", "l5", "l6", "l7", "l8", "l9", "l10"}) {
		t.Errorf("last lines %q", got)
	}
}

// TestRestartArgs: `dotkv dev restart` takes one node, and --data before
// it (parsed by cli) or after it.
func TestRestartArgs(t *testing.T) {
	for _, c := range []struct {
		args       []string
		node, data string
		err        string
	}{
		{[]string{"n3"}, "n3", "before", ""},
		{[]string{"n3", "--data", "d"}, "n3", "d", ""},
		{[]string{"n3", "--data=d"}, "n3", "d", ""},
		{[]string{"n3", "-data", "d"}, "n3", "d", ""},
		{nil, "", "", "want one node"},
		{[]string{"--data", "d"}, "", "", "want one node"},
		{[]string{"n1", "n2"}, "", "", `unexpected "n2"`},
		{[]string{"n1", "--nodes", "3"}, "", "", `unexpected "--nodes"`},
		{[]string{"n1", "--data"}, "", "", `unexpected "--data"`},
	} {
		node, data, err := restartArgs(c.args, "before")
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("restartArgs(%q) = %q, %q, %v; want an error with %q", c.args, node, data, err, c.err)
			}
			continue
		}
		if err != nil || node != c.node || data != c.data {
			t.Errorf("restartArgs(%q) = %q, %q, %v; want %q, %q", c.args, node, data, err, c.node, c.data)
		}
	}
}

// TestDevNodesIgnoreDevEnvironment: dev's nodes are configured by their
// command lines alone; a DOTKV_* variable in dev's environment does not
// reach them (here one that would refuse a key's second sibling).
func TestDevNodesIgnoreDevEnvironment(t *testing.T) {
	dotkvBin(t)
	t.Setenv("DOTKV_MAX_SIBLINGS", "1") // startProc passes the environment on
	d := startDev(t, t.TempDir())
	for i := range 2 {
		if r := runDotkv(t, "", "put", "--addr", d.addrs[0], "twice", fmt.Sprintf("v%d", i)); r.code != 0 {
			t.Fatalf("blind put %d: %v (did DOTKV_MAX_SIBLINGS reach the nodes?)", i+1, r)
		}
	}
	d.stop()
}
