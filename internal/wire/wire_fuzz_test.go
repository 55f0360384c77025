package wire

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReader drives a Reader over arbitrary input with an arbitrary
// sequence of field reads (ops, one field kind per byte) and checks the
// codec's contract: no panic; Count never promises more items than the
// rest of the message could hold, so a caller's make(…, Count(n)) is
// bounded by the input; after the first error every read is a zero value
// and Done reports ErrMalformed; and what was read re-encodes, with
// Writer, to a message that reads back the same fields and is never
// longer than the input (varints may be non-minimal in the input).
func FuzzReader(f *testing.F) {
	// ops: 0 U32, 1 U64, 2 Uvarint, 3 Bytes, 4 String, 5 Byte, 6 Count(1),
	// 7 Count(9).
	valid := Writer(nil).U32(7).U64(1 << 40).Uvarint(300).Bytes([]byte("key")).String("n1").Byte(9)
	f.Add([]byte{0, 1, 2, 3, 4, 5}, []byte(valid))
	f.Add([]byte{6, 3, 3}, []byte(Writer(nil).Uvarint(2).Bytes([]byte("a")).Bytes(nil)))
	f.Add([]byte{7}, []byte(Writer(nil).Uvarint(1<<62)))
	f.Add([]byte{3}, []byte(Writer(nil).Uvarint(1<<40)))                                    // a huge length prefix
	f.Add([]byte{2}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1}) // varint overflow
	f.Add([]byte{2}, []byte{0x80, 0x00})                                                    // non-minimal varint
	f.Add([]byte{1, 1}, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, ops, msg []byte) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		type field struct {
			op  byte
			n   uint64
			b   []byte
			err bool // the reader had failed when this field was read
		}
		r := NewReader(msg)
		var fields []field
		failed := false
		for _, op := range ops {
			op %= 8
			before := r.Len()
			var fl field
			fl.op = op
			switch op {
			case 0:
				fl.n = uint64(r.U32())
			case 1:
				fl.n = r.U64()
			case 2:
				fl.n = r.Uvarint()
			case 3:
				fl.b = r.Bytes()
			case 4:
				fl.b = []byte(r.String())
			case 5:
				fl.n = uint64(r.Byte())
			case 6, 7:
				minSize := 1
				if op == 7 {
					minSize = 9
				}
				n := r.Count(minSize)
				if n < 0 || n > r.Len()/minSize {
					t.Fatalf("Count(%d) = %d with %d bytes left", minSize, n, r.Len())
				}
				fl.n = uint64(n)
			}
			if r.Len() > before {
				t.Fatalf("op %d grew the unread input from %d to %d bytes", op, before, r.Len())
			}
			if r.err != nil {
				if fl.n != 0 || len(fl.b) != 0 {
					t.Fatalf("op %d returned a value (%d, %q) with the reader failed", op, fl.n, fl.b)
				}
				fl.err = true
				failed = true
			} else if len(fl.b) > len(msg) {
				t.Fatalf("op %d read %d bytes from a %d-byte message", op, len(fl.b), len(msg))
			}
			fields = append(fields, fl)
		}
		err := r.Done()
		switch {
		case failed && !errors.Is(err, ErrMalformed):
			t.Fatalf("a read failed but Done = %v", err)
		case !failed && r.Len() != 0 && !errors.Is(err, ErrMalformed):
			t.Fatalf("%d bytes left over but Done = %v", r.Len(), err)
		case err != nil && !errors.Is(err, ErrMalformed):
			t.Fatalf("Done = %v, want ErrMalformed", err)
		}
		if err != nil {
			return
		}
		// Re-encode what was read and read it back.
		w := Writer(nil)
		for _, fl := range fields {
			switch fl.op {
			case 0:
				w = w.U32(uint32(fl.n))
			case 1:
				w = w.U64(fl.n)
			case 2, 6, 7:
				w = w.Uvarint(fl.n)
			case 3, 4:
				w = w.Bytes(fl.b)
			case 5:
				w = w.Byte(byte(fl.n))
			}
		}
		if len(w) > len(msg) {
			t.Fatalf("re-encoding of %x is longer: %x", msg, []byte(w))
		}
		r2 := NewReader(w)
		for i, fl := range fields {
			var n uint64
			var b []byte
			switch fl.op {
			case 0:
				n = uint64(r2.U32())
			case 1:
				n = r2.U64()
			case 2, 6, 7:
				n = r2.Uvarint()
			case 3, 4:
				b = r2.Bytes()
			case 5:
				n = uint64(r2.Byte())
			}
			if n != fl.n || !bytes.Equal(b, fl.b) {
				t.Fatalf("field %d (op %d): read back %d %q, want %d %q", i, fl.op, n, b, fl.n, fl.b)
			}
		}
		if err := r2.Done(); err != nil {
			t.Fatalf("re-encoding does not read back: %v", err)
		}
	})
}
