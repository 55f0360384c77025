package versioning

import (
	"bytes"
	"encoding/hex"
	"math"
	"testing"
)

// The state encoding is what every node keeps on disk and sends to its
// peers, and the context token is what clients hold: both must stay
// byte-for-byte what earlier versions wrote. These goldens were recorded
// from the format's first implementation; an encoder change that alters
// them is a format change (a new version byte), not a refactoring.

func goldenStates() []State {
	return []State{
		{},
		{Context: VersionVector{e("a", 1)}},
		{
			Siblings: []Sibling{{Dot: Dot{"node-1", 7}, Value: []byte("hello"), ContentType: "text/plain", Modified: 1_700_000_000_000}},
			Context:  VersionVector{e("node-1", 7)},
		},
		{
			Siblings: []Sibling{
				{Dot: Dot{"a", 9}, Value: []byte{0, 0xff}, ContentType: "application/octet-stream", Modified: -1},
				{Dot: Dot{"b", 2}, Deleted: true, Modified: math.MinInt64},
				{Dot: Dot{"b", 300}, Value: []byte{}, Modified: math.MaxInt64},
			},
			Context: VersionVector{
				{Actor: "a", Counter: 9, Dots: []uint64{11, 200, 1 << 40}},
				{Actor: "b", Counter: 2, Dots: []uint64{300}},
				{Actor: "\u00e9", Counter: MaxCounter},
			},
		},
	}
}

var goldenStateHex = []string{
	"010000",
	"01010161010000",
	"0101066e6f64652d3107000100070080a0abfef9620a746578742f706c61696e0568656c6c6f",
	"01030161090301bc01b7feffffff1f01620201a90202c3a9808080808080808040000300090001186170706c" +
		"69636174696f6e2f6f637465742d73747265616d0200ff010201ffffffffffffffffff01000001ac0200feff" +
		"ffffffffffffff010000",
}

func goldenContexts() []VersionVector {
	return []VersionVector{
		nil,
		{e("node-00-3f9a2c1b", 1_000_000)},
		{{Actor: "node-00-3f9a2c1b", Counter: 1_000_000, Dots: []uint64{1_000_005}}},
		goldenStates()[3].Context,
	}
}

var goldenContextTokens = []string{
	"AQA",
	"AQEQbm9kZS0wMC0zZjlhMmMxYsCEPQA",
	"AQEQbm9kZS0wMC0zZjlhMmMxYsCEPQEE",
	"AQMBYQkDAbwBt_7___8fAWICAakCAsOpgICAgICAgIBAAA",
}

func TestGoldenEncodings(t *testing.T) {
	for i, st := range goldenStates() {
		want, err := hex.DecodeString(goldenStateHex[i])
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.MarshalBinary()
		if err != nil {
			t.Fatalf("state %d: MarshalBinary: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("state %d encodes as\n %x\nwant\n %x", i, got, want)
		}
		if got, err := st.AppendBinary([]byte{0xee}); err != nil || !bytes.Equal(got, append([]byte{0xee}, want...)) {
			t.Errorf("state %d: AppendBinary onto a prefix = %x, %v", i, got, err)
		}
		dec, err := DecodeState(want)
		if err != nil || !dec.Equal(st) {
			t.Errorf("state %d: DecodeState(golden) = %+v, %v; want %+v", i, dec, err, st)
		}
	}
	// The benchmarks' one-sibling 1 KiB state: a two-byte value length.
	want, _ := hex.DecodeString("0101106e6f64652d30302d3366396132633162c0843d000100c0843d0080a0abfef962" +
		"186170706c69636174696f6e2f6f637465742d73747265616d8008")
	st := oneSibling(t)
	want = append(want, st.Siblings[0].Value...)
	if got, err := st.MarshalBinary(); err != nil || !bytes.Equal(got, want) {
		t.Errorf("1 KiB state encodes as\n %x, %v\nwant\n %x", got, err, want)
	}
	for i, v := range goldenContexts() {
		if got := EncodeContext(v); got != goldenContextTokens[i] {
			t.Errorf("context %d encodes as %q, want %q", i, got, goldenContextTokens[i])
		}
		dec, err := DecodeContext(goldenContextTokens[i])
		if err != nil || !dec.Equal(v) {
			t.Errorf("context %d: DecodeContext(golden) = %v, %v; want %v", i, dec, err, v)
		}
	}
}
