package replica

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/versioning"
)

func TestPutResultRoundTrip(t *testing.T) {
	vc := versioning.VersionVector{{Actor: "n1.x", Counter: 3}}
	cases := []struct {
		name  string
		in    error
		check func(versioning.VersionVector, error) bool
	}{
		{"ok", nil, func(v versioning.VersionVector, err error) bool { return err == nil && v.Equal(vc) }},
		{"unavailable", &UnavailableError{Op: "write", Kind: "primaries", Acks: 1, Required: 3}, func(_ versioning.VersionVector, err error) bool {
			var ua *UnavailableError
			return errors.As(err, &ua) && *ua == UnavailableError{Op: "write", Kind: "primaries", Acks: 1, Required: 3}
		}},
		{"written, too few acks", &UnavailableError{Op: "write", Kind: "replicas", Acks: 1, Required: 2, Written: true}, func(_ versioning.VersionVector, err error) bool {
			var ua *UnavailableError
			return errors.As(err, &ua) && *ua == UnavailableError{Op: "write", Kind: "replicas", Acks: 1, Required: 2, Written: true}
		}},
		{"not primary", errNotPrimary, func(_ versioning.VersionVector, err error) bool { return errors.Is(err, errNotPrimary) }},
		{"bad context", fmt.Errorf("x: %w", versioning.ErrUnissuedDot), func(_ versioning.VersionVector, err error) bool {
			return errors.Is(err, ErrBadContext) && strings.Contains(err.Error(), versioning.ErrUnissuedDot.Error())
		}},
		{"context beyond the limits", fmt.Errorf("x: %w", versioning.ErrEncodingLimit), func(_ versioning.VersionVector, err error) bool {
			return errors.Is(err, ErrBadContext) && strings.Contains(err.Error(), versioning.ErrEncodingLimit.Error())
		}},
		{"timeout", errTimeout, func(_ versioning.VersionVector, err error) bool { return errors.Is(err, errTimeout) }},
		{"too many siblings", fmt.Errorf("write: %w", &LimitError{Err: ErrTooManySiblings, Siblings: 100, Would: 101, Max: 100}),
			func(_ versioning.VersionVector, err error) bool {
				var le *LimitError
				return errors.As(err, &le) && *le == LimitError{Err: ErrTooManySiblings, Siblings: 100, Would: 101, Max: 100}
			}},
		{"too large", &LimitError{Err: ErrRecordTooLarge, Siblings: 3, Would: 17 << 20, Max: 16 << 20},
			func(_ versioning.VersionVector, err error) bool {
				var le *LimitError
				return errors.As(err, &le) && *le == LimitError{Err: ErrRecordTooLarge, Siblings: 3, Would: 17 << 20, Max: 16 << 20}
			}},
		{"other", errors.New("disk on fire"), func(_ versioning.VersionVector, err error) bool {
			return err != nil && err.Error() == "forwarded write failed: disk on fire"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := decodePutResult(encodePutResult(vc, tc.in))
			if !tc.check(v, err) {
				t.Errorf("decoded %v, %v", v, err)
			}
		})
	}
	for _, bad := range [][]byte{nil, {99}, {putOK}, {putUnavailable, 1}, {putTooManySiblings, 1, 2}, {putTooLarge, 1, 2, 3, 4}} {
		if _, err := decodePutResult(bad); err == nil {
			t.Errorf("decodePutResult(%v) accepted", bad)
		}
	}
}

func TestPutRequestRoundTrip(t *testing.T) {
	in := putRequest{key: []byte("k"), vctx: versioning.VersionVector{{Actor: "a", Counter: 2}},
		sib: versioning.Sibling{Value: []byte("v"), ContentType: "text/plain", Deleted: true, Modified: 42}, w: All, pw: Number(2)}
	out, err := decodePut(in.encode(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if string(out.key) != "k" || !out.vctx.Equal(in.vctx) || string(out.sib.Value) != "v" || !out.sib.Deleted ||
		out.sib.ContentType != "text/plain" || out.sib.Modified != 42 || out.w != All || out.pw != Number(2) {
		t.Errorf("round trip: %+v", out)
	}
	// A level above this node's N, a bad token, a truncated message.
	if _, err := decodePut(in.encode(), 1); !errors.Is(err, ErrInvalidLevel) {
		t.Errorf("pw=2 with N=1: %v", err)
	}
	bad := wire.Writer(nil).Bytes([]byte("k")).String("!!").Byte(0).String("").Bytes(nil).Uvarint(0).String("").String("").Uvarint(0)
	if _, err := decodePut(bad, 3); err == nil {
		t.Error("bad context token accepted")
	}
	if _, err := decodePut(in.encode()[:5], 3); err == nil {
		t.Error("truncated put accepted")
	}
}

func TestHandlersRefuseMalformedMessages(t *testing.T) {
	c := newTestCluster(t, 1, Config{})
	co := c.nodes["n1"].coord
	for name, h := range map[string]func([]byte) error{
		"read":      func(b []byte) error { _, err := co.handleRead(t.Context(), "x", b); return err },
		"replicate": func(b []byte) error { _, err := co.handleReplicate(t.Context(), "x", b); return err },
		"hint":      func(b []byte) error { _, err := co.handleHint(t.Context(), "x", b); return err },
		"put":       func(b []byte) error { _, err := co.handlePut(t.Context(), "x", b); return err },
	} {
		if err := h([]byte{1, 2}); err == nil {
			t.Errorf("%s accepted a malformed message", name)
		}
	}
}

// A hint sent to the very node it names is merged into its records (a
// fallback's copy delivered home).
func TestHintForSelfIsMerged(t *testing.T) {
	c := newTestCluster(t, 1, Config{})
	co := c.nodes["n1"].coord
	k := []byte("k")
	st, err := versioning.State{}.UpdateExact(nil, versioning.Sibling{Dot: versioning.Dot{Actor: "f.1", Counter: 1}, Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := appendState(wire.Writer(nil).U64(1).String("n1").U32(c.ring.PartitionOf(k)).Bytes(k), st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := co.handleHint(t.Context(), "x", msg); err != nil {
		t.Fatal(err)
	}
	if got := c.stored("n1", k); len(got) != 1 || got[0] != "v" {
		t.Errorf("n1 stores %v, want [v]", got)
	}
}
