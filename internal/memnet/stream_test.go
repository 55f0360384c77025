package memnet

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/dotkv/dotkv/internal/bubble"
)

// TestHTTPInMemory serves HTTP on an in-memory listener and calls it
// through DialContext, in a synctest bubble: a handler that sleeps takes
// exactly its virtual time.
func TestHTTPInMemory(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		n := New(1)
		ln, err := n.ListenStream("10.0.0.1:8080")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.ListenStream("10.0.0.1:8080"); err == nil {
			t.Error("a second listener on the same address succeeded")
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Second)
			_, _ = io.WriteString(w, "hello "+r.RemoteAddr)
		})}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		tr := &http.Transport{DialContext: n.DialContext}
		client := &http.Client{Transport: tr}

		start := time.Now()
		resp, err := client.Get("http://10.0.0.1:8080/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(body) != "hello 10.255.255.254:10001" || time.Since(start) != time.Second {
			t.Errorf("got %q after %v (virtual); want hello 10.255.255.254:10001 after 1s", body, time.Since(start))
		}

		_, err = client.Get("http://10.0.0.9:8080/")
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			t.Errorf("get from nobody: %v; want a dial error", err)
		}

		tr.CloseIdleConnections()
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("serve: %v", err)
		}
		// The address is free again.
		ln2, err := n.ListenStream("10.0.0.1:8080")
		if err != nil {
			t.Fatal(err)
		}
		_ = ln2.Close()
	})
}
