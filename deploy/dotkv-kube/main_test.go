package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

func TestSplitPodName(t *testing.T) {
	for _, c := range []struct {
		name    string
		set     string
		ordinal int
		ok      bool
	}{
		{"dotkv-0", "dotkv", 0, true},
		{"dotkv-12", "dotkv", 12, true},
		{"my-dotkv-3", "my-dotkv", 3, true},
		{"dotkv", "", 0, false},
		{"dotkv-", "", 0, false},
		{"dotkv-x", "", 0, false},
		{"dotkv-+1", "", 0, false},
		{"-1", "", 0, false},
		{"n1", "", 0, false},
	} {
		set, ordinal, ok := splitPodName(c.name)
		if set != c.set || ordinal != c.ordinal || ok != c.ok {
			t.Errorf("splitPodName(%q) = %q, %d, %v; want %q, %d, %v", c.name, set, ordinal, ok, c.set, c.ordinal, c.ok)
		}
	}
}

func TestServerArgs(t *testing.T) {
	const join = "dotkv-0.dotkv.ns.svc:7946,dotkv-1.dotkv.ns.svc:7946,dotkv-2.dotkv.ns.svc:7946"
	for _, c := range []struct {
		pod  string
		args []string
		want []string
	}{
		// The first pod: itself dropped from --join, --new-cluster added.
		{"dotkv-0", []string{"--id=dotkv-0", "--data=/data", "--join=" + join},
			[]string{"--id=dotkv-0", "--data=/data", "--join=dotkv-1.dotkv.ns.svc:7946,dotkv-2.dotkv.ns.svc:7946", "--new-cluster"}},
		// Another pod: itself dropped, no --new-cluster; --id defaulted.
		{"dotkv-1", []string{"--data=/data", "--join", join},
			[]string{"--id=dotkv-1", "--data=/data", "--join=dotkv-0.dotkv.ns.svc:7946,dotkv-2.dotkv.ns.svc:7946"}},
		// A --new-cluster of the flags is kept as it is, also =false.
		{"dotkv-0", []string{"--id=x", "--new-cluster=false", "-join=dotkv-0:7946"},
			[]string{"--id=x", "--new-cluster=false", "--join="}},
		// Not a StatefulSet pod (podman): only --id defaulted to the host name.
		{"n1", []string{"--data=/data", "--join=n1:7946,n2:7946"},
			[]string{"--id=n1", "--data=/data", "--join=n2:7946"}},
		// A host that merely starts with the pod name is another host.
		{"dotkv-1", []string{"--id=a", "--join=dotkv-10.dotkv:7946, dotkv-1:7946"},
			[]string{"--id=a", "--join=dotkv-10.dotkv:7946"}},
	} {
		got, notes := serverArgs(c.pod, c.args)
		if !slices.Equal(got, c.want) {
			t.Errorf("serverArgs(%q, %q) = %q, want %q", c.pod, c.args, got, c.want)
		}
		if len(notes) == 0 && !slices.Equal(c.args, c.want) {
			t.Errorf("serverArgs(%q, %q): changed the flags without a note", c.pod, c.args)
		}
	}
}

