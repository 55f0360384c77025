package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// TestContextsAreBoundAndSigned: a context is accepted only for the key
// it was read for and under this node's secret; the refused write
// changes nothing.
func TestContextsAreBoundAndSigned(t *testing.T) {
	n := newNode(t)
	n.put("a", "a1", ctText, "")
	n.put("b", "b1", ctText, "")
	ctxA := n.get("a").ctx()
	before := n.debugReplica("b").body

	otherKeys, err := versioning.NewContextKeys([]byte("another cluster's secret, 32 b.."))
	if err != nil {
		t.Fatal(err)
	}
	rawA, err := testKeys.Open([]byte("a"), ctxA)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, token, says string
	}{
		{"a context of another key", ctxA, "read for another key"},
		{"a context of another cluster", otherKeys.Seal([]byte("b"), rawA), "not signed by this cluster"},
		{"an unsigned context of an older dotkv", versioning.EncodeContext(rawA), "read the key again"},
	} {
		for _, method := range []string{http.MethodPut, http.MethodDelete} {
			r := n.do(method, kvPath("b"), map[string]string{api.HeaderContext: c.token, "Content-Type": ctText}, strings.NewReader("b2"))
			e := wantError(t, r, http.StatusBadRequest, "bad_context")
			if !strings.Contains(*e.Error, c.says) {
				t.Errorf("%s %s: error %q; want it to say %q", method, c.name, *e.Error, c.says)
			}
		}
	}
	if after := n.debugReplica("b").body; !bytes.Equal(after, before) {
		t.Fatalf("refused writes changed b:\nbefore %s\nafter  %s", before, after)
	}
	// The context of b's own read works.
	n.put("b", "b2", ctText, n.get("b").ctx())
	wantValue(t, n.get("b"), "b2", ctText)
	// So does a's, for a.
	n.put("a", "a2", ctText, ctxA)
	wantValue(t, n.get("a"), "a2", ctText)
}

// TestContextsNeedTheSecret: a node that does not know its cluster's
// secret yet answers /kv/ requests 503 not_ready, and answers them once
// it does.
func TestContextsNeedTheSecret(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	store, err := storage.Open("db", storage.Options{NodeID: "solo", FS: vfs.NewMem(), CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	backend, err := replica.NewLocal("solo", store, replica.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var keys atomic.Pointer[versioning.ContextKeys]
	srv := httptest.NewServer(api.New(backend, api.Config{
		NodeID: "solo", Cluster: api.SingleNode("solo", "", backend.View()),
		ContextKeys: keys.Load,
	}))
	defer srv.Close()
	get := func() int {
		res, err := http.Get(srv.URL + "/kv/k")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := get(); got != http.StatusServiceUnavailable {
		t.Fatalf("GET without the secret = %d; want 503", got)
	}
	keys.Store(testKeys)
	if got := get(); got != http.StatusNotFound {
		t.Fatalf("GET with the secret = %d; want 404", got)
	}
}

// TestContextBeyondTheVectorLimitIsRefused: a signed context whose actors,
// merged with the key's, would make a version vector beyond the
// encoding's limit (versioning.MaxActors) is 400 bad_context, not a 500:
// nothing is stored and the dot it would have taken is not consumed.
// (Only a holder of the cluster secret can sign such a context.)
func TestContextBeyondTheVectorLimitIsRefused(t *testing.T) {
	n := newNode(t)
	first := n.put("k", "v1", ctText, "")
	before := n.debugReplica("k").body
	many := make(versioning.VersionVector, versioning.MaxActors)
	for i := range many {
		many[i] = versioning.Entry{Actor: fmt.Sprintf("foreign-%04d", i), Counter: 1}
	}
	token := testKeys.Seal([]byte("k"), many)
	r := n.do(http.MethodPut, kvPath("k"), map[string]string{api.HeaderContext: token, "Content-Type": ctText}, strings.NewReader("v2"))
	e := wantError(t, r, http.StatusBadRequest, "bad_context")
	if !strings.Contains(*e.Error, "nothing written") || !strings.Contains(*e.Error, "actors exceed limit") {
		t.Errorf("error %q; want it to say nothing was written and which limit", *e.Error)
	}
	if after := n.debugReplica("k").body; !bytes.Equal(after, before) {
		t.Fatalf("the refused write changed k:\nbefore %s\nafter  %s", before, after)
	}
	// The refused write's dot was taken back: the next write gets the
	// counter after the first write's.
	counter := func(key, token string) uint64 {
		t.Helper()
		vv, err := testKeys.Open([]byte(key), token)
		if err != nil {
			t.Fatal(err)
		}
		return vv.Max(n.store.Actor())
	}
	issued := counter("k", first)
	if c := counter("other", n.put("other", "x", ctText, "")); c != issued+1 {
		t.Fatalf("the next write's dot is %d; want %d (the refused write's dot reissued)", c, issued+1)
	}
}
