package versioning

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

var (
	testSecret  = []byte("test cluster secret, 32 bytes..!")
	otherSecret = []byte("another cluster's secret, 32 b..")
)

func testKeys(t testing.TB, secrets ...[]byte) *ContextKeys {
	t.Helper()
	if len(secrets) == 0 {
		secrets = [][]byte{testSecret}
	}
	k, err := NewContextKeys(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func tokenVectors(t testing.TB) []VersionVector {
	vectors := []VersionVector{
		nil,
		{e("a", 1)},
		{e("a", MaxCounter), e("b", 1), e("node-\u00e9", 1<<40)},
		{e(strings.Repeat("x", MaxActorLen), 127), e(strings.Repeat("y", MaxActorLen), 128)},
		VersionVector{e("n1.jm2xqagbg", 5)}.AddDot(Dot{"n2.b7ad67xuw", 9}),
	}
	for _, st := range sampleStates(t, 200) {
		vectors = append(vectors, st.Context)
	}
	return vectors
}

func TestTokenRoundTrip(t *testing.T) {
	k := testKeys(t)
	keys := [][]byte{[]byte("cart"), {}, bytes.Repeat([]byte{0xff}, 1024), []byte("a/b%2F..")}
	for _, v := range tokenVectors(t) {
		for _, key := range keys {
			tok := k.Seal(key, v)
			if tok == "" || strings.ContainsAny(tok, "+/= ") {
				t.Fatalf("Seal(%q, %v) = %q: want non-empty unpadded base64url", key, v, tok)
			}
			got, err := k.Open(key, tok)
			if err != nil {
				t.Fatalf("Open(%q, Seal(%v)) = %v", key, v, err)
			}
			if !got.Equal(v) {
				t.Fatalf("token round trip for %q: %v -> %q -> %v", key, v, tok, got)
			}
			if err := validVV(got); err != nil {
				t.Fatalf("opened an invalid vector: %v", err)
			}
			if k.Seal(key, got) != tok {
				t.Fatalf("sealing is not deterministic for %v", v)
			}
		}
	}
	// The empty string, and blanks, are the empty context (a blind write).
	for _, tok := range []string{"", " ", "\t\n"} {
		if v, err := k.Open([]byte("cart"), tok); err != nil || len(v) != 0 {
			t.Errorf("Open(%q) = %v, %v; want empty, nil", tok, v, err)
		}
	}
	// Padding and surrounding blanks are tolerated.
	v := VersionVector{e("a", 3)}
	tok := k.Seal([]byte("cart"), v)
	for _, variant := range []string{tok + "=", tok + "==", " " + tok + "\n"} {
		if got, err := k.Open([]byte("cart"), variant); err != nil || !got.Equal(v) {
			t.Errorf("Open(%q) = %v, %v; want %v", variant, got, err, v)
		}
	}
}

// TestTokenTampering: changing any bit of a token's bytes (format, vector,
// key hash or MAC), cutting it short or lengthening it, is refused.
func TestTokenTampering(t *testing.T) {
	k := testKeys(t)
	key := []byte("cart")
	for _, v := range []VersionVector{nil, {e("n1.jm2xqagbg", 5), e("n2.b7ad67xuw", 9)}, VersionVector{e("a", 2)}.AddDot(Dot{"a", 7})} {
		tok := k.Seal(key, v)
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			t.Fatal(err)
		}
		for i := range raw {
			for bit := range 8 {
				bad := bytes.Clone(raw)
				bad[i] ^= 1 << bit
				if got, err := k.Open(key, rawToken(bad)); !errors.Is(err, ErrMalformed) || got != nil {
					t.Fatalf("byte %d bit %d of %q flipped: Open = %v, %v; want ErrMalformed", i, bit, tok, got, err)
				}
			}
		}
		for n := range raw {
			if n == 0 {
				continue // the empty token is the empty context
			}
			if got, err := k.Open(key, rawToken(raw[:n])); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%d-byte prefix of %q: Open = %v, %v; want ErrMalformed", n, tok, got, err)
			}
		}
		if got, err := k.Open(key, rawToken(append(bytes.Clone(raw), 0))); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q with a byte appended: Open = %v, %v; want ErrMalformed", tok, got, err)
		}
		// A token has one spelling: its last character's unused bits
		// must be zero.
		if len(tok)%4 != 0 {
			last := strings.IndexByte(base64Alphabet, tok[len(tok)-1])
			for alt := range 64 {
				if alt == last || (len(tok)%4 == 2 && alt>>4 != last>>4) || (len(tok)%4 == 3 && alt>>2 != last>>2) {
					continue // another byte, not another spelling
				}
				variant := tok[:len(tok)-1] + base64Alphabet[alt:alt+1]
				if _, err := k.Open(key, variant); !errors.Is(err, ErrMalformed) {
					t.Fatalf("non-canonical spelling %q of %q accepted", variant, tok)
				}
			}
		}
	}
}

