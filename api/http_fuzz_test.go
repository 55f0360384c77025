package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/auth"
	"github.com/dotkv/dotkv/internal/fuzzcheck"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// FuzzHTTPHandler drives the API handler of a single node (always
// available: no request fails for want of replicas) with arbitrary
// requests: method, path (escaped as it comes), query, header lines, body,
// and a Content-Length that matches the body, is missing (chunked), or
// says more or less than the body holds. The request is parsed from its
// wire form by net/http's own parser, as the server would; requests the
// parser refuses never reach the handler and are skipped.
//
// Whatever the request, the handler must not panic, must not answer 5xx
// (a 504 is allowed only for a request that set its own timeout, which a
// busy machine may miss), must answer errors as JSON {"error", "code"},
// and must not change stored data unless the request was a PUT or DELETE
// of /kv/{key} answered 204: then only that key's record changed, and it
// holds the written value (or a new tombstone) under a dot the answer's
// context covers.
func FuzzHTTPHandler(f *testing.F) {
	ctx := testKeys.Seal([]byte("seed0"), versioning.VersionVector{{Actor: "n1.x", Counter: 1}})
	for _, s := range []struct {
		method, path, query, hdr string
		body                     string
		cl                       byte
	}{
		{"GET", "/kv/seed0", "", "", "", clExact},
		{"GET", "/kv/seed1", "r=all", "Accept: application/json", "", clExact},
		{"HEAD", "/kv/seed2", "", "", "", clExact},
		{"GET", "/kv/seed3", "repair=sync&timeout=2s", "Accept: text/html, application/json;q=0.5", "", clExact},
		{"PUT", "/kv/seed0", "w=all", "Content-Type: text/plain\nX-Dotkv-Context: " + ctx, "v2", clExact},
		{"PUT", "/kv/new", "", "Content-Type: text/plain", "fresh", clChunked},
		{"PUT", "/kv/new", "", "", "short", clLong},
		{"PUT", "/kv/new", "", "", "longer than declared", clShort},
		{"PUT", "/kv/a%2Fb", "pw=1&timeout=500ms", "Content-Type: application/json", "{}", clExact},
		{"PUT", "/kv/seed1", "", "X-Dotkv-Context: !!!", "x", clExact},
		{"PUT", "/kv/seed1", "", "X-Dotkv-Context: AQEBYQD_____D8", "x", clExact},
		{"PUT", "/kv/seed1", "", "X-Dotkv-Context: " + ctx, "x", clExact}, // another key's
		{"PUT", "/kv/seed1", "", "X-Dotkv-Context: " + versioning.EncodeContext(versioning.VersionVector{{Actor: "n1.x", Counter: 1}}), "x", clExact},
		{"PUT", "/kv/seed1", "", "X-Dotkv-Context: a\nX-Dotkv-Context: b", "x", clExact},
		{"PUT", "/kv/seed1", "W=all", "", "x", clExact},
		{"PUT", "/kv/" + strings.Repeat("k", api.MaxKeyLen+1), "", "", "x", clExact},
		{"PUT", "/kv/big", "", "", strings.Repeat("x", 1100), clExact},
		{"DELETE", "/kv/seed2", "", "", "", clExact},
		{"DELETE", "/kv/seed3", "", "X-Dotkv-Context: " + ctx, "", clExact},
		{"DELETE", "/kv/missing", "w=1", "", "", clExact},
		{"POST", "/kv/seed0", "", "", "x", clExact},
		{"GET", "/kv/", "", "", "", clExact},
		{"GET", "/kv/..%2f..", "", "", "", clExact},
		{"GET", "/kv/%zz", "", "", "", clExact},
		{"GET", "/debug/replica/seed0", "", "", "", clExact},
		{"GET", "/debug/replica/seed0", "x=1", "", "", clExact},
		{"GET", "/debug/pprof/", "", "", "", clExact},
		{"GET", "/cluster/status", "", "", "", clExact},
		{"GET", "/cluster/preflist/seed0", "", "", "", clExact},
		{"POST", "/cluster/leave", "", "", "", clExact},
		{"POST", "/cluster/remove/n2", "force=true", "", "", clExact},
		{"POST", "/cluster/remove/%", "", "", "", clExact},
		{"GET", "/admin/aae", "", "", "", clExact},
		{"POST", "/admin/fault", "", "Content-Type: application/json", `{"block":["n2"]}`, clExact},
		{"DELETE", "/admin/fault", "", "", `{"heal":`, clExact},
		{"GET", "/healthz", "", "", "", clExact},
		{"GET", "/metrics", "", "", "", clExact},
		{"PATCH", "/nope", "", "", "", clExact},
	} {
		f.Add(s.method, s.path, s.query, s.hdr, []byte(s.body), s.cl)
	}

	var h *fuzzAPINode
	f.Cleanup(func() {
		if h != nil {
			h.close()
		}
	})
	f.Fuzz(func(t *testing.T, method, path, query, hdr string, body []byte, cl byte) {
		if h == nil || h.records > 200 {
			if h != nil {
				h.close()
			}
			h = newFuzzAPINode(t, false)
		}
		checkHTTPRequest(t, h, method, path, query, hdr, body, cl)
	})
}

