package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MaxMessage bounds request and reply bodies (values are ≤ a few MiB plus
// metadata; anti-entropy and hint batches stay below it).
const MaxMessage = 64 << 20

// Server defaults.
const (
	helloTimeout = 5 * time.Second
	// closeGrace is how long Close waits for handlers in flight before
	// cancelling their contexts.
	closeGrace = 5 * time.Second
	// workerIdle is how long an idle handler goroutine waits for another
	// call before it exits.
	workerIdle = 10 * time.Second
)

// ErrBlocked is returned for calls the fault filter drops.
var ErrBlocked = errors.New("blocked by fault filter")

// ErrUnknownPeer is returned when a node ID has no known RPC address.
var ErrUnknownPeer = errors.New("unknown peer")

// RemoteError is an error the remote node returned: Status is 500 for a
// handler's error, 404 for an unknown method, 400 for a request over
// MaxMessage and 504 for a request that arrived after its deadline.
type RemoteError struct {
	Status int
	Msg    string
}

func (e *RemoteError) Error() string { return fmt.Sprintf("remote error %d: %s", e.Status, e.Msg) }

// Handler serves one RPC method: from is the caller's node ID. ctx carries
// the caller's deadline. The handler owns req.
type Handler func(ctx context.Context, from string, req []byte) ([]byte, error)

// Server serves RPC methods to other nodes' Clients.
type Server struct {
	self   string
	filter *Filter
	log    *slog.Logger
	ln     net.Listener
	base   context.Context // handlers' contexts derive from it; Close cancels it
	cancel context.CancelFunc
	served atomic.Bool

	closeOnce sync.Once
	closeErr  error

	mu struct {
		sync.RWMutex
		handlers map[string]route
		conns    map[*conn]struct{}
		closed   bool
	}
	expired atomic.Uint64 // requests dropped because their deadline had passed

	tls          *tls.Config   // nil: plain TCP
	helloTimeout time.Duration // helloTimeout (tests shorten it)
	refused      atomic.Uint64 // failed TLS handshakes
	refusedLog   atomic.Int64  // Unix nanoseconds of the last one logged at warn level

	tasks   chan task      // to idle workers
	quit    chan struct{}  // closed when workers must exit
	calls   sync.WaitGroup // handlers in flight
	workers sync.WaitGroup // handler goroutines
	loops   sync.WaitGroup // the accept loop and connection loops
}

// task is one request to handle.
type task struct {
	ctx    context.Context // the connection's
	c      *conn
	h      Handler
	from   string
	id     uint64
	dl     int64
	req    []byte
	method string
}

// NewServer listens on addr (host:port; port 0 picks one). Register
// handlers, then call Serve. Options: WithTLS.
func NewServer(self, addr string, filter *Filter, log *slog.Logger, opts ...Option) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := collect(opts)
	if o.tls != nil {
		if err := checkServerTLS(o.tls); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rpc listen on %s: %w", addr, err)
	}
	s := &Server{self: self, filter: filter, log: log, ln: ln, tls: o.tls, helloTimeout: helloTimeout, tasks: make(chan task), quit: make(chan struct{})}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.mu.handlers = map[string]route{}
	s.mu.conns = map[*conn]struct{}{}
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Handle registers fn for method; each call runs on a handler goroutine.
func (s *Server) Handle(method string, fn Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.handlers[method] = route{h: fn}
}

// HandleInline registers fn for method to run on the connection's read
// loop, with no goroutine handoff: for short handlers that never block
// (a point read), since the caller's later requests wait for it.
func (s *Server) HandleInline(method string, fn Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.handlers[method] = route{h: fn, inline: true}
}

// route is a registered handler.
type route struct {
	h      Handler
	inline bool
}

// Expired returns how many requests were dropped because they arrived
// after their deadline.
func (s *Server) Expired() uint64 { return s.expired.Load() }

// TLSRefused returns how many connections were closed because their TLS
// handshake failed (no certificate, one the CA did not sign, not TLS at
// all, or no handshake within the hello timeout).
func (s *Server) TLSRefused() uint64 { return s.refused.Load() }

// refusedWarnEvery spaces out the warnings for refused TLS handshakes:
// each refusal is logged at debug level, and at most one per interval at
// warn level, so that a misconfigured peer or a scanner cannot flood the
// log.
const refusedWarnEvery = time.Minute

// handshakeFailed counts and logs a failed TLS handshake.
func (s *Server) handshakeFailed(remote string, err error) {
	if s.closing() {
		return // Close interrupted it
	}
	n := s.refused.Add(1)
	s.log.Debug("rpc: TLS handshake failed", "remote", remote, "err", err)
	now, last := time.Now().UnixNano(), s.refusedLog.Load()
	if last != 0 && now-last < int64(refusedWarnEvery) || !s.refusedLog.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("rpc: refused a connection whose TLS handshake failed (a peer without a certificate from the cluster CA?); more within a minute are logged at debug level",
		"remote", remote, "err", err, "refused_total", n)
}

// Serve starts serving in the background; Close stops it.
func (s *Server) Serve() {
	s.served.Store(true)
	s.loops.Go(s.acceptLoop)
}

func (s *Server) acceptLoop() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("rpc accept", "err", err)
			}
			return
		}
		if s.filter.BlockedAddr(nc.RemoteAddr().String()) {
			_ = nc.Close() // as a cut link would
			continue
		}
		raw := nc
		if s.tls != nil {
			nc = tls.Server(raw, s.tls) // the handshake runs in serveConn
		}
		c := newConn(nc, raw)
		s.mu.Lock()
		if s.mu.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.mu.conns[c] = struct{}{}
		s.mu.Unlock()
		s.loops.Go(func() { s.serveConn(c) })
	}
}

