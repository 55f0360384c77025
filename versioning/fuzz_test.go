package versioning

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// fuzzSeeds returns valid state encodings from random histories plus a
// few hand-made edge cases.
func fuzzSeeds(f *testing.F) [][]byte {
	var out [][]byte
	for i, st := range sampleStates(f, 60) {
		if i%3 != 0 && i > 5 {
			continue
		}
		b, err := st.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	ab := []rawEntry{{"a", 2, nil}, {"b", 1, nil}}
	out = append(out,
		nil,
		[]byte{1},
		[]byte{1, 0, 0},
		rawState(ab, rawSib{idx: 0, counter: 2, val: "v", ct: "text/plain", modified: -5}, rawSib{idx: 1, counter: 1, flags: 1}),
		rawState(ab, rawSib{idx: 0, counter: 3}),
	)
	return out
}

func FuzzDecodeState(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeState(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			if !st.IsZero() {
				t.Fatalf("error with a non-zero state: %+v", st)
			}
			return
		}
		if err := validState(st); err != nil {
			t.Fatalf("decoded an invalid state: %v\n%+v", err, st)
		}
		if err := st.Validate(); err != nil {
			t.Fatalf("decoded state fails Validate: %v\n%+v", err, st)
		}
		enc, err := st.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encoding a decoded state: %v", err)
		}
		st2, err := DecodeState(enc)
		if err != nil {
			t.Fatalf("decoding the re-encoding: %v", err)
		}
		if !st2.Equal(st) {
			t.Fatalf("canonical round trip:\n %+v\n %+v", st, st2)
		}
		// The decoder accepts over-long (non-minimal) varints, so the
		// re-encoding may be shorter than the input, never longer.
		if len(enc) > len(data) {
			t.Fatalf("decoded %x but re-encodes longer, as %x", data, enc)
		}
		// Sync with itself is the identity, and merging with the zero
		// state keeps it, for any decodable state.
		if !Sync(st, st).Equal(st) {
			t.Fatalf("Sync(st, st) != st for %+v", st)
		}
	})
}

// FuzzDecodeContext fuzzes both context decoders: DecodeContext (the
// unsigned vector of the internal RPC) and ContextKeys.Open (the client's
// signed, key-bound token). The fuzzer cannot forge a MAC, so the input is
// also signed as a token body (format byte and vector), to reach the
// parsing behind the MAC.
func FuzzDecodeContext(f *testing.F) {
	keys, err := NewContextKeys([]byte("fuzz cluster secret, 32 bytes..!"))
	if err != nil {
		f.Fatal(err)
	}
	key := []byte("fuzz")
	for _, b := range fuzzSeeds(f) {
		if st, err := DecodeState(b); err == nil {
			f.Add(EncodeContext(st.Context))
			f.Add(keys.Seal(key, st.Context))
		}
	}
	for _, s := range []string{"", " ", "AQA", "AQA=", "!!!", "AQ+/", rawToken([]byte{1, 1, 1, 'a', 0}), rawToken([]byte{2, 1, 1, 'a', 0})} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		checkDecodeContext(t, token)
		checkOpen(t, keys, key, token)
		// The token's bytes (decoded if they are base64), signed.
		body := []byte(token)
		if b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(token, "=")); err == nil {
			body = b
		}
		if len(body) > 0 && body[0] == contextFormatV1 {
			body[0] = contextFormatV2 // so that most inputs get past the format byte
		}
		checkOpen(t, keys, key, keys.sealBody(key, body))
	})
}

func checkDecodeContext(t *testing.T, token string) {
	v, err := DecodeContext(token)
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}
		if v != nil {
			t.Fatalf("error with a non-nil vector %v", v)
		}
		return
	}
	if err := validVV(v); err != nil {
		t.Fatalf("decoded an invalid vector %v: %v", v, err)
	}
	if err := v.Validate(); err != nil {
		t.Fatalf("decoded vector fails Validate %v: %v", v, err)
	}
	tok := EncodeContext(v)
	v2, err := DecodeContext(tok)
	if err != nil {
		t.Fatalf("decoding the re-encoding %q: %v", tok, err)
	}
	if !v2.Equal(v) {
		t.Fatalf("canonical round trip: %q -> %v -> %q -> %v", token, v, tok, v2)
	}
	if EncodeContext(v2) != tok {
		t.Fatalf("re-encoding is not stable")
	}
}

func checkOpen(t *testing.T, keys *ContextKeys, key []byte, token string) {
	v, err := keys.Open(key, token)
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("Open error does not wrap ErrMalformed: %v", err)
		}
		if v != nil {
			t.Fatalf("Open error with a non-nil vector %v", v)
		}
		return
	}
	if err := validVV(v); err != nil {
		t.Fatalf("opened an invalid vector %v: %v", v, err)
	}
	if err := v.Validate(); err != nil {
		t.Fatalf("opened vector fails Validate %v: %v", v, err)
	}
	tok := keys.Seal(key, v)
	v2, err := keys.Open(key, tok)
	if err != nil || !v2.Equal(v) {
		t.Fatalf("token round trip: %q -> %v -> %q -> %v, %v", token, v, tok, v2, err)
	}
	if _, err := keys.Open(append(key[:len(key):len(key)], 0), tok); !errors.Is(err, ErrContextOtherKey) {
		t.Fatalf("token %q opened for another key: %v", tok, err)
	}
}
