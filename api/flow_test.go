package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/versioning"
)

const (
	ctText = "text/plain; charset=utf-8"
	ctJSON = "application/json"
	ctBin  = "application/x-dotkv-test"
)

// TestFlowContract walks the client contract: write, read, concurrent
// writes as siblings, resolution with a context, blind writes, delete.
func TestFlowContract(t *testing.T) {
	n := newNode(t)
	const k = "flow"

	n.put(k, "v1", ctText, "")
	r := n.get(k)
	wantValue(t, r, "v1", ctText)
	c1 := r.ctx()

	// Two writes with the same context are concurrent: both survive.
	n.put(k, "v2", ctJSON, c1)
	n.put(k, "v3", ctBin, c1)
	r = n.get(k)
	c2 := wantMultipart(t, r, part{ctJSON, "v2", false}, part{ctBin, "v3", false})
	if c2 == c1 {
		t.Fatalf("context after two more writes %q equals C1", c2)
	}

	// The same state as JSON.
	r = n.getJSON(k)
	if got := wantJSON(t, r, part{ctJSON, "v2", false}, part{ctBin, "v3", false}); got != c2 {
		t.Fatalf("JSON context %q, multipart context %q: want equal", got, c2)
	}

	// A write with C2 has seen both: it replaces them.
	n.put(k, "v4", ctText, c2)
	r = n.get(k)
	wantValue(t, r, "v4", ctText)

	// A write without a context is blind: it becomes a sibling.
	n.put(k, "v6", ctBin, "")
	r = n.get(k)
	latest := wantMultipart(t, r, part{ctText, "v4", false}, part{ctBin, "v6", false})

	// A delete with the latest context removes every value.
	if d := n.del(k, latest); d.status != http.StatusNoContent || d.ctx() == "" {
		t.Fatalf("DELETE with the latest context = %v (context %q), want 204 with a context", d, d.ctx())
	}
	r = n.get(k)
	e := wantError(t, r, http.StatusNotFound, "not_found")
	if r.ctx() == "" {
		t.Fatalf("404 after delete: no %s header", api.HeaderContext)
	}
	if e.Context != r.ctx() {
		t.Errorf("404 body context %q, header %q: want equal", e.Context, r.ctx())
	}
}

// TestPutReturnsNewVersionContext checks that the context a PUT returns
// covers only what the client saw plus its own write: writing again with
// it replaces that write and keeps a concurrent one.
func TestPutReturnsNewVersionContext(t *testing.T) {
	n := newNode(t)
	const k = "newversion"

	n.put(k, "v1", ctText, "")
	c1 := n.get(k).ctx()
	n.put(k, "v2", ctText, c1)
	c3 := n.put(k, "v3", ctText, c1)

	// c3 is C1 plus v3's dot, and not v2's.
	dots := debugDots(t, n, k)
	vc1, vc3 := decodeCtx(t, k, c1), decodeCtx(t, k, c3)
	if !vc3.Descends(vc1) {
		t.Errorf("PUT context %v does not descend the client's context %v", vc3, vc1)
	}
	if !vc3.Covers(dots["v3"]) {
		t.Errorf("PUT context %v does not cover the new write's dot %v", vc3, dots["v3"])
	}
	if vc3.Covers(dots["v2"]) {
		t.Errorf("PUT context %v covers the concurrent write's dot %v, which the client never saw", vc3, dots["v2"])
	}

	// The client that wrote v3 never saw v2: v2 must survive.
	n.put(k, "v5", ctText, c3)
	wantJSON(t, n.getJSON(k), part{ctText, "v2", false}, part{ctText, "v5", false})
	wantMultipart(t, n.get(k), part{ctText, "v2", false}, part{ctText, "v5", false})

	// The PUT context of a sole writer replaces its value.
	c6 := n.put("solo", "a", ctText, "")
	n.put("solo", "b", ctText, c6)
	wantValue(t, n.get("solo"), "b", ctText)
}

