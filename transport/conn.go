package transport

import (
	"bufio"
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"time"
)

// writeBuffer is each connection's write buffer: frames queued while the
// previous batch was being written go out in one write.
const writeBuffer = 64 << 10

// conn is one TCP connection's sending half, shared by both ends: frames
// are queued by any goroutine and written by the connection's one writer
// goroutine, which coalesces everything queued into a single write.
type conn struct {
	nc   net.Conn      // what frames are read from and written to
	raw  net.Conn      // the TCP connection under nc (nc itself without TLS)
	wake chan struct{} // has a value when the queue may be non-empty
	done chan struct{} // closed by shut

	mu struct {
		sync.Mutex
		queue    []outFrame
		closed   bool
		draining bool  // shut once the queue is written
		err      error // why the connection was shut
	}
	// onSent, if not nil, is called under mu for each frame taken for
	// writing; it returns false to skip the frame (an abandoned call).
	onSent func(f *outFrame) bool
	// onShut, if not nil, is called once, under mu, when the connection
	// is shut; queued frames are never written after that.
	onShut func(err error)
	// cancel ends the contexts of the handlers of the connection's calls
	// (server side). serveConn sets it; Server.close reads it only once
	// serveConn has returned.
	cancel context.CancelFunc
}

// newConn returns the conn of nc, which runs over the TCP connection raw
// (nc itself, or a TLS connection over it).
func newConn(nc, raw net.Conn) *conn {
	return &conn{nc: nc, raw: raw, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// enqueue queues f for writing; it returns false if the connection is
// shut (f will never be written).
func (c *conn) enqueue(f outFrame) bool {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return false
	}
	c.mu.queue = append(c.mu.queue, f)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// writeLoop writes queued frames until the connection is shut; a write
// error shuts it.
func (c *conn) writeLoop() {
	bw := bufio.NewWriterSize(c.nc, writeBuffer)
	scratch := make([]byte, 0, maxHeader)
	var batch []outFrame
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		// Let the goroutines that are ready to queue a frame do so first:
		// one write then carries them all.
		runtime.Gosched()
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return
		}
		batch, c.mu.queue = c.mu.queue, batch[:0]
		n := 0
		for i := range batch {
			if c.onSent == nil || c.onSent(&batch[i]) {
				batch[n] = batch[i]
				n++
			}
		}
		c.mu.Unlock()
		var err error
		for i := range batch[:n] {
			if err = writeFrame(bw, scratch, &batch[i]); err != nil {
				break
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		clear(batch) // drop payload references
		if err != nil {
			c.shut(err)
			return
		}
		c.mu.Lock()
		drained := c.mu.draining && len(c.mu.queue) == 0
		c.mu.Unlock()
		if drained {
			c.shut(errDrained)
			return
		}
	}
}

// errDrained is why a connection closed by flushAndShut was shut.
var errDrained = errors.New("connection closed after its last reply")

// flushAndShut writes what is queued, then shuts the connection; after
// drainTimeout (a peer that does not read) it shuts it anyway.
func (c *conn) flushAndShut() {
	c.mu.Lock()
	c.mu.draining = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.shut(errDrained)
	}
}

// drainTimeout bounds flushAndShut.
const drainTimeout = time.Second

// shut closes the connection (once); frames still queued are dropped.
func (c *conn) shut(err error) {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed, c.mu.err = true, err
	c.mu.queue = nil
	if c.onShut != nil {
		c.onShut(err)
	}
	c.mu.Unlock()
	close(c.done)
	// The TCP connection: a TLS connection's Close would first send a
	// close_notify alert, which can block for seconds on a peer that does
	// not read, and frames need no end-of-stream marker.
	_ = c.raw.Close()
}

// closed reports whether the connection is shut.
func (c *conn) closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.closed
}
