package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestManyCallsShareOneConnection: concurrent calls are multiplexed on one
// connection and each gets its own reply.
func TestManyCallsShareOneConnection(t *testing.T) {
	srv, cli, _, _ := pair(t)
	srv.Handle("id", func(_ context.Context, _ string, req []byte) ([]byte, error) {
		return bytes.ToUpper(req), nil
	})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Go(func() {
			for i := range 50 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				want := fmt.Sprintf("caller-%d-call-%d", g, i)
				got, err := cli.Call(ctx, "b", "id", []byte(want))
				cancel()
				if err != nil || string(got) != string(bytes.ToUpper([]byte(want))) {
					errs <- fmt.Errorf("call %s = %q, %v", want, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	srv.mu.RLock()
	conns := len(srv.mu.conns)
	srv.mu.RUnlock()
	if conns != 1 {
		t.Errorf("server has %d connections from one client; want 1", conns)
	}
}

// TestDeadlineTravelsWithTheRequest: the handler's context carries the
// caller's deadline.
func TestDeadlineTravelsWithTheRequest(t *testing.T) {
	srv, cli, _, _ := pair(t)
	got := make(chan time.Time, 1)
	srv.Handle("dl", func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
		dl, _ := ctx.Deadline()
		got <- dl
		return nil, nil
	})
	dl := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	if _, err := cli.Call(ctx, "b", "dl", nil); err != nil {
		t.Fatal(err)
	}
	if h := <-got; !h.Equal(dl) {
		t.Fatalf("handler's deadline %v; want the caller's %v", h, dl)
	}
}

// rawConn dials srv and says hello as node from.
func rawConn(t *testing.T, srv *Server, from string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	if _, err := nc.Write(appendHeader(nil, &outFrame{kind: frameHello, payload: helloPayload(from)})); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(helloPayload(from)); err != nil {
		t.Fatal(err)
	}
	return nc, bufio.NewReader(nc)
}

func sendRequest(t *testing.T, nc net.Conn, f outFrame) {
	t.Helper()
	f.kind = frameRequest
	if _, err := nc.Write(append(appendHeader(nil, &f), f.payload...)); err != nil {
		t.Fatal(err)
	}
}

// TestExpiredRequestIsDropped: a request that arrives after its deadline
// (say, held up by TCP retransmission across a partition) is answered
// "expired" and never handled.
func TestExpiredRequestIsDropped(t *testing.T) {
	srv, _, _, _ := pair(t)
	var ran atomic.Int32
	srv.Handle("apply", func(context.Context, string, []byte) ([]byte, error) {
		ran.Add(1)
		return []byte("applied"), nil
	})
	nc, br := rawConn(t, srv, "a")
	sendRequest(t, nc, outFrame{id: 7, deadline: time.Now().Add(-time.Second).UnixNano(), method: "apply", payload: []byte("x")})
	sendRequest(t, nc, outFrame{id: 8, deadline: time.Now().Add(time.Hour).UnixNano(), method: "apply", payload: []byte("y")})
	replies := map[uint64]frame{}
	for len(replies) < 2 {
		f, err := readFrame(br)
		if err != nil {
			t.Fatal(err)
		}
		replies[f.id] = f
	}
	if f := replies[7]; f.status != statusExpired {
		t.Errorf("expired request: status %d %q; want statusExpired", f.status, f.payload)
	}
	if f := replies[8]; f.status != statusOK || string(f.payload) != "applied" {
		t.Errorf("live request: status %d %q", f.status, f.payload)
	}
	if ran.Load() != 1 || srv.Expired() != 1 {
		t.Errorf("handler ran %d times, %d expired; want 1 and 1", ran.Load(), srv.Expired())
	}
}

// TestNotDeliveredIsExact: a refused dial is not delivered; a call whose
// handler ran and whose connection then died is outcome unknown.
func TestNotDeliveredIsExact(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	cli := NewClient("a", "", nil, func(string) (string, bool) { return dead, true })
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.Call(ctx, "b", "echo", nil); err == nil || !NotDelivered(err) {
		t.Fatalf("call to a closed port: err = %v, NotDelivered = %v; want a not-delivered error", err, NotDelivered(err))
	}

	srv, err := NewServer("b", "127.0.0.1:0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	entered, left := make(chan struct{}), make(chan struct{})
	srv.Handle("hang", func(ctx context.Context, _ string, _ []byte) ([]byte, error) {
		close(entered)
		<-ctx.Done()
		close(left)
		return nil, ctx.Err()
	})
	srv.Serve()
	defer srv.Close()
	addr := srv.Addr()
	cli2 := NewClient("a", "", nil, func(string) (string, bool) { return addr, true })
	defer cli2.Close()
	errc := make(chan error, 1)
	go func() { _, err := cli2.Call(ctx, "b", "hang", nil); errc <- err }()
	<-entered
	// Kill the connection under the call: the handler has the request.
	cli2.mu.Lock()
	pc := cli2.mu.peers["b"].pc
	cli2.mu.Unlock()
	pc.shut(errors.New("test cuts the link"))
	if err := <-errc; err == nil || NotDelivered(err) || !errors.Is(err, errConnLost) {
		t.Fatalf("call whose handler ran: err = %v, NotDelivered = %v; want outcome unknown", err, NotDelivered(err))
	}
	// The caller's connection is gone: the handler's context ends (its
	// deadline is a minute away).
	<-left
}

// TestReconnectAfterServerRestart: a client whose connection was closed
// by a restarting server dials the new one.
func TestReconnectAfterServerRestart(t *testing.T) {
	srv, err := NewServer("b", "127.0.0.1:0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	echo := func(_ context.Context, _ string, req []byte) ([]byte, error) { return req, nil }
	srv.Handle("echo", echo)
	srv.Serve()
	addr := srv.Addr()
	cli := NewClient("a", "", nil, func(string) (string, bool) { return addr, true })
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.Call(ctx, "b", "echo", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv2, err := NewServer("b", addr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv2.Handle("echo", echo)
	srv2.Serve()
	defer srv2.Close()
	// The old connection may not be known dead yet: a call on it fails as
	// not sent or outcome unknown; one of a few later calls succeeds.
	for i := 0; ; i++ {
		got, err := cli.Call(ctx, "b", "echo", []byte("2"))
		if err == nil && string(got) == "2" {
			break
		}
		if i == 10 {
			t.Fatalf("no call succeeded after the restart: %v", err)
		}
	}
}

// TestCloseSendsRepliesInFlight: a handler running when the server closes
// finishes, and its caller gets the reply.
func TestCloseSendsRepliesInFlight(t *testing.T) {
	srv, cli, _, _ := pair(t)
	entered, release := make(chan struct{}), make(chan struct{})
	srv.Handle("work", func(context.Context, string, []byte) ([]byte, error) {
		close(entered)
		<-release
		return []byte("done"), nil
	})
	type res struct {
		b   []byte
		err error
	}
	got := make(chan res, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b, err := cli.Call(ctx, "b", "work", nil)
		got <- res{b, err}
	}()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	close(release)
	if r := <-got; r.err != nil || string(r.b) != "done" {
		t.Fatalf("call in flight at close: %q, %v; want done", r.b, r.err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestOversizedRequestIsRefused: a request over MaxMessage is refused
// before it is sent.
func TestOversizedRequestIsRefused(t *testing.T) {
	_, cli, _, _ := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := cli.Call(ctx, "b", "echo", make([]byte, MaxMessage+1))
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != 400 {
		t.Fatalf("oversized request: err = %v; want a 400", err)
	}
}

// TestHelloIsRequired: a connection that does not start with a dotkv
// hello (an HTTP client, a port scanner) is closed.
func TestHelloIsRequired(t *testing.T) {
	srv, _, _, _ := pair(t)
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("POST /rpc/v1/read HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(nc).ReadByte(); err == nil {
		t.Fatal("the server answered a non-dotkv client")
	}
}

func TestParseFrameRejectsMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		buf  []byte
	}{
		{"unknown kind", append([]byte{9}, make([]byte, 8)...)},
		{"short request", append([]byte{frameRequest}, make([]byte, 8+3)...)},
		{"method past end", append(append([]byte{frameRequest}, make([]byte, 16)...), 5, 'a')},
		{"short reply", append([]byte{frameReply}, make([]byte, 8)...)},
	} {
		if _, err := parseFrame(tc.buf); !errors.Is(err, errFrame) {
			t.Errorf("%s: err = %v; want errFrame", tc.name, err)
		}
	}
	want := outFrame{kind: frameRequest, id: 42, deadline: 99, method: "m", payload: []byte("body")}
	enc := append(appendHeader(nil, &want), want.payload...)
	f, err := parseFrame(enc[4:])
	if err != nil || f.id != 42 || f.deadline != 99 || f.method != "m" || string(f.payload) != "body" {
		t.Fatalf("round trip: %+v, %v", f, err)
	}
	if _, err := readFrame(bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}))); !errors.Is(err, errFrame) {
		t.Errorf("oversized frame: err = %v; want errFrame", err)
	}
}

// TestInlineHandlers: a method registered inline serves concurrent
// callers on the read loop, next to a regular one, and sees the caller's
// deadline.
func TestInlineHandlers(t *testing.T) {
	srv, cli, _, _ := pair(t)
	srv.HandleInline("inline", func(ctx context.Context, from string, req []byte) ([]byte, error) {
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("no deadline")
		}
		return append([]byte(from+"/"), req...), nil
	})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				method, want := "inline", fmt.Sprintf("a/%d-%d", g, i)
				if i%2 == 1 {
					method, want = "echo", fmt.Sprintf("a:%d-%d", g, i)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				got, err := cli.Call(ctx, "b", method, fmt.Appendf(nil, "%d-%d", g, i))
				cancel()
				if err != nil || string(got) != want {
					errs <- fmt.Errorf("%s = %q, %v; want %q", method, got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
