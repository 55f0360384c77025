package api_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dotkv/dotkv/api"
)

func TestNewHTTPServerSetsTimeouts(t *testing.T) {
	h := http.NotFoundHandler()
	srv := api.NewHTTPServer("127.0.0.1:7777", h, nil)
	if srv.Addr != "127.0.0.1:7777" {
		t.Errorf("Addr = %q", srv.Addr)
	}
	if srv.Handler == nil {
		t.Error("Handler not set")
	}
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": srv.ReadHeaderTimeout,
		"ReadTimeout":       srv.ReadTimeout,
		"WriteTimeout":      srv.WriteTimeout,
		"IdleTimeout":       srv.IdleTimeout,
	} {
		if d <= 0 {
			t.Errorf("%s = %v, want > 0", name, d)
		}
	}
	if srv.ReadHeaderTimeout > srv.ReadTimeout {
		t.Errorf("ReadHeaderTimeout %v above ReadTimeout %v", srv.ReadHeaderTimeout, srv.ReadTimeout)
	}
	// A request may run for up to MaxTimeout; the write timeout must not
	// cut its answer off first.
	if srv.WriteTimeout <= api.MaxTimeout {
		t.Errorf("WriteTimeout %v not above MaxTimeout %v", srv.WriteTimeout, api.MaxTimeout)
	}
	if srv.MaxHeaderBytes <= 0 {
		t.Errorf("MaxHeaderBytes = %d, want > 0", srv.MaxHeaderBytes)
	}
	if srv.ErrorLog == nil {
		t.Error("ErrorLog is nil: net/http would log to stderr")
	}
}

// serve starts srv on a loopback listener and shuts it down at the end of
// the test.
func serve(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

func TestHTTPServerClosesSlowHeaderConnection(t *testing.T) {
	n := newNode(t)
	srv := api.NewHTTPServer("", n.srv.Config.Handler, nil)
	srv.ReadHeaderTimeout = 200 * time.Millisecond
	addr := serve(t, srv)

	// A complete request is answered: the server works.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz = %d", res.StatusCode)
	}

	// A request line that never finishes is cut off by the server.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET /kv/slow HTT"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := slow.SetReadDeadline(start.Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(slow) // returns when the server closes the connection
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server kept a connection with an unfinished request line open for %v", time.Since(start))
	}
}

func TestHTTPServerLimitsHeaderBytes(t *testing.T) {
	n := newNode(t)
	srv := api.NewHTTPServer("", n.srv.Config.Handler, nil)
	addr := serve(t, srv)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("b", srv.MaxHeaderBytes+8192))
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("request with oversized headers = %d, want 431", res.StatusCode)
	}
}

func TestAdminEndpointsRefuseOtherMethodsWithJSON(t *testing.T) {
	n := newNode(t)
	for _, path := range []string{"/healthz", "/metrics"} {
		r := n.do(http.MethodPost, path, nil, nil)
		wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
		if got := r.header.Get("Allow"); got != "GET, HEAD" {
			t.Errorf("POST %s: Allow = %q", path, got)
		}
	}
}
