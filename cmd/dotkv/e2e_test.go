//go:build unix

// End-to-end tests: they build the dotkv binary once, run it as real
// processes (server, dev and the client commands) and talk to it over HTTP
// the way curl would. They are skipped with -short.

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Time limits of the e2e tests. Every wait is bounded by one of them.
const (
	buildTimeout   = 5 * time.Minute
	startTimeout   = 30 * time.Second // until /healthz answers 200 (generous: a busy machine)
	stopTimeout    = 20 * time.Second // the server's own shutdown budget is 10 s
	cliTimeout     = 30 * time.Second // one client or failing-server process
	requestTimeout = 10 * time.Second // one HTTP request
	pollInterval   = 5 * time.Millisecond
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// dotkvBin returns the path of the dotkv binary, building it on first use.
// It skips the calling test in -short mode.
func dotkvBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped in -short mode")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dotkv-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		bin := filepath.Join(dir, "dotkv")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		binPath = bin
	})
	if buildErr != nil {
		t.Fatalf("build dotkv: %v", buildErr)
	}
	return binPath
}

// syncBuffer is a bytes.Buffer safe for a process's output copier and the
// test reading it at the same time.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// cleanEnv is the test's environment without DOTKV_ADDR, so that only the
// flags a test passes choose the node.
func cleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "DOTKV_ADDR=") })
}

// freeAddr returns a loopback address with a port that was free a moment
// ago. Another process may take it before the server binds it; startServer
// retries on that.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close probe listener: %v", err)
	}
	return addr
}

// proc is a long-running dotkv process (server or dev).
type proc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	stdout  *syncBuffer
	stderr  *syncBuffer
	done    chan struct{} // closed once the process has exited
	waitErr error         // valid after done
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(dotkvBin(t), args...)
	p.cmd.Env = cleanEnv()
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s %q\n--- stdout:\n%s--- stderr:\n%s", name, args, p.stdout, p.stderr)
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and requires a clean exit (status 0) in time; past the
// deadline it kills the process and fails the test.
func (p *proc) stop() {
	p.t.Helper()
	if p.exited() {
		p.t.Fatalf("%s exited before SIGTERM: %v\nstderr:\n%s", p.name, p.waitErr, p.stderr)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("%s did not exit within %v of SIGTERM; killed", p.name, stopTimeout)
	}
	if p.waitErr != nil {
		p.t.Fatalf("%s after SIGTERM: %v (want exit status 0)\nstderr:\n%s", p.name, p.waitErr, p.stderr)
	}
}

// server is a running `dotkv server` and an HTTP client for it.
type server struct {
	*proc
	id     string
	addr   string // host:port
	base   string // http://host:port
	client *http.Client
}

// startServer runs `dotkv server --id id --data data --http <free port>
// --fsync always` plus extra flags, and returns once /healthz answers 200.
func startServer(t *testing.T, id, data string, extra ...string) *server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		args := append([]string{"server", "--id", id, "--data", data, "--http", addr, "--fsync", "always"}, extra...)
		s := &server{
			proc: startProc(t, "dotkv server "+id, args...),
			id:   id, addr: addr, base: "http://" + addr,
			client: &http.Client{Timeout: requestTimeout, Transport: &http.Transport{}},
		}
		t.Cleanup(s.client.CloseIdleConnections)
		err := s.waitHealthy()
		if err == nil {
			return s
		}
		if s.exited() && strings.Contains(s.stderr.String(), "address already in use") && attempt < 5 {
			t.Logf("port %s was taken before the server bound it; retrying", addr)
			continue
		}
		t.Fatalf("server %s on %s: %v\nstderr:\n%s", id, addr, err, s.stderr)
	}
}

// waitHealthy polls GET /healthz until it answers 200 for this node, the
// process exits, or startTimeout passes.
func (s *server) waitHealthy() error {
	deadline := time.Now().Add(startTimeout)
	probe := &http.Client{Timeout: 500 * time.Millisecond}
	defer probe.CloseIdleConnections()
	var last error
	for time.Now().Before(deadline) {
		if s.exited() {
			return fmt.Errorf("exited before serving: %v", s.waitErr)
		}
		resp, err := probe.Get(s.base + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var h struct{ Status, Node string }
			if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &h) == nil && h.Status == "ok" && h.Node == s.id {
				return nil
			}
			err = fmt.Errorf("/healthz: %s %q", resp.Status, body)
		}
		last = err
		time.Sleep(pollInterval)
	}
	return fmt.Errorf("not healthy within %v: %v", startTimeout, last)
}

// response is what the tests compare of an HTTP answer.
type response struct {
	Status      int
	ContentType string
	Context     string // X-Dotkv-Context
	Body        []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d ct=%q ctx=%q body=%q", r.Status, r.ContentType, r.Context, r.Body)
}

func kvPath(key string) string { return "/kv/" + url.PathEscape(key) }

