package versioning

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// Context tokens (docs/design.md §4.8). A client's context token is bound
// to the key it was read for and signed under the cluster secret:
//
//	byte      format (2; format 1 was the bare vector, unsigned)
//	vv        the vector, as appendVV writes it
//	[8]byte   key hash: the first 8 bytes of SHA-256(key)
//	[16]byte  MAC: HMAC-SHA256(macKey, uvarint len(key), key, all the bytes above), truncated
//
// all in unpadded base64url. The sizes:
//
//   - The MAC, 16 bytes (128 bits), is what makes a token unforgeable: a
//     client without the secret that tries tokens against the API succeeds
//     with probability 2^-128 per try, far beyond any online attack.
//     Truncating HMAC-SHA256 to 128 bits is within NIST SP 800-107's
//     guidance (at least 64 bits against online guessing), and saves 22
//     base64 characters per token over the full 32 bytes.
//   - The key hash, 8 bytes, is not what binds a token to its key: the MAC
//     covers the whole key (length-prefixed, so no key and vector bytes can
//     be shifted into one another). It tells a token read for another key
//     apart from a forged one, so the 400 can say which; two keys share a
//     hash with probability 2^-64, in which case the answer is "not signed
//     by this cluster" instead — still a 400.
//
// A one-actor token is 23 + 32 = 55 characters, where the unsigned format
// took 23. The MAC is made with a key derived from the secret (macKey =
// HMAC-SHA256(secret, "dotkv context token v2")), so the secret itself can
// key other things later without a token ever being a MAC of theirs.
//
// The internal, already verified forms of a context (the RPC between
// nodes) keep the unsigned format 1 of EncodeContext and DecodeContext.
const (
	contextFormatV2 = 2
	tokenKeyHashLen = 8
	tokenMACLen     = 16
	// MinSecretLen is the shortest cluster secret accepted. A generated
	// secret has 32 random bytes (GenerateSecret's callers); an operator's
	// file should have as much entropy.
	MinSecretLen = 16
	// MaxSecretLen bounds a secret from a file.
	MaxSecretLen = 1024
)

// macLabel is the derivation label of the MAC key.
const macLabel = "dotkv context token v2"

// Errors of ContextKeys.Open. Each also wraps ErrMalformed, as every
// context decoding error does.
var (
	// ErrContextOtherKey: the token was read for another key.
	ErrContextOtherKey = errors.New("the context was read for another key: send the context of a read of this key")
	// ErrContextNotSigned: the token's MAC does not verify under any of
	// this cluster's secrets (forged, altered, or from another cluster).
	ErrContextNotSigned = errors.New("the context is not signed by this cluster (forged, altered, or from another cluster): read the key again")
	// ErrContextUnsigned: the token has the unsigned format of an older
	// dotkv.
	ErrContextUnsigned = errors.New("the context has the unsigned format of an older dotkv: read the key again for a new context")
)

// ContextKeys signs and verifies context tokens under a cluster's
// secrets: the first signs, every one verifies (the others are previous
// secrets, kept while a rotation completes). It is immutable and safe for
// concurrent use.
type ContextKeys struct {
	macs []*macKey // [0] signs
}

// macKey is one secret's derived MAC key with a pool of keyed HMACs, so
// that signing and verifying do not allocate.
type macKey struct {
	pool sync.Pool // *macState
}

type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
	// in gathers the MAC's input: what is passed to h.Write (an interface
	// call) escapes, and the token is built on the caller's stack.
	in []byte
}

// NewContextKeys returns keys that sign with secrets[0] and verify with
// any of secrets. Each secret must be MinSecretLen..MaxSecretLen bytes.
func NewContextKeys(secrets ...[]byte) (*ContextKeys, error) {
	if len(secrets) == 0 {
		return nil, errors.New("context keys: no secret")
	}
	k := &ContextKeys{}
	for i, s := range secrets {
		if len(s) < MinSecretLen || len(s) > MaxSecretLen {
			return nil, fmt.Errorf("context keys: secret %d is %d bytes: want %d..%d", i+1, len(s), MinSecretLen, MaxSecretLen)
		}
		d := hmac.New(sha256.New, s)
		d.Write([]byte(macLabel))
		derived := d.Sum(nil)
		m := &macKey{}
		m.pool.New = func() any { return &macState{h: hmac.New(sha256.New, derived)} }
		k.macs = append(k.macs, m)
	}
	return k, nil
}

// mac returns the truncated MAC of key and body under m, appended to dst.
func (m *macKey) mac(dst, key, body []byte) []byte {
	st := m.pool.Get().(*macState)
	st.in = append(binary.AppendUvarint(st.in[:0], uint64(len(key))), key...)
	st.in = append(st.in, body...)
	st.h.Reset()
	st.h.Write(st.in)
	sum := st.h.Sum(st.sum[:0])
	dst = append(dst, sum[:tokenMACLen]...)
	m.pool.Put(st)
	return dst
}