const base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func TestTokenOtherKey(t *testing.T) {
	k := testKeys(t)
	v := VersionVector{e("n1.jm2xqagbg", 1_000)}
	tok := k.Seal([]byte("a"), v)
	for _, other := range []string{"b", "A", "a ", "", "aa"} {
		if got, err := k.Open([]byte(other), tok); !errors.Is(err, ErrContextOtherKey) || !errors.Is(err, ErrMalformed) || got != nil {
			t.Errorf("token of %q opened for %q: %v, %v; want ErrContextOtherKey", "a", other, got, err)
		}
	}
	// A token whose key hash is changed to the other key's: the MAC, which
	// covers the whole key, still refuses it.
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	h := keyHash([]byte("b"))
	copy(raw[len(raw)-tokenMACLen-tokenKeyHashLen:], h[:])
	if got, err := k.Open([]byte("b"), rawToken(raw)); !errors.Is(err, ErrContextNotSigned) {
		t.Errorf("token of %q with the key hash of %q: %v, %v; want ErrContextNotSigned", "a", "b", got, err)
	}
}

func TestTokenOtherSecret(t *testing.T) {
	k, other := testKeys(t), testKeys(t, otherSecret)
	key := []byte("cart")
	for _, v := range tokenVectors(t)[:20] {
		if got, err := k.Open(key, other.Seal(key, v)); !errors.Is(err, ErrContextNotSigned) || !errors.Is(err, ErrMalformed) || got != nil {
			t.Fatalf("token of another cluster: Open = %v, %v; want ErrContextNotSigned", got, err)
		}
	}
	// A secret that differs in one byte is another secret.
	near := bytes.Clone(testSecret)
	near[len(near)-1] ^= 1
	if _, err := k.Open(key, testKeys(t, near).Seal(key, VersionVector{e("a", 1)})); !errors.Is(err, ErrContextNotSigned) {
		t.Fatalf("token under a secret one bit away: %v; want ErrContextNotSigned", err)
	}
}

// TestTokenRotation: keys with a previous secret verify what it signed,
// and sign with the current one.
func TestTokenRotation(t *testing.T) {
	old, cur := testSecret, otherSecret
	before, during, after := testKeys(t, old), testKeys(t, cur, old), testKeys(t, cur)
	key := []byte("cart")
	v := VersionVector{e("n1.jm2xqagbg", 12)}
	oldTok := before.Seal(key, v)
	if got, err := during.Open(key, oldTok); err != nil || !got.Equal(v) {
		t.Fatalf("a previous secret's token during the rotation: %v, %v", got, err)
	}
	newTok := during.Seal(key, v)
	if newTok == oldTok {
		t.Fatal("keys with a previous secret still sign with it")
	}
	for name, keys := range map[string]*ContextKeys{"during": during, "after": after} {
		if got, err := keys.Open(key, newTok); err != nil || !got.Equal(v) {
			t.Fatalf("%s the rotation, the current secret's token: %v, %v", name, got, err)
		}
	}
	if _, err := after.Open(key, oldTok); !errors.Is(err, ErrContextNotSigned) {
		t.Fatalf("after the rotation, a token of the dropped secret: %v; want ErrContextNotSigned", err)
	}
	if _, err := before.Open(key, newTok); !errors.Is(err, ErrContextNotSigned) {
		t.Fatalf("a node not yet rotated accepted the new secret's token: %v", err)
	}
}

