package history

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// TestAddAssignsIndexes: concurrent Adds get distinct indexes 0..n-1, each
// op stored at its index; Ops and Phases return copies.
func TestAddAssignsIndexes(t *testing.T) {
	var h History
	const clients, each = 8, 50
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for range each {
				h.Add(Op{Client: c, Kind: OpRead, Index: -7})
			}
		})
	}
	wg.Wait()
	ops := h.Ops()
	if len(ops) != clients*each {
		t.Fatalf("%d ops, want %d", len(ops), clients*each)
	}
	perClient := map[int]int{}
	for i, o := range ops {
		if o.Index != i {
			t.Fatalf("op %d has Index %d", i, o.Index)
		}
		perClient[o.Client]++
	}
	for c := range clients {
		if perClient[c] != each {
			t.Errorf("client %d: %d ops, want %d", c, perClient[c], each)
		}
	}

	h.AddPhase(Phase{Name: "healthy"})
	ops[0].Key = "changed"
	h.Phases()[0].Name = "changed"
	if h.Ops()[0].Key == "changed" || h.Phases()[0].Name != "healthy" {
		t.Error("Ops or Phases returned the History's own slice")
	}
}

// TestJSONLRoundTrip: what WriteJSONL writes, one op a line, ReadJSONL
// reads back unchanged.
func TestJSONLRoundTrip(t *testing.T) {
	var h History
	want := []Op{
		h.Add(Op{Client: 1, Kind: OpWrite, Key: "k", Node: "http://n1", Start: 10, End: 20, Status: 204,
			Outcome: OK, Value: "c1-1", Context: "ctx", Covers: []string{"c2-1"}, Level: "w=2&pw=2", Phase: "healthy"}),
		h.Add(Op{Client: 2, Kind: OpRead, Key: "k", Node: "http://n2", Start: 15, End: 30, Status: 300,
			Outcome: OK, Values: []string{"c1-1", "c2-1"}, Tombstones: 1, ReadContext: "rc", Phase: "kill n3"}),
		h.Add(Op{Client: 3, Kind: OpDelete, Key: "j", Start: 40, End: 41, Outcome: Info, Error: "timeout"}),
	}
	var b bytes.Buffer
	if err := h.WriteJSONL(&b); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n"); n != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", n, len(want), b.String())
	}
	path := filepath.Join(t.TempDir(), "history.jsonl")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, want)
	}
	if d := want[1].Latency(); d != 15 {
		t.Errorf("Latency %v, want 15ns", d)
	}
}

// TestReadJSONLErrors: a missing file and a malformed line are errors
// naming the file.
func TestReadJSONLErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadJSONL(filepath.Join(dir, "missing.jsonl")); err == nil {
		t.Error("missing file: no error")
	}
	path := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(path, []byte(`{"i":0,"kind":"read"}`+"\n"+`{"i":1,"kind":`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJSONL(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("malformed line: err %v, want one naming %s", err, path)
	}
}
