package gossip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
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

func TestStartRejectsBadKeys(t *testing.T) {
	k := testKey(1, 32)
	for _, keys := range [][][]byte{
		{testKey(1, 20)},
		{k, {}},
		{k, testKey(2, 33)},
		{k, testKey(2, 16), k},
		{testKey(1, 16), testKey(2, 16), testKey(3, 16), testKey(4, 16), testKey(5, 16)},
	} {
		m, err := Start(Config{NodeID: "n1", GossipAddr: "127.0.0.65:0", Keys: keys, NewCluster: true})
		if err == nil {
			_ = m.Close()
			t.Errorf("Start with %d keys of %d bytes: no error", len(keys), len(keys[0]))
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Start: %v; want ErrInvalidConfig", err)
		}
		if bytes.Contains([]byte(err.Error()), []byte(b64(k)[:8])) {
			t.Errorf("Start: %v echoes a key", err)
		}
	}
}

// checkedKeyring is a memberlist keyring that fails the test when a
// change writes into a slice GetKeys returned before: memberlist's
// decrypting goroutines read those without the keyring's lock (see
// installKeys).
type checkedKeyring struct {
	t     *testing.T
	inner *memberlist.Keyring
	seen  []seenKeys // every slice GetKeys returned, as it was then
	op    string
}

type seenKeys struct{ s, was [][]byte }

func (c *checkedKeyring) GetKeys() [][]byte {
	s := c.inner.GetKeys()
	c.seen = append(c.seen, seenKeys{s, slices.Clone(s)})
	return s
}

func (c *checkedKeyring) change(op string, f func() error) error {
	c.GetKeys() // as a reader would, just before
	err := f()
	for _, v := range c.seen {
		for i := range v.s {
			if &v.s[i][0] != &v.was[i][0] || len(v.s[i]) != len(v.was[i]) {
				c.t.Fatalf("%s (after %s) rewrote a key slice a reader may hold: %x, was %x", op, c.op, v.s, v.was)
			}
		}
	}
	c.op = op
	return err
}

func (c *checkedKeyring) AddKey(k []byte) error {
	return c.change(fmt.Sprintf("AddKey(%x)", k[0]), func() error { return c.inner.AddKey(k) })
}

func (c *checkedKeyring) UseKey(k []byte) error {
	return c.change(fmt.Sprintf("UseKey(%x)", k[0]), func() error { return c.inner.UseKey(k) })
}

func (c *checkedKeyring) RemoveKey(k []byte) error {
	return c.change(fmt.Sprintf("RemoveKey(%x)", k[0]), func() error { return c.inner.RemoveKey(k) })
}

// TestInstallKeys changes a keyring's keys from many lists to others: it
// ends with exactly the keys asked for, the first primary, and never
// writes into a slice of keys memberlist may be decrypting with.
func TestInstallKeys(t *testing.T) {
	pool := make([][]byte, 6)
	for i := range pool {
		pool[i] = testKey(byte(i+1), 16+8*(i%3))
	}
	inner, err := memberlist.NewKeyring(pool[:3], pool[0])
	if err != nil {
		t.Fatal(err)
	}
	kr := &checkedKeyring{t: t, inner: inner}
	rng := rand.New(rand.NewPCG(1, 2))
	lists := [][][]byte{
		{pool[0], pool[2]},          // drop a key in the middle
		{pool[2], pool[0], pool[1]}, // new key, new primary
		{pool[1]},                   // only the last one
		{pool[3]},                   // another key altogether
		{pool[3], pool[4], pool[5]},
		{pool[5], pool[3]}, // the primary goes, a kept key behind it
		{pool[0], pool[1], pool[2], pool[3]},
		{pool[3], pool[1]},
	}
	for range 300 {
		perm := rng.Perm(len(pool))
		list := make([][]byte, 1+rng.IntN(MaxKeys))
		for i := range list {
			list[i] = pool[perm[i]]
		}
		lists = append(lists, list)
	}
	for i, keys := range lists {
		if err := installKeys(kr, keys); err != nil {
			t.Fatalf("list %d: %v", i, err)
		}
		got := inner.GetKeys()
		if !bytes.Equal(got[0], keys[0]) || len(got) != len(keys) {
			t.Fatalf("list %d: keyring %x, want %x with the first primary", i, got, keys)
		}
		for _, k := range keys {
			if !containsKey(got, k) {
				t.Fatalf("list %d: keyring %x lacks %x", i, got, k)
			}
		}
	}
}

func TestKeyID(t *testing.T) {
	k := testKey(9, 32)
	if id := keyID(k); len(id) != 8 || strings.Contains(b64(k), id) || id == keyID(testKey(8, 32)) {
		t.Fatalf("keyID = %q", id)
	}
}
