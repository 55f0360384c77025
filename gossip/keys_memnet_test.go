package gossip

import (
	"bytes"
	"compress/lzw"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dotkv/dotkv/internal/bubble"
)

// wire records what memberlist hands its transports: every packet, and
// every write on a stream (memberlist writes each stream message whole).
type wire struct {
	mu      sync.Mutex
	packets [][]byte
	streams [][]byte
}

func (w *wire) add(to *[][]byte, b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	*to = append(*to, bytes.Clone(b))
}

// sniffTransport records a transport's outgoing packets and its streams'
// writes, dialled and accepted, into a wire.
type sniffTransport struct {
	memberlist.NodeAwareTransport
	w        *wire
	streamCh chan net.Conn
	done     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
}

func sniff(inner memberlist.NodeAwareTransport, w *wire) *sniffTransport {
	t := &sniffTransport{NodeAwareTransport: inner, w: w, streamCh: make(chan net.Conn), done: make(chan struct{})}
	t.wg.Go(func() {
		for {
			select {
			case c := <-inner.StreamCh():
				select {
				case t.streamCh <- sniffConn{c, w}:
				case <-t.done:
					_ = c.Close()
					return
				}
			case <-t.done:
				return
			}
		}
	})
	return t
}

func (t *sniffTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *sniffTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.w.add(&t.w.packets, b)
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *sniffTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *sniffTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return sniffConn{c, t.w}, nil
}

