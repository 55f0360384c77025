package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotkv/dotkv/client"
	"github.com/dotkv/dotkv/storage"
)

// newClient returns a client for cfg whose idle connections are closed at
// the end of the test.
func newClient(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// sibs describes an object's siblings, sorted: "value (content type)" or
// "(deleted)".
func sibs(o *client.Object) []string {
	var out []string
	for _, s := range o.Siblings {
		if s.Deleted {
			out = append(out, "(deleted)")
			continue
		}
		out = append(out, fmt.Sprintf("%s (%s)", s.Value, s.ContentType))
	}
	sort.Strings(out)
	return out
}

func wantSibs(t *testing.T, o *client.Object, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := sibs(o); !slices.Equal(got, want) {
		t.Fatalf("siblings of %q = %q, want %q", o.Key, got, want)
	}
}

// rawJSON returns the node's JSON answer to a GET of key, byte for byte.
func rawJSON(t *testing.T, base, key string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/kv/"+key, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer http.DefaultClient.CloseIdleConnections()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s as JSON: %d %v", key, resp.StatusCode, err)
	}
	return b
}

// wantSameJSON checks that o.JSON() encodes to the node's JSON answer.
func wantSameJSON(t *testing.T, base string, o *client.Object) {
	t.Helper()
	b, err := json.Marshal(o.JSON())
	if err != nil {
		t.Fatal(err)
	}
	if raw := rawJSON(t, base, o.Key); !bytes.Equal(append(b, '\n'), raw) {
		t.Fatalf("Object.JSON of %q = %s, the node's JSON is %s", o.Key, b, raw)
	}
}

// TestRoundTrip: puts, gets and deletes with and without contexts, with
// siblings and tombstones, against a real node.
func TestRoundTrip(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := newClient(t, client.Config{Endpoints: []string{n.URL}})
	ctx := context.Background()
	const key = "cart"

	// Blind writes make siblings.
	w1, err := c.Put(ctx, key, []byte("one"), client.ContentType("text/plain"))
	if err != nil || w1.Context == "" || w1.Endpoint != n.URL {
		t.Fatalf("put one: %+v, %v", w1, err)
	}
	if _, err := c.Put(ctx, key, []byte("two")); err != nil {
		t.Fatal(err)
	}
	obj, err := c.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	wantSibs(t, obj, "one (text/plain)", "two (application/octet-stream)")
	if obj.Context == "" || obj.Endpoint != n.URL || len(obj.Values()) != 2 {
		t.Fatalf("get: %+v", obj)
	}
	wantSameJSON(t, n.URL, obj)

	// A write with the read's context replaces the siblings it returned.
	w3, err := c.Put(ctx, key, []byte("three"), client.Context(obj.Context), client.W(client.All), client.PW(client.One),
		client.Timeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	three, err := c.Get(ctx, key, client.R(client.All), client.PR(client.Replicas(1)), client.SyncRepair())
	if err != nil {
		t.Fatal(err)
	}
	wantSibs(t, three, "three (application/octet-stream)")
	wantSameJSON(t, n.URL, three)

	// A delete with a stale context leaves the newer value next to a
	// tombstone.
	if _, err := c.Put(ctx, key, []byte("four"), client.Context(w3.Context)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, key, client.Context(three.Context)); err != nil {
		t.Fatal(err)
	}
	mixed, err := c.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	wantSibs(t, mixed, "(deleted)", "four (application/octet-stream)")
	wantSameJSON(t, n.URL, mixed)

	// A delete with the read's context deletes the key: a 404 with the
	// tombstones' context, which a write replaces.
	if _, err := c.Delete(ctx, key, client.Context(mixed.Context)); err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(ctx, key)
	var nf *client.NotFoundError
	if !errors.As(err, &nf) || nf.Context == "" || nf.Status != http.StatusNotFound || nf.Body.Code != client.CodeNotFound {
		t.Fatalf("get after delete: %v, want a NotFoundError with a context", err)
	}
	if _, err := c.Put(ctx, key, []byte("five"), client.Context(nf.Context)); err != nil {
		t.Fatal(err)
	}
	five, err := c.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	wantSibs(t, five, "five (application/octet-stream)")

	// Deleting without a context deletes what a read sees.
	if _, err := c.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, key); !errors.As(err, &nf) {
		t.Fatalf("get after a delete without context: %v", err)
	}

	// Keys that need escaping reach the node as themselves; empty values
	// are values.
	for _, k := range []string{"a/b c?d#e", "..", ".", "ü%2F", "//x", "+&="} {
		if _, err := c.Put(ctx, k, []byte("odd "+k)); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
		o, err := c.Get(ctx, k)
		if err != nil {
			t.Fatalf("get %q: %v", k, err)
		}
		wantSibs(t, o, "odd "+k+" (application/octet-stream)")
	}
	if _, err := c.Put(ctx, "empty", nil); err != nil {
		t.Fatal(err)
	}
	if o, err := c.Get(ctx, "empty"); err != nil || len(o.Siblings) != 1 || len(o.Siblings[0].Value) != 0 {
		t.Fatalf("get empty: %+v, %v", o, err)
	}
}