// verify reports whether mac is body's MAC for key under m, in constant
// time.
func (m *macKey) verify(key, body, mac []byte) bool {
	var buf [tokenMACLen]byte
	return hmac.Equal(m.mac(buf[:0], key, body), mac)
}

// keyHash returns the token's hash of key.
func keyHash(key []byte) [tokenKeyHashLen]byte {
	sum := sha256.Sum256(key)
	return [tokenKeyHashLen]byte(sum[:tokenKeyHashLen])
}

// Seal returns the token of v, read for key: opaque, URL-safe, and
// accepted by Open only for that key and under these keys (or keys that
// keep this signing secret as a previous one).
func (k *ContextKeys) Seal(key []byte, v VersionVector) string {
	var raw [192]byte
	b := appendVV(append(raw[:0], contextFormatV2), v)
	return k.sealBody(key, b)
}

// sealBody appends the key hash and the MAC to body (format byte and
// vector) and encodes the token. The fuzz test seals arbitrary bodies
// with it, to reach the parsing behind the MAC.
func (k *ContextKeys) sealBody(key, body []byte) string {
	h := keyHash(key)
	body = append(body, h[:]...)
	body = k.macs[0].mac(body, key, body)
	var tok [base64Len192]byte
	return string(tokenEncoding.AppendEncode(tok[:0], body))
}

// tokenEncoding is unpadded base64url that refuses non-zero trailing
// bits, so that a token has exactly one spelling.
var tokenEncoding = base64.RawURLEncoding.Strict()

// base64Len192 is the unpadded base64 length of 192 bytes.
const base64Len192 = (192*8 + 5) / 6

// Open returns the vector of a token made by Seal for key. The empty
// string (or blanks) is the empty context, a blind write. A token read
// for another key, not signed under any of these keys' secrets, or in the
// unsigned format 1 is refused (ErrContextOtherKey, ErrContextNotSigned,
// ErrContextUnsigned); every error wraps ErrMalformed. Only a token whose
// MAC verifies is parsed further. Any input yields a valid vector or an
// error; it never panics.
func (k *ContextKeys) Open(key []byte, token string) (VersionVector, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, nil
	}
	token = strings.TrimRight(token, "=")
	var src, dst [256]byte
	raw := dst[:0]
	if n := tokenEncoding.DecodedLen(len(token)); n > len(dst) {
		raw = make([]byte, 0, n)
	}
	raw, err := tokenEncoding.AppendDecode(raw, append(src[:0], token...))
	if err != nil {
		return nil, fmt.Errorf("%w: context is not base64url: %v", ErrMalformed, err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: empty context", ErrMalformed)
	}
	switch raw[0] {
	case contextFormatV1:
		return nil, fmt.Errorf("%w: %w", ErrMalformed, ErrContextUnsigned)
	case contextFormatV2:
	default:
		return nil, fmt.Errorf("%w: unknown context format %d", ErrMalformed, raw[0])
	}
	if len(raw) < 2+tokenKeyHashLen+tokenMACLen { // format, vector count, hash, MAC
		return nil, fmt.Errorf("%w: context truncated", ErrMalformed)
	}
	body, mac := raw[:len(raw)-tokenMACLen], raw[len(raw)-tokenMACLen:]
	if h := keyHash(key); !bytes.Equal(body[len(body)-tokenKeyHashLen:], h[:]) {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, ErrContextOtherKey)
	}
	ok := false
	for _, m := range k.macs {
		if m.verify(key, body, mac) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, ErrContextNotSigned)
	}
	d := decoder{buf: body[1 : len(body)-tokenKeyHashLen]}
	vv := d.vv()
	d.end()
	if d.err != nil {
		return nil, d.err
	}
	return vv, nil
}

// ParseSecretFile parses the contents of a --cluster-secret-file: one or
// two lines, the current secret and optionally the previous one (still
// accepted for verification while a rotation completes). Each line is
// taken as it is, without its surrounding blanks; blank lines are
// skipped. Each secret must be MinSecretLen..MaxSecretLen bytes.
func ParseSecretFile(data []byte) ([][]byte, error) {
	var secrets [][]byte
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if len(secrets) == 2 {
			return nil, errors.New("more than two secrets: want the current one and, optionally, the previous one")
		}
		if len(line) < MinSecretLen || len(line) > MaxSecretLen {
			return nil, fmt.Errorf("secret %d is %d bytes: want %d..%d (e.g. openssl rand -base64 32)",
				len(secrets)+1, len(line), MinSecretLen, MaxSecretLen)
		}
		secrets = append(secrets, []byte(line))
	}
	if len(secrets) == 0 {
		return nil, errors.New("no secret: want one line (the current secret) or two (current, previous)")
	}
	if len(secrets) == 2 && bytes.Equal(secrets[0], secrets[1]) {
		secrets = secrets[:1]
	}
	return secrets, nil
}
