package node

import (
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/auth"
	"github.com/dotkv/dotkv/gossip"
)

// initAccess loads the access tokens of Config.AuthTokenFile (none: no
// access control) and sets the API configuration's access fields.
func (n *Node) initAccess(apiCfg *api.Config) error {
	apiCfg.SeparateAdmin = n.cfg.AdminHTTPAddr != ""
	if n.cfg.AuthTokenFile == "" {
		if n.cfg.MetricsAuth {
			return errors.New("metrics authentication needs an auth token file")
		}
		return nil
	}
	tokens, err := auth.Load(n.cfg.AuthTokenFile)
	if err != nil {
		return fmt.Errorf("auth token file: %w", err)
	}
	n.tokens = tokens
	apiCfg.Auth, apiCfg.MetricsAuth = tokens, n.cfg.MetricsAuth
	n.log.Info("access control on", "tokens", tokens.Tokens().String(), "metrics_auth", n.cfg.MetricsAuth)
	return nil
}

// serveAdmin serves /admin/ and /debug/ on Config.AdminHTTPAddr, if set,
// with the client API's access control and TLS.
func (n *Node) serveAdmin(h *api.Server) error {
	if n.cfg.AdminHTTPAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.AdminHTTPAddr)
	if err != nil {
		return fmt.Errorf("admin listen on %s: %w", n.cfg.AdminHTTPAddr, err)
	}
	n.adminLn = n.tlsListener(ln)
	n.admin = api.NewHTTPServer(n.cfg.AdminHTTPAddr, h.AdminHandler(), n.log)
	n.adminDone = make(chan error, 1)
	go func() { n.adminDone <- n.admin.Serve(n.adminLn) }()
	return nil
}

// AdminHTTPAddr returns the bound admin address ("" without one).
func (n *Node) AdminHTTPAddr() string {
	if n.adminLn == nil {
		return ""
	}
	return n.adminLn.Addr().String()
}

// closeAdmin stops the admin server, if any.
func (n *Node) closeAdmin() {
	if n.admin == nil {
		if n.adminLn != nil {
			_ = n.adminLn.Close()
		}
		return
	}
	_ = n.admin.Close()
	if err := <-n.adminDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
		n.log.Warn("admin http server", "err", err)
	}
	n.admin, n.adminLn = nil, nil
}

// Reload rereads the node's security files: the TLS certificates, the
// access tokens and the gossip keys; a file that fails to load keeps what
// was in use. The CLI calls it on SIGHUP.
func (n *Node) Reload() error {
	var errs []error
	if n.tls != nil {
		if err := n.tls.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
		}
	}
	if n.cfg.GossipKeyFile != "" && n.membership != nil {
		keys, err := gossip.LoadKeyFile(n.cfg.GossipKeyFile)
		if err == nil {
			err = n.membership.SetKeys(keys)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if n.tokens != nil {
		if err := n.tokens.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("auth token file: %w", err))
		} else {
			n.log.Info("reloaded the access tokens", "file", n.tokens.Path(), "tokens", n.tokens.Tokens().String())
		}
	}
	return errors.Join(errs...)
}
