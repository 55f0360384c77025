package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/auth"
)

// Tokens of the access control tests.
const (
	readToken  = "read-token-0123456789abcdef"
	writeToken = "write-token-0123456789abcdef"
	adminToken = "admin-token-0123456789abcdef"
)

// writeTokenFile writes content to path as an operator should: to another
// name, then renamed into place.
func writeTokenFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".new", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// newAuthNode starts a node whose access control reads a token file (in
// t.TempDir) holding content; configure, if not nil, adjusts its config
// further. It returns the node and the loaded file.
func newAuthNode(t *testing.T, content string, configure func(*api.Config)) (*node, *auth.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	writeTokenFile(t, path, content)
	f, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	n := newNodeWith(t, func(cfg *api.Config) {
		cfg.Auth = f
		if configure != nil {
			configure(cfg)
		}
	})
	return n, f
}

const allRoles = "# test tokens\nread " + readToken + "\nwrite " + writeToken + "   # the writer\nadmin " + adminToken + "\n"

// as returns n sending "Authorization: Bearer token" (none if token is
// "") with every request whose header has no Authorization field.
func (n *node) as(token string) *node {
	c := *n
	c.token = token
	return &c
}

// at returns n talking to srv instead of n's own server.
func (n *node) at(srv *httptest.Server) *node {
	c := *n
	c.srv = srv
	return &c
}