func decodeCtx(t *testing.T, key, token string) versioning.VersionVector {
	t.Helper()
	v, err := testKeys.Open([]byte(key), token)
	if err != nil {
		t.Fatalf("context %q: %v", token, err)
	}
	return v
}

// debugDots returns the dot of each sibling of key by value, from
// /debug/replica.
func debugDots(t *testing.T, n *node, key string) map[string]versioning.Dot {
	t.Helper()
	r := n.debugReplica(key)
	if r.status != http.StatusOK {
		t.Fatalf("debug/replica/%s = %v", key, r)
	}
	_, parts, js := decodeSiblings(t, r.body)
	out := map[string]versioning.Dot{}
	for i, p := range parts {
		actor, counter, ok := strings.Cut(js.Siblings[i].Dot, ":")
		c, err := strconv.ParseUint(counter, 10, 64)
		if !ok || actor == "" || err != nil || c == 0 {
			t.Fatalf("debug/replica/%s: sibling %d has dot %q, want actor:counter", key, i, js.Siblings[i].Dot)
		}
		out[p.Value] = versioning.Dot{Actor: actor, Counter: c}
	}
	return out
}

func TestDeleteWithoutContext(t *testing.T) {
	n := newNode(t)

	t.Run("deletes what a read sees", func(t *testing.T) {
		const k = "del-blind"
		c1 := n.get(k).ctx()
		if c1 != "" {
			t.Fatalf("never-written key has context %q", c1)
		}
		c := n.put(k, "v1", ctText, "")
		n.put(k, "v2", ctText, "") // siblings
		n.put(k, "v3", ctText, c)  // replaces v1 only
		wantMultipart(t, n.get(k), part{ctText, "v2", false}, part{ctText, "v3", false})
		if d := n.del(k, ""); d.status != http.StatusNoContent || d.ctx() == "" {
			t.Fatalf("DELETE without context = %v (context %q), want 204 with a context", d, d.ctx())
		}
		wantError(t, n.get(k), http.StatusNotFound, "not_found")
		// Deleting a deleted key again is not an error.
		if d := n.del(k, ""); d.status != http.StatusNoContent {
			t.Fatalf("second DELETE = %v, want 204", d)
		}
		wantError(t, n.get(k), http.StatusNotFound, "not_found")
	})

	t.Run("never-written key", func(t *testing.T) {
		r := n.del("del-never", "")
		wantError(t, r, http.StatusNotFound, "not_found")
		// Nothing was written.
		wantError(t, n.debugReplica("del-never"), http.StatusNotFound, "not_found")
		r = n.get("del-never")
		wantError(t, r, http.StatusNotFound, "not_found")
		if r.ctx() != "" {
			t.Errorf("never-written key: 404 has context %q", r.ctx())
		}
	})

	t.Run("blind put after delete keeps the tombstone as a sibling", func(t *testing.T) {
		const k = "del-then-blind"
		n.put(k, "v1", ctText, "")
		if d := n.del(k, ""); d.status != http.StatusNoContent {
			t.Fatalf("DELETE = %v", d)
		}
		n.put(k, "v2", ctText, "")
		wantJSON(t, n.getJSON(k), part{"", "", true}, part{ctText, "v2", false})
		wantMultipart(t, n.get(k), part{"", "", true}, part{ctText, "v2", false})
	})

	t.Run("put with the 404 context replaces the tombstone", func(t *testing.T) {
		const k = "del-then-ctx"
		n.put(k, "v1", ctText, "")
		if d := n.del(k, ""); d.status != http.StatusNoContent {
			t.Fatalf("DELETE = %v", d)
		}
		r := n.get(k)
		wantError(t, r, http.StatusNotFound, "not_found")
		n.put(k, "v2", ctText, r.ctx())
		wantValue(t, n.get(k), "v2", ctText)
		wantJSON(t, n.getJSON(k), part{ctText, "v2", false})
	})
}

// recorded is the part of a response that must survive a restart.
type recorded struct {
	status      int
	contentType []string
	context     []string
	body        []byte
}

func record(r resp) recorded {
	return recorded{
		status:      r.status,
		contentType: r.header.Values("Content-Type"),
		context:     r.header.Values(api.HeaderContext),
		body:        r.body,
	}
}

