package memnet

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
)

// In-memory stream listeners, for the nodes' client APIs: an http.Server
// serves on ListenStream's listener, and an http.Client whose transport's
// DialContext is Network.DialContext reaches it. This is client traffic
// (from the test, which is no node): partitions and faults do not apply.
// Connections are net.Pipe pairs, so an HTTP exchange on them runs under
// testing/synctest when the network is created in the bubble.

type streamListener struct {
	net    *Network
	addr   Addr
	accept chan net.Conn
	done   chan struct{}
	once   sync.Once
}

type listenerState struct {
	byAddr  map[string]*streamListener
	clients atomic.Int64 // numbers the dialers' fake local ports
}

// ListenStream returns an in-memory listener at addr ("ip:port", unique
// among open listeners).
func (n *Network) ListenStream(addr string) (net.Listener, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("memnet: listen on %q: %w", addr, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.listeners.byAddr == nil {
		n.mu.listeners.byAddr = map[string]*streamListener{}
	}
	if _, ok := n.mu.listeners.byAddr[addr]; ok {
		return nil, &net.OpError{Op: "listen", Net: "memnet", Addr: Addr(addr), Err: fmt.Errorf("address already in use")}
	}
	l := &streamListener{net: n, addr: Addr(addr), accept: make(chan net.Conn), done: make(chan struct{})}
	n.mu.listeners.byAddr[addr] = l
	return l, nil
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "memnet", Addr: l.addr, Err: net.ErrClosed}
	}
}

func (l *streamListener) Close() error {
	l.once.Do(func() {
		l.net.mu.Lock()
		if l.net.mu.listeners.byAddr[string(l.addr)] == l {
			delete(l.net.mu.listeners.byAddr, string(l.addr))
		}
		l.net.mu.Unlock()
		close(l.done)
	})
	return nil
}

func (l *streamListener) Addr() net.Addr { return l.addr }

// DialContext connects to a ListenStream listener; network is ignored. Its
// signature fits http.Transport.DialContext. A dial to an address nobody
// listens on fails at once with a *net.OpError (Op "dial").
func (n *Network) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	l := n.mu.listeners.byAddr[addr]
	n.mu.Unlock()
	refused := &net.OpError{Op: "dial", Net: "memnet", Addr: Addr(addr), Err: ErrRefused}
	if l == nil {
		return nil, refused
	}
	local := Addr("10.255.255.254:" + strconv.FormatInt(10000+n.mu.listeners.clients.Add(1)%50000, 10))
	client, server := net.Pipe()
	select {
	case l.accept <- &pipeConn{Conn: server, local: l.addr, remote: local}:
		return &pipeConn{Conn: client, local: local, remote: l.addr}, nil
	case <-l.done:
	case <-ctx.Done():
		refused.Err = ctx.Err()
	}
	_ = client.Close()
	_ = server.Close()
	return nil, refused
}

// pipeConn is a net.Pipe end with ip:port addresses.
type pipeConn struct {
	net.Conn
	local, remote Addr
}

func (c *pipeConn) LocalAddr() net.Addr  { return c.local }
func (c *pipeConn) RemoteAddr() net.Addr { return c.remote }