func (t *sniffTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown stops the inner transport while the forwarder still drains
// it, then the forwarder (as faultTransport does).
func (t *sniffTransport) Shutdown() error {
	err := t.NodeAwareTransport.Shutdown()
	t.once.Do(func() { close(t.done) })
	t.wg.Wait()
	return err
}

type sniffConn struct {
	net.Conn
	w *wire
}

func (c sniffConn) Write(b []byte) (int, error) {
	c.w.add(&c.w.streams, b)
	return c.Conn.Write(b)
}

// memberlist's framing (v0.7.0): a packet is encrypted as [version 1]
// [12-byte nonce][AES-GCM ciphertext and tag] with the (empty) label as
// additional data; a stream message as [encryptMsg][uint32 length]
// followed by the same, with those 5 bytes as additional data.
const (
	encryptMsgType  = 10 // memberlist's encryptMsg
	compressMsgType = 9  // memberlist's compressMsg
)

func openGCM(key, payload, aad []byte) ([]byte, error) {
	if len(payload) < 1+12+16 || payload[0] != 1 {
		return nil, errors.New("not memberlist's encryption version 1")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return gcm.Open(nil, payload[1:13], payload[13:], aad)
}

// openStream decrypts an encrypted stream message.
func openStream(key, msg []byte) ([]byte, error) {
	if len(msg) < 5 || msg[0] != encryptMsgType || int(binary.BigEndian.Uint32(msg[1:5])) != len(msg)-5 {
		return nil, errors.New("not an encrypted stream message")
	}
	return openGCM(key, msg[5:], msg[:5])
}

// carries reports whether a plain stream message holds s, looking into
// a compressed message (memberlist compresses push-pull: compressMsg,
// then msgpack {Algo, Buf}, Buf last, LZW).
func carries(msg []byte, s []byte) bool {
	if bytes.Contains(msg, s) {
		return true
	}
	i := bytes.Index(msg, []byte("Buf"))
	if len(msg) == 0 || msg[0] != compressMsgType || i < 0 {
		return false
	}
	for h := 1; h <= 5 && i+3+h <= len(msg); h++ { // Buf's length header
		out, err := io.ReadAll(lzw.NewReader(bytes.NewReader(msg[i+3+h:]), lzw.LSB, 8))
		if err == nil && bytes.Contains(out, s) {
			return true
		}
	}
	return false
}

// TestGossipKeyEncryptsEverythingOnTheWire runs nodes on the in-memory
// network (an injected Transport) and reads what memberlist hands it.
// With a key, every packet and every stream message is AES-GCM
// ciphertext under the key, the cluster secret reaches the joining node
// inside such ciphertext and never appears in the clear, and a node
// under another key never joins. Without keys, the same capture finds
// the secret in the clear, so it would have seen it.
func TestGossipKeyEncryptsEverythingOnTheWire(t *testing.T) {
	for _, keyed := range []bool{true, false} {
		name := "plain"
		if keyed {
			name = "keyed"
		}
		t.Run(name, func(t *testing.T) {
			bubble.Test(t, func(t *testing.T) { testWire(t, keyed) })
		})
	}
}

func testWire(t *testing.T, keyed bool) {
	c := newSecretCluster(t)
	defer c.close()
	w := &wire{}
	key := testKey(0x42, 32)
	configure := func(keys [][]byte, w *wire) func(*Config) {
		return func(cfg *Config) {
			cfg.Keys = keys
			if w != nil {
				cfg.Transport = sniff(cfg.Transport, w)
			}
		}
	}
	var keys [][]byte
	if keyed {
		keys = [][]byte{key}
	}
	n1 := c.start("n1", 1, &memStore{}, nil, configure(keys, w))
	n2 := c.start("n2", 2, &memStore{}, []string{"10.2.0.1:7946"}, configure(keys, w))
	c.waitFor("n2 a ready member", func() bool {
		m, _ := n1.m.Member("n2")
		return n2.m.Ready() && m.Status == StatusMember
	})
	secret := n1.current()
	if secret == nil || !bytes.Equal(n2.current(), secret) {
		t.Fatalf("n2's secret %x, want n1's %x", n2.current(), secret)
	}
	if keyed {
		other := c.start("n3", 3, &memStore{}, []string{"10.2.0.1:7946"}, configure([][]byte{testKey(0x43, 32)}, nil))
		time.Sleep(30 * time.Second) // ~150 join attempts
		if _, ok := n1.m.Member("n3"); ok || n1.m.Hosts("n3") != nil || other.m.Ready() || len(other.m.Members()) != 0 {
			t.Errorf("n3, with another key, got in: in n1's view %v, hosts %v; ready %v, members %v",
				ok, n1.m.Hosts("n3"), other.m.Ready(), other.m.Members())
		}
	}
	time.Sleep(5 * time.Second) // a few push-pull rounds (every 10 s each)
	synctest.Wait()

	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.packets) == 0 || len(w.streams) == 0 {
		t.Fatalf("captured %d packets, %d stream messages", len(w.packets), len(w.streams))
	}
	b64 := []byte(base64.StdEncoding.EncodeToString(secret)) // as in the JSON ring state
	inClear, inCipher := 0, 0
	for _, p := range w.packets {
		if keyed {
			if _, err := openGCM(key, p, nil); err != nil {
				t.Fatalf("a packet is not encrypted under the key: %v (% x…)", err, p[:min(len(p), 16)])
			}
		}
		if bytes.Contains(p, secret) || carries(p, b64) {
			inClear++
		}
	}
	for _, msg := range w.streams {
		if carries(msg, b64) || bytes.Contains(msg, secret) {
			inClear++
		}
		plain, err := openStream(key, msg)
		switch {
		case keyed && err != nil:
			t.Fatalf("a stream message is not encrypted under the key: %v (% x…)", err, msg[:min(len(msg), 16)])
		case !keyed && err == nil:
			t.Fatal("a plain node sent an encrypted stream message")
		case keyed && carries(plain, b64):
			inCipher++
		}
	}
	t.Logf("%d packets, %d stream messages; the secret in the clear in %d, inside ciphertext in %d",
		len(w.packets), len(w.streams), inClear, inCipher)
	if keyed && (inClear > 0 || inCipher == 0) {
		t.Errorf("with a key: the secret in the clear in %d messages, inside ciphertext in %d; want 0 and some", inClear, inCipher)
	}
	if !keyed && inClear == 0 {
		t.Error("without a key: the capture never saw the secret in the clear")
	}
}