// do sends one request; path is taken verbatim (already escaped). A nil
// body sends none; chunked sends body without a Content-Length.
func (s *server) do(t *testing.T, method, path string, hdr http.Header, body []byte, chunked bool) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
		if chunked {
			rd = io.MultiReader(rd) // hides the length from NewRequest
		}
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if chunked {
		req.ContentLength = -1
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{
		Status:      resp.StatusCode,
		ContentType: resp.Header.Get("Content-Type"),
		Context:     resp.Header.Get("X-Dotkv-Context"),
		Body:        b,
	}
}

func (s *server) get(t *testing.T, key string) response {
	t.Helper()
	return s.do(t, http.MethodGet, kvPath(key), nil, nil, false)
}

func (s *server) getJSON(t *testing.T, key string) response {
	t.Helper()
	return s.do(t, http.MethodGet, kvPath(key), http.Header{"Accept": {"application/json"}}, nil, false)
}

// put writes value under key with the given context ("" for a blind
// write), requires 204 and returns the context the write answered.
func (s *server) put(t *testing.T, key, ctype, vctx string, value []byte) string {
	t.Helper()
	hdr := http.Header{"Content-Type": {ctype}}
	if vctx != "" {
		hdr.Set("X-Dotkv-Context", vctx)
	}
	r := s.do(t, http.MethodPut, kvPath(key), hdr, value, false)
	if r.Status != http.StatusNoContent || r.Context == "" {
		t.Fatalf("PUT %q: %v, want 204 with a context", key, r)
	}
	return r.Context
}

func (s *server) del(t *testing.T, key, vctx string) {
	t.Helper()
	hdr := http.Header{}
	if vctx != "" {
		hdr.Set("X-Dotkv-Context", vctx)
	}
	if r := s.do(t, http.MethodDelete, kvPath(key), hdr, nil, false); r.Status != http.StatusNoContent {
		t.Fatalf("DELETE %q: %v, want 204", key, r)
	}
}

type part struct {
	ContentType string
	Deleted     bool
	Value       string
}

// siblingsOf parses a 300 multipart/mixed answer into its parts.
func siblingsOf(t *testing.T, r response) []part {
	t.Helper()
	if r.Status != http.StatusMultipleChoices {
		t.Fatalf("got %v, want 300", r)
	}
	mt, params, err := mime.ParseMediaType(r.ContentType)
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q: want multipart/mixed with a boundary (%v)", r.ContentType, err)
	}
	mr := multipart.NewReader(bytes.NewReader(r.Body), params["boundary"])
	var parts []part
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("multipart body %q: %v", r.Body, err)
		}
		v, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("multipart part: %v", err)
		}
		parts = append(parts, part{
			ContentType: p.Header.Get("Content-Type"),
			Deleted:     p.Header.Get("X-Dotkv-Deleted") == "true",
			Value:       string(v),
		})
	}
	return parts
}

// liveValues returns the sorted values of the non-tombstone parts.
func liveValues(parts []part) []string {
	var vs []string
	for _, p := range parts {
		if !p.Deleted {
			vs = append(vs, p.Value)
		}
	}
	slices.Sort(vs)
	return vs
}

func wantSingle(t *testing.T, r response, ctype, value string) {
	t.Helper()
	if r.Status != http.StatusOK || r.ContentType != ctype || string(r.Body) != value || r.Context == "" {
		t.Fatalf("got %v, want 200 %q %q with a context", r, ctype, value)
	}
}

func wantSiblings(t *testing.T, r response, values ...string) []part {
	t.Helper()
	parts := siblingsOf(t, r)
	slices.Sort(values)
	if got := liveValues(parts); !slices.Equal(got, values) {
		t.Fatalf("siblings %q, want %q (%v)", got, values, r)
	}
	if r.Context == "" {
		t.Fatalf("300 without X-Dotkv-Context: %v", r)
	}
	return parts
}

