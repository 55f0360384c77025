package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// testMaxValue is the MaxValue every test node is configured with.
const testMaxValue = 1024

// testKeys sign the contexts of test nodes: the same across a restart,
// as the secret recorded in a node's data directory is.
var testKeys = func() *versioning.ContextKeys {
	k, err := versioning.NewContextKeys([]byte("api test cluster secret, 32 b..."))
	if err != nil {
		panic(err)
	}
	return k
}()

// node is one dotkv node built from real parts: a pebble store on an
// in-memory filesystem, replica.Local, the api handler and an httptest
// server, talked to with a real net/http client.
type node struct {
	t      *testing.T
	fs     vfs.FS
	store  *storage.Store
	srv    *httptest.Server
	client *http.Client
	tr     *http.Transport
	// configure, if not nil, adjusts the api.Config of each start.
	configure func(*api.Config)
	// api is the handler srv serves.
	api *api.Server
	// token, if not "", is sent as "Authorization: Bearer token" by
	// requests whose header has no Authorization field.
	token string
}

// newNode starts a node on a fresh in-memory filesystem. Everything is
// closed at the end of the test.
func newNode(t *testing.T) *node {
	t.Helper()
	return newNodeWith(t, nil)
}

// newNodeWith is newNode with configure adjusting the node's api.Config.
func newNodeWith(t *testing.T, configure func(*api.Config)) *node {
	t.Helper()
	tr := &http.Transport{}
	n := &node{t: t, fs: vfs.NewMem(), tr: tr, client: &http.Client{Transport: tr}, configure: configure}
	n.start()
	t.Cleanup(func() {
		n.stop()
		tr.CloseIdleConnections()
	})
	return n
}

func (n *node) start() {
	n.t.Helper()
	store, err := storage.Open("db", storage.Options{
		NodeID: "n1", FS: n.fs, CacheSize: 1 << 20, MemTableSize: 1 << 20,
	})
	if err != nil {
		n.t.Fatalf("storage.Open: %v", err)
	}
	backend, err := replica.NewLocal("n1", store, replica.Config{})
	if err != nil {
		_ = store.Close()
		n.t.Fatalf("replica.NewLocal: %v", err)
	}
	n.store = store
	cfg := api.Config{
		NodeID: "n1", MaxValue: testMaxValue, Cluster: api.SingleNode("n1", "", backend.View()),
		ContextKeys: func() *versioning.ContextKeys { return testKeys },
	}
	if n.configure != nil {
		n.configure(&cfg)
	}
	n.api = api.New(backend, cfg)
	n.srv = httptest.NewServer(n.api)
}

// stop closes the server and the store; calling it twice is safe.
func (n *node) stop() {
	n.t.Helper()
	if n.srv != nil {
		n.srv.Close()
		n.srv = nil
	}
	n.tr.CloseIdleConnections()
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			n.t.Errorf("store.Close: %v", err)
		}
		n.store = nil
	}
}

// restart closes the server and the store, reopens the store on the same
// filesystem and serves it with a new handler.
func (n *node) restart() {
	n.t.Helper()
	n.stop()
	n.start()
}

// resp is a response read in full.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) ctx() string { return r.header.Get(api.HeaderContext) }

// String describes r for failure messages.
func (r resp) String() string {
	return r.header.Get("Content-Type") + " " + http.StatusText(r.status) + ": " + string(r.body)
}

// onlyReader hides the concrete type of a reader, so that net/http does
// not know the body length and sends it chunked.
type onlyReader struct{ io.Reader }

// do sends a request. rawPath is sent verbatim (it may hold "%2F", ".."
// or even invalid escapes) and may carry a "?query". Header values are
// set with Set.
func (n *node) do(method, rawPath string, hdr map[string]string, body io.Reader) resp {
	n.t.Helper()
	h := http.Header{}
	for k, v := range hdr {
		h.Set(k, v)
	}
	return n.doHeader(method, rawPath, h, body)
}

// doHeader is do with the request header given in full (a field may be
// repeated).
func (n *node) doHeader(method, rawPath string, hdr http.Header, body io.Reader) resp {
	n.t.Helper()
	u, err := url.Parse(n.srv.URL)
	if err != nil {
		n.t.Fatal(err)
	}
	u.Opaque, u.RawQuery, _ = strings.Cut(rawPath, "?")
	req, err := http.NewRequest(method, n.srv.URL, body)
	if err != nil {
		n.t.Fatalf("NewRequest %s %s: %v", method, rawPath, err)
	}
	req.URL = u
	if _, chunked := body.(onlyReader); chunked {
		req.ContentLength = -1
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if _, ok := req.Header["Authorization"]; !ok && n.token != "" {
		req.Header.Set("Authorization", "Bearer "+n.token)
	}
	res, err := n.client.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, rawPath, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		n.t.Fatalf("%s %s: read body: %v", method, rawPath, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// kvPath returns the path of key, escaped.
func kvPath(key string) string { return "/kv/" + url.PathEscape(key) }

// put writes value with content type ct and context vctx (none if "") and
// returns the context of the new version.
func (n *node) put(key, value, ct, vctx string) string {
	n.t.Helper()
	hdr := map[string]string{"Content-Type": ct}
	if vctx != "" {
		hdr[api.HeaderContext] = vctx
	}
	r := n.do(http.MethodPut, kvPath(key), hdr, strings.NewReader(value))
	if r.status != http.StatusNoContent {
		n.t.Fatalf("PUT %q = %v, want 204", key, r)
	}
	if r.ctx() == "" {
		n.t.Fatalf("PUT %q: no %s in the response", key, api.HeaderContext)
	}
	return r.ctx()
}

// del deletes key with context vctx (none if "").
func (n *node) del(key, vctx string) resp {
	n.t.Helper()
	hdr := map[string]string{}
	if vctx != "" {
		hdr[api.HeaderContext] = vctx
	}
	return n.do(http.MethodDelete, kvPath(key), hdr, nil)
}

func (n *node) get(key string) resp {
	n.t.Helper()
	return n.do(http.MethodGet, kvPath(key), nil, nil)
}

func (n *node) getJSON(key string) resp {
	n.t.Helper()
	return n.do(http.MethodGet, kvPath(key), map[string]string{"Accept": "application/json"}, nil)
}

// debugReplica returns GET /debug/replica/{key}.
func (n *node) debugReplica(key string) resp {
	n.t.Helper()
	return n.do(http.MethodGet, "/debug/replica/"+url.PathEscape(key), nil, nil)
}

// wantValue asserts a plain 200 response holding value with content type ct.
func wantValue(t *testing.T, r resp, value, ct string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("GET = %v, want 200 %q", r, value)
	}
	if string(r.body) != value {
		t.Errorf("GET body = %q, want %q", r.body, value)
	}
	if got := r.header.Get("Content-Type"); got != ct {
		t.Errorf("GET Content-Type = %q, want %q", got, ct)
	}
	if r.ctx() == "" {
		t.Errorf("GET: no %s header", api.HeaderContext)
	}
}

// part is one sibling of a multipart or JSON response.
type part struct {
	ContentType string
	Value       string
	Deleted     bool
}

func sortParts(ps []part) []part {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b part) int {
		if c := strings.Compare(a.Value, b.Value); c != 0 {
			return c
		}
		return strings.Compare(a.ContentType, b.ContentType)
	})
	return ps
}

