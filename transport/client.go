package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Client defaults.
const (
	dialTimeout = 2 * time.Second
	// defaultCallTimeout bounds a call whose context has no deadline.
	defaultCallTimeout = 5 * time.Second
	// maxInFlight bounds the calls outstanding on one connection; callers
	// beyond it wait (backpressure) until one finishes or their context
	// ends (then the call was not sent).
	maxInFlight = 4096
)

// ErrClosed is returned for calls on a closed Client.
var ErrClosed = errors.New("transport: client closed")

// errNotSent marks an error after which the request certainly never left
// this node (NotDelivered is true for it).
var errNotSent = errors.New("request not sent")

// errConnClosed is the not-sent failure of a call whose connection failed
// before its request was written.
var errConnClosed = fmt.Errorf("connection closed before sending: %w", errNotSent)

// errConnLost is the outcome-unknown failure of a call whose request was
// written to a connection that then failed.
var errConnLost = errors.New("connection lost (outcome unknown)")

// Client calls other nodes' RPC servers: one persistent connection per
// peer, carrying many calls at once.
type Client struct {
	self    string
	filter  *Filter
	resolve func(id string) (addr string, ok bool)
	dialer  net.Dialer
	tls     *tls.Config // nil: plain TCP

	mu struct {
		sync.Mutex
		peers  map[string]*dialing
		closed bool
	}
	wg sync.WaitGroup // connections' reader and writer goroutines
}

// dialing is a peer's connection, or the dial that makes it; callers that
// find a dial in progress wait for it.
type dialing struct {
	addr  string
	ready chan struct{} // closed when the dial is done
	pc    *peerConn
	err   error
}

// NewClient returns a client for node self. resolve maps node IDs to RPC
// addresses; sourceIP, if not empty, is the local address outgoing
// connections use (so that iptables rules between node addresses apply).
// Options: WithTLS.
func NewClient(self string, sourceIP string, filter *Filter, resolve func(id string) (string, bool), opts ...Option) *Client {
	c := &Client{self: self, filter: filter, resolve: resolve, tls: collect(opts).tls}
	c.dialer = net.Dialer{Timeout: dialTimeout, KeepAlive: 15 * time.Second}
	if ip := net.ParseIP(sourceIP); ip != nil && !ip.IsUnspecified() {
		c.dialer.LocalAddr = &net.TCPAddr{IP: ip}
	}
	c.mu.peers = map[string]*dialing{}
	return c
}

// Call invokes method on node id with req and returns the reply. ctx's
// deadline (5 s if it has none) bounds the call and travels with the
// request: the remote node drops a request that arrives after it. req
// must not be modified until Call returns, nor after if Call failed with
// ctx's error (it may still be written).
func (c *Client) Call(ctx context.Context, id, method string, req []byte) ([]byte, error) {
	reply, err := c.call(ctx, id, method, req)
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", method, id, err)
	}
	return reply, nil
}

func (c *Client) call(ctx context.Context, id, method string, req []byte) ([]byte, error) {
	if c.filter.BlockedID(id) {
		return nil, ErrBlocked
	}
	addr, ok := c.resolve(id)
	if !ok {
		return nil, ErrUnknownPeer
	}
	if c.filter.BlockedAddr(addr) {
		return nil, ErrBlocked
	}
	if len(req) > MaxMessage {
		return nil, &RemoteError{Status: 400, Msg: fmt.Sprintf("request of %d bytes exceeds %d", len(req), MaxMessage)}
	}
	if len(method) > 255 {
		return nil, fmt.Errorf("method name of %d bytes: %w", len(method), errNotSent)
	}
	if len(c.self) > maxNodeID {
		return nil, fmt.Errorf("own node ID of %d bytes (at most %d): %w", len(c.self), maxNodeID, errNotSent)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCallTimeout)
		defer cancel()
	}
	for attempt := 0; ; attempt++ {
		pc, err := c.conn(ctx, id, addr)
		if err != nil {
			return nil, err
		}
		reply, err := pc.call(ctx, method, req)
		if errors.Is(err, errConnClosed) && attempt == 0 && ctx.Err() == nil {
			continue // the connection failed before the request was written: once more on a new one
		}
		return reply, err
	}
}