// TestTypedErrors: each error answer of a node comes back as its type,
// and MaybeApplied says which ones wrote nothing.
func TestTypedErrors(t *testing.T) {
	n := newNode(t, nodeOptions{limits: storage.Limits{MaxSiblings: 2, MaxRecordBytes: 1500}, maxValue: 1024})
	c := newClient(t, client.Config{Endpoints: []string{n.URL}})
	ctx := context.Background()
	wantNothingWritten := func(what string, err error) {
		t.Helper()
		if client.MaybeApplied(err) {
			t.Errorf("%s: MaybeApplied(%v) = true, want false", what, err)
		}
		if r, ok := client.AsResponse(err); !ok || r.Endpoint != n.URL || r.Body.Error == "" {
			t.Errorf("%s: AsResponse(%v) = %+v, %v", what, err, r, ok)
		}
	}

	// 404.
	_, err := c.Get(ctx, "missing")
	var nf *client.NotFoundError
	if !errors.As(err, &nf) || nf.Context != "" || nf.Key != "missing" || nf.Method != http.MethodGet {
		t.Fatalf("get missing: %v", err)
	}
	wantNothingWritten("get missing", err)
	_, err = c.Delete(ctx, "missing")
	if !errors.As(err, &nf) {
		t.Fatalf("delete missing: %v", err)
	}
	wantNothingWritten("delete missing", err)

	// 400: a malformed context, a context read for another key, a bad
	// level, a timeout above the limit.
	if _, err := c.Put(ctx, "a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	a, err := c.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var bad *client.BadRequestError
	for what, call := range map[string]func() error{
		"malformed context": func() error { _, err := c.Put(ctx, "b", []byte("x"), client.Context("!!")); return err },
		"another key's":     func() error { _, err := c.Put(ctx, "b", []byte("x"), client.Context(a.Context)); return err },
		"bad level":         func() error { _, err := c.Get(ctx, "a", client.R("banana")); return err },
		"long timeout":      func() error { _, err := c.Delete(ctx, "a", client.Timeout(2*time.Minute)); return err },
	} {
		err := call()
		if !errors.As(err, &bad) || bad.Status != http.StatusBadRequest {
			t.Fatalf("%s: %v, want a BadRequestError", what, err)
		}
		wantNothingWritten(what, err)
		if strings.Contains(what, "context") && bad.Body.Code != client.CodeBadContext {
			t.Errorf("%s: code %q, want bad_context", what, bad.Body.Code)
		}
	}
	if _, err := c.Get(ctx, "b"); !errors.As(err, &nf) {
		t.Fatalf("b after refused writes: %v", err)
	}

	// 409: more siblings than --max-siblings.
	for range 2 {
		if _, err := c.Put(ctx, "sib", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.Put(ctx, "sib", []byte("x"))
	var many *client.TooManySiblingsError
	if !errors.As(err, &many) || many.Siblings != 2 || many.MaxSiblings != 2 || many.Status != http.StatusConflict {
		t.Fatalf("third blind put: %v, want a TooManySiblingsError", err)
	}
	wantNothingWritten("too many siblings", err)

	// 413: a value above --max-value, a record above --max-record.
	_, err = c.Put(ctx, "big", bytes.Repeat([]byte("x"), 2000))
	var large *client.TooLargeError
	if !errors.As(err, &large) || large.Body.Code != client.CodeTooLarge {
		t.Fatalf("large value: %v", err)
	}
	wantNothingWritten("large value", err)
	if _, err := c.Put(ctx, "rec", bytes.Repeat([]byte("x"), 1000)); err != nil {
		t.Fatal(err)
	}
	_, err = c.Put(ctx, "rec", bytes.Repeat([]byte("y"), 1000))
	if !errors.As(err, &large) || large.Body.Code != client.CodeObjectTooLarge || large.MaxRecordBytes != 1500 || large.RecordBytes <= 1500 {
		t.Fatalf("large record: %v", err)
	}
	wantNothingWritten("large record", err)

	// 503: unavailable (a write failed fast, nothing written) and
	// partial_write (outcome unknown); neither goes on to the next
	// endpoint.
	for _, tc := range []struct {
		code         string
		maybeApplied bool
	}{{client.CodeUnavailable, false}, {client.CodePartialWrite, true}} {
		stub := stubNode(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, `{"error":"write: 1 of 2 required replicas","code":%q,"acks":1,"required":2}`, tc.code)
		})
		u := newClient(t, client.Config{Endpoints: []string{stub, n.URL}, InOrder: true})
		_, err = u.Put(ctx, "u", []byte("x"))
		var ua *client.UnavailableError
		if !errors.As(err, &ua) || ua.Acks != 1 || ua.Required != 2 || ua.Body.Code != tc.code || client.MaybeApplied(err) != tc.maybeApplied {
			t.Fatalf("put answered 503 %s: %v (MaybeApplied %v)", tc.code, err, client.MaybeApplied(err))
		}
		if _, err := c.Get(ctx, "u"); !errors.As(err, &nf) {
			t.Fatalf("the write answered 503 %s went on to the next endpoint: %v", tc.code, err)
		}
		if _, err := u.Get(ctx, "u"); !errors.As(err, &ua) || client.MaybeApplied(err) {
			t.Fatalf("get answered 503 %s: %v", tc.code, err)
		}
	}

	// Another status: an ErrorResponse, text bodies kept.
	teapot := stubNode(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "short and stout", http.StatusTeapot) })
	_, err = newClient(t, client.Config{Endpoints: []string{teapot}}).Get(ctx, "k")
	var er *client.ErrorResponse
	if !errors.As(err, &er) || er.Status != http.StatusTeapot || er.Body.Error != "short and stout" || !strings.Contains(err.Error(), "418") {
		t.Fatalf("418: %v", err)
	}
}

