package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RPC wire conventions: POST /rpc/v1/{method} with a binary body; the
// caller names itself in HeaderFrom. 200 carries the reply body; any other
// status carries an error message (a *RemoteError on the client side).
const (
	rpcPrefix  = "/rpc/v1/"
	HeaderFrom = "X-Dotkv-From"
	// MaxMessage bounds request and reply bodies (values are ≤ a few MiB
	// plus metadata).
	MaxMessage = 64 << 20
)

// ErrBlocked is returned for calls the fault filter drops.
var ErrBlocked = errors.New("blocked by fault filter")

// ErrUnknownPeer is returned when a node ID has no known RPC address.
var ErrUnknownPeer = errors.New("unknown peer")

// RemoteError is an error the remote handler returned.
type RemoteError struct {
	Status int
	Msg    string
}

func (e *RemoteError) Error() string { return fmt.Sprintf("remote error %d: %s", e.Status, e.Msg) }

// Handler serves one RPC method: from is the caller's node ID.
type Handler func(ctx context.Context, from string, req []byte) ([]byte, error)

// Server serves RPC methods over HTTP/1.1.
type Server struct {
	self     string
	filter   *Filter
	log      *slog.Logger
	mu       sync.RWMutex
	handlers map[string]Handler
	srv      *http.Server
	ln       net.Listener
	done     chan error
	served   atomic.Bool
}

// NewServer listens on addr (host:port; port 0 picks one). Register
// handlers, then call Serve.
func NewServer(self, addr string, filter *Filter, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rpc listen on %s: %w", addr, err)
	}
	s := &Server{self: self, filter: filter, log: log, handlers: map[string]Handler{}, ln: ln, done: make(chan error, 1)}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Handle registers fn for method.
func (s *Server) Handle(method string, fn Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[method] = fn
}

// Serve starts serving in the background; Close stops it.
func (s *Server) Serve() {
	s.served.Store(true)
	go func() { s.done <- s.srv.Serve(s.ln) }()
}

// Close stops the server, waiting up to a few seconds for in-flight calls.
// A server that never served (its node failed to start) just closes its
// listener.
func (s *Server) Close() error {
	if !s.served.Load() {
		return s.ln.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// ServeHTTP dispatches one call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	from := r.Header.Get(HeaderFrom)
	if s.filter.BlockedID(from) || s.filter.BlockedAddr(r.RemoteAddr) {
		// Drop: close the connection without an answer, as a cut link would.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		http.Error(w, ErrBlocked.Error(), http.StatusServiceUnavailable)
		return
	}
	method, ok := strings.CutPrefix(r.URL.Path, rpcPrefix)
	if !ok || r.Method != http.MethodPost {
		http.Error(w, "not an RPC", http.StatusNotFound)
		return
	}
	s.mu.RLock()
	h := s.handlers[method]
	s.mu.RUnlock()
	if h == nil {
		http.Error(w, "unknown method "+method, http.StatusNotFound)
		return
	}
	req, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxMessage))
	if err != nil {
		http.Error(w, "read request: "+err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := h(r.Context(), from, req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(resp)
}

// Client calls other nodes' RPC servers over pooled keep-alive connections.
type Client struct {
	self    string
	filter  *Filter
	resolve func(id string) (addr string, ok bool)
	http    *http.Client
}

// NewClient returns a client for node self. resolve maps node IDs to RPC
// addresses; sourceIP, if not empty, is the local address outgoing
// connections use (so that iptables rules between node addresses apply).
func NewClient(self string, sourceIP string, filter *Filter, resolve func(id string) (string, bool)) *Client {
	dialer := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	if ip := net.ParseIP(sourceIP); ip != nil && !ip.IsUnspecified() {
		dialer.LocalAddr = &net.TCPAddr{IP: ip}
	}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256, // the default of 2 churns connections under fan-out
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0, // the call's context deadline bounds it
		DisableCompression:    true,
	}
	return &Client{self: self, filter: filter, resolve: resolve, http: &http.Client{Transport: tr}}
}

// Call invokes method on node id with req; ctx must carry a deadline.
func (c *Client) Call(ctx context.Context, id, method string, req []byte) ([]byte, error) {
	if c.filter.BlockedID(id) {
		return nil, fmt.Errorf("call %s on %s: %w", method, id, ErrBlocked)
	}
	addr, ok := c.resolve(id)
	if !ok {
		return nil, fmt.Errorf("call %s on %s: %w", method, id, ErrUnknownPeer)
	}
	if c.filter.BlockedAddr(addr) {
		return nil, fmt.Errorf("call %s on %s: %w", method, id, ErrBlocked)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+rpcPrefix+method, bytes.NewReader(req))
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", method, id, err)
	}
	hreq.Header.Set(HeaderFrom, c.self)
	hreq.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", method, id, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxMessage))
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: read reply: %w", method, id, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("call %s on %s: %w", method, id, &RemoteError{Status: resp.StatusCode, Msg: strings.TrimSpace(string(body))})
	}
	return body, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// NotDelivered reports whether err means the request certainly never
// reached the remote handler (blocked, unknown peer, or the connection
// could not be made), so that retrying elsewhere cannot apply it twice.
func NotDelivered(err error) bool {
	if errors.Is(err, ErrBlocked) || errors.Is(err, ErrUnknownPeer) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