// conn returns the connection to peer id at addr, dialing it if there is
// none (or it failed, or the peer's address changed).
func (c *Client) conn(ctx context.Context, id, addr string) (*peerConn, error) {
	for {
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: %w", ErrClosed, errNotSent)
		}
		d := c.mu.peers[id]
		if d == nil || d.stale(addr) {
			d = &dialing{addr: addr, ready: make(chan struct{})}
			c.mu.peers[id] = d
			c.mu.Unlock()
			d.pc, d.err = c.dial(ctx, addr)
			close(d.ready)
			return d.pc, d.err
		}
		c.mu.Unlock()
		select {
		case <-d.ready:
			if d.err != nil {
				return nil, d.err
			}
			if !d.pc.closed() {
				return d.pc, nil
			}
			// Lost since: dial again.
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a connection: %w: %w", ctx.Err(), errNotSent)
		}
	}
}

// stale reports whether d can no longer serve calls to addr.
func (d *dialing) stale(addr string) bool {
	select {
	case <-d.ready:
		return d.err != nil || d.pc.closed() || d.addr != addr
	default:
		return d.addr != addr
	}
}

// dial connects to addr within ctx (and dialTimeout), says hello and
// starts the connection's reader and writer. A dial error is a
// *net.OpError with Op "dial", or (TLS) a failed handshake or hello
// exchange: NotDelivered either way. Callers waiting for the same dial
// get it too, and the next call dials again.
func (c *Client) dial(ctx context.Context, addr string) (*peerConn, error) {
	raw, err := c.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	var (
		nc = raw
		br *bufio.Reader
	)
	if c.tls != nil {
		if nc, br, err = c.secure(ctx, raw, addr); err != nil {
			_ = raw.Close()
			return nil, fmt.Errorf("tls with %s: %w: %w", addr, err, errNotSent)
		}
	}
	pc := &peerConn{conn: newConn(nc, raw)}
	pc.pending = map[uint64]*call{}
	pc.slots = make(chan struct{}, maxInFlight)
	pc.onSent = pc.sent
	pc.onShut = pc.failAll
	if br == nil {
		// The hello goes first, ahead of any request.
		pc.enqueue(outFrame{kind: frameHello, payload: helloPayload(c.self)})
		br = bufio.NewReaderSize(nc, 64<<10)
	}
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		pc.shut(ErrClosed)
		return nil, fmt.Errorf("%w: %w", ErrClosed, errNotSent)
	}
	c.wg.Add(2)
	c.mu.Unlock()
	go func() { defer c.wg.Done(); pc.writeLoop() }()
	go func() { defer c.wg.Done(); pc.readLoop(br) }()
	return pc, nil
}

// secure runs the TLS handshake over raw, sends the hello and waits for
// the server's (WithTLS says why), all within ctx and dialTimeout. It
// returns the TLS connection and a reader of it.
func (c *Client) secure(ctx context.Context, raw net.Conn, addr string) (*tls.Conn, *bufio.Reader, error) {
	cfg := c.tls
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		// Verify the server against the host dialled (a config without
		// its own verification, not certs.Source.PeerClient's).
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
	}
	dl := time.Now().Add(dialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = raw.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Now()) })
	defer stop()
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, nil, fmt.Errorf("handshake: %w", err)
	}
	hello := outFrame{kind: frameHello, payload: helloPayload(c.self)}
	if _, err := tc.Write(append(appendHeader(make([]byte, 0, maxHelloFrame+4), &hello), hello.payload...)); err != nil {
		return nil, nil, fmt.Errorf("sending the hello: %w", err)
	}
	br := bufio.NewReaderSize(tc, 64<<10)
	f, err := readFrameMax(br, maxHelloFrame)
	if err != nil {
		return nil, nil, fmt.Errorf("waiting for the server's hello (was our certificate refused?): %w", err)
	}
	if _, err := parseHello(f); err != nil {
		return nil, nil, err
	}
	if !stop() {
		return nil, nil, ctx.Err() // it ended meanwhile, and cut the deadline short
	}
	_ = raw.SetDeadline(time.Time{})
	return tc, br, nil
}

// Close closes every connection (calls in flight fail) and waits for
// their goroutines.
func (c *Client) Close() {
	c.mu.Lock()
	c.mu.closed = true
	peers := c.mu.peers
	c.mu.peers = nil
	c.mu.Unlock()
	for _, d := range peers {
		<-d.ready
		if d.pc != nil {
			d.pc.shut(ErrClosed)
		}
	}
	c.wg.Wait()
}

// peerConn is the calling side of one connection.
type peerConn struct {
	*conn
	slots    chan struct{} // in-flight calls (backpressure)
	lastRead atomic.Int64  // Unix nanoseconds of the last frame read
	// Guarded by conn.mu:
	nextID  uint64
	pending map[uint64]*call
}

// call is one outstanding call. state is guarded by the connection's mu.
type call struct {
	id    uint64
	state callState
	reply chan result // buffered: the reader never blocks on it
}