func TestTokenUnsignedAndMalformed(t *testing.T) {
	k := testKeys(t)
	key := []byte("cart")
	// The unsigned format of earlier dotkv releases: read the key again.
	for _, v := range []VersionVector{nil, {e("n1.jm2xqagbg", 1_000_000)}} {
		if _, err := k.Open(key, EncodeContext(v)); !errors.Is(err, ErrContextUnsigned) || !errors.Is(err, ErrMalformed) {
			t.Errorf("unsigned token of %v: %v; want ErrContextUnsigned", v, err)
		}
	}
	if !strings.Contains(ErrContextUnsigned.Error(), "read the key again") {
		t.Errorf("ErrContextUnsigned = %q: want it to say to read the key again", ErrContextUnsigned)
	}
	for name, tok := range map[string]string{
		"not base64":       "!!!",
		"std base64 chars": "Ag+/",
		"padding inside":   "AQ=A",
		"bad length":       "A",
		"format 0":         rawToken(make([]byte, 26)),
		"format 3":         rawToken(append([]byte{3}, make([]byte, 25)...)),
		"format 2, short":  rawToken(append([]byte{2}, make([]byte, 24)...)),
		"format 2 only":    rawToken([]byte{2}),
	} {
		if v, err := k.Open(key, tok); !errors.Is(err, ErrMalformed) || v != nil {
			t.Errorf("%s: Open(%q) = %v, %v; want ErrMalformed", name, tok, v, err)
		}
	}
	// A signed body that does not parse (only a bug could sign one) is
	// refused too.
	for name, body := range map[string][]byte{
		"trailing byte":   append(rawVV([]byte{2}, []rawEntry{{"a", 1, nil}}), 0),
		"unsorted actors": rawVV([]byte{2}, []rawEntry{{"b", 1, nil}, {"a", 1, nil}}),
		"no vector":       {2},
	} {
		if v, err := k.Open(key, k.sealBody(key, body)); !errors.Is(err, ErrMalformed) || v != nil {
			t.Errorf("signed %s: Open = %v, %v; want ErrMalformed", name, v, err)
		}
	}
}

func TestNewContextKeys(t *testing.T) {
	for _, bad := range [][][]byte{nil, {[]byte("short")}, {testSecret, make([]byte, MaxSecretLen+1)}} {
		if _, err := NewContextKeys(bad...); err == nil {
			t.Errorf("NewContextKeys(%d secrets, lengths %v) succeeded", len(bad), lens(bad))
		}
	}
}

func lens(s [][]byte) []int {
	var out []int
	for _, b := range s {
		out = append(out, len(b))
	}
	return out
}

func TestParseSecretFile(t *testing.T) {
	a, b := strings.Repeat("a", 44), strings.Repeat("b", 16)
	for _, c := range []struct {
		in   string
		want []string
	}{
		{a, []string{a}},
		{a + "\n", []string{a}},
		{"\n  " + a + "\t\r\n\n" + b + "\n\n", []string{a, b}},
		{a + "\n" + a + "\n", []string{a}},
	} {
		got, err := ParseSecretFile([]byte(c.in))
		if err != nil || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", c.want) {
			t.Errorf("ParseSecretFile(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "\n \n", "too short", a + "\n" + b + "\n" + a, strings.Repeat("x", MaxSecretLen+1)} {
		if got, err := ParseSecretFile([]byte(in)); err == nil {
			t.Errorf("ParseSecretFile(%.40q) = %q; want an error", in, got)
		}
	}
}

func TestTokenSize(t *testing.T) {
	k := testKeys(t)
	for _, n := range []int{1, 3} {
		var v VersionVector
		for i := range n {
			v = append(v, Entry{Actor: fmt.Sprintf("n%d.jm2xqagbg", i+1), Counter: 100_000 + uint64(i)})
		}
		unsigned, signed := EncodeContext(v), k.Seal([]byte("cart"), v)
		// Key hash and MAC: 24 bytes, 32 base64 characters.
		if len(signed) != base64.RawURLEncoding.EncodedLen(len(mustDecode(t, unsigned))+tokenKeyHashLen+tokenMACLen) {
			t.Errorf("%d actors: signed token %d characters, unsigned %d", n, len(signed), len(unsigned))
		}
		t.Logf("%d actors: token %d characters (unsigned %d)", n, len(signed), len(unsigned))
	}
}

func mustDecode(t *testing.T, tok string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