func (a recorded) equal(b recorded) bool {
	return a.status == b.status && fmt.Sprint(a.contentType) == fmt.Sprint(b.contentType) &&
		fmt.Sprint(a.context) == fmt.Sprint(b.context) && bytes.Equal(a.body, b.body)
}

// TestRestartKeepsResponses reads a set of keys, restarts the node (store
// closed and reopened on the same filesystem, new handler) and checks that
// every response is byte-for-byte the same.
func TestRestartKeepsResponses(t *testing.T) {
	n := newNode(t)

	n.put("single", "only", ctText, "")
	c := n.put("multi", "m1", ctText, "")
	n.put("multi", "m2", ctJSON, c)
	n.put("multi", "m3", ctBin, c)
	n.put("tomb", "t1", ctText, "")
	if d := n.del("tomb", ""); d.status != http.StatusNoContent {
		t.Fatalf("DELETE tomb = %v", d)
	}
	n.put("mixed", "x1", ctText, "")
	n.del("mixed", "")
	n.put("mixed", "x2", ctText, "")
	n.put("empty", "", ctBin, "")

	type query struct {
		name       string
		path       string
		hdr        map[string]string
		wantStatus int
	}
	queries := []query{
		{"single", kvPath("single"), nil, http.StatusOK},
		{"multi multipart", kvPath("multi"), nil, http.StatusMultipleChoices},
		{"multi JSON", kvPath("multi"), map[string]string{"Accept": "application/json"}, http.StatusOK},
		{"mixed multipart", kvPath("mixed"), nil, http.StatusMultipleChoices},
		{"mixed JSON", kvPath("mixed"), map[string]string{"Accept": "application/json"}, http.StatusOK},
		{"tombstoned", kvPath("tomb"), nil, http.StatusNotFound},
		{"never written", kvPath("never"), nil, http.StatusNotFound},
		{"empty value", kvPath("empty"), nil, http.StatusOK},
		{"debug multi", "/debug/replica/multi", nil, http.StatusOK},
		{"debug tomb", "/debug/replica/tomb", nil, http.StatusOK},
		{"debug mixed", "/debug/replica/mixed", nil, http.StatusOK},
		{"debug never", "/debug/replica/never", nil, http.StatusNotFound},
	}
	readAll := func() []recorded {
		t.Helper()
		var out []recorded
		for _, q := range queries {
			r := n.do(http.MethodGet, q.path, q.hdr, nil)
			if r.status != q.wantStatus {
				t.Fatalf("%s: GET %s = %v, want %d", q.name, q.path, r, q.wantStatus)
			}
			out = append(out, record(r))
		}
		return out
	}

	before := readAll()
	// Reading twice gives the same bytes too (no per-request randomness
	// such as a random multipart boundary).
	again := readAll()
	for i := range again {
		if !again[i].equal(before[i]) {
			t.Errorf("%s: two reads differ:\n%+v\n%+v", queries[i].name, before[i], again[i])
		}
	}

	n.restart()
	after := readAll()
	for i := range queries {
		if !before[i].equal(after[i]) {
			t.Errorf("%s: response changed across restart:\nbefore %d %q %q\n%s\nafter  %d %q %q\n%s",
				queries[i].name,
				before[i].status, before[i].contentType, before[i].context, before[i].body,
				after[i].status, after[i].contentType, after[i].context, after[i].body)
		}
	}

	// A context read before the restart still works: it resolves both
	// siblings, and the new write is not mistaken for an old one.
	multiCtx := before[1].context
	if len(multiCtx) != 1 {
		t.Fatalf("multi: context header %q, want one", multiCtx)
	}
	n.put("multi", "m4", ctText, multiCtx[0])
	wantValue(t, n.get("multi"), "m4", ctText)
	// And a blind write after the restart is a new sibling, not dropped.
	n.put("single", "only2", ctText, "")
	wantMultipart(t, n.get("single"), part{ctText, "only", false}, part{ctText, "only2", false})
}
