package gossip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testKey returns a key of n bytes, all b.
func testKey(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

func TestParseKeyFile(t *testing.T) {
	k1, k2, k3 := testKey(1, 32), testKey(2, 16), testKey(3, 24)
	file := "\ufeff# dotkv gossip keys: the first one encrypts\n\n" +
		b64(k1) + "\r\n" +
		"   # the previous key, until every node has the new one\n" +
		"  " + b64(k2) + "  \n" +
		"\t" + b64(k3) // no final newline
	keys, err := ParseKeyFile([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]byte{k1, k2, k3}; !slices.EqualFunc(keys, want, bytes.Equal) {
		t.Fatalf("keys %x, want %x", keys, want)
	}

	secretLooking := b64(testKey(7, 32))
	for _, c := range []struct {
		name, file string
		line       int    // the line the error names; 0: none
		want       string // in the error
	}{
		{"empty", "", 0, "no key"},
		{"comments only", "# a\n\n  # b\n", 0, "no key"},
		{"bad base64", b64(k1) + "\n" + secretLooking[:20] + "!" + secretLooking[21:] + "\n", 2, "base64"},
		{"url-safe base64", "#\n" + strings.NewReplacer("+", "-", "/", "_").Replace(b64([]byte{0xfb, 0xff, 0xbf, 0xfb, 0xff, 0xbf, 0xfb, 0xff, 0xbf, 0xfb, 0xff, 0xbf, 0xfb, 0xff, 0xbf, 0xfb})), 2, "base64"},
		{"two keys on a line", b64(k1) + " " + b64(k2), 1, "base64"},
		{"wrong length", "# x\n" + b64(testKey(7, 20)) + "\n", 2, "20 bytes"},
		{"empty key", "=\n", 1, "base64"},
		{"too many", strings.Join([]string{b64(testKey(1, 16)), b64(testKey(2, 16)), b64(testKey(3, 16)), "", b64(testKey(4, 16)), b64(testKey(5, 16))}, "\n"), 6, "more than 4 keys"},
		{"repeated", b64(k1) + "\n" + b64(k2) + "\n" + b64(k1) + "\n", 3, "key 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			keys, err := ParseKeyFile([]byte(c.file))
			if err == nil {
				t.Fatalf("no error; keys %x", keys)
			}
			if !errors.Is(err, ErrInvalidKeyFile) {
				t.Errorf("%v: does not wrap ErrInvalidKeyFile", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v: want it to say %q", err, c.want)
			}
			if c.line > 0 && !strings.Contains(err.Error(), fmt.Sprintf("line %d:", c.line)) {
				t.Errorf("%v: want it to name line %d", err, c.line)
			}
			// Never any key material, nor a piece of it.
			for _, line := range strings.Split(c.file, "\n") {
				for _, word := range strings.Fields(line) {
					if len(word) >= 8 && !strings.HasPrefix(word, "#") && strings.Contains(err.Error(), word[:8]) {
						t.Errorf("%v: echoes the file's contents", err)
					}
				}
			}
		})
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gossip.key")
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || b64(keys[0]) != k {
		t.Fatalf("keys %x, want the one written", keys)
	}
	if err := os.WriteFile(path, []byte("# new\n"+k[:10]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyFile(path); !errors.Is(err, ErrInvalidKeyFile) || !strings.Contains(err.Error(), path+":2:") {
		t.Errorf("bad file: err %v, want ErrInvalidKeyFile naming %s:2", err, path)
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err %v, want os.ErrNotExist", err)
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two generated keys are equal")
	}
	keys, err := ParseKeyFile([]byte(a + "\n" + b + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys[0]) != 32 || len(keys[1]) != 32 {
		t.Fatalf("key lengths %d, %d; want 32", len(keys[0]), len(keys[1]))
	}
}