// serveConn reads a caller's requests and dispatches them; its writer
// sends the replies.
func (s *Server) serveConn(c *conn) {
	defer func() {
		s.mu.Lock()
		delete(s.mu.conns, c)
		s.mu.Unlock()
	}()
	var writer sync.WaitGroup
	writer.Go(c.writeLoop)
	defer writer.Wait()
	remote := c.nc.RemoteAddr().String()
	// The handshake (TLS) and the hello within helloTimeout; nothing else
	// is read before both succeed.
	_ = c.nc.SetDeadline(time.Now().Add(s.helloTimeout))
	if tc, ok := c.nc.(*tls.Conn); ok {
		if err := tc.HandshakeContext(s.base); err != nil {
			s.handshakeFailed(remote, err)
			c.shut(err)
			return
		}
	}
	br := bufio.NewReaderSize(c.nc, 64<<10)
	f, err := readFrameMax(br, maxHelloFrame)
	if err != nil {
		c.shut(err)
		return
	}
	from, err := parseHello(f)
	if err != nil {
		s.log.Debug("rpc: refused connection", "remote", remote, "err", err)
		c.shut(err)
		return
	}
	if s.filter.BlockedID(from) || s.filter.BlockedAddr(remote) {
		c.shut(ErrBlocked) // as a cut link would
		return
	}
	_ = c.nc.SetDeadline(time.Time{})
	if s.tls != nil {
		// The caller waits for this before sending requests (WithTLS).
		c.enqueue(outFrame{kind: frameHello, payload: helloPayload(s.self)})
	}
	// Handlers' contexts end when the caller's connection does.
	connCtx, cancel := context.WithCancel(s.base)
	c.cancel = cancel // Close calls it if the loop below does not
	for {
		f, err := readFrame(br)
		if err != nil {
			if !s.closing() { // else Close sends the replies in flight, then shuts c
				cancel()
				c.shut(err)
			}
			return
		}
		if f.kind != frameRequest {
			cancel()
			c.shut(fmt.Errorf("%w: kind %d from a client", errFrame, f.kind))
			return
		}
		if s.filter.BlockedID(from) || s.filter.BlockedAddr(remote) {
			// Drop: close the connection without an answer, as a cut link would.
			cancel()
			c.shut(ErrBlocked)
			return
		}
		if f.deadline != 0 && time.Now().UnixNano() >= f.deadline {
			s.expired.Add(1)
			c.enqueue(outFrame{kind: frameReply, id: f.id, status: statusExpired, payload: []byte("deadline passed before the request was handled")})
			continue
		}
		s.mu.RLock()
		if s.mu.closed {
			s.mu.RUnlock()
			return // Close sends the replies in flight, then shuts c
		}
		rt := s.mu.handlers[f.method]
		h := rt.h
		if h != nil && len(f.payload) <= MaxMessage {
			s.calls.Add(1) // under the lock, so never after Close's Wait began
		}
		s.mu.RUnlock()
		if h == nil {
			c.enqueue(outFrame{kind: frameReply, id: f.id, status: statusUnknownMethod, payload: []byte("unknown method " + f.method)})
			continue
		}
		if len(f.payload) > MaxMessage {
			c.enqueue(outFrame{kind: frameReply, id: f.id, status: statusTooLarge, payload: []byte("request body too large")})
			continue
		}
		t := task{ctx: connCtx, c: c, h: h, from: from, id: f.id, dl: f.deadline, req: f.payload, method: f.method}
		if rt.inline {
			s.run(t)
		} else {
			s.dispatch(t)
		}
	}
}