// wantUnauthorized asserts a 401 with its challenge and JSON error.
func wantUnauthorized(t *testing.T, r resp) {
	t.Helper()
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="dotkv"` {
		t.Errorf("401 WWW-Authenticate = %q", got)
	}
}

// wantForbidden asserts a 403 naming the role needed.
func wantForbidden(t *testing.T, r resp, need string) {
	t.Helper()
	e := wantError(t, r, http.StatusForbidden, "forbidden")
	if !strings.Contains(*e.Error, "the "+need+" role") {
		t.Errorf("403 %q does not name the role needed, %s", *e.Error, need)
	}
}

func wantStatus(t *testing.T, r resp, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d (%v), want %d", r.status, r, status)
	}
}

func TestAuthRoles(t *testing.T) {
	n, _ := newAuthNode(t, allRoles, nil)
	reader, writer, admin := n.as(readToken), n.as(writeToken), n.as(adminToken)
	before := n.metrics()

	// Without a token, or with one the node does not know, nothing but
	// /healthz and /metrics answers, not even with a 404.
	for _, hdr := range []map[string]string{
		nil,
		{"Authorization": "Bearer not-a-token-0123456789"},
		{"Authorization": "Bearer " + readToken + "x"},
		{"Authorization": "Bearer " + readToken[:len(readToken)-1]},
		{"Authorization": "Bearer " + strings.ToUpper(adminToken)},
		{"Authorization": "Bearer"},
		{"Authorization": "Bearer "},
		{"Authorization": "Basic " + adminToken},
		{"Authorization": adminToken},
		{"Authorization": "Bearer " + adminToken + " " + adminToken},
		{"X-Authorization": "Bearer " + adminToken},
	} {
		for _, req := range []struct{ method, path string }{
			{"GET", "/kv/k"}, {"HEAD", "/kv/k"}, {"PUT", "/kv/k"}, {"DELETE", "/kv/k"}, {"PATCH", "/kv/k"},
			{"GET", "/cluster/status"}, {"GET", "/cluster/preflist/k"}, {"POST", "/cluster/leave"},
			{"POST", "/cluster/remove/n2"}, {"GET", "/admin/aae"}, {"GET", "/debug/pprof/"},
			{"GET", "/debug/replica/k"}, {"GET", "/nope"}, {"GET", "/"}, {"GET", "/admin/nope"},
		} {
			r := n.do(req.method, req.path, hdr, strings.NewReader("v"))
			if req.method == "HEAD" {
				wantStatus(t, r, http.StatusUnauthorized)
				continue
			}
			wantUnauthorized(t, r)
		}
	}
	// Two Authorization headers, even of a valid token, are refused.
	wantUnauthorized(t, n.doHeader("PUT", "/kv/k", http.Header{"Authorization": {"Bearer " + writeToken, "Bearer " + writeToken}}, strings.NewReader("v")))
	wantError(t, reader.get("k"), http.StatusNotFound, "not_found") // nothing was written

	// /healthz and (without MetricsAuth) /metrics are open.
	wantStatus(t, n.do("GET", "/healthz", nil, nil), http.StatusOK)
	wantStatus(t, n.do("GET", "/metrics", nil, nil), http.StatusOK)

	// A read token reads, and cannot write.
	wantError(t, reader.get("k"), http.StatusNotFound, "not_found")
	wantForbidden(t, reader.do("PUT", "/kv/k", nil, strings.NewReader("v")), "write")
	wantForbidden(t, reader.do("DELETE", "/kv/k", nil, nil), "write")
	wantForbidden(t, reader.do("POST", "/kv/k", nil, nil), "write")
	wantStatus(t, reader.do("GET", "/cluster/status", nil, nil), http.StatusOK)
	wantStatus(t, reader.do("GET", "/cluster/preflist/k", nil, nil), http.StatusOK)
	wantError(t, reader.do("GET", "/nope", nil, nil), http.StatusNotFound, "not_found")
	wantError(t, reader.do("PATCH", "/kv/k", nil, nil), http.StatusMethodNotAllowed, "method_not_allowed")
	for _, path := range []string{"/admin/aae", "/debug/pprof/", "/debug/replica/k", "/admin/nope", "/cluster/leave", "/cluster/remove/n2"} {
		wantForbidden(t, reader.do("GET", path, nil, nil), "admin")
	}

	// A write token writes (the scheme in any case), and the write is read
	// back with a read token.
	vctx := writer.put("k", "v1", ctText, "")
	wantValue(t, reader.get("k"), "v1", ctText)
	wantValue(t, writer.get("k"), "v1", ctText)
	for _, scheme := range []string{"bearer ", "BEARER   "} {
		r := n.do("PUT", kvPath("k"), map[string]string{"Authorization": scheme + writeToken, api.HeaderContext: vctx, "Content-Type": ctText}, strings.NewReader("v2"))
		wantStatus(t, r, http.StatusNoContent)
		vctx = r.ctx()
	}
	wantValue(t, reader.get("k"), "v2", ctText)
	wantForbidden(t, reader.del("k", vctx), "write")
	wantValue(t, reader.get("k"), "v2", ctText)
	for _, path := range []string{"/admin/aae", "/debug/pprof/", "/debug/replica/k", "/cluster/leave", "/cluster/remove/n2"} {
		wantForbidden(t, writer.do("POST", path, nil, nil), "admin")
	}
	wantForbidden(t, writer.do("GET", "/admin/aae", nil, nil), "admin")

	// An admin token reaches /admin/, /debug/ and the membership
	// endpoints, and reads and writes keys.
	wantStatus(t, admin.do("GET", "/admin/aae", nil, nil), http.StatusOK)
	if r := admin.do("GET", "/debug/pprof/", nil, nil); r.status != http.StatusOK || !bytes.Contains(r.body, []byte("goroutine")) {
		t.Fatalf("GET /debug/pprof/ as admin = %v", r)
	}
	wantStatus(t, admin.debugReplica("k"), http.StatusOK)
	wantError(t, admin.do("POST", "/cluster/leave", nil, nil), http.StatusConflict, "not_clustered")
	wantError(t, admin.do("POST", "/cluster/remove/n2", nil, nil), http.StatusConflict, "not_clustered")
	wantError(t, admin.do("GET", "/admin/fault", nil, nil), http.StatusNotFound, "not_found") // --fault-injection is off
	admin.put("k2", "a", ctText, "")
	if r := writer.del("k2", ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE as writer = %v", r)
	}

	// The refusals are counted by reason.
	after := n.metrics()
	for reason, want := range map[string]float64{
		"missing":   2 * 15,        // no Authorization header, X-Authorization
		"malformed": 5*15 + 1,      // no token, an empty one, another scheme, no scheme, a space; two headers
		"invalid":   4 * 15,        // unknown tokens
		"forbidden": 3 + 6 + 1 + 6, // read: PUT, DELETE, POST of /kv/, admin paths, DELETE; write: admin paths
	} {
		b := metricValue(t, before, "dotkv_http_auth_refused_total", map[string]string{"reason": reason})
		a := metricValue(t, after, "dotkv_http_auth_refused_total", map[string]string{"reason": reason})
		if a-b != want {
			t.Errorf("dotkv_http_auth_refused_total{reason=%q} went from %v to %v, want +%v", reason, b, a, want)
		}
	}
	if got := metricValue(t, after, "dotkv_http_requests_total", map[string]string{"route": "kv", "method": "PUT", "status": "401"}); got < 11 {
		t.Errorf("401s of PUT /kv/ counted %v times in dotkv_http_requests_total, want 11 or more", got)
	}
}

func TestAuthMetricsToken(t *testing.T) {
	n, _ := newAuthNode(t, allRoles, func(cfg *api.Config) { cfg.MetricsAuth = true })
	wantUnauthorized(t, n.do("GET", "/metrics", nil, nil))
	wantUnauthorized(t, n.as("not-a-token-0123456789").do("GET", "/metrics", nil, nil))
	for _, tok := range []string{readToken, writeToken, adminToken} {
		if r := n.as(tok).do("GET", "/metrics", nil, nil); r.status != http.StatusOK || !bytes.Contains(r.body, []byte("dotkv_http_auth_refused_total")) {
			t.Fatalf("GET /metrics = %v", r)
		}
	}
	wantStatus(t, n.do("GET", "/healthz", nil, nil), http.StatusOK)

	// MetricsAuth without Auth: no access control at all.
	open := newNodeWith(t, func(cfg *api.Config) { cfg.MetricsAuth = true })
	wantStatus(t, open.do("GET", "/metrics", nil, nil), http.StatusOK)
}

func TestAuthReload(t *testing.T) {
	const (
		oldWriter = "old-writer-0123456789abcdef"
		newWriter = "new-writer-0123456789abcdef"
	)
	n, f := newAuthNode(t, "write "+oldWriter+"\nread "+readToken+"\n", nil)
	n.as(oldWriter).put("k", "v1", ctText, "")
	wantUnauthorized(t, n.as(newWriter).do("PUT", kvPath("k"), nil, strings.NewReader("v2")))

	writeTokenFile(t, f.Path(), "# rotated\nwrite "+newWriter+"\nread "+readToken+"\nadmin "+adminToken+"\n")
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	wantUnauthorized(t, n.as(oldWriter).do("PUT", kvPath("k"), nil, strings.NewReader("v2")))
	wantUnauthorized(t, n.as(oldWriter).get("k"))
	vctx := n.as(newWriter).put("k", "v2", ctText, n.as(readToken).get("k").ctx())
	wantValue(t, n.as(readToken).get("k"), "v2", ctText)
	wantStatus(t, n.as(adminToken).do("GET", "/admin/aae", nil, nil), http.StatusOK)

	// A broken file is refused, and the tokens in use stay.
	for _, content := range []string{
		"write " + newWriter + "\nread " + oldWriter + "\nsuperuser " + adminToken + "\n",
		"write " + newWriter + "\nread " + newWriter + "\n",
		"# everyone out\n",
		"read tiny-tok\n",
	} {
		writeTokenFile(t, f.Path(), content)
		err := f.Reload()
		if err == nil {
			t.Fatalf("Reload accepted %q", content)
		}
		for _, tok := range []string{newWriter, oldWriter, adminToken, "tiny-tok"} {
			if strings.Contains(err.Error(), tok) {
				t.Errorf("Reload error %q echoes a token", err)
			}
		}
		wantUnauthorized(t, n.as(oldWriter).get("k"))
		vctx = n.as(newWriter).put("k", "v3", ctText, vctx)
		wantValue(t, n.as(readToken).get("k"), "v3", ctText)
		wantStatus(t, n.as(adminToken).do("GET", "/admin/aae", nil, nil), http.StatusOK)
	}
}

func TestSeparateAdmin(t *testing.T) {
	for _, withAuth := range []bool{false, true} {
		name := "open"
		if withAuth {
			name = "tokens"
		}
		t.Run(name, func(t *testing.T) {
			configure := func(cfg *api.Config) { cfg.SeparateAdmin = true }
			var n *node
			if withAuth {
				n, _ = newAuthNode(t, allRoles, configure)
			} else {
				n = newNodeWith(t, configure)
			}
			adminSrv := httptest.NewServer(n.api.AdminHandler())
			t.Cleanup(adminSrv.Close)
			client, adm := n.as(adminToken), n.as(adminToken).at(adminSrv)

			// The main address serves no /admin/ or /debug/, even to an
			// admin, and says where they are.
			client.put("k", "v", ctText, "")
			for _, path := range []string{"/debug/pprof/", "/debug/replica/k", "/admin/aae", "/admin/fault", "/admin/nope"} {
				e := wantError(t, client.do("GET", path, nil, nil), http.StatusNotFound, "not_found")
				if !strings.Contains(*e.Error, "--admin-http") {
					t.Errorf("GET %s: 404 %q does not name the admin address", path, *e.Error)
				}
			}
			wantValue(t, client.get("k"), "v", ctText)
			wantStatus(t, client.do("GET", "/cluster/status", nil, nil), http.StatusOK)

			// The admin address serves them, and nothing else.
			if r := adm.do("GET", "/debug/pprof/", nil, nil); r.status != http.StatusOK || !bytes.Contains(r.body, []byte("goroutine")) {
				t.Fatalf("admin GET /debug/pprof/ = %v", r)
			}
			wantStatus(t, adm.debugReplica("k"), http.StatusOK)
			wantStatus(t, adm.do("GET", "/admin/aae", nil, nil), http.StatusOK)
			for _, path := range []string{"/kv/k", "/healthz", "/metrics", "/cluster/status", "/nope"} {
				wantError(t, adm.do("GET", path, nil, nil), http.StatusNotFound, "not_found")
			}
			wantError(t, adm.do("PUT", "/kv/k", nil, strings.NewReader("x")), http.StatusNotFound, "not_found")
			wantValue(t, client.get("k"), "v", ctText)

			if withAuth {
				anon := n.at(adminSrv)
				wantUnauthorized(t, anon.do("GET", "/debug/pprof/", nil, nil))
				wantUnauthorized(t, anon.do("GET", "/kv/k", nil, nil))
				wantForbidden(t, anon.as(writeToken).do("GET", "/debug/pprof/", nil, nil), "admin")
				wantForbidden(t, anon.as(readToken).do("GET", "/admin/aae", nil, nil), "admin")
				wantUnauthorized(t, n.do("GET", "/debug/pprof/", nil, nil))
				wantError(t, n.as(readToken).do("GET", "/debug/pprof/", nil, nil), http.StatusNotFound, "not_found")
			}
			// Requests to either address are counted on the one registry.
			m := client.metrics()
			if got := metricValue(t, m, "dotkv_http_requests_total", map[string]string{"route": "pprof", "method": "GET", "status": "200"}); got != 1 {
				t.Errorf("pprof 200s counted %v times, want 1", got)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestAuthNeverLogsTokens(t *testing.T) {
	var logs lockedBuffer
	n, _ := newAuthNode(t, allRoles, func(cfg *api.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	guess := "guessed-token-0123456789"
	wantUnauthorized(t, n.as(guess).get("k"))
	wantUnauthorized(t, n.do("PUT", kvPath("k"), map[string]string{"Authorization": "Basic " + adminToken}, strings.NewReader("v")))
	wantForbidden(t, n.as(readToken).do("PUT", kvPath("k"), nil, strings.NewReader("v")), "write")
	wantForbidden(t, n.as(writeToken).do("GET", "/admin/aae", nil, nil), "admin")
	wantStatus(t, n.as(adminToken).do("GET", "/admin/aae", nil, nil), http.StatusOK)
	wantError(t, n.as(adminToken).do("POST", "/cluster/leave", nil, nil), http.StatusConflict, "not_clustered")
	out := logs.String()
	if !strings.Contains(out, "request refused") || !strings.Contains(out, "reason=forbidden") {
		t.Errorf("refusals are not logged at debug level:\n%s", out)
	}
	for _, tok := range []string{guess, readToken, writeToken, adminToken, "Bearer", "Basic"} {
		if strings.Contains(out, tok) {
			t.Errorf("the log holds %q:\n%s", tok, out)
		}
	}
}