// TestMain lets the server test run this test binary as dotkv-kube.
func TestMain(m *testing.M) {
	if os.Getenv("DOTKV_KUBE_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// TestServerExecs runs dotkv-kube server (this test binary) with
// DOTKV_BIN=/bin/echo: it must exec the binary with "server" and the
// rewritten flags.
func TestServerExecs(t *testing.T) {
	echo, err := exec.LookPath("echo")
	if err != nil {
		t.Skip("no echo binary")
	}
	cmd := exec.Command(os.Args[0], "server", "--data=/data", "--join=dotkv-0.dotkv:7946,dotkv-1.dotkv:7946")
	cmd.Env = append(os.Environ(), "DOTKV_KUBE_TEST_MAIN=1", "DOTKV_BIN="+echo, "POD_NAME=dotkv-0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dotkv-kube server: %v\n%s", err, stderr.Bytes())
	}
	want := "server --id=dotkv-0 --data=/data --join=dotkv-1.dotkv:7946 --new-cluster\n"
	if stdout.String() != want {
		t.Errorf("exec'd with %q, want %q", stdout.String(), want)
	}
	if !strings.Contains(stderr.String(), "--new-cluster (ordinal 0") {
		t.Errorf("no note of --new-cluster on stderr: %q", stderr.String())
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	getenv := func(string) string { return "" }
	if code := run(nil, getenv, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage") {
		t.Errorf("no arguments: %d %q", code, errOut.String())
	}
	if code := run([]string{"nope"}, getenv, &out, &errOut); code != 2 {
		t.Errorf("unknown command: %d", code)
	}
	if code := run([]string{"prestop", "-h"}, getenv, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "-addr") {
		t.Errorf("prestop -h: %d %q", code, errOut.String())
	}
}

// fakeNode is a dotkv node's /cluster/leave and /healthz.
type fakeNode struct {
	srv    *httptest.Server
	leaves atomic.Int32
	polls  atomic.Int32
	token  string // the token /cluster/leave wants
	exitAt int32  // after this many polls: close (0: answer "left")
	status int    // of POST /cluster/leave
}

func newFakeNode(t *testing.T, token string, exitAt int32, status int) *fakeNode {
	f := &fakeNode{token: token, exitAt: exitAt, status: status}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/cluster/leave":
			if r.Header.Get("Authorization") != "Bearer "+f.token {
				http.Error(w, `{"code":"unauthorized"}`, http.StatusUnauthorized)
				return
			}
			f.leaves.Add(1)
			w.WriteHeader(f.status)
			fmt.Fprint(w, `{"node":"dotkv-2","status":"leaving"}`)
		case r.URL.Path == "/healthz":
			n := f.polls.Add(1)
			if f.exitAt == 0 && n >= 3 {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `{"node":"dotkv-2","status":"left"}`)
				return
			}
			if f.exitAt != 0 && n >= f.exitAt {
				go f.srv.Close() // the node exits
			}
			fmt.Fprint(w, `{"node":"dotkv-2","status":"leaving"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// fakeAPI serves StatefulSet dotkv in namespace ns with the given replicas
// (-1: 403 forbidden) and returns the env and service account directory
// of a pod.
func fakeAPI(t *testing.T, replicas int) (map[string]string, string) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer tok":
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		case r.URL.Path != "/apis/apps/v1/namespaces/ns/statefulsets/dotkv":
			http.NotFound(w, r)
		case replicas < 0:
			http.Error(w, `{"kind":"Status","reason":"Forbidden"}`, http.StatusForbidden)
		default:
			fmt.Fprintf(w, `{"spec":{"replicas":%d}}`, replicas)
		}
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	for name, b := range map[string][]byte{"token": []byte("tok\n"), "ca.crt": ca, "namespace": []byte("ns\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return map[string]string{"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port, "POD_NAME": "dotkv-2"}, dir
}

func TestPrestop(t *testing.T) {
	for _, c := range []struct {
		name       string
		replicas   int
		exitAt     int32
		leaveCode  int
		wantCode   int
		wantLeaves int32
		wantOut    string
	}{
		{"restart", 3, 0, http.StatusAccepted, 0, 0, "a restart, not a scale-down; not leaving"},
		{"scale to 0", 0, 0, http.StatusAccepted, 0, 0, "scaled to 0"},
		{"scale-down, node says left", 2, 0, http.StatusAccepted, 0, 1, "left the cluster"},
		{"scale-down, node exits", 1, 4, http.StatusAccepted, 0, 1, "left the cluster"},
		{"leave refused", 2, 0, http.StatusConflict, 1, 1, "409 Conflict"},
		{"no right to read the StatefulSet", -1, 0, http.StatusAccepted, 1, 0, "cannot tell a scale-down from a restart"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, sa := fakeAPI(t, c.replicas)
			node := newFakeNode(t, "admin-token", c.exitAt, c.leaveCode)
			tokenFile := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(tokenFile, []byte("admin-token\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			code := runPrestop(context.Background(), []string{"--addr=" + node.srv.URL, "--token-file=" + tokenFile,
				"--serviceaccount=" + sa, "--poll=10ms"}, func(k string) string { return env[k] }, &out, &out)
			if code != c.wantCode || node.leaves.Load() != c.wantLeaves || !strings.Contains(out.String(), c.wantOut) {
				t.Errorf("exit %d, %d leaves, output:\n%s\nwant exit %d, %d leaves, output with %q",
					code, node.leaves.Load(), out.String(), c.wantCode, c.wantLeaves, c.wantOut)
			}
		})
	}
}

func TestPrestopNeedsKubernetes(t *testing.T) {
	var out bytes.Buffer
	env := map[string]string{"POD_NAME": "dotkv-1"}
	if code := runPrestop(context.Background(), nil, func(k string) string { return env[k] }, &out, &out); code != 1 ||
		!strings.Contains(out.String(), "not leaving") {
		t.Errorf("outside Kubernetes: exit %d, %q", code, out.String())
	}
	env = map[string]string{"POD_NAME": "n1"}
	if code := runPrestop(context.Background(), nil, func(k string) string { return env[k] }, &out, &out); code != 1 ||
		!strings.Contains(out.String(), "SET-ORDINAL") {
		t.Errorf("pod name without ordinal: exit %d, %q", code, out.String())
	}
}
