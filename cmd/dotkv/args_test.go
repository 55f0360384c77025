//go:build unix

package main

import (
	"slices"
	"strings"
	"testing"
)

// TestFlagsFirst: the flags of a client command may follow its arguments;
// they are moved before them, with "--" before the arguments, so that an
// argument starting with "-" stays one.
func TestFlagsFirst(t *testing.T) {
	app := newApp()
	for _, c := range []struct{ in, want string }{
		{"dotkv get k --r all", "dotkv get --r all -- k"},
		{"dotkv get k -r=all --json", "dotkv get -r=all --json -- k"},
		{"dotkv put k v --w one --content-type text/plain", "dotkv put --w one --content-type text/plain -- k v"},
		{"dotkv put --w one k -", "dotkv put --w one -- k -"},
		{"dotkv put k -5", "dotkv put -- k -5"},
		{"dotkv put k -- --w", "dotkv put -- k --w"},
		{"dotkv delete k --context abc --addr 127.0.0.1", "dotkv delete --context abc --addr 127.0.0.1 -- k"},
		{"dotkv get k --help", "dotkv get --help -- k"},
		{"dotkv server --id n1", "dotkv server --id n1"}, // not a client command: untouched
		{"dotkv get", "dotkv get"},
	} {
		if got := strings.Join(flagsFirst(app, strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("flagsFirst(%q) = %q; want %q", c.in, got, c.want)
		}
	}
}

// TestNodeAddr: --addr takes a URL, or HOST[:PORT] with port 8080 by
// default (a bare host used to mean port 80).
func TestNodeAddr(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":                "http://10.0.0.1:8080",
		"10.0.0.1:9000":           "http://10.0.0.1:9000",
		"localhost":               "http://localhost:8080",
		"[::1]":                   "http://[::1]:8080",
		"[::1]:9000":              "http://[::1]:9000",
		"http://10.0.0.1:8080/":   "http://10.0.0.1:8080",
		"https://node.example":    "https://node.example",
		" https://10.0.0.1:8443 ": "https://10.0.0.1:8443",
	} {
		if got := nodeAddr(in); got != want {
			t.Errorf("nodeAddr(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestCLIFlagsAfterKeyAndRaw: against the binary, flags after the key
// work, and get --raw writes the value's bytes alone (and refuses a key
// with siblings).
func TestCLIFlagsAfterKeyAndRaw(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	s := startServer(t, "n1", t.TempDir())
	value := "line one\nline two\x00\xff"
	if r := runDotkv(t, value, "put", "raw-key", "-", "--addr", s.addr, "--content-type", "application/x-test"); r.code != 0 {
		t.Fatalf("put with flags after the arguments: %v", r)
	}
	r := runDotkv(t, "", "get", "raw-key", "--raw", "--addr", s.addr)
	if r.code != 0 || r.stdout != value {
		t.Fatalf("get --raw: %v; want exactly %q", r, value)
	}
	if r := runDotkv(t, "", "put", "raw-key", "second", "--addr", s.addr); r.code != 0 { // blind: a sibling
		t.Fatalf("blind put: %v", r)
	}
	if r := runDotkv(t, "", "get", "raw-key", "--raw", "--addr", s.addr); r.code != exitError || !strings.Contains(r.stderr, "2 siblings") {
		t.Fatalf("get --raw of a key with siblings: %v; want exit 2 naming the siblings", r)
	}
	r = runDotkv(t, "", "get", "raw-key", "--json", "--addr", s.addr)
	if r.code != 0 || !slices.ContainsFunc(strings.Split(r.stdout, `"`), func(p string) bool { return p == "siblings" }) {
		t.Fatalf("get --json after the key: %v", r)
	}
	s.stop()
}