type callState uint8

const (
	callQueued callState = iota
	callSent
	callAbandoned
)

type result struct {
	payload []byte
	err     error
}

// call sends one request and waits for its reply or ctx's end.
func (pc *peerConn) call(ctx context.Context, method string, req []byte) ([]byte, error) {
	select {
	case pc.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for an in-flight slot: %w: %w", ctx.Err(), errNotSent)
	}
	defer func() { <-pc.slots }()
	var deadline int64
	if dl, ok := ctx.Deadline(); ok {
		deadline = dl.UnixNano()
	}
	cl := &call{reply: make(chan result, 1)}
	start := time.Now().UnixNano()
	pc.mu.Lock()
	if pc.mu.closed {
		err := pc.mu.err
		pc.mu.Unlock()
		return nil, fmt.Errorf("%w (%w)", errConnClosed, err)
	}
	pc.nextID++
	cl.id = pc.nextID
	pc.pending[cl.id] = cl
	pc.mu.queue = append(pc.mu.queue, outFrame{kind: frameRequest, id: cl.id, deadline: deadline, method: method, payload: req, call: cl})
	pc.mu.Unlock()
	select {
	case pc.wake <- struct{}{}:
	default:
	}

	select {
	case r := <-cl.reply:
		return r.payload, r.err
	case <-ctx.Done():
	}
	pc.mu.Lock()
	state := cl.state
	if state == callQueued {
		cl.state = callAbandoned
	}
	delete(pc.pending, cl.id)
	pc.mu.Unlock()
	select {
	case r := <-cl.reply: // it arrived as ctx ended
		return r.payload, r.err
	default:
	}
	if state == callQueued {
		return nil, fmt.Errorf("%w: %w", ctx.Err(), errNotSent)
	}
	if pc.lastRead.Load() < start && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// Nothing arrived on the connection for the call's whole life: it
		// may be cut silently. Close it so that the next call dials anew
		// rather than queueing behind a dead link.
		pc.shut(fmt.Errorf("no frame received for %v", time.Duration(time.Now().UnixNano()-start)))
	}
	return nil, ctx.Err()
}

// sent marks a request as written; an abandoned one is skipped.
func (pc *peerConn) sent(f *outFrame) bool {
	if f.call == nil {
		return true
	}
	if f.call.state == callAbandoned {
		return false
	}
	f.call.state = callSent
	return true
}

// failAll fails every pending call when the connection is shut: those not
// yet written as not sent, the others as outcome unknown.
func (pc *peerConn) failAll(err error) {
	for id, cl := range pc.pending {
		if cl.state == callQueued {
			cl.reply <- result{err: fmt.Errorf("%w (%w)", errConnClosed, err)}
		} else {
			cl.reply <- result{err: fmt.Errorf("%w: %w", errConnLost, err)}
		}
		cl.state = callAbandoned
		delete(pc.pending, id)
	}
}

// readLoop delivers replies read from br (the connection's reader) to
// their calls until the connection fails.
func (pc *peerConn) readLoop(br *bufio.Reader) {
	for {
		f, err := readFrame(br)
		if err != nil {
			pc.shut(err)
			return
		}
		pc.lastRead.Store(time.Now().UnixNano())
		if f.kind != frameReply {
			pc.shut(fmt.Errorf("%w: kind %d from a server", errFrame, f.kind))
			return
		}
		pc.mu.Lock()
		cl := pc.pending[f.id]
		delete(pc.pending, f.id)
		pc.mu.Unlock()
		if cl != nil {
			cl.reply <- replyResult(f)
		}
	}
}

// replyResult maps a reply frame to the call's result.
func replyResult(f frame) result {
	switch f.status {
	case statusOK:
		return result{payload: f.payload}
	case statusUnknownMethod:
		return result{err: &RemoteError{Status: 404, Msg: string(f.payload)}}
	case statusTooLarge:
		return result{err: &RemoteError{Status: 400, Msg: string(f.payload)}}
	case statusExpired:
		return result{err: &RemoteError{Status: 504, Msg: string(f.payload)}}
	default:
		return result{err: &RemoteError{Status: 500, Msg: string(f.payload)}}
	}
}

// NotDelivered reports whether err means the request certainly never
// reached the remote handler (blocked, unknown peer, the connection could
// not be made, or the request was still queued when the call ended), so
// that retrying elsewhere cannot apply it twice.
func NotDelivered(err error) bool {
	if errors.Is(err, ErrBlocked) || errors.Is(err, ErrUnknownPeer) || errors.Is(err, errNotSent) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