// wantError checks a JSON error answer {"error": ..., "code": code}.
func wantError(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: got %v, want status %d", what, r, status)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.ContentType); mt != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, r.ContentType)
	}
	var e struct {
		Error *string `json:"error"`
		Code  *string `json:"code"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || e.Error == nil || e.Code == nil {
		t.Errorf("%s: body %q is not {\"error\":...,\"code\":...} (%v)", what, r.Body, err)
		return
	}
	if *e.Error == "" || *e.Code != code {
		t.Errorf("%s: error %q code %q, want a message and code %q", what, *e.Error, *e.Code, code)
	}
}

type jsonGet struct {
	Context  string `json:"context"`
	Siblings []struct {
		Value       []byte `json:"value"`
		ContentType string `json:"content_type"`
		Deleted     bool   `json:"deleted"`
	} `json:"siblings"`
}

func TestContractAgainstBinary(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, "n1", data)
	const text = "text/plain"

	// PUT v1, GET: v1 and a context C1.
	s.put(t, "greeting", text, "", []byte("v1"))
	r := s.get(t, "greeting")
	wantSingle(t, r, text, "v1")
	c1 := r.Context

	// Two writes with C1 are concurrent: both survive as siblings.
	s.put(t, "greeting", text, c1, []byte("v2"))
	s.put(t, "greeting", text, c1, []byte("v3"))
	r = s.get(t, "greeting")
	for _, p := range wantSiblings(t, r, "v2", "v3") {
		if p.ContentType != text || p.Deleted {
			t.Errorf("sibling part %+v: want Content-Type %s, not deleted", p, text)
		}
	}
	c2 := r.Context
	if c2 == c1 {
		t.Errorf("context after v2, v3 is still C1 %q", c1)
	}
	if rj := s.getJSON(t, "greeting"); rj.Status != http.StatusOK || rj.Context != c2 {
		t.Errorf("JSON GET of siblings: %v, want 200 with context C2 %q", rj, c2)
	}

	// A write with C2 replaces both.
	s.put(t, "greeting", text, c2, []byte("v4"))
	wantSingle(t, s.get(t, "greeting"), text, "v4")

	// A blind write on an existing key adds a sibling.
	s.put(t, "greeting", text, "", []byte("v5"))
	r = s.get(t, "greeting")
	wantSiblings(t, r, "v4", "v5")

	// DELETE with the latest context: the key reads as absent.
	s.del(t, "greeting", r.Context)
	r = s.get(t, "greeting")
	wantError(t, "GET after DELETE", r, http.StatusNotFound, "not_found")
	// The 404 carries the tombstone's context; writing with it replaces
	// the tombstone rather than siding with it.
	if r.Context == "" {
		t.Fatalf("404 of a deleted key has no context: %v", r)
	}
	s.put(t, "revived", text, "", []byte("old"))
	s.del(t, "revived", "")
	if rr := s.get(t, "revived"); rr.Status != http.StatusNotFound || rr.Context == "" {
		t.Fatalf("GET revived after delete: %v, want 404 with a context", rr)
	} else {
		s.put(t, "revived", text, rr.Context, []byte("new"))
	}
	wantSingle(t, s.get(t, "revived"), text, "new")

	// More states to record: three siblings (one binary), a single value,
	// a value next to a tombstone, a key that never existed.
	binVal := "\x00\xff\r\n--dotkv-not-a-boundary\r\n"
	s.put(t, "multi", "application/octet-stream", "", []byte(binVal))
	s.put(t, "multi", text, "", []byte("second"))
	s.put(t, "multi", "application/json", "", []byte(`{"third":3}`))
	wantSiblings(t, s.get(t, "multi"), binVal, "second", `{"third":3}`)

	s.put(t, "single", "image/png", "", []byte("\x89PNG not really"))

	s.put(t, "tomb", text, "", []byte("a"))
	ca := s.get(t, "tomb").Context
	s.put(t, "tomb", text, "", []byte("b")) // concurrent with the delete below
	s.del(t, "tomb", ca)
	tparts := wantSiblings(t, s.get(t, "tomb"), "b")
	if len(tparts) != 2 || !slices.ContainsFunc(tparts, func(p part) bool { return p.Deleted && p.Value == "" }) {
		t.Errorf("tomb: parts %+v, want the value b and one tombstone part", tparts)
	}

	type probe struct {
		name, method, key string
		hdr               http.Header
	}
	jsonHdr := http.Header{"Accept": {"application/json"}}
	probes := []probe{
		{"300 multipart", http.MethodGet, "multi", nil},
		{"300 with tombstone", http.MethodGet, "tomb", nil},
		{"200 single", http.MethodGet, "single", nil},
		{"HEAD single", http.MethodHead, "single", nil},
		{"JSON multi", http.MethodGet, "multi", jsonHdr},
		{"JSON single", http.MethodGet, "single", jsonHdr},
		{"JSON tomb", http.MethodGet, "tomb", jsonHdr},
		{"404 deleted", http.MethodGet, "greeting", nil},
		{"404 deleted JSON", http.MethodGet, "greeting", jsonHdr},
		{"404 never written", http.MethodGet, "never-written", nil},
		{"200 revived", http.MethodGet, "revived", nil},
	}
	before := make([]response, len(probes))
	for i, p := range probes {
		before[i] = s.do(t, p.method, kvPath(p.key), p.hdr, nil, false)
	}
	wantSiblings(t, before[0], binVal, "second", `{"third":3}`)
	wantSingle(t, before[2], "image/png", "\x89PNG not really")
	var js jsonGet
	if err := json.Unmarshal(before[4].Body, &js); err != nil || before[4].Status != http.StatusOK ||
		js.Context != before[4].Context || len(js.Siblings) != 3 {
		t.Fatalf("JSON GET multi: %v (%v), want 200 with 3 siblings and the header's context", before[4], err)
	}
	for _, sib := range js.Siblings {
		if string(sib.Value) == binVal && (sib.ContentType != "application/octet-stream" || sib.Deleted) {
			t.Errorf("JSON sibling %+v: want the binary value as application/octet-stream", sib)
		}
	}
	wantError(t, "404 never written", before[9], http.StatusNotFound, "not_found")
	if before[9].Context != "" {
		t.Errorf("404 of a never-written key has a context: %v", before[9])
	}

	// ~200 acknowledged writes from 8 concurrent clients, then SIGTERM.
	const nBulk = 200
	bulkCtx := make([]string, nBulk)
	bulkVal := func(i int) string { return fmt.Sprintf("value %03d %s", i, strings.Repeat("x", i)) }
	var wg sync.WaitGroup
	errc := make(chan error, nBulk)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < nBulk; i += 8 {
				req, err := http.NewRequest(http.MethodPut, s.base+kvPath(fmt.Sprintf("bulk/%03d", i)), strings.NewReader(bulkVal(i)))
				if err != nil {
					errc <- err
					return
				}
				req.Header.Set("Content-Type", text)
				resp, err := s.client.Do(req)
				if err != nil {
					errc <- fmt.Errorf("PUT bulk/%03d: %v", i, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					errc <- fmt.Errorf("PUT bulk/%03d: %s", i, resp.Status)
					return
				}
				bulkCtx[i] = resp.Header.Get("X-Dotkv-Context")
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	s.stop()

	// Restart on the same data directory (a new port) and ask again.
	s = startServer(t, "n1", data)
	for i, p := range probes {
		after := s.do(t, p.method, kvPath(p.key), p.hdr, nil, false)
		if after.Status != before[i].Status || after.ContentType != before[i].ContentType ||
			after.Context != before[i].Context || !bytes.Equal(after.Body, before[i].Body) {
			t.Errorf("%s after restart differs:\n before %v\n after  %v", p.name, before[i], after)
		}
	}
	for i := range nBulk {
		wantSingle(t, s.get(t, fmt.Sprintf("bulk/%03d", i)), text, bulkVal(i))
	}

	// Contexts handed out before the restart still work after it...
	s.put(t, "bulk/007", text, bulkCtx[7], []byte("replaced"))
	wantSingle(t, s.get(t, "bulk/007"), text, "replaced")
	// ...and the restarted node issues fresh dots: a blind write sits next
	// to the old value rather than overwriting it.
	s.put(t, "single", text, "", []byte("after restart"))
	wantSiblings(t, s.get(t, "single"), "\x89PNG not really", "after restart")
	s.stop()

	// The data directory now belongs to n1: another ID is refused.
	res := runDotkv(t, "", "server", "--id", "n2", "--data", data, "--http", freeAddr(t))
	if res.code != exitError || !strings.Contains(res.stderr, "belongs to node") {
		t.Errorf("server --id n2 on n1's data: %v, want exit 2 and 'belongs to node'", res)
	}
}

func TestBadInputAgainstBinary(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	s := startServer(t, "n1", t.TempDir(), "--max-value", "100")

	s.put(t, "seed", "text/plain", "", []byte("original"))
	seeded := s.get(t, "seed")
	wantSingle(t, seeded, "text/plain", "original")
	seededJSON := s.getJSON(t, "seed")

	long := strings.Repeat("k", 1025)
	ctxHdr := func(v string) http.Header { return http.Header{"X-Dotkv-Context": {v}} }
	valid := seeded.Context
	cases := []struct {
		name    string
		method  string
		path    string
		hdr     http.Header
		body    []byte
		chunked bool
		status  int
		code    string
	}{
		{"PUT empty key", "PUT", "/kv/", nil, []byte("x"), false, 400, "bad_key"},
		{"GET empty key", "GET", "/kv/", nil, nil, false, 400, "bad_key"},
		{"DELETE empty key", "DELETE", "/kv/", nil, nil, false, 400, "bad_key"},
		{"PUT 1025-byte key", "PUT", "/kv/" + long, nil, []byte("x"), false, 400, "bad_key"},
		{"GET 1025-byte key", "GET", "/kv/" + long, nil, nil, false, 400, "bad_key"},
		{"PUT context not base64", "PUT", "/kv/seed", ctxHdr("!!not base64!!"), []byte("x"), false, 400, "bad_context"},
		{"PUT context truncated", "PUT", "/kv/seed", ctxHdr(valid[:len(valid)/2]), []byte("x"), false, 400, "bad_context"},
		{"PUT context unknown format", "PUT", "/kv/seed", ctxHdr(base64.RawURLEncoding.EncodeToString([]byte{9, 0})), []byte("x"), false, 400, "bad_context"},
		{"PUT context twice", "PUT", "/kv/seed", http.Header{"X-Dotkv-Context": {valid, valid}}, []byte("x"), false, 400, "bad_context"},
		{"DELETE context malformed", "DELETE", "/kv/seed", ctxHdr("%%%"), nil, false, 400, "bad_context"},
		{"PUT w=banana", "PUT", "/kv/seed?w=banana", nil, []byte("x"), false, 400, "bad_parameter"},
		{"PUT pw=banana", "PUT", "/kv/seed?pw=banana", nil, []byte("x"), false, 400, "bad_parameter"},
		{"PUT w=4 above N", "PUT", "/kv/seed?w=4", nil, []byte("x"), false, 400, "bad_parameter"},
		{"PUT w twice", "PUT", "/kv/seed?w=one&w=all", nil, []byte("x"), false, 400, "bad_parameter"},
		{"PUT unknown parameter W", "PUT", "/kv/seed?W=all", nil, []byte("x"), false, 400, "bad_parameter"},
		{"PUT r is a read parameter", "PUT", "/kv/seed?r=one", nil, []byte("x"), false, 400, "bad_parameter"},
		{"PUT timeout=0", "PUT", "/kv/seed?timeout=0", nil, []byte("x"), false, 400, "bad_parameter"},
		{"DELETE w=banana", "DELETE", "/kv/seed?w=banana", nil, nil, false, 400, "bad_parameter"},
		{"GET r=banana", "GET", "/kv/seed?r=banana", nil, nil, false, 400, "bad_parameter"},
		{"PUT Content-Type too long", "PUT", "/kv/seed", http.Header{"Content-Type": {"text/" + strings.Repeat("a", 300)}}, []byte("x"), false, 400, "bad_parameter"},
		{"PUT 101 bytes", "PUT", "/kv/seed", nil, bytes.Repeat([]byte("v"), 101), false, 413, "too_large"},
		{"PUT 101 bytes chunked", "PUT", "/kv/seed", nil, bytes.Repeat([]byte("v"), 101), true, 413, "too_large"},
		{"PUT 64 KiB", "PUT", "/kv/seed", nil, bytes.Repeat([]byte("v"), 64<<10), false, 413, "too_large"},
		{"PUT 64 KiB chunked", "PUT", "/kv/seed", nil, bytes.Repeat([]byte("v"), 64<<10), true, 413, "too_large"},
		{"POST", "POST", "/kv/seed", nil, []byte("x"), false, 405, "method_not_allowed"},
	}
	for _, c := range cases {
		r := s.do(t, c.method, c.path, c.hdr, c.body, c.chunked)
		wantError(t, c.name, r, c.status, c.code)
	}

	// Nothing above reached storage: the seeded key reads as before.
	if after := s.get(t, "seed"); after.String() != seeded.String() {
		t.Errorf("seed changed by bad input:\n before %v\n after  %v", seeded, after)
	}
	if after := s.getJSON(t, "seed"); after.String() != seededJSON.String() {
		t.Errorf("seed (JSON) changed by bad input:\n before %v\n after  %v", seededJSON, after)
	}
	// None of the rejected keys exists either.
	wantError(t, "GET 1024-byte key before any write", s.get(t, long[:1024]), 404, "not_found")

	// The limits themselves are accepted: a 1024-byte key, a 100-byte value
	// (also chunked).
	s.put(t, long[:1024], "text/plain", "", []byte("max key"))
	wantSingle(t, s.get(t, long[:1024]), "text/plain", "max key")
	hundred := bytes.Repeat([]byte("h"), 100)
	s.put(t, "hundred", "text/plain", "", hundred)
	wantSingle(t, s.get(t, "hundred"), "text/plain", string(hundred))
	r := s.do(t, "PUT", "/kv/hundred-chunked", http.Header{"Content-Type": {"text/plain"}}, hundred, true)
	if r.Status != http.StatusNoContent {
		t.Errorf("chunked 100-byte PUT: %v, want 204", r)
	}
	wantSingle(t, s.get(t, "hundred-chunked"), "text/plain", string(hundred))
	s.stop()
}

// cliResult is the outcome of one dotkv client process.
type cliResult struct {
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// runDotkv runs the binary to completion (bounded by cliTimeout) with
// stdin and returns its output and exit status.
func runDotkv(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	return runDotkvEnv(t, nil, stdin, args...)
}

func runDotkvEnv(t *testing.T, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, dotkvBin(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("dotkv %q: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("dotkv %q: did not finish within %v\nstderr: %s", args, cliTimeout, stderr.String())
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

var contextLine = regexp.MustCompile(`(?m)^context: ([A-Za-z0-9_-]+)$`)

func TestCLIAgainstBinary(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	s := startServer(t, "n1", t.TempDir())
	cli := func(stdin string, args ...string) cliResult {
		t.Helper()
		// Flags go after the subcommand and before the arguments.
		return runDotkv(t, stdin, append([]string{args[0], "--addr", s.addr}, args[1:]...)...)
	}
	want := func(r cliResult, code int, what string) {
		t.Helper()
		if r.code != code {
			t.Fatalf("%s: %v, want exit %d", what, r, code)
		}
	}

	// put KEY VALUE prints the new context token.
	r := cli("", "put", "k1", "hello")
	want(r, 0, "put k1 hello")
	if tok := strings.TrimSuffix(r.stdout, "\n"); !regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(tok) {
		t.Errorf("put printed %q, want one context token line", r.stdout)
	}
	wantSingle(t, s.get(t, "k1"), "application/octet-stream", "hello")

	// put KEY - reads the value from stdin, byte for byte.
	stdinVal := "line one\nline two\x00\xff\n"
	want(cli(stdinVal, "put", "--content-type", "text/plain", "k2", "-"), 0, "put k2 -")
	wantSingle(t, s.get(t, "k2"), "text/plain", stdinVal)

	// get KEY prints the siblings and the context.
	r = cli("", "get", "k1")
	want(r, 0, "get k1")
	for _, sub := range []string{"context: ", "siblings: 1\n", "hello\n"} {
		if !strings.Contains(r.stdout, sub) {
			t.Errorf("get k1 output %q lacks %q", r.stdout, sub)
		}
	}
	m := contextLine.FindStringSubmatch(r.stdout)
	if m == nil || m[1] != s.get(t, "k1").Context {
		t.Errorf("get k1 output %q: want the context the server gives, %q", r.stdout, s.get(t, "k1").Context)
	}

	// get --json KEY prints the server's JSON.
	r = cli("", "get", "--json", "k1")
	want(r, 0, "get --json k1")
	var js jsonGet
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil || len(js.Siblings) != 1 ||
		string(js.Siblings[0].Value) != "hello" || js.Context == "" {
		t.Errorf("get --json k1: %q (%v), want JSON with the one sibling hello", r.stdout, err)
	}
	if body := s.getJSON(t, "k1").Body; r.stdout != string(body) {
		t.Errorf("get --json k1 printed %q, the server's JSON is %q", r.stdout, body)
	}

	// A missing key exits 1.
	r = cli("", "get", "missing")
	want(r, 1, "get missing")
	if r.stdout != "" || !strings.Contains(r.stderr, "404") {
		t.Errorf("get missing: %v, want nothing on stdout and 404 on stderr", r)
	}

	// delete KEY exits 0; then get exits 1; deleting a missing key exits 1.
	want(cli("", "delete", "k1"), 0, "delete k1")
	want(cli("", "get", "k1"), 1, "get k1 after delete")
	want(cli("", "delete", "missing"), 1, "delete missing")

	// Two blind puts make siblings; a put with the read's context resolves.
	want(cli("", "put", "s", "one"), 0, "put s one")
	want(cli("", "put", "s", "two"), 0, "put s two")
	r = cli("", "get", "s")
	want(r, 0, "get s")
	if !strings.Contains(r.stdout, "siblings: 2\n") || !strings.Contains(r.stdout, "\none\n") || !strings.Contains(r.stdout, "\ntwo\n") {
		t.Fatalf("get s: %q, want siblings: 2 with one and two", r.stdout)
	}
	m = contextLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("get s: no context line in %q", r.stdout)
	}
	want(cli("", "put", "--context", m[1], "s", "three"), 0, "put --context")
	r = cli("", "get", "s")
	want(r, 0, "get s after resolve")
	if !strings.Contains(r.stdout, "siblings: 1\n") || !strings.Contains(r.stdout, "three\n") ||
		strings.Contains(r.stdout, "one") || strings.Contains(r.stdout, "two") {
		t.Errorf("get s after put --context: %q, want only three", r.stdout)
	}

	// delete --context with a stale context leaves the newer value.
	want(cli("", "delete", "--context", m[1], "s"), 0, "delete --context stale")
	r = cli("", "get", "s")
	want(r, 0, "get s after stale delete")
	if !strings.Contains(r.stdout, "three\n") || !strings.Contains(r.stdout, "(deleted)") {
		t.Errorf("get s after stale delete: %q, want three next to a tombstone", r.stdout)
	}

	// Keys that need escaping reach the server as themselves.
	for _, key := range []string{"a/b c?d#e", "..", ".", "ü%2F"} {
		want(cli("", "put", key, "odd"), 0, "put "+key)
		wantSingle(t, s.get(t, key), "application/octet-stream", "odd")
		r = cli("", "get", key)
		want(r, 0, "get "+key)
		if !strings.Contains(r.stdout, "odd\n") {
			t.Errorf("get %q: %q", key, r.stdout)
		}
	}

	// --addr in other spellings and DOTKV_ADDR.
	want(runDotkv(t, "", "get", "--addr", s.base+"/", "k2"), 0, "--addr with scheme and slash")
	want(runDotkvEnv(t, []string{"DOTKV_ADDR=" + s.addr}, "", "get", "k2"), 0, "DOTKV_ADDR")

	// Bad levels are the server's 400: exit 2 with its message.
	r = cli("", "put", "--w", "banana", "k", "v")
	want(r, 2, "put --w banana")
	if !strings.Contains(r.stderr, "banana") {
		t.Errorf("put --w banana: stderr %q does not name the bad level", r.stderr)
	}
	want(cli("", "get", "--r", "banana", "k2"), 2, "get --r banana")
	want(cli("", "put", "--context", "!!", "k", "v"), 2, "put --context !!")
	wantError(t, "k after rejected puts", s.get(t, "k"), http.StatusNotFound, "not_found")

	// An unreachable node exits 2.
	for _, args := range [][]string{
		{"get", "--addr", "127.0.0.1:1", "k"},
		{"put", "--addr", "127.0.0.1:1", "k", "v"},
		{"delete", "--addr", "127.0.0.1:1", "k"},
	} {
		r = runDotkv(t, "", args...)
		if r.code != 2 || r.stderr == "" {
			t.Errorf("%q: %v, want exit 2 with a message", args, r)
		}
	}

	// An unknown subcommand fails (urfave/cli's own exit code, 3).
	r = runDotkv(t, "", "frobnicate")
	if r.code == 0 || !strings.Contains(r.stderr, "frobnicate") {
		t.Errorf("dotkv frobnicate: %v, want a failure naming the command", r)
	}

	// Unknown flags and wrong argument counts exit 2.
	for _, args := range [][]string{
		{"put", "--nope", "k", "v"},
		{"get", "--bogus", "k"},
		{"delete", "--frob", "k"},
		{"server", "--wat"},
		{"put", "--addr", s.addr, "only-key"},
		{"put", "--addr", s.addr, "k", "v", "extra"},
		{"get", "--addr", s.addr},
		{"get", "--addr", s.addr, "a", "b"},
		{"delete", "--addr", s.addr},
	} {
		r = runDotkv(t, "", args...)
		if r.code != 2 || r.stderr == "" {
			t.Errorf("%q: %v, want exit 2 with a message", args, r)
		}
	}
	s.stop()
}

func TestServerFlagErrors(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	tmp := t.TempDir()
	addr := freeAddr(t)
	cases := []struct {
		name    string
		args    []string
		message string
		noData  bool // the data directory must not have been created
	}{
		{"bad fsync", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--fsync", "sometimes"}, "--fsync", true},
		{"missing id", []string{"server", "--data", "DATA", "--http", addr}, `"id"`, true},
		{"missing data", []string{"server", "--id", "n1", "--http", addr}, `"data"`, false},
		{"zero max-value", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--max-value", "0"}, "--max-value", true},
		{"bad log-level", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--log-level", "loud"}, "--log-level", true},
		{"invalid id", []string{"server", "--id", "bad id!", "--data", "DATA", "--http", addr}, "--id", true},
		{"bad listen address", []string{"server", "--id", "n1", "--data", "DATA", "--http", "127.0.0.1:notaport"}, "listen", false},
		{"dev nodes", []string{"dev", "--nodes", "0", "--data", "DATA"}, "--nodes", true},
		{"dev fsync", []string{"dev", "--fsync", "maybe", "--data", "DATA"}, "--fsync", true},
		{"bad cache-size", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--cache-size", "lots"}, "--cache-size", true},
		{"tiny memtable-size", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--memtable-size", "64KiB"}, "--memtable-size", true},
		{"dev cache-size", []string{"dev", "--cache-size", "1.5GiB", "--data", "DATA"}, "--cache-size", true},
		{"join without gossip", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--join", "127.0.0.1:7946"}, "--gossip", true},
		{"bad level", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--w", "banana"}, "--w", true},
		{"bad n", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--n", "0"}, "--n", true},
		{"negative transfer-limit", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--transfer-limit", "-1"}, "--transfer-limit", true},
		{"bad transfer-rate", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--transfer-rate", "fast"}, "--transfer-rate", true},
		{"replace without gossip", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--replace", "n2"}, "--gossip", true},
		{"replace itself", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--gossip", "127.0.0.1:0", "--join", "127.0.0.1:7946", "--replace", "n1"}, "--replace", true},
		{"replace a bad id", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--gossip", "127.0.0.1:0", "--join", "127.0.0.1:7946", "--replace", "n 2"}, "--replace", true},
		{"replace and new-cluster", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--gossip", "127.0.0.1:0", "--join", "127.0.0.1:7946", "--replace", "n2", "--new-cluster"}, "--new-cluster", true},
		{"replace without join", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--gossip", "127.0.0.1:0", "--replace", "n2"}, "--join", true},
		{"tls cert alone", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--tls-cert", "c.pem"}, "--tls-key and --tls-ca", true},
		{"tls files missing", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem"}, "c.pem", false},
		{"metrics-auth without tokens", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--metrics-auth"}, "--auth-token-file", true},
		{"missing token file", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--auth-token-file", "nowhere"}, "auth token file", false},
		{"gossip key without gossip", []string{"server", "--id", "n1", "--data", "DATA", "--http", addr, "--gossip-key-file", "k"}, "--gossip", true},
	}
	for i, c := range cases {
		data := filepath.Join(tmp, strconv.Itoa(i))
		args := slices.Clone(c.args)
		for j := range args {
			if args[j] == "DATA" {
				args[j] = data
			}
		}
		r := runDotkv(t, "", args...)
		if r.code != exitError || !strings.Contains(r.stderr, c.message) {
			t.Errorf("%s: %v, want exit 2 and %q on stderr", c.name, r, c.message)
		}
		if strings.Contains(r.stderr, `"msg":"serving"`) {
			t.Errorf("%s: the server started: %s", c.name, r.stderr)
		}
		if _, err := os.Stat(data); c.noData && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: data directory %s was created (stat: %v)", c.name, data, err)
		}
	}

	// A port already in use: exits 2 naming the address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := runDotkv(t, "", "server", "--id", "n1", "--data", filepath.Join(tmp, "busy"), "--http", ln.Addr().String())
	if r.code != exitError || !strings.Contains(r.stderr, "listen on "+ln.Addr().String()) {
		t.Errorf("server on a busy port: %v, want exit 2 and the listen error", r)
	}
}

// TestDevAgainstBinary: `dotkv dev --nodes 3` starts three server
// processes that form a cluster; a write through n1 reads back through n3;
// SIGTERM stops them all cleanly and a second dev serves the same data.
func TestDevAgainstBinary(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	data := t.TempDir()
	var d *devRun
	run := func() (*proc, []string) {
		t.Helper()
		if d == nil {
			d = startDev(t, data) // on free ports, retried if another test takes one
		} else {
			d = startDevAgain(t, d) // the same ports: the nodes' data records their addresses
		}
		return d.proc, d.addrs
	}
	p, addrs := run()
	client := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	servers := make([]*server, 3)
	for i, a := range addrs {
		servers[i] = &server{proc: p, id: fmt.Sprintf("n%d", i+1), addr: a, base: "http://" + a, client: client}
		if err := servers[i].waitHealthy(); err != nil {
			t.Fatal(err)
		}
	}
	// The cluster has formed once n3 holds a ring of three members.
	deadline := time.Now().Add(startTimeout)
	for {
		r := runDotkv(t, "", "status", "--addr", addrs[2])
		if r.code == 0 && strings.Count(r.stdout, "alive") == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster did not form: %v", r)
		}
		time.Sleep(pollInterval)
	}
	servers[0].put(t, "greeting", "text/plain", "", []byte("hello"))
	want := runDotkv(t, "", "get", "--addr", addrs[2], "greeting")
	if want.code != 0 || !strings.Contains(want.stdout, "hello") {
		t.Errorf("get from n3 of a write through n1: %v", want)
	}
	p.stop()
	if out := p.stdout.String(); !strings.Contains(out, "stopped cleanly") {
		t.Errorf("dev stdout after SIGTERM: %q, want 'stopped cleanly'", out)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		if _, err := os.Stat(filepath.Join(data, id)); err != nil {
			t.Errorf("dev data of %s: %v", id, err)
		}
	}

	// The data stays: a second dev on the same directory serves it.
	p, addrs = run()
	s := &server{proc: p, id: "n2", addr: addrs[1], base: "http://" + addrs[1], client: client}
	if err := s.waitHealthy(); err != nil {
		t.Fatal(err)
	}
	wantSingle(t, s.get(t, "greeting"), "text/plain", "hello")
	p.stop()
}

// kill stops the process with SIGKILL, as a crash or power cut would.
func (p *proc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatalf("SIGKILL %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.t.Fatalf("%s did not exit within %v of SIGKILL", p.name, stopTimeout)
	}
}

// TestCrashAgainstBinary: with --fsync always, every write acknowledged
// before a SIGKILL (sent while writes are in flight) is there after a
// restart, and the restarted node does not reuse the dots it issued.
func TestCrashAgainstBinary(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, "n1", data)
	ctxBefore := s.put(t, "x", "text/plain", "", []byte("before crash"))

	const writers = 8
	var (
		mu    sync.Mutex
		acked = map[string]string{} // key -> value, for every 204
		wg    sync.WaitGroup
	)
	enough := make(chan struct{})
	var enoughOnce sync.Once
	base, client := s.base, s.client
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				key, val := fmt.Sprintf("crash/%d/%05d", w, i), fmt.Sprintf("w%d i%d", w, i)
				req, err := http.NewRequest(http.MethodPut, base+kvPath(key), strings.NewReader(val))
				if err != nil {
					return
				}
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					return
				}
				mu.Lock()
				acked[key] = val
				if len(acked) >= 300 {
					enoughOnce.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-enough:
	case <-time.After(waitLimit):
		t.Errorf("300 writes were not acknowledged after %v", waitLimit)
	}
	s.kill() // writers are still writing
	wg.Wait()
	s.client.CloseIdleConnections()

	s = startServer(t, "n1", data)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d writes acknowledged before SIGKILL", len(acked))
	for key, val := range acked {
		wantSingle(t, s.get(t, key), "application/octet-stream", val)
	}
	// Fresh dots after the crash: a blind write is a sibling of the old
	// value, and the pre-crash context still replaces exactly that value.
	s.put(t, "x", "text/plain", "", []byte("after crash"))
	wantSiblings(t, s.get(t, "x"), "before crash", "after crash")
	s.put(t, "x", "text/plain", ctxBefore, []byte("resolved"))
	wantSiblings(t, s.get(t, "x"), "after crash", "resolved")
	s.stop()
}