// wantMultipart asserts a 300 multipart/mixed response whose parts are
// want (in any order) and returns its context.
func wantMultipart(t *testing.T, r resp, want ...part) string {
	t.Helper()
	if r.status != http.StatusMultipleChoices {
		t.Fatalf("GET = %v, want 300", r)
	}
	mt, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		t.Fatalf("300 Content-Type = %q (%v), want multipart/mixed with a boundary", r.header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(r.body), params["boundary"])
	var got []part
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v\nbody:\n%s", err, r.body)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("multipart part: %v", err)
		}
		got = append(got, part{
			ContentType: p.Header.Get("Content-Type"),
			Value:       string(b),
			Deleted:     p.Header.Get(api.HeaderDeleted) == "true",
		})
	}
	if !slices.Equal(sortParts(got), sortParts(want)) {
		t.Fatalf("multipart parts = %+v, want %+v", got, want)
	}
	if r.ctx() == "" {
		t.Fatalf("300: no %s header", api.HeaderContext)
	}
	return r.ctx()
}

// jsonState is the JSON body of GET with Accept: application/json, with
// pointers so that a missing field is told apart from a zero one.
type jsonState struct {
	Context  *string `json:"context"`
	Siblings []struct {
		Value       *string `json:"value"`
		ContentType *string `json:"content_type"`
		Deleted     *bool   `json:"deleted"`
		Dot         string  `json:"dot"`
	} `json:"siblings"`
}

// decodeSiblings parses a JSON state body strictly and returns its context
// and siblings, checking that values are standard base64.
func decodeSiblings(t *testing.T, body []byte) (string, []part, jsonState) {
	t.Helper()
	var js jsonState
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&js); err != nil {
		t.Fatalf("decode JSON state %s: %v", body, err)
	}
	if js.Context == nil {
		t.Fatalf("JSON state %s: no context", body)
	}
	var out []part
	for i, s := range js.Siblings {
		if s.Value == nil || s.ContentType == nil || s.Deleted == nil {
			t.Fatalf("JSON sibling %d of %s: missing value, content_type or deleted", i, body)
		}
		v, err := base64.StdEncoding.DecodeString(*s.Value)
		if err != nil {
			t.Fatalf("JSON sibling %d value %q is not base64: %v", i, *s.Value, err)
		}
		out = append(out, part{ContentType: *s.ContentType, Value: string(v), Deleted: *s.Deleted})
	}
	return *js.Context, out, js
}

// wantJSON asserts a 200 JSON state response with siblings want (in any
// order) and returns its context.
func wantJSON(t *testing.T, r resp, want ...part) string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("GET (JSON) = %v, want 200", r)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET (JSON) Content-Type = %q, want application/json", ct)
	}
	vctx, got, js := decodeSiblings(t, r.body)
	for _, s := range js.Siblings {
		if s.Dot != "" {
			t.Errorf("client JSON exposes a dot %q", s.Dot)
		}
	}
	if !slices.Equal(sortParts(got), sortParts(want)) {
		t.Fatalf("JSON siblings = %+v, want %+v", got, want)
	}
	if vctx == "" || vctx != r.ctx() {
		t.Fatalf("JSON context %q, header %q: want equal and non-empty", vctx, r.ctx())
	}
	return vctx
}

// errBody is the JSON error shape.
type errBody struct {
	Error   *string `json:"error"`
	Code    *string `json:"code"`
	Context string  `json:"context"`
}

// wantError asserts an error response with status and a JSON body holding a
// non-empty error and code.
func wantError(t *testing.T, r resp, status int, code string) errBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d (%v), want %d %s", r.status, r, status, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type = %q, want application/json (body %q)", ct, r.body)
	}
	var e errBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if e.Error == nil || *e.Error == "" {
		t.Errorf("error body %s: empty or missing \"error\"", r.body)
	}
	if e.Code == nil || *e.Code != code {
		t.Errorf("error body %s: code, want %q", r.body, code)
	}
	return e
}
