package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/dotkv/dotkv/certs"
	"github.com/dotkv/dotkv/transport"
)

// initTLS loads Config.TLS (nothing if its files are not set) and starts
// watching the files for changes.
func (n *Node) initTLS() error {
	if !n.cfg.TLS.Enabled() {
		return nil
	}
	if err := n.cfg.TLS.Validate(); err != nil {
		return err
	}
	src, err := certs.NewSource(n.cfg.TLS, n.log)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	n.tls = src
	n.goFunc(func(ctx context.Context) { src.Watch(ctx, 0) })
	return nil
}

// rpcTLS returns the internode RPC's TLS option: mutual TLS under the
// cluster CA, or none.
func (n *Node) rpcTLS(server bool) transport.Option {
	switch {
	case n.tls == nil:
		return transport.WithTLS(nil)
	case server:
		return transport.WithTLS(n.tls.PeerServer())
	default:
		return transport.WithTLS(n.tls.PeerClient())
	}
}

// tlsListener returns ln serving HTTPS when TLS is on, ln otherwise.
func (n *Node) tlsListener(ln net.Listener) net.Listener {
	if n.tls == nil {
		return ln
	}
	return tls.NewListener(ln, n.tls.HTTPServer())
}