// closing reports whether Close has begun.
func (s *Server) closing() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.closed
}

// dispatch hands t to an idle handler goroutine, or starts one: a
// goroutine serves many calls in turn, so its stack is grown once.
func (s *Server) dispatch(t task) {
	select {
	case s.tasks <- t:
	default:
		s.workers.Go(func() { s.work(t) })
	}
}

// work runs t, then further tasks, until idle for workerIdle or the
// server closes.
func (s *Server) work(t task) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		s.run(t)
		idle.Reset(workerIdle)
		select {
		case t = <-s.tasks:
		case <-idle.C:
			return
		case <-s.quit:
			return
		}
	}
}

// run calls t's handler and queues its reply.
func (s *Server) run(t task) {
	defer s.calls.Done()
	ctx := t.ctx
	if t.dl != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, t.dl))
		defer cancel()
	}
	resp, err := t.h(ctx, t.from, t.req)
	out := outFrame{kind: frameReply, id: t.id, payload: resp}
	switch {
	case err != nil:
		out.status, out.payload = statusError, []byte(err.Error())
	case len(resp) > MaxMessage:
		out.status, out.payload = statusError, fmt.Appendf(nil, "reply of %d bytes exceeds %d", len(resp), MaxMessage)
	}
	t.c.enqueue(out)
}

// Close stops accepting, stops reading requests, waits up to a few
// seconds for handlers in flight (then cancels their contexts and waits
// for them), sends their replies and closes every connection. A server
// that never served (its node failed to start) just closes its listener.
// Calling Close again returns the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	err := s.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	if !s.served.Load() {
		s.cancel()
		return err
	}
	s.mu.Lock()
	s.mu.closed = true
	conns := make([]*conn, 0, len(s.mu.conns))
	for c := range s.mu.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	// Stop reading new requests; replies can still be written.
	for _, c := range conns {
		if tc, ok := c.raw.(interface{ CloseRead() error }); ok {
			_ = tc.CloseRead()
		} else {
			_ = c.nc.SetReadDeadline(time.Now())
		}
	}
	done := make(chan struct{})
	go func() { s.calls.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeGrace):
		s.log.Warn("rpc: handlers still running at close; cancelling them")
		s.cancel()
		<-done
	}
	s.cancel()
	close(s.quit)
	s.workers.Wait()
	for _, c := range conns {
		c.flushAndShut()
	}
	s.loops.Wait()
	// Every serveConn has returned, so c.cancel is read after its last
	// write (a connection still in its handshake when Close began sets it
	// late). s.cancel already ended these contexts; this releases them.
	for _, c := range conns {
		if c.cancel != nil {
			c.cancel()
		}
	}
	return err
}
