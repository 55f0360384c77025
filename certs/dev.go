package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Development material: file names in GenerateDev's directory, and
// validity.
const (
	DevCAFile    = "ca.pem"     // the dev CA's certificate
	DevCAKeyFile = "ca-key.pem" // its private key (mode 0600), for IssueDev
	devValidity  = 365 * 24 * time.Hour
	// devBackdate covers clocks slightly behind the one that issued.
	devBackdate = time.Hour
)

// DevNode is a node to issue a development certificate for: its ID
// (1 to 64 of A-Z a-z 0-9 _ -, as node IDs) names its files, and IPs are
// the addresses it serves on.
type DevNode struct {
	ID  string
	IPs []net.IP
}

// GenerateDev writes a throwaway CA and a certificate for each node into
// dir (created if need be, mode 0700): ca.pem and ca-key.pem, and for
// each node <id>.pem and <id>-key.pem (keys mode 0600). Keys are ECDSA
// P-256; certificates are valid for about a year. A node's certificate
// allows server and client authentication and carries the node's IPs,
// 127.0.0.1 and "localhost". Existing files of the same names are
// replaced. For development only: the CA's key sits next to the
// certificates.
func GenerateDev(dir string, nodes []DevNode) error {
	if err := checkDevNodes(nodes); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs: CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"dotkv"}, CommonName: "dotkv dev CA " + now.UTC().Format(time.DateTime)},
		NotBefore:             now.Add(-devBackdate),
		NotAfter:              now.Add(devValidity + 24*time.Hour), // outlives the certificates it issues now
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := sign(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("certs: CA: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, DevCAKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, DevCAFile), encodeCert(der), 0o644); err != nil {
		return err
	}
	return IssueDev(dir, nodes...)
}

// IssueDev writes new development certificates and keys for nodes into
// dir, signed by the CA GenerateDev left there (ca.pem, ca-key.pem): to
// add a node to a development cluster, or to rotate a node's certificate.
func IssueDev(dir string, nodes ...DevNode) error {
	if err := checkDevNodes(nodes); err != nil {
		return err
	}
	ca, caKey, err := loadDevCA(dir)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := issue(dir, n, ca, caKey); err != nil {
			return fmt.Errorf("certs: node %s: %w", n.ID, err)
		}
	}
	return nil
}

// DevFiles returns the files GenerateDev writes in dir for node id.
func DevFiles(dir, id string) Files {
	return Files{
		Cert: filepath.Join(dir, id+".pem"),
		Key:  filepath.Join(dir, id+"-key.pem"),
		CA:   filepath.Join(dir, DevCAFile),
	}
}

func checkDevNodes(nodes []DevNode) error {
	for _, n := range nodes {
		if !validID(n.ID) {
			return fmt.Errorf("certs: dev node ID %q: want 1..64 of A-Z a-z 0-9 _ -", n.ID)
		}
		if n.ID == "ca" || n.ID == "ca-key" {
			return fmt.Errorf("certs: dev node ID %q would clash with the CA's files", n.ID)
		}
	}
	return nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// issue writes a certificate and key for n signed by ca.
func issue(dir string, n DevNode, ca *x509.Certificate, caKey crypto.Signer) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	for _, ip := range n.IPs {
		if ip == nil || ip.IsUnspecified() {
			continue
		}
		dup := false
		for _, have := range ips {
			dup = dup || have.Equal(ip)
		}
		if !dup {
			ips = append(ips, ip)
		}
	}
	now := time.Now()
	notAfter := now.Add(devValidity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"dotkv"}, CommonName: n.ID},
		NotBefore:   now.Add(-devBackdate),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: ips,
	}
	der, err := sign(tmpl, ca, key.Public(), caKey)
	if err != nil {
		return err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	// The key first: a watcher that sees the new certificate with the old
	// key refuses the pair and tries again on the next change.
	files := DevFiles(dir, n.ID)
	if err := writeFile(files.Key, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFile(files.Cert, encodeCert(der), 0o644)
}

// sign creates a certificate from tmpl with a random serial.
func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return der, nil
}

// loadDevCA reads the CA GenerateDev wrote in dir.
func loadDevCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := filepath.Join(dir, DevCAFile), filepath.Join(dir, DevCAKeyFile)
	data, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: dev CA: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("certs: dev CA %s: no PEM CERTIFICATE block", certPath)
	}
	ca, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: dev CA %s: %w", certPath, err)
	}
	if data, err = os.ReadFile(keyPath); err != nil {
		return nil, nil, fmt.Errorf("certs: dev CA key: %w", err)
	}
	if b, _ = pem.Decode(data); b == nil || b.Type != "PRIVATE KEY" {
		return nil, nil, fmt.Errorf("certs: dev CA key %s: no PEM PRIVATE KEY block", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: dev CA key %s: %w", keyPath, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("certs: dev CA key %s: a %T cannot sign", keyPath, k)
	}
	return ca, signer, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeFile replaces path with data atomically (a temporary file renamed
// over it), so that a watcher never reads half a file.
func writeFile(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	_, werr := f.Write(data)
	cerr := f.Close()
	if err = errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err = os.Chmod(f.Name(), perm); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}
