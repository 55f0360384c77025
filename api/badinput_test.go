package api_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dotkv/dotkv/api"
)

// TestBadInput sends malformed requests and checks that each is refused
// with the right status and JSON error code, and that the stored data of
// the key is unchanged afterwards.
func TestBadInput(t *testing.T) {
	n := newNode(t)
	const seed = "seed"
	seedCtx := n.put(seed, "seed-value", ctText, "")
	if len(seedCtx) < 4 {
		t.Fatalf("seed context %q too short to truncate", seedCtx)
	}
	seedPath := kvPath(seed)
	long := strings.Repeat("a", api.MaxKeyLen+1)
	ctxHdr := func(v string) map[string]string { return map[string]string{api.HeaderContext: v} }
	body := func() io.Reader { return strings.NewReader("new-value") }
	tooBig := bytes.Repeat([]byte("x"), testMaxValue+1)

	cases := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		multi  http.Header // sent instead of hdr when set
		body   func() io.Reader
		status int
		code   string
		allow  bool // expect an Allow header
	}{
		{name: "empty key PUT", method: "PUT", path: "/kv/", body: body, status: 400, code: "bad_key"},
		{name: "empty key GET", method: "GET", path: "/kv/", status: 400, code: "bad_key"},
		{name: "empty key DELETE", method: "DELETE", path: "/kv/", status: 400, code: "bad_key"},
		{name: "empty debug key", method: "GET", path: "/debug/replica/", status: 400, code: "bad_key"},
		{name: "key over limit PUT", method: "PUT", path: "/kv/" + long, body: body, status: 400, code: "bad_key"},
		{name: "key over limit GET", method: "GET", path: "/kv/" + long, status: 400, code: "bad_key"},
		{name: "key over limit percent-encoded", method: "PUT", path: "/kv/" + strings.Repeat("%61", api.MaxKeyLen+1), body: body, status: 400, code: "bad_key"},

		{name: "context not base64", method: "PUT", path: seedPath, hdr: ctxHdr("!!not*base64!!"), body: body, status: 400, code: "bad_context"},
		{name: "context garbage bytes", method: "PUT", path: seedPath, hdr: ctxHdr(base64.RawURLEncoding.EncodeToString([]byte{1, 0xff, 0xff, 0xff})), body: body, status: 400, code: "bad_context"},
		{name: "context trailing bytes", method: "PUT", path: seedPath, hdr: ctxHdr(base64.RawURLEncoding.EncodeToString([]byte{1, 0, 0})), body: body, status: 400, code: "bad_context"},
		{name: "context wrong version", method: "PUT", path: seedPath, hdr: ctxHdr(base64.RawURLEncoding.EncodeToString([]byte{2, 0})), body: body, status: 400, code: "bad_context"},
		{name: "context truncated", method: "PUT", path: seedPath, hdr: ctxHdr(seedCtx[:len(seedCtx)-2]), body: body, status: 400, code: "bad_context"},
		{name: "context truncated DELETE", method: "DELETE", path: seedPath, hdr: ctxHdr(seedCtx[:len(seedCtx)-2]), status: 400, code: "bad_context"},
		{name: "context given twice", method: "PUT", path: seedPath, multi: http.Header{api.HeaderContext: {seedCtx, seedCtx}}, body: body, status: 400, code: "bad_context"},
		{name: "context given twice DELETE", method: "DELETE", path: seedPath, multi: http.Header{api.HeaderContext: {seedCtx, seedCtx}}, status: 400, code: "bad_context"},
		{name: "context garbage DELETE", method: "DELETE", path: seedPath, hdr: ctxHdr("%%%"), status: 400, code: "bad_context"},

		{name: "w=two", method: "PUT", path: seedPath + "?w=two", body: body, status: 400, code: "bad_parameter"},
		{name: "w=0", method: "PUT", path: seedPath + "?w=0", body: body, status: 400, code: "bad_parameter"},
		{name: "w=4 above N", method: "PUT", path: seedPath + "?w=4", body: body, status: 400, code: "bad_parameter"},
		{name: "w empty", method: "PUT", path: seedPath + "?w=", body: body, status: 400, code: "bad_parameter"},
		{name: "pw=banana", method: "PUT", path: seedPath + "?pw=banana", body: body, status: 400, code: "bad_parameter"},
		{name: "w=ALL case", method: "PUT", path: seedPath + "?w=ALL", body: body, status: 400, code: "bad_parameter"},
		{name: "DELETE w=0", method: "DELETE", path: seedPath + "?w=0", status: 400, code: "bad_parameter"},
		{name: "r=-1", method: "GET", path: seedPath + "?r=-1", status: 400, code: "bad_parameter"},
		{name: "pr=4", method: "GET", path: seedPath + "?pr=4", status: 400, code: "bad_parameter"},

		{name: "w on GET", method: "GET", path: seedPath + "?w=1", status: 400, code: "bad_parameter"},
		{name: "r on PUT", method: "PUT", path: seedPath + "?r=1", body: body, status: 400, code: "bad_parameter"},
		{name: "r on DELETE", method: "DELETE", path: seedPath + "?r=1", status: 400, code: "bad_parameter"},
		{name: "unknown foo on PUT", method: "PUT", path: seedPath + "?foo=bar", body: body, status: 400, code: "bad_parameter"},
		{name: "unknown foo on GET", method: "GET", path: seedPath + "?foo", status: 400, code: "bad_parameter"},
		{name: "upper-case W", method: "PUT", path: seedPath + "?W=all", body: body, status: 400, code: "bad_parameter"},
		{name: "query on debug", method: "GET", path: "/debug/replica/" + seed + "?r=1", status: 400, code: "bad_parameter"},
		{name: "repeated w", method: "PUT", path: seedPath + "?w=1&w=2", body: body, status: 400, code: "bad_parameter"},
		{name: "repeated identical r", method: "GET", path: seedPath + "?r=1&r=1", status: 400, code: "bad_parameter"},
		{name: "malformed query", method: "PUT", path: seedPath + "?w=%zz", body: body, status: 400, code: "bad_parameter"},

		{name: "timeout=0", method: "PUT", path: seedPath + "?timeout=0", body: body, status: 400, code: "bad_parameter"},
		{name: "timeout=-5", method: "PUT", path: seedPath + "?timeout=-5", body: body, status: 400, code: "bad_parameter"},
		{name: "timeout=abc", method: "GET", path: seedPath + "?timeout=abc", status: 400, code: "bad_parameter"},
		{name: "timeout=61s", method: "PUT", path: seedPath + "?timeout=61s", body: body, status: 400, code: "bad_parameter"},
		{name: "timeout=60001", method: "PUT", path: seedPath + "?timeout=60001", body: body, status: 400, code: "bad_parameter"},
		{name: "timeout=-1s", method: "DELETE", path: seedPath + "?timeout=-1s", status: 400, code: "bad_parameter"},
		{name: "timeout overflow", method: "PUT", path: seedPath + "?timeout=9223372036854775807", body: body, status: 400, code: "bad_parameter"},

		{name: "value too large, Content-Length", method: "PUT", path: seedPath,
			body: func() io.Reader { return bytes.NewReader(tooBig) }, status: 413, code: "too_large"},
		{name: "value too large, chunked", method: "PUT", path: seedPath,
			body: func() io.Reader { return onlyReader{bytes.NewReader(tooBig)} }, status: 413, code: "too_large"},
		{name: "value far too large, chunked", method: "PUT", path: seedPath,
			body: func() io.Reader { return onlyReader{bytes.NewReader(bytes.Repeat(tooBig, 4))} }, status: 413, code: "too_large"},
		{name: "content type too long", method: "PUT", path: seedPath, hdr: map[string]string{"Content-Type": "text/" + strings.Repeat("x", 251)},
			body: body, status: 400, code: "bad_parameter"},

		{name: "POST", method: "POST", path: seedPath, body: body, status: 405, code: "method_not_allowed", allow: true},
		{name: "PATCH", method: "PATCH", path: seedPath, body: body, status: 405, code: "method_not_allowed", allow: true},
		{name: "PUT on debug", method: "PUT", path: "/debug/replica/" + seed, body: body, status: 405, code: "method_not_allowed", allow: true},
		{name: "unknown path", method: "GET", path: "/nope", status: 404, code: "not_found"},
		{name: "unknown path PUT", method: "PUT", path: "/kvx/" + seed, body: body, status: 404, code: "not_found"},
		{name: "kv without slash", method: "GET", path: "/kv", status: 404, code: "not_found"},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := n.debugReplica(seed)
			if before.status != http.StatusOK {
				t.Fatalf("debug/replica/%s before = %v", seed, before)
			}
			var b io.Reader
			if tc.body != nil {
				b = tc.body()
			}
			var r resp
			if tc.multi != nil {
				r = n.doHeader(tc.method, tc.path, tc.multi, b)
			} else {
				r = n.do(tc.method, tc.path, tc.hdr, b)
			}
			wantError(t, r, tc.status, tc.code)
			if allow := r.header.Get("Allow"); tc.allow && (!strings.Contains(allow, "GET") || (strings.HasPrefix(tc.path, "/kv/") && !strings.Contains(allow, "PUT"))) {
				t.Errorf("Allow = %q", allow)
			}
			after := n.debugReplica(seed)
			if after.status != before.status || !bytes.Equal(after.body, before.body) {
				t.Fatalf("stored data changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}

	// No bad request left anything behind under the bad keys either.
	wantError(t, n.debugReplica(long[:api.MaxKeyLen]), http.StatusNotFound, "not_found")
	wantValue(t, n.get(seed), "seed-value", ctText)
}

// TestInvalidPercentEncoding sends a path with an invalid escape. net/http
// rejects such a request line before any handler runs (with its own
// plain-text 400), so the request never reaches storage.
func TestInvalidPercentEncoding(t *testing.T) {
	n := newNode(t)
	n.put("seed", "seed-value", ctText, "")
	before := n.debugReplica("seed")
	for _, p := range []string{"/kv/%zz", "/kv/%", "/kv/a%2", "/debug/replica/%zz"} {
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			var b io.Reader
			if m == "PUT" {
				b = strings.NewReader("v")
			}
			r := n.do(m, p, nil, b)
			if r.status != http.StatusBadRequest {
				t.Errorf("%s %s = %v, want 400", m, p, r)
			}
			if ct := r.header.Get("Content-Type"); ct == "application/json" {
				// Should the API ever see the request, its error is JSON.
				wantError(t, r, http.StatusBadRequest, "bad_key")
			}
		}
	}
	after := n.debugReplica("seed")
	if after.status != before.status || !bytes.Equal(after.body, before.body) {
		t.Fatalf("stored data changed:\nbefore %v\nafter  %v", before, after)
	}
}

// TestTruncatedBodyNotStored sends a PUT whose body ends before its
// Content-Length: nothing may be stored.
func TestTruncatedBodyNotStored(t *testing.T) {
	n := newNode(t)
	n.put("seed", "seed-value", ctText, "")
	before := n.debugReplica("seed")

	c, err := net.Dial("tcp", n.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "PUT /kv/seed HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, resp{status: res.StatusCode, header: res.Header, body: b}, http.StatusBadRequest, "bad_parameter")

	after := n.debugReplica("seed")
	if after.status != before.status || !bytes.Equal(after.body, before.body) {
		t.Fatalf("stored data changed:\nbefore %v\nafter  %v", before, after)
	}
}

// TestAcceptNegotiation checks which Accept headers select JSON.
func TestAcceptNegotiation(t *testing.T) {
	n := newNode(t)
	n.put("acc", "v", ctText, "")
	for accept, wantJSONBody := range map[string]bool{
		"application/json":                          true,
		"application/json; charset=utf-8":           true,
		"text/html, application/json;q=0.5":         true,
		"application/json;q=0":                      false,
		"*/*":                                       false,
		"text/plain":                                false,
		"multipart/mixed, application/octet-stream": false,
	} {
		r := n.do("GET", "/kv/acc", map[string]string{"Accept": accept}, nil)
		if wantJSONBody {
			wantJSON(t, r, part{ctText, "v", false})
		} else {
			wantValue(t, r, "v", ctText)
		}
	}
}

// TestValidEdgeCases checks inputs at the edge of what is allowed.
func TestValidEdgeCases(t *testing.T) {
	n := newNode(t)

	t.Run("write levels and timeouts", func(t *testing.T) {
		for _, q := range []string{
			"w=one", "w=quorum", "w=all", "w=default", "w=1", "w=2", "w=3",
			"pw=one", "pw=all", "pw=3", "w=all&pw=quorum",
			"timeout=250", "timeout=2s", "timeout=60000", "timeout=60s",
			"w=all&timeout=500ms",
		} {
			r := n.do("PUT", "/kv/levels?"+q, map[string]string{"Content-Type": ctText}, strings.NewReader(q))
			if r.status != http.StatusNoContent {
				t.Errorf("PUT ?%s = %v, want 204", q, r)
				continue
			}
			g := n.do("GET", "/kv/levels", nil, nil)
			if g.status != http.StatusMultipleChoices && g.status != http.StatusOK {
				t.Errorf("GET after PUT ?%s = %v", q, g)
			}
			d := n.do("DELETE", "/kv/levels?"+q, map[string]string{api.HeaderContext: g.ctx()}, nil)
			if d.status != http.StatusNoContent {
				t.Errorf("DELETE ?%s = %v, want 204", q, d)
			}
		}
	})

	t.Run("read levels", func(t *testing.T) {
		n.put("rl", "v", ctText, "")
		for _, q := range []string{"r=one", "r=quorum", "r=all", "r=1", "r=3", "pr=all", "r=all&pr=1", "timeout=250", "timeout=2s", "r=all&timeout=1s"} {
			wantValue(t, n.do("GET", "/kv/rl?"+q, nil, nil), "v", ctText)
		}
	})

	t.Run("key of exactly MaxKeyLen bytes", func(t *testing.T) {
		k := strings.Repeat("a", api.MaxKeyLen)
		n.put(k, "max", ctText, "")
		wantValue(t, n.get(k), "max", ctText)
		// Percent-encoded, the same key is still MaxKeyLen bytes.
		wantValue(t, n.do("GET", "/kv/"+strings.Repeat("%61", api.MaxKeyLen), nil, nil), "max", ctText)
	})

	t.Run("key with encoded slash", func(t *testing.T) {
		r := n.do("PUT", "/kv/a%2Fb", map[string]string{"Content-Type": ctText}, strings.NewReader("slash"))
		if r.status != http.StatusNoContent {
			t.Fatalf("PUT a%%2Fb = %v", r)
		}
		wantValue(t, n.do("GET", "/kv/a%2Fb", nil, nil), "slash", ctText)
		// The key is "a/b": an unencoded slash names the same key.
		wantValue(t, n.do("GET", "/kv/a/b", nil, nil), "slash", ctText)
		if d := n.do("GET", "/debug/replica/a%2Fb", nil, nil); d.status != http.StatusOK {
			t.Fatalf("debug a%%2Fb = %v", d)
		}
		wantError(t, n.get("a"), http.StatusNotFound, "not_found")
		wantError(t, n.get("b"), http.StatusNotFound, "not_found")
	})

	t.Run("key with dot segments", func(t *testing.T) {
		for _, p := range []string{"/kv/a/../b", "/kv/..", "/kv/./x", "/kv/a//b"} {
			r := n.do("PUT", p, map[string]string{"Content-Type": ctText}, strings.NewReader(p))
			if r.status != http.StatusNoContent {
				t.Fatalf("PUT %s = %v, want 204 (no cleaning, no redirect)", p, r)
			}
			wantValue(t, n.do("GET", p, nil, nil), p, ctText)
		}
		// "a/../b" is its own key, not "b".
		wantError(t, n.get("b"), http.StatusNotFound, "not_found")
		wantValue(t, n.get("a/../b"), "/kv/a/../b", ctText)
	})

	t.Run("unicode key", func(t *testing.T) {
		k := "ключ/键/🔑 ü"
		n.put(k, "unicode", ctText, "")
		wantValue(t, n.get(k), "unicode", ctText)
		if d := n.debugReplica(k); d.status != http.StatusOK {
			t.Fatalf("debug %q = %v", k, d)
		}
		// The raw UTF-8 bytes name the same key as their escapes.
		wantValue(t, n.do("GET", "/kv/"+url.PathEscape("ключ")+"/"+"%E9%94%AE"+"/%F0%9F%94%91%20%C3%BC", nil, nil), "unicode", ctText)
	})

	t.Run("empty value", func(t *testing.T) {
		n.put("empty", "", ctBin, "")
		r := n.get("empty")
		wantValue(t, r, "", ctBin)
		if cl := r.header.Get("Content-Length"); cl != "0" {
			t.Errorf("empty value Content-Length = %q, want 0", cl)
		}
		wantJSON(t, n.getJSON("empty"), part{ctBin, "", false})
	})

	t.Run("no content type", func(t *testing.T) {
		r := n.do("PUT", "/kv/noct", nil, strings.NewReader("raw"))
		if r.status != http.StatusNoContent {
			t.Fatalf("PUT = %v", r)
		}
		wantValue(t, n.get("noct"), "raw", "application/octet-stream")
	})

	t.Run("value of exactly MaxValue bytes", func(t *testing.T) {
		v := strings.Repeat("v", testMaxValue)
		n.put("maxval", v, ctBin, "")
		wantValue(t, n.get("maxval"), v, ctBin)
		w := strings.Repeat("w", testMaxValue)
		r := n.do("PUT", "/kv/maxval-chunked", map[string]string{"Content-Type": ctBin}, onlyReader{strings.NewReader(w)})
		if r.status != http.StatusNoContent {
			t.Fatalf("chunked PUT of MaxValue bytes = %v", r)
		}
		wantValue(t, n.get("maxval-chunked"), w, ctBin)
	})

	t.Run("binary value", func(t *testing.T) {
		v := string([]byte{0, 1, 2, 0xff, '\r', '\n', '-', '-'})
		n.put("bin", v, ctBin, "")
		wantValue(t, n.get("bin"), v, ctBin)
	})

	t.Run("whitespace context is a blind write", func(t *testing.T) {
		n.put("ws", "a", ctText, "")
		r := n.do("PUT", "/kv/ws", map[string]string{api.HeaderContext: "  ", "Content-Type": ctText}, strings.NewReader("b"))
		if r.status != http.StatusNoContent {
			t.Fatalf("PUT with blank context = %v", r)
		}
		wantMultipart(t, n.get("ws"), part{ctText, "a", false}, part{ctText, "b", false})
	})
}