// TestAccessControl: 401 and 403 are typed, and a token is sent.
func TestAccessControl(t *testing.T) {
	const readTok, writeTok = "read-token-0123456789", "write-token-0123456789"
	n := newNode(t, nodeOptions{tokens: "read " + readTok + "\nwrite " + writeTok + "\n"})
	ctx := context.Background()
	none := newClient(t, client.Config{Endpoints: []string{n.URL}})
	reader := newClient(t, client.Config{Endpoints: []string{n.URL}, Token: readTok})
	writer := newClient(t, client.Config{Endpoints: []string{n.URL}, Token: writeTok})

	_, err := none.Get(ctx, "k")
	var unauth *client.UnauthorizedError
	if !errors.As(err, &unauth) || unauth.Body.Code != client.CodeUnauthorized || client.MaybeApplied(err) {
		t.Fatalf("get without a token: %v", err)
	}
	_, err = reader.Put(ctx, "k", []byte("v"))
	var forbidden *client.ForbiddenError
	if !errors.As(err, &forbidden) || forbidden.Body.Code != client.CodeForbidden || client.MaybeApplied(err) {
		t.Fatalf("put with a read token: %v", err)
	}
	if _, err := writer.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if o, err := reader.Get(ctx, "k"); err != nil || string(o.Values()[0]) != "v" {
		t.Fatalf("get with a read token: %v", err)
	}
}

