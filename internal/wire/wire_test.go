package wire

import (
	"errors"
	"testing"
)

func TestRoundTripAndTruncation(t *testing.T) {
	msg := Writer(nil).U32(7).U64(1 << 40).Uvarint(300).Bytes([]byte("key")).String("n1").Byte(9)
	r := NewReader(msg)
	if r.U32() != 7 || r.U64() != 1<<40 || r.Uvarint() != 300 || string(r.Bytes()) != "key" || r.String() != "n1" || r.Byte() != 9 {
		t.Fatal("round trip mismatch")
	}
	if err := r.Done(); err != nil {
		t.Fatal(err)
	}
	for i := range len(msg) {
		r := NewReader(msg[:i])
		r.U32()
		r.U64()
		r.Uvarint()
		r.Bytes()
		_ = r.String()
		r.Byte()
		if !errors.Is(r.Done(), ErrMalformed) {
			t.Fatalf("truncated at %d: no error", i)
		}
	}
	if err := NewReader(append(msg, 0)).Done(); !errors.Is(err, ErrMalformed) {
		t.Fatal("trailing bytes accepted")
	}
	if n := NewReader(Writer(nil).Uvarint(1000)).Count(1); n != 0 {
		t.Fatal("Count accepted more items than bytes")
	}
}
