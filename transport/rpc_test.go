package transport

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair starts an RPC server for node "b" on 127.0.0.32 and a client for
// node "a" on 127.0.0.31, each with its own filter.
func pair(t *testing.T) (srv *Server, cli *Client, fa, fb *Filter) {
	t.Helper()
	hosts := func(id string) []string {
		return map[string][]string{"a": {"127.0.0.31"}, "b": {"127.0.0.32"}}[id]
	}
	fa, fb = NewFilter(hosts), NewFilter(hosts)
	srv, err := NewServer("b", "127.0.0.32:0", fb, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle("echo", func(_ context.Context, from string, req []byte) ([]byte, error) {
		return append([]byte(from+":"), req...), nil
	})
	srv.Handle("fail", func(context.Context, string, []byte) ([]byte, error) {
		return nil, errors.New("handler says no")
	})
	// slow answers only when the test ends, long after its callers' deadlines.
	release := make(chan struct{})
	srv.Handle("slow", func(context.Context, string, []byte) ([]byte, error) {
		<-release
		return nil, nil
	})
	srv.Serve()
	addr := srv.Addr()
	cli = NewClient("a", "127.0.0.31", fa, func(id string) (string, bool) { return addr, id == "b" })
	t.Cleanup(func() {
		close(release)
		cli.Close()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv, cli, fa, fb
}

func callB(cli *Client, method string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return cli.Call(ctx, "b", method, []byte("hi"))
}

func TestCallCarriesCallerAndBody(t *testing.T) {
	_, cli, _, _ := pair(t)
	got, err := callB(cli, "echo")
	if err != nil || string(got) != "a:hi" {
		t.Fatalf("echo = %q, %v; want a:hi", got, err)
	}
}

func TestRemoteErrorsAndUnknowns(t *testing.T) {
	_, cli, _, _ := pair(t)
	_, err := callB(cli, "fail")
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != 500 || !strings.Contains(re.Msg, "handler says no") {
		t.Fatalf("fail: err = %v", err)
	}
	if _, err := callB(cli, "nosuch"); !errors.As(err, &re) || re.Status != 404 {
		t.Fatalf("unknown method: err = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := cli.Call(ctx, "zz", "echo", nil); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("unknown peer: err = %v", err)
	}
}

func TestDeadlineBoundsACall(t *testing.T) {
	_, cli, _, _ := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := cli.Call(ctx, "b", "slow", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow call: err = %v, want deadline exceeded", err)
	}
	// The handler answers only when the test ends: had the deadline not
	// ended the call, it would not have returned at all.
	t.Logf("a call with a 100 ms deadline to a handler that does not answer returned after %v", time.Since(start))
}

func TestFilterDropsBothDirections(t *testing.T) {
	_, cli, fa, fb := pair(t)
	fa.Block("b") // outbound at the caller
	if _, err := callB(cli, "echo"); !errors.Is(err, ErrBlocked) {
		t.Fatalf("caller blocks callee: err = %v", err)
	}
	fa.Heal()
	fb.Block("a") // inbound at the callee: the connection is dropped
	if _, err := callB(cli, "echo"); err == nil {
		t.Fatal("callee blocks caller: call succeeded")
	}
	if got := fb.Blocked(); len(got) != 1 || got[0] != "a" {
		t.Fatalf("Blocked() = %v", got)
	}
	fb.Heal("a")
	if _, err := callB(cli, "echo"); err != nil {
		t.Fatalf("after heal: %v", err)
	}
}

func TestFilterByAddress(t *testing.T) {
	f := NewFilter(func(id string) []string { return map[string][]string{"n3": {"127.0.0.13"}}[id] })
	if f.BlockedAddr("127.0.0.13:7946") {
		t.Fatal("blocked before Block")
	}
	f.Block("n3")
	for _, a := range []string{"127.0.0.13:7946", "127.0.0.13"} {
		if !f.BlockedAddr(a) {
			t.Errorf("BlockedAddr(%q) = false", a)
		}
	}
	if f.BlockedAddr("127.0.0.12:7946") {
		t.Error("unrelated host blocked")
	}
	var nilFilter *Filter
	if nilFilter.BlockedID("x") || nilFilter.BlockedAddr("127.0.0.1:1") || nilFilter.Blocked() != nil {
		t.Error("nil filter blocks")
	}
}

// TestCloseWithoutServe: a server whose node failed to start before
// Serve closes at once (it used to wait forever for Serve's result).
func TestCloseWithoutServe(t *testing.T) {
	srv, err := NewServer("a", "127.0.0.1:0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Close of a server that never served did not return")
	}
}