// TestTLS: a client that trusts the node's CA talks HTTPS; one that does
// not is refused at the handshake, having sent nothing.
func TestTLS(t *testing.T) {
	n := newNode(t, nodeOptions{tls: true})
	pool := x509.NewCertPool()
	pool.AddCert(n.srv.Certificate())
	ctx := context.Background()
	c := newClient(t, client.Config{Endpoints: []string{n.URL}, TLS: &tls.Config{RootCAs: pool}})
	if _, err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if o, err := c.Get(ctx, "k"); err != nil || o.Endpoint != n.URL {
		t.Fatalf("get over TLS: %v", err)
	}
	_, err := newClient(t, client.Config{Endpoints: []string{n.URL}}).Put(ctx, "k", []byte("w"))
	var unreachable *client.UnreachableError
	if !errors.As(err, &unreachable) || client.MaybeApplied(err) {
		t.Fatalf("put by a client without the CA: %v", err)
	}
	if _, err := client.New(client.Config{TLS: &tls.Config{}, HTTPClient: http.DefaultClient}); err == nil {
		t.Fatal("TLS and HTTPClient accepted together")
	}
}

// TestFailover: a request goes on to the next endpoint when one refuses
// the connection or answers that it does not serve; refusing endpoints are
// tried last for a while; when every endpoint refuses, nothing was written.
func TestFailover(t *testing.T) {
	n := newNode(t, nodeOptions{})
	ctx := context.Background()
	dead := closedURL()
	c := newClient(t, client.Config{Endpoints: []string{dead, n.URL}, InOrder: true})
	w, err := c.Put(ctx, "k", []byte("v"))
	if err != nil || w.Endpoint != n.URL {
		t.Fatalf("put with the first endpoint down: %+v, %v", w, err)
	}
	if o, err := c.Get(ctx, "k"); err != nil || o.Endpoint != n.URL {
		t.Fatalf("get with the first endpoint down: %+v, %v", o, err)
	}

	var notReadyHits, stoppingHits atomic.Int64
	refusing := func(hits *atomic.Int64, code string) string {
		return stubNode(t, func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, `{"error":"nothing written","code":%q}`, code)
		})
	}
	notReady, stopping := refusing(&notReadyHits, client.CodeNotReady), refusing(&stoppingHits, client.CodeShuttingDown)
	c = newClient(t, client.Config{Endpoints: []string{notReady, stopping, n.URL}, InOrder: true, Cooldown: time.Hour})
	if w, err := c.Put(ctx, "k2", []byte("v")); err != nil || w.Endpoint != n.URL || notReadyHits.Load() != 1 || stoppingHits.Load() != 1 {
		t.Fatalf("put past not_ready and shutting_down: %+v, %v (hits %d %d)", w, err, notReadyHits.Load(), stoppingHits.Load())
	}
	// In their cooldown, the refusing endpoints come last.
	for range 3 {
		if w, err := c.Put(ctx, "k2", []byte("v")); err != nil || w.Endpoint != n.URL {
			t.Fatalf("put: %+v, %v", w, err)
		}
	}
	if notReadyHits.Load() != 1 || stoppingHits.Load() != 1 {
		t.Fatalf("endpoints in their cooldown tried first: hits %d %d", notReadyHits.Load(), stoppingHits.Load())
	}

	// Every endpoint refuses: an UnreachableError naming each refusal.
	c = newClient(t, client.Config{Endpoints: []string{dead, notReady}, InOrder: true})
	_, err = c.Put(ctx, "k3", []byte("v"))
	var unreachable *client.UnreachableError
	if !errors.As(err, &unreachable) || len(unreachable.Attempts) != 2 || unreachable.Endpoint() != notReady || client.MaybeApplied(err) {
		t.Fatalf("put with every endpoint refusing: %v", err)
	}
	var ua *client.UnavailableError
	if !errors.As(err, &ua) || ua.Body.Code != client.CodeNotReady {
		t.Fatalf("the not_ready answer is not among the refusals: %v", err)
	}

	// Without InOrder, requests start at each endpoint in turn.
	var hitsA, hitsB atomic.Int64
	ok := func(hits *atomic.Int64) string {
		return stubNode(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1); w.WriteHeader(http.StatusNoContent) })
	}
	c = newClient(t, client.Config{Endpoints: []string{ok(&hitsA), ok(&hitsB)}})
	for range 10 {
		if _, err := c.Put(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if hitsA.Load() != 5 || hitsB.Load() != 5 {
		t.Fatalf("round robin over two endpoints: %d and %d of 10", hitsA.Load(), hitsB.Load())
	}

	// A client without endpoints serves Via alone.
	empty := newClient(t, client.DefaultConfig())
	if _, err := empty.Get(ctx, "k"); !errors.Is(err, client.ErrNoEndpoints) {
		t.Fatalf("get without endpoints: %v", err)
	}
	if o, err := empty.Get(ctx, "k", client.Via(n.URL)); err != nil || o.Endpoint != n.URL {
		t.Fatalf("get via: %v", err)
	}
}

// TestOutcomeUnknown: a request whose outcome on a node is unknown (504,
// 500, the connection lost after it was sent, no answer in time) is not
// sent again unless it is idempotent; reads always are.
func TestOutcomeUnknown(t *testing.T) {
	n := newNode(t, nodeOptions{})
	ctx := context.Background()
	verify := newClient(t, client.Config{Endpoints: []string{n.URL}})
	var hits atomic.Int64
	status := func(code int, body string) string {
		return stubNode(t, func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = io.WriteString(w, body)
		})
	}
	lost := stubNode(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	for _, tc := range []struct {
		name, url string
		status    int
	}{
		{"504", status(http.StatusGatewayTimeout, `{"error":"write timed out (outcome unknown)","code":"timeout"}`), http.StatusGatewayTimeout},
		{"500", status(http.StatusInternalServerError, `{"error":"write failed (outcome unknown)","code":"internal"}`), http.StatusInternalServerError},
		{"connection lost", lost, 0},
	} {
		c := newClient(t, client.Config{Endpoints: []string{tc.url, n.URL}, InOrder: true})
		key := "k-" + tc.name
		hits.Store(0)
		_, err := c.Put(ctx, key, []byte("v"))
		var unknown *client.OutcomeUnknownError
		if !errors.As(err, &unknown) || unknown.Status != tc.status || unknown.Endpoint != tc.url || !client.MaybeApplied(err) || hits.Load() != 1 {
			t.Fatalf("%s: put: %v (hits %d), want an OutcomeUnknownError", tc.name, err, hits.Load())
		}
		if tc.status == 0 && unknown.Err == nil {
			t.Errorf("%s: no transport error in %v", tc.name, err)
		}
		if _, err := verify.Get(ctx, key); !errors.As(err, new(*client.NotFoundError)) {
			t.Fatalf("%s: a write whose outcome was unknown was sent to the next endpoint: %v", tc.name, err)
		}
		if _, err := c.Delete(ctx, key); !errors.As(err, &unknown) {
			t.Fatalf("%s: delete: %v", tc.name, err)
		}
		// Idempotent writes and reads go on to the next endpoint.
		if w, err := c.Put(ctx, key, []byte("v"), client.Idempotent()); err != nil || w.Endpoint != n.URL {
			t.Fatalf("%s: idempotent put: %+v, %v", tc.name, w, err)
		}
		hits.Store(0)
		if o, err := c.Get(ctx, key); err != nil || o.Endpoint != n.URL || hits.Load() == 0 {
			t.Fatalf("%s: get: %+v, %v (hits %d)", tc.name, o, err, hits.Load())
		}
	}

	// An idempotent write whose first attempt's outcome is unknown and
	// whose second is refused for a limit may still have been applied.
	tooMany := status(http.StatusConflict, `{"error":"nothing written","code":"too_many_siblings","siblings":3,"max_siblings":3}`)
	first := status(http.StatusGatewayTimeout, `{"error":"write timed out","code":"timeout"}`)
	c := newClient(t, client.Config{Endpoints: []string{first, tooMany}, InOrder: true})
	if _, err := c.Put(ctx, "k", []byte("v"), client.Idempotent()); !errors.As(err, new(*client.OutcomeUnknownError)) || !client.MaybeApplied(err) {
		t.Fatalf("idempotent put, 504 then 409: %v", err)
	}

	// A node that does not answer is given up after the request's
	// timeout and the grace.
	release := make(chan struct{})
	silent := stubNode(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // before the stub's Close, which waits for its handlers
	c = newClient(t, client.Config{Endpoints: []string{silent, n.URL}, InOrder: true, Timeout: time.Second, Grace: 50 * time.Millisecond})
	_, err := c.Put(ctx, "silent", []byte("v"))
	var unknown *client.OutcomeUnknownError
	if !errors.As(err, &unknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("put to a silent node: %v", err)
	}
	if o, err := c.Get(ctx, "k-504"); err != nil || o.Endpoint != n.URL {
		t.Fatalf("get past a silent node: %v", err)
	}
}

// TestResolve: siblings merged by the caller's function and written back
// with the read's context become one.
func TestResolve(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := newClient(t, client.Config{Endpoints: []string{n.URL}})
	ctx := context.Background()
	for _, v := range []string{"b", "a", "c"} {
		if _, err := c.Put(ctx, "set", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	union := func(siblings []client.Sibling) ([]byte, string, error) {
		var vals []string
		for _, s := range siblings {
			if !s.Deleted {
				vals = append(vals, strings.Split(string(s.Value), ",")...)
			}
		}
		sort.Strings(vals)
		return []byte(strings.Join(slices.Compact(vals), ",")), "text/csv", nil
	}
	w, err := c.Resolve(ctx, "set", union)
	if err != nil || w.Context == "" {
		t.Fatalf("resolve: %+v, %v", w, err)
	}
	o, err := c.Get(ctx, "set")
	if err != nil {
		t.Fatal(err)
	}
	wantSibs(t, o, "a,b,c (text/csv)")

	// One sibling: nothing to merge, nothing written.
	w, err = c.Resolve(ctx, "set", func([]client.Sibling) ([]byte, string, error) {
		t.Fatal("merge called for a single sibling")
		return nil, "", nil
	})
	if err != nil || w.Context != o.Context {
		t.Fatalf("resolve of one sibling: %+v, %v", w, err)
	}

	// A merge that fails writes nothing.
	if _, err := c.Put(ctx, "set", []byte("d")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if _, err := c.Resolve(ctx, "set", func([]client.Sibling) ([]byte, string, error) { return nil, "", boom }); !errors.Is(err, boom) {
		t.Fatalf("resolve with a failing merge: %v", err)
	}
	o, err = c.Get(ctx, "set")
	if err != nil {
		t.Fatal(err)
	}
	wantSibs(t, o, "a,b,c (text/csv)", "d (application/octet-stream)")

	// Tombstones reach the merge.
	if _, err := c.Delete(ctx, "set", client.Context(o.Context)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "set", []byte("e")); err != nil {
		t.Fatal(err)
	}
	sawTombstone := false
	if _, err := c.Resolve(ctx, "set", func(s []client.Sibling) ([]byte, string, error) {
		for _, x := range s {
			sawTombstone = sawTombstone || x.Deleted
		}
		return union(s)
	}); err != nil || !sawTombstone {
		t.Fatalf("resolve of a value and a tombstone: %v (saw the tombstone: %v)", err, sawTombstone)
	}
	if o, err = c.Get(ctx, "set"); err != nil {
		t.Fatal(err)
	}
	wantSibs(t, o, "e (text/csv)")

	// Nothing to resolve.
	if _, err := c.Resolve(ctx, "nothing", union); !errors.As(err, new(*client.NotFoundError)) {
		t.Fatalf("resolve of a missing key: %v", err)
	}
}

// TestClusterCalls: status, preflist, health, anti-entropy roots, the
// fault filter and membership changes.
func TestClusterCalls(t *testing.T) {
	n := newNode(t, nodeOptions{withCluster: true})
	c := newClient(t, client.Config{Endpoints: []string{n.URL}})
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := st.Member("n1")
	if st.Node != "n1" || !ok || m.Liveness != "alive" || m.Status != "member" || m.Partitions != 1024 || st.Ring.N != 1 ||
		st.Ring.Version == 0 || st.HintsPending["n3"] != 4 || len(st.Transfers) != 1 || st.Transfers[0].Bytes != 3456 {
		t.Fatalf("status: %+v", st)
	}
	if _, ok := st.Member("n9"); ok {
		t.Fatal("status lists n9")
	}
	pl, err := c.Preflist(ctx, "a/b")
	if err != nil || pl.Key != "a/b" || !slices.Equal(pl.Primaries, []string{"n1"}) {
		t.Fatalf("preflist: %+v, %v", pl, err)
	}
	h, err := c.Health(ctx)
	if err != nil || !h.Serving() || h.Node != "n1" {
		t.Fatalf("health: %+v, %v", h, err)
	}
	a, err := c.AAE(ctx)
	if err != nil || a.Node != "n1" || len(a.Roots) != 1024 {
		t.Fatalf("aae: %v", err)
	}
	if f, err := c.Block(ctx, []string{"n3", "n2"}); err != nil || !slices.Equal(f.Blocked, []string{"n2", "n3"}) {
		t.Fatalf("block: %+v, %v", f, err)
	}
	if f, err := c.Heal(ctx, []string{"n2"}); err != nil || !slices.Equal(f.Blocked, []string{"n3"}) {
		t.Fatalf("heal n2: %+v, %v", f, err)
	}
	if f, err := c.Heal(ctx, nil); err != nil || len(f.Blocked) != 0 {
		t.Fatalf("heal: %+v, %v", f, err)
	}
	for what, call := range map[string]func() error{
		"leave":  func() error { _, err := c.Leave(ctx); return err },
		"remove": func() error { _, err := c.Remove(ctx, "n9", true); return err },
	} {
		err := call()
		r, ok := client.AsResponse(err)
		if !ok || r.Status != http.StatusConflict || r.Body.Code != client.CodeNotClustered {
			t.Fatalf("%s on a single node: %v", what, err)
		}
	}
}

// TestConfig: what Validate refuses, and how endpoints are spelled.
func TestConfig(t *testing.T) {
	for _, cfg := range []client.Config{
		{Endpoints: []string{"ftp://h:1"}},
		{Endpoints: []string{"http://"}},
		{Endpoints: []string{"http://h:1/?q=1"}},
		{Timeout: 61 * time.Second},
		{Grace: -1},
		{Cooldown: -1},
		{Token: "a\nb"},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v: valid", cfg)
		}
		if _, err := client.New(cfg); err == nil {
			t.Errorf("%+v: New accepted it", cfg)
		}
	}
	c := newClient(t, client.DefaultConfig())
	if err := c.SetEndpoints([]string{"127.0.0.1:1/", "http://127.0.0.1:1", " https://h:2 "}); err != nil {
		t.Fatal(err)
	}
	if got := c.Endpoints(); !slices.Equal(got, []string{"http://127.0.0.1:1", "https://h:2"}) {
		t.Fatalf("endpoints = %q", got)
	}
	if err := c.SetEndpoints([]string{"ftp://x"}); err == nil {
		t.Fatal("SetEndpoints accepted ftp://")
	}
}
