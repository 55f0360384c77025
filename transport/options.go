package transport

import (
	"crypto/tls"
	"errors"
)

// Option configures a Server (NewServer) or a Client (NewClient): the
// same options serve both.
type Option func(*options)

type options struct {
	tls *tls.Config
}

func collect(opts []Option) options {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// WithTLS runs every connection over TLS with cfg (nil: plain TCP, the
// default). A Server takes a server config that requires and verifies
// client certificates (certs.Source.PeerServer), a Client a client config
// that presents its certificate and verifies the server's
// (certs.Source.PeerClient). Both ends of a connection must agree: a
// plain client cannot call a TLS server, nor the reverse.
//
// A TLS server completes the handshake in the connection's goroutine,
// within the hello timeout, before it reads anything else; a caller whose
// certificate it refuses reaches no handler. It then answers the
// caller's hello with its own, and a TLS client sends no request before
// that answer: with TLS 1.3 a client's handshake completes before the
// server has checked the client's certificate, so the server's hello is
// what tells the client its certificate was accepted. A failed handshake
// or hello exchange is therefore a failed dial: its calls were not
// delivered (NotDelivered).
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) { o.tls = cfg }
}

// checkServerTLS refuses a server config that could not serve a
// handshake, or that would let callers in without a verified client
// certificate.
func checkServerTLS(cfg *tls.Config) error {
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return errors.New("transport: the server's TLS config has no certificate")
	}
	verified := cfg.ClientAuth == tls.RequireAndVerifyClientCert ||
		cfg.ClientAuth == tls.RequireAnyClientCert && (cfg.VerifyConnection != nil || cfg.VerifyPeerCertificate != nil)
	if !verified {
		return errors.New("transport: the server's TLS config must require and verify client certificates (certs.Source.PeerServer)")
	}
	return nil
}