// Content-Length modes of checkHTTPRequest.
const (
	clExact byte = iota
	clChunked
	clLong  // declares more than the body holds
	clShort // declares less
	clModes
)

// checkHTTPRequest sends one request, given in parts, to h's handler and
// checks the answer and the store as FuzzHTTPHandler describes.
func checkHTTPRequest(t *testing.T, h *fuzzAPINode, method, path, query, hdr string, body []byte, cl byte) {
	t.Helper()
	// The request in its wire form.
	var raw bytes.Buffer
	target := path
	if query != "" {
		target += "?" + query
	}
	fmt.Fprintf(&raw, "%s %s HTTP/1.1\r\nHost: n1\r\n", method, target)
	for _, line := range strings.Split(hdr, "\n") {
		if line = strings.TrimRight(line, "\r"); line != "" {
			raw.WriteString(line + "\r\n")
		}
	}
	switch cl % clModes {
	case clExact:
		fmt.Fprintf(&raw, "Content-Length: %d\r\n\r\n", len(body))
		raw.Write(body)
	case clChunked:
		raw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		if len(body) > 0 {
			fmt.Fprintf(&raw, "%x\r\n%s\r\n", len(body), body)
		}
		raw.WriteString("0\r\n\r\n")
	case clLong:
		fmt.Fprintf(&raw, "Content-Length: %d\r\n\r\n", len(body)+7)
		raw.Write(body)
	case clShort:
		fmt.Fprintf(&raw, "Content-Length: %d\r\n\r\n", len(body)/2)
		raw.Write(body)
	}
	req, err := http.ReadRequest(bufio.NewReader(&raw))
	if err != nil {
		return // net/http answers it (400) before any handler runs
	}
	refusal, role := 0, auth.Admin
	if h.auth {
		refusal, role = wantAccess(req)
	}
	if refusal == 0 && strings.HasPrefix(req.URL.Path, "/debug/pprof") &&
		(req.URL.RawQuery != "" || strings.Contains(req.URL.Path, "profile") || strings.Contains(req.URL.Path, "trace")) {
		return // Go's profiler: it can sleep for seconds; not dotkv's
	}
	req.RemoteAddr = "192.0.2.1:1234"
	// What a write sends: the body as the handler will read it.
	var sent []byte
	if req.Body != nil {
		sent, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(sent))
		if cl%clModes == clLong {
			req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(sent), errReader{io.ErrUnexpectedEOF}))
		}
	}

	before := h.dump(t)
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, req)
	res := rec.Result()
	after := h.dump(t)

	h.statuses[res.StatusCode]++
	desc := fmt.Sprintf("%s %s (Content-Length %d, %d body bytes) = %d %s", req.Method, req.URL.RequestURI(), req.ContentLength, len(sent), res.StatusCode, rec.Body.Bytes())
	if res.StatusCode >= 500 {
		_, hasTimeout := req.URL.Query()["timeout"]
		if res.StatusCode != http.StatusGatewayTimeout || !hasTimeout {
			t.Fatalf("5xx for a request to an available node: %s", desc)
		}
	}
	if res.StatusCode >= 400 && req.Method != http.MethodHead && !strings.HasPrefix(req.URL.Path, "/debug/pprof") {
		var e struct {
			Error *string `json:"error"`
			Code  *string `json:"code"`
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/json" || json.Unmarshal(rec.Body.Bytes(), &e) != nil ||
			e.Error == nil || e.Code == nil || *e.Code == "" {
			t.Fatalf("error answer is not JSON {error, code}: %s (Content-Type %q)", desc, ct)
		}
	}
	switch {
	case refusal == http.StatusUnauthorized && (res.StatusCode != refusal || res.Header.Get("WWW-Authenticate") != `Bearer realm="dotkv"`):
		t.Fatalf("a request without a valid token was not answered 401 with WWW-Authenticate (%q): %s", res.Header.Get("WWW-Authenticate"), desc)
	case refusal != 0 && res.StatusCode != refusal:
		t.Fatalf("want %d: %s", refusal, desc)
	case refusal == 0 && (res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden):
		t.Fatalf("access control refused a request that may pass: %s", desc)
	}
	escaped, isKV := strings.CutPrefix(req.URL.EscapedPath(), "/kv/")
	key, keyErr := url.PathUnescape(escaped)
	if res.StatusCode == http.StatusOK && req.Method == http.MethodGet && isKV {
		if _, err := testKeys.Open([]byte(key), res.Header.Get(api.HeaderContext)); err != nil {
			t.Fatalf("a read answered a context that does not open for its key (%v): %s", err, desc)
		}
	}

	diff := before.Changed(after)
	h.records = len(after)
	if len(diff) == 0 {
		if (req.Method == http.MethodPut) && res.StatusCode == http.StatusNoContent {
			t.Fatalf("a PUT answered 204 but stored nothing: %s", desc)
		}
		return
	}
	isWrite := isKV && (req.Method == http.MethodPut || req.Method == http.MethodDelete)
	if isWrite && res.StatusCode == http.StatusGatewayTimeout && role.Allows(auth.Write) && keyErr == nil &&
		len(diff) == 1 && diff[0] == key {
		// A write that timed out (timeout=1 ms) is outcome unknown: it may
		// have been applied, as its answer says; it must only not lose
		// what the key held.
		if old, cur := before.State(t, key), after.State(t, key); !versioning.Sync(old, cur).Equal(cur) {
			t.Fatalf("a timed-out write of %q lost what the key held:\n%+v\nbecame\n%+v", key, old, cur)
		}
		h.writes++
		return
	}
	if !isWrite || res.StatusCode != http.StatusNoContent {
		t.Fatalf("stored data changed (%v) by %s", diff, desc)
	}
	h.writes++
	if !role.Allows(auth.Write) {
		t.Fatalf("stored data changed (%v) by a request whose token's role is %v: %s", diff, role, desc)
	}
	if keyErr != nil {
		t.Fatalf("stored data changed (%v) by a request with a malformed key: %s", diff, desc)
	}
	if len(diff) != 1 || diff[0] != key {
		t.Fatalf("a write of %q changed %v: %s", key, diff, desc)
	}
	vctx, err := testKeys.Open([]byte(key), res.Header.Get(api.HeaderContext))
	if err != nil {
		t.Fatalf("a write answered a context that does not open for its key (%v): %s", err, desc)
	}
	old, cur := before.State(t, key), after.State(t, key)
	if !versioning.Sync(old, cur).Equal(cur) {
		t.Fatalf("a write of %q lost what the key held:\n%+v\nbecame\n%+v", key, old, cur)
	}
	ct := req.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	written := slices.ContainsFunc(cur.Siblings, func(s versioning.Sibling) bool {
		if !vctx.Covers(s.Dot) || old.Context.Covers(s.Dot) {
			return false
		}
		if req.Method == http.MethodDelete {
			return s.Deleted
		}
		return !s.Deleted && bytes.Equal(s.Value, sent) && s.ContentType == ct
	})
	if !written {
		t.Fatalf("a write of %q answered 204 with %v, but the key holds %+v: %s", key, vctx, cur, desc)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

const validAuthValues = 6

// fuzzTokens are the tokens of a fuzz node with access control.
var fuzzTokens = map[string]auth.Role{readToken: auth.Read, writeToken: auth.Write, adminToken: auth.Admin}

// authValues are Authorization header values: valid tokens of each role
// (the first validAuthValues: the scheme in any case, more than one
// space), unknown, garbled and truncated tokens, other schemes, no
// scheme, no token.
var authValues = []string{
	"Bearer " + readToken, "Bearer " + writeToken, "Bearer " + adminToken,
	"bearer " + writeToken, "BEARER   " + adminToken, "bEaReR " + readToken,
	"Bearer " + writeToken[:len(writeToken)-1], "Bearer " + writeToken + "x", "Bearer x" + adminToken,
	"Bearer " + strings.ToUpper(writeToken), "Bearer " + strings.Replace(adminToken, "a", "b", 1),
	"Bearer " + writeToken + " " + writeToken, "Bearer\t" + writeToken, "Bearer:" + writeToken,
	"Basic " + adminToken, "Token " + writeToken, adminToken, "Bearer", "Bearer ", "", " ",
	"Bearer " + strings.Repeat("x", 500), "Bearer " + readToken + "\x00",
}

// wantAccess is what access control must do with req, from the rules of
// Config.Auth written out again: 0 (let it through), 401 (no valid
// token) or 403 (a token without the role needed); and the role of its
// token (0 if none).
func wantAccess(req *http.Request) (refusal int, role auth.Role) {
	path := req.URL.EscapedPath()
	var need auth.Role
	switch {
	case path == "/healthz":
	case strings.HasPrefix(path, "/admin/") || strings.HasPrefix(path, "/debug/") ||
		path == "/cluster/leave" || strings.HasPrefix(path, "/cluster/remove/"):
		need = auth.Admin
	case strings.HasPrefix(path, "/kv/") &&
		(req.Method == http.MethodPut || req.Method == http.MethodPost || req.Method == http.MethodDelete):
		need = auth.Write
	default: // reads, /metrics with MetricsAuth, anything else
		need = auth.Read
	}
	if vals := req.Header.Values("Authorization"); len(vals) == 1 {
		scheme, tok, ok := strings.Cut(vals[0], " ")
		if ok && strings.EqualFold(scheme, "bearer") {
			role = fuzzTokens[strings.TrimLeft(tok, " ")]
		}
	}
	switch {
	case need == 0:
		return 0, role
	case role == 0:
		return http.StatusUnauthorized, 0
	case role < need:
		return http.StatusForbidden, role
	}
	return 0, role
}

// fuzzAPINode is one node's API over replica.Local and a real pebble
// store on vfs.NewMem, with keys holding one value, two siblings, a
// tombstone, and a value next to a tombstone.
type fuzzAPINode struct {
	store   *storage.Store
	backend *replica.Coordinator
	srv     *api.Server
	records int
	// auth: access control is on (newFuzzAPINode).
	auth bool
	// statuses counts the answers checkHTTPRequest saw, by status; writes
	// the requests that changed stored data.
	statuses map[int]int
	writes   int
}

// newFuzzAPINode returns a node for the fuzz checks; withAuth turns
// access control on, with the tokens fuzzTokens lists and MetricsAuth.
func newFuzzAPINode(tb testing.TB, withAuth bool) *fuzzAPINode {
	tb.Helper()
	store, err := storage.Open("db", storage.Options{NodeID: "n1", FS: vfs.NewMem(), Fsync: storage.FsyncNever,
		CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	backend, err := replica.NewLocal("n1", store, replica.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	n := &fuzzAPINode{store: store, backend: backend, auth: withAuth, statuses: map[int]int{}}
	cfg := api.Config{
		NodeID: "n1", MaxValue: 1024, Cluster: api.SingleNode("n1", "", backend.View()),
		Faults: &fakeFaults{}, Hints: store, AAE: zeroRoots{},
		ContextKeys: func() *versioning.ContextKeys { return testKeys },
	}
	if withAuth {
		var file strings.Builder
		for tok, role := range fuzzTokens {
			fmt.Fprintf(&file, "%v %s\n", role, tok)
		}
		toks, err := auth.Parse(strings.NewReader(file.String()))
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Auth, cfg.MetricsAuth = toks, true
	}
	n.srv = api.New(backend, cfg)
	put := func(key string, vctx versioning.VersionVector, sib versioning.Sibling) versioning.VersionVector {
		v, err := backend.Put(tb.Context(), []byte(key), vctx, sib, replica.WriteOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
	val := func(v string) versioning.Sibling {
		return versioning.Sibling{Value: []byte(v), ContentType: "text/plain"}
	}
	put("seed0", nil, val("v0"))
	put("seed1", nil, val("a"))
	put("seed1", nil, val("b"))
	put("seed2", put("seed2", nil, val("gone")), versioning.Sibling{Deleted: true})
	c := put("seed3", nil, val("x"))
	put("seed3", c, versioning.Sibling{Deleted: true})
	put("seed3", c, val("y"))
	return n
}

func (n *fuzzAPINode) close() {
	n.backend.Close()
	_ = n.store.Close()
}

// apiDump is every record the node stores, by key (a single node holds
// every partition, so a key names its record).
type apiDump = fuzzcheck.Dump

func (n *fuzzAPINode) dump(tb testing.TB) apiDump {
	tb.Helper()
	d := apiDump{}
	if err := n.store.ScanRecords(func(_ uint32, key, raw []byte) error {
		d[string(key)] = bytes.Clone(raw)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	for target := range n.store.HintCounts() {
		d["hint for "+target] = nil // a single node never keeps hints
	}
	return d
}

// fakeFaults is an in-memory fault filter for /admin/fault.
type fakeFaults struct {
	mu      sync.Mutex
	blocked []string
}

func (f *fakeFaults) Block(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if !slices.Contains(f.blocked, id) {
			f.blocked = append(f.blocked, id)
		}
	}
}

func (f *fakeFaults) Heal(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ids) == 0 {
		f.blocked = nil
	}
	f.blocked = slices.DeleteFunc(f.blocked, func(id string) bool { return slices.Contains(ids, id) })
}

func (f *fakeFaults) Blocked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.blocked)
}

type zeroRoots struct{}

func (zeroRoots) Roots(ps []uint32) []uint64 { return make([]uint64, len(ps)) }

// TestHTTPHandlerRandomRequests is FuzzHTTPHandler's check on requests
// drawn from the API's own vocabulary (every route, the query parameters
// and their values, the headers it reads, odd escapes, valid, stale,
// forged and malformed contexts, bodies around the value limit), so that
// every test run covers what a blind fuzzer takes long to reach. The
// seed is logged; set DOTKV_HTTP_SEED to replay one.
func TestHTTPHandlerRandomRequests(t *testing.T) { randomHTTPRequests(t, false) }

// TestHTTPHandlerRandomRequestsAuth is TestHTTPHandlerRandomRequests with
// access control on, each request carrying no Authorization header, one
// or two, of tokens of each role and of garbled or unknown ones: a request
// without a valid token is answered 401, one whose token lacks the role
// 403, and only a write or admin token ever changes stored data.
func TestHTTPHandlerRandomRequestsAuth(t *testing.T) { randomHTTPRequests(t, true) }

// FuzzHTTPHandlerAuth is FuzzHTTPHandler with access control on (and
// MetricsAuth): who picks an Authorization header of authValues (or none),
// and hdr may add more. Beyond FuzzHTTPHandler's checks, a request
// without a valid token must be answered 401 with WWW-Authenticate, one
// whose token lacks the role 403, and stored data may change only by a
// request with a write or admin token.
func FuzzHTTPHandlerAuth(f *testing.F) {
	for i, s := range []struct {
		method, path, query, hdr string
		body                     string
	}{
		{"GET", "/kv/seed0", "", "", ""},
		{"PUT", "/kv/seed0", "w=all", "Content-Type: text/plain", "v2"},
		{"PUT", "/kv/new", "", "Authorization: Bearer " + writeToken, "x"},
		{"DELETE", "/kv/seed1", "", "", ""},
		{"POST", "/kv/seed1", "", "", "x"},
		{"GET", "/debug/replica/seed0", "", "", ""},
		{"GET", "/debug/pprof/", "", "", ""},
		{"GET", "/debug/pprof/profile", "seconds=5", "", ""},
		{"GET", "/cluster/status", "", "", ""},
		{"POST", "/cluster/leave", "", "", ""},
		{"POST", "/cluster/remove/n2", "force=true", "", ""},
		{"POST", "/admin/fault", "", "Content-Type: application/json", `{"block":["n2"]}`},
		{"GET", "/healthz", "", "", ""},
		{"GET", "/metrics", "", "", ""},
		{"PATCH", "/nope", "", "", ""},
	} {
		for who := range len(authValues) + 1 {
			if (i+who)%3 == 0 || who < validAuthValues {
				f.Add(s.method, s.path, s.query, s.hdr, []byte(s.body), clExact, byte(who))
			}
		}
	}
	var h *fuzzAPINode
	f.Cleanup(func() {
		if h != nil {
			h.close()
		}
	})
	f.Fuzz(func(t *testing.T, method, path, query, hdr string, body []byte, cl, who byte) {
		if h == nil || h.records > 200 {
			if h != nil {
				h.close()
			}
			h = newFuzzAPINode(t, true)
		}
		if int(who) < len(authValues) {
			hdr = "Authorization: " + authValues[who] + "\n" + hdr
		}
		checkHTTPRequest(t, h, method, path, query, hdr, body, cl)
	})
}

func randomHTTPRequests(t *testing.T, withAuth bool) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DOTKV_HTTP_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (DOTKV_HTTP_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }

	cases := 1500
	if testing.Short() {
		cases = 300
	}
	h := newFuzzAPINode(t, withAuth)
	statuses, writes := map[int]int{}, 0
	tally := func() {
		for code, n := range h.statuses {
			statuses[code] += n
		}
		writes += h.writes
	}
	defer func() {
		tally()
		h.close()
		t.Logf("%d requests changed stored data; answers by status: %v", writes, statuses)
	}()
	for i := range cases {
		if h.records > 200 {
			tally()
			h.close()
			h = newFuzzAPINode(t, withAuth)
		}
		key := pick("seed0", "seed1", "seed2", "seed3", "seed0", "seed1", "seed2", "seed3", "new", "a%2Fb", "a/b", "..", "%2e%2e", "a//b", "%00", "%zz", "%",
			"%C3%28", url.PathEscape(string(randBytes(rng, 1+rng.IntN(20)))), strings.Repeat("k", api.MaxKeyLen),
			strings.Repeat("k", api.MaxKeyLen+1), strings.Repeat("%6B", api.MaxKeyLen+1), "")
		// Contexts: what a read of the key returns now (sealed for it), a
		// stale or another key's one, one naming a write this node never
		// issued, the unsigned format of an older dotkv, malformed ones.
		raw, err := url.PathUnescape(key)
		if err != nil {
			raw = key
		}
		st, err := h.backend.Get(t.Context(), []byte(raw), replica.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		good := testKeys.Seal([]byte(raw), st.Context)
		other := testKeys.Seal([]byte(pick("seed0", "seed1", "seed2", "seed3")), st.Context)
		forged := testKeys.Seal([]byte(raw), versioning.VersionVector{{Actor: h.store.Actor(), Counter: 1 << 40}})
		ctxVal := pick(good, good, good, good, good, good[:len(good)/2], good+"=", " "+good+" ", other, forged, "", " ", "!!!", "AQA", "%%%",
			versioning.EncodeContext(st.Context))

		path := "/kv/"
		if rng.IntN(5) < 2 {
			path = pick("/debug/replica/", "/cluster/preflist/", "/cluster/remove/",
				"/kv", "/KV/", "//kv/", "/debug/", "/cluster/status", "/cluster/leave", "/admin/aae", "/admin/fault",
				"/admin/", "/healthz", "/metrics", "/", "/nope/")
		}
		if rng.IntN(5) > 0 {
			path += key
		}
		var q []string
		for range max(rng.IntN(6)-2, 0) {
			name := pick("r", "pr", "w", "pw", "timeout", "repair", "W", "x", "force", "")
			q = append(q, name+"="+pick("one", "quorum", "all", "default", "0", "1", "2", "3", "4", "-1",
				"2s", "0ms", "61s", "500", "sync", "async", "", "%zz", "true", "ONE"))
		}
		var hdr []string
		if rng.IntN(2) == 0 {
			hdr = append(hdr, "Content-Type: "+pick("text/plain", "application/json", "multipart/mixed; boundary=x",
				strings.Repeat("t", 300), "a/b; c=\"d\"", "\x7f"))
		}
		for range []int{0, 0, 0, 0, 0, 1, 1, 1, 1, 2}[rng.IntN(10)] {
			hdr = append(hdr, api.HeaderContext+": "+ctxVal)
		}
		if rng.IntN(3) == 0 {
			hdr = append(hdr, "Accept: "+pick("application/json", "*/*", "application/json;q=0", "text/html, application/json;q=0.5", ";;;"))
		}
		if rng.IntN(8) == 0 {
			hdr = append(hdr, "Expect: 100-continue")
		}
		if withAuth {
			for range []int{0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2}[rng.IntN(12)] {
				v := authValues[rng.IntN(len(authValues))]
				if rng.IntN(3) > 0 {
					v = authValues[rng.IntN(validAuthValues)]
				}
				hdr = append(hdr, "Authorization: "+v)
			}
		}
		var body []byte
		switch rng.IntN(4) {
		case 0:
		case 1:
			body = randBytes(rng, rng.IntN(64))
		case 2:
			body = randBytes(rng, 1020+rng.IntN(10)) // around MaxValue
		case 3:
			body = []byte(pick(`{"block":["n2"]}`, `{"heal":["n2"]}`, `{"heal":`, `[]`, `{"block":[]}`))
		}
		method := pick("GET", "GET", "GET", "HEAD", "PUT", "PUT", "PUT", "PUT", "DELETE", "DELETE", "DELETE", "POST", "PATCH", "OPTIONS", "BREW", "get")
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			checkHTTPRequest(t, h, method, path, strings.Join(q, "&"), strings.Join(hdr, "\n"), body, byte(rng.IntN(int(clModes))))
		})
		if t.Failed() {
			return
		}
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}
