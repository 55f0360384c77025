package certs

import (
	"errors"
	"fmt"
	"strings"
)

// Flag names of the three files, as the node's command line spells them;
// Validate's errors use them.
const (
	FlagCert = "tls-cert"
	FlagKey  = "tls-key"
	FlagCA   = "tls-ca"
)

// Files names a node's TLS material: PEM files of its certificate (which
// may be followed by intermediates), its private key and the cluster CA
// (one or more certificates). All three set means TLS on, none means off.
type Files struct {
	Cert string // the node's certificate (--tls-cert)
	Key  string // its private key (--tls-key)
	CA   string // the cluster CA's certificates (--tls-ca)
}

// Enabled reports whether any file is set (TLS is on if f is valid).
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// Validate returns nil if all three files are set or none is, and an
// error naming the missing ones otherwise.
func (f Files) Validate() error {
	if !f.Enabled() {
		return nil
	}
	var missing []string
	for _, x := range []struct{ flag, path string }{{FlagCert, f.Cert}, {FlagKey, f.Key}, {FlagCA, f.CA}} {
		if x.path == "" {
			missing = append(missing, "--"+x.flag)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	verb := "is"
	if len(missing) > 1 {
		verb = "are"
	}
	return fmt.Errorf("certs: %s %s not set: TLS needs --%s, --%s and --%s together (or none of them, for TLS off)",
		strings.Join(missing, " and "), verb, FlagCert, FlagKey, FlagCA)
}

// errNoFiles is NewSource's error for Files with nothing set.
var errNoFiles = errors.New("certs: no TLS files given")
