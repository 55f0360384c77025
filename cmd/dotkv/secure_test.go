//go:build unix

package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dotkv/dotkv/certs"
)

// TestSecureServerAgainstBinary: `dotkv server` with --tls-* and
// --auth-token-file serves HTTPS only; the CLI reaches it with --ca and
// --token (or DOTKV_TOKEN); a read token cannot write; a SIGHUP rereads
// the token file.
func TestSecureServerAgainstBinary(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	dir := t.TempDir()
	if err := certs.GenerateDev(filepath.Join(dir, "tls"), []certs.DevNode{{ID: "n1", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}}); err != nil {
		t.Fatal(err)
	}
	files := certs.DevFiles(filepath.Join(dir, "tls"), "n1")
	tokens := filepath.Join(dir, "tokens")
	const readTok, writeTok, newTok = "reader-0123456789abcdef", "writer-0123456789abcdef", "writer-2-0123456789abcdef"
	writeTokens := func(content string) {
		t.Helper()
		// Written aside and renamed into place, as the README says.
		if err := os.WriteFile(tokens+".new", []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tokens+".new", tokens); err != nil {
			t.Fatal(err)
		}
	}
	writeTokens("read " + readTok + "\nwrite " + writeTok + "\n")
	addr := freeAddr(t)
	p := startProc(t, "dotkv server n1", "server", "--id", "n1", "--data", filepath.Join(dir, "data"), "--http", addr,
		"--tls-cert", files.Cert, "--tls-key", files.Key, "--tls-ca", files.CA, "--auth-token-file", tokens)
	conf, err := certs.ClientConfig(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{TLSClientConfig: conf}}
	defer client.CloseIdleConnections()
	base := "https://" + addr
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("the server did not serve HTTPS /healthz: %v", err)
		}
		time.Sleep(pollInterval)
	}

	sec := []string{"--addr", base, "--ca", files.CA}
	if r := runDotkv(t, "", append([]string{"put", "--token", writeTok}, append(sec, "k", "v1")...)...); r.code != 0 {
		t.Fatalf("put with a write token: %v", r)
	}
	if r := runDotkvEnv(t, []string{"DOTKV_TOKEN=" + readTok}, "", append([]string{"get"}, append(sec, "k")...)...); r.code != 0 || !strings.Contains(r.stdout, "v1") {
		t.Fatalf("get with DOTKV_TOKEN (read): %v", r)
	}
	if r := runDotkv(t, "", append([]string{"put", "--token", readTok}, append(sec, "k", "v2")...)...); r.code != exitError || !strings.Contains(r.stderr, "403") {
		t.Fatalf("put with a read token: %v; want exit 2 and 403", r)
	}
	if r := runDotkv(t, "", append([]string{"get"}, append(sec, "k")...)...); r.code != exitError || !strings.Contains(r.stderr, "401") {
		t.Fatalf("get without a token: %v; want exit 2 and 401", r)
	}
	if r := runDotkv(t, "", "get", "--addr", base, "--token", readTok, "k"); r.code != exitError {
		t.Fatalf("get without --ca (the CA is not trusted): %v; want exit 2", r)
	}
	if r := runDotkv(t, "", "get", "--addr", "http://"+addr, "--token", readTok, "k"); r.code != exitError || !strings.Contains(r.stderr, "400") {
		t.Fatalf("plain HTTP get: %v; want exit 2 and 400", r)
	}

	writeTokens("read " + readTok + "\nwrite " + newTok + "\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(startTimeout)
	for runDotkv(t, "", append([]string{"put", "--token", newTok}, append(sec, "k", "v3")...)...).code != 0 {
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("the new token does not work after SIGHUP\nstderr: %s", p.stderr)
		}
		time.Sleep(pollInterval)
	}
	if r := runDotkv(t, "", append([]string{"put", "--token", writeTok}, append(sec, "k", "v4")...)...); r.code != exitError || !strings.Contains(r.stderr, "401") {
		t.Fatalf("put with the removed token after SIGHUP: %v; want 401", r)
	}
	p.stop()
}

// TestDevTLSAgainstBinary: `dotkv dev --tls` makes a throwaway CA and node
// certificates under DATA/tls, serves HTTPS (the CLI reaches it with --ca,
// plain HTTP is refused) and keeps the same CA when started again.
func TestDevTLSAgainstBinary(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	data := t.TempDir()
	ca := filepath.Join(data, "tls", certs.DevCAFile)
	d := startDev(t, data, "--tls") // on free ports, retried if another test takes one
	p, addrs := d.proc, d.addrs
	if !strings.Contains(p.stdout.String(), "https://"+addrs[0]) {
		t.Errorf("the banner does not list https addresses:\n%s", p.stdout)
	}
	if !strings.Contains(p.stdout.String(), "--cacert "+ca) {
		t.Errorf("the banner does not say how to trust the CA:\n%s", p.stdout)
	}
	if r := runDotkv(t, "", "put", "--addr", "https://"+addrs[0], "--ca", ca, "--w", "all", "greeting", "hello"); r.code != 0 {
		t.Fatalf("put over HTTPS: %v", r)
	}
	if r := runDotkv(t, "", "get", "--addr", "https://"+addrs[2], "--ca", ca, "greeting"); r.code != 0 || !strings.Contains(r.stdout, "hello") {
		t.Fatalf("get over HTTPS from n3: %v", r)
	}
	if r := runDotkv(t, "", "get", "--addr", "http://"+addrs[2], "greeting"); r.code != exitError {
		t.Fatalf("plain HTTP get: %v; want exit 2", r)
	}
	before, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	p.stop()

	d = startDevAgain(t, d, "--tls") // the same ports: the nodes' data records their addresses
	p, addrs = d.proc, d.addrs
	if after, err := os.ReadFile(ca); err != nil || !bytes.Equal(after, before) {
		t.Fatalf("a second dev --tls changed the CA (%v)", err)
	}
	if r := runDotkv(t, "", "get", "--addr", "https://"+addrs[1], "--ca", ca, "greeting"); r.code != 0 || !strings.Contains(r.stdout, "hello") {
		t.Fatalf("get over HTTPS after a restart: %v", r)
	}
	p.stop()
}
