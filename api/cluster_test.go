package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/transport"
)

// clusterNode is a single node whose API has fault injection on.
func clusterNode(t *testing.T, faults api.FaultFilter) *httptest.Server {
	t.Helper()
	store, err := storage.Open("db", storage.Options{NodeID: "n1", FS: vfs.NewMem(), CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	backend, err := replica.NewLocal("n1", store, replica.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(backend, api.Config{
		NodeID: "n1", Cluster: api.SingleNode("n1", "127.0.0.1:8080", backend.View()), Faults: faults,
	}))
	t.Cleanup(func() {
		srv.Close()
		backend.Close()
		_ = store.Close()
	})
	return srv
}

func doJSON(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, url, ct)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

func TestClusterStatusAndPreflist(t *testing.T) {
	srv := clusterNode(t, nil)
	defer http.DefaultClient.CloseIdleConnections()
	var st struct {
		Node    string `json:"node"`
		Members []struct {
			ID, HTTP, Liveness, Status string
			Partitions                 int
		} `json:"members"`
		Ring struct {
			Partitions, N int
			Members       []string
		} `json:"ring"`
		HintsPending map[string]int `json:"hints_pending"`
	}
	if code := doJSON(t, http.MethodGet, srv.URL+"/cluster/status", "", &st); code != http.StatusOK {
		t.Fatalf("status: %d", code)
	}
	if st.Node != "n1" || len(st.Members) != 1 || st.Members[0].Liveness != "alive" || st.Members[0].Status != "member" ||
		st.Members[0].Partitions != 1024 || st.Ring.Partitions != 1024 || st.Ring.N != 1 || st.HintsPending == nil {
		t.Fatalf("status = %+v", st)
	}
	var pl struct {
		Key       string   `json:"key"`
		Partition uint32   `json:"partition"`
		Primaries []string `json:"primaries"`
		Fallbacks []string `json:"fallbacks"`
	}
	if code := doJSON(t, http.MethodGet, srv.URL+"/cluster/preflist/a%2Fb", "", &pl); code != http.StatusOK {
		t.Fatalf("preflist: %d", code)
	}
	if pl.Key != "a/b" || len(pl.Primaries) != 1 || pl.Primaries[0] != "n1" || pl.Fallbacks == nil || len(pl.Fallbacks) != 0 {
		t.Fatalf("preflist = %+v", pl)
	}
	if code := doJSON(t, http.MethodGet, srv.URL+"/cluster/preflist/", "", nil); code != http.StatusBadRequest {
		t.Fatalf("preflist of the empty key: %d", code)
	}
	if code := doJSON(t, http.MethodPost, srv.URL+"/cluster/status", "", nil); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST status: %d", code)
	}
}

func TestAdminFault(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	off := clusterNode(t, nil)
	if code := doJSON(t, http.MethodPost, off.URL+"/admin/fault", `{"block":["n2"]}`, nil); code != http.StatusNotFound {
		t.Fatalf("fault endpoint without --fault-injection: %d, want 404", code)
	}
	f := transport.NewFilter(nil)
	srv := clusterNode(t, f)
	var got struct {
		Blocked []string `json:"blocked"`
	}
	if code := doJSON(t, http.MethodPost, srv.URL+"/admin/fault", `{"block":["n3","n2"]}`, &got); code != http.StatusOK ||
		strings.Join(got.Blocked, ",") != "n2,n3" || !f.BlockedID("n2") || !f.BlockedID("n3") {
		t.Fatalf("block: %d %v", code, got.Blocked)
	}
	if code := doJSON(t, http.MethodGet, srv.URL+"/admin/fault", "", &got); code != http.StatusOK || len(got.Blocked) != 2 {
		t.Fatalf("get: %d %v", code, got.Blocked)
	}
	if code := doJSON(t, http.MethodDelete, srv.URL+"/admin/fault", `{"heal":["n2"]}`, &got); code != http.StatusOK ||
		strings.Join(got.Blocked, ",") != "n3" {
		t.Fatalf("heal n2: %d %v", code, got.Blocked)
	}
	if code := doJSON(t, http.MethodDelete, srv.URL+"/admin/fault", "", &got); code != http.StatusOK || len(got.Blocked) != 0 || f.BlockedID("n3") {
		t.Fatalf("heal all: %d %v", code, got.Blocked)
	}
	for _, body := range []string{"", `{"block":[]}`, `not json`} {
		if code := doJSON(t, http.MethodPost, srv.URL+"/admin/fault", body, nil); code != http.StatusBadRequest {
			t.Fatalf("POST %q: %d, want 400", body, code)
		}
	}
	if code := doJSON(t, http.MethodPut, srv.URL+"/admin/fault", "", nil); code != http.StatusMethodNotAllowed {
		t.Fatalf("PUT: %d", code)
	}
}

// joining is a cluster view of a node that has not joined its cluster.
type joining struct{ r *ring.Ring }

func (j joining) View() *ring.View  { return ring.Stable(j.r, 1) }
func (joining) Dead(string) bool    { return false }
func (joining) Ready() bool         { return false }
func (joining) Suspect(string) bool { return false }

func TestJoiningNodeRefusesClientRequests(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	store, err := storage.Open("db", storage.Options{NodeID: "n2", FS: vfs.NewMem(), CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r, err := ring.New([]string{"n2"}, 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	coord, err := replica.NewCoordinator("n2", store, joining{r}, nil, replica.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	srv := httptest.NewServer(api.New(coord, api.Config{NodeID: "n2", Cluster: api.SingleNode("n2", "", ring.Stable(r, 1))}))
	defer srv.Close()
	var health map[string]string
	if code := doJSON(t, http.MethodGet, srv.URL+"/healthz", "", &health); code != http.StatusServiceUnavailable || health["status"] != "joining" {
		t.Fatalf("healthz while joining: %d %v", code, health)
	}
	var e struct{ Code string }
	if code := doJSON(t, http.MethodPut, srv.URL+"/kv/k", "v", &e); code != http.StatusServiceUnavailable || e.Code != "not_ready" {
		t.Fatalf("PUT while joining: %d %+v", code, e)
	}
	if code := doJSON(t, http.MethodGet, srv.URL+"/kv/k", "", &e); code != http.StatusServiceUnavailable || e.Code != "not_ready" {
		t.Fatalf("GET while joining: %d %+v", code, e)
	}
	if _, found, _ := store.Get(r.PartitionOf([]byte("k")), []byte("k")); found {
		t.Fatal("a joining node stored a client write")
	}
}
