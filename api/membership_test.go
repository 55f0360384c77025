package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/handoff"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
)

// fakeCluster is a ClusterView whose members, view and membership-change
// answers a test sets, and which records the changes asked of it.
type fakeCluster struct {
	mu        sync.Mutex
	members   []gossip.Member
	view      *ring.View
	leaveErr  error
	removeErr error
	leaves    int
	removes   []removeCall
}

type removeCall struct {
	id    string
	force bool
}

func (f *fakeCluster) Members() []gossip.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.members)
}

func (f *fakeCluster) View() *ring.View {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.view
}

func (f *fakeCluster) Leave() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leaves++
	return f.leaveErr
}

func (f *fakeCluster) Remove(id string, force bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removes = append(f.removes, removeCall{id, force})
	return f.removeErr
}

func (f *fakeCluster) set(fn func(f *fakeCluster)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// fakeTransfers lists fixed transfers.
type fakeTransfers []handoff.Transfer

func (f fakeTransfers) Transfers() []handoff.Transfer { return f }

// mustRing builds a ring of members with 64 partitions and N=3.
func mustRing(t *testing.T, members ...string) *ring.Ring {
	t.Helper()
	r, err := ring.New(members, 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newFakeCluster returns a stable three-node cluster n1..n3 (members,
// alive) at epoch 7, seen from n1.
func newFakeCluster(t *testing.T) *fakeCluster {
	t.Helper()
	f := &fakeCluster{view: ring.Stable(mustRing(t, "n1", "n2", "n3"), 7)}
	for _, id := range []string{"n1", "n2", "n3"} {
		f.members = append(f.members, gossip.Member{ID: id, HTTP: id + ":8080", Status: gossip.StatusMember, Liveness: gossip.Alive})
	}
	return f
}

// clusterServer serves node self over a real store and replica.Local
// with cluster view c and, if not nil, transfers tr.
func clusterServer(t *testing.T, self string, c api.ClusterView, tr api.TransferLister) *node {
	t.Helper()
	store, err := storage.Open("db", storage.Options{NodeID: self, FS: vfs.NewMem(), CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	backend, err := replica.NewLocal(self, store, replica.Config{})
	if err != nil {
		t.Fatal(err)
	}
	httpTr := &http.Transport{}
	n := &node{t: t, tr: httpTr, client: &http.Client{Transport: httpTr}}
	n.srv = httptest.NewServer(api.New(backend, api.Config{NodeID: self, Cluster: c, Transfers: tr}))
	t.Cleanup(func() {
		n.srv.Close()
		httpTr.CloseIdleConnections()
		backend.Close()
		_ = store.Close()
	})
	return n
}

// decodeJSON decodes r's body into v, failing the test on any other
// content type or bad JSON.
func decodeJSON(t *testing.T, r resp, v any) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q (%v)", ct, r)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

func TestClusterLeave(t *testing.T) {
	f := newFakeCluster(t)
	n := clusterServer(t, "n1", f, nil)

	r := n.do(http.MethodPost, "/cluster/leave", nil, nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST /cluster/leave = %v, want 202", r)
	}
	var got map[string]string
	decodeJSON(t, r, &got)
	if got["node"] != "n1" || got["status"] != "leaving" || len(got) != 2 {
		t.Errorf("POST /cluster/leave body = %v, want node n1, status leaving", got)
	}
	if f.leaves != 1 {
		t.Errorf("Leave called %d times, want 1", f.leaves)
	}

	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{gossip.ErrNotMember, http.StatusConflict, "not_member"},
		{fmt.Errorf("%w: n1 is already leaving", gossip.ErrNotMember), http.StatusConflict, "not_member"},
		{gossip.ErrLastMember, http.StatusConflict, "last_member"},
		{errors.New("disk on fire"), http.StatusInternalServerError, "internal"},
	} {
		f.set(func(f *fakeCluster) { f.leaveErr = c.err })
		wantError(t, n.do(http.MethodPost, "/cluster/leave", nil, nil), c.status, c.code)
	}

	before := f.leaves
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		r := n.do(m, "/cluster/leave", nil, nil)
		wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
		if a := r.header.Get("Allow"); a != "POST" {
			t.Errorf("%s /cluster/leave: Allow = %q, want POST", m, a)
		}
	}
	wantError(t, n.do(http.MethodPost, "/cluster/leave?force=true", nil, nil), http.StatusBadRequest, "bad_parameter")
	if f.leaves != before {
		t.Errorf("refused requests called Leave %d times", f.leaves-before)
	}
}

func TestClusterRemove(t *testing.T) {
	f := newFakeCluster(t)
	n := clusterServer(t, "n1", f, nil)

	for _, c := range []struct {
		query string
		force bool
	}{
		{"", false},
		{"?force=true", true},
		{"?force=1", true},
		{"?force=false", false},
		{"?force=0", false},
	} {
		f.set(func(f *fakeCluster) { f.removes = nil })
		r := n.do(http.MethodPost, "/cluster/remove/n3"+c.query, nil, nil)
		if r.status != http.StatusAccepted {
			t.Fatalf("POST /cluster/remove/n3%s = %v, want 202", c.query, r)
		}
		var got map[string]string
		decodeJSON(t, r, &got)
		if got["node"] != "n3" || got["status"] != "leaving" || len(got) != 2 {
			t.Errorf("POST /cluster/remove/n3%s body = %v, want node n3, status leaving", c.query, got)
		}
		if want := []removeCall{{"n3", c.force}}; !slices.Equal(f.removes, want) {
			t.Errorf("POST /cluster/remove/n3%s called Remove %v, want %v", c.query, f.removes, want)
		}
	}

	// A node ID is percent-decoded.
	f.set(func(f *fakeCluster) { f.removes = nil })
	if r := n.do(http.MethodPost, "/cluster/remove/n%5F3", nil, nil); r.status != http.StatusAccepted ||
		!slices.Equal(f.removes, []removeCall{{"n_3", false}}) {
		t.Errorf("POST /cluster/remove/n%%5F3 = %v, Remove calls %v", r, f.removes)
	}

	for _, c := range []struct {
		err    error
		status int
		code   string
		says   []string
	}{
		{gossip.ErrUnknownNode, http.StatusNotFound, "unknown_node", []string{"n3"}},
		{gossip.ErrNodeAlive, http.StatusConflict, "node_alive", []string{"alive", "leave", "force=true"}},
		{gossip.ErrNotMember, http.StatusConflict, "not_member", []string{"n3"}},
		{gossip.ErrLastMember, http.StatusConflict, "last_member", []string{"last"}},
		{errors.New("disk on fire"), http.StatusInternalServerError, "internal", []string{"disk on fire"}},
	} {
		f.set(func(f *fakeCluster) { f.removeErr = c.err })
		e := wantError(t, n.do(http.MethodPost, "/cluster/remove/n3", nil, nil), c.status, c.code)
		for _, s := range c.says {
			if e.Error == nil || !strings.Contains(*e.Error, s) {
				t.Errorf("Remove error %v: message %v does not say %q", c.err, e.Error, s)
			}
		}
	}
	f.set(func(f *fakeCluster) { f.removeErr, f.removes = nil, nil })

	for _, q := range []string{"?force=yes", "?force=", "?force=true&force=true", "?forced=true", "?force=true&w=1", "?%zz"} {
		wantError(t, n.do(http.MethodPost, "/cluster/remove/n3"+q, nil, nil), http.StatusBadRequest, "bad_parameter")
	}
	wantError(t, n.do(http.MethodPost, "/cluster/remove/", nil, nil), http.StatusBadRequest, "bad_parameter")
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		r := n.do(m, "/cluster/remove/n3", nil, nil)
		wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
		if a := r.header.Get("Allow"); a != "POST" {
			t.Errorf("%s /cluster/remove/n3: Allow = %q, want POST", m, a)
		}
	}
	if len(f.removes) != 0 {
		t.Errorf("refused requests called Remove: %v", f.removes)
	}
}

func TestSingleNodeCannotChangeMembership(t *testing.T) {
	srv := clusterNode(t, nil)
	defer http.DefaultClient.CloseIdleConnections()
	for _, path := range []string{"/cluster/leave", "/cluster/remove/n2", "/cluster/remove/n1?force=true"} {
		var e struct{ Code, Error string }
		if code := doJSON(t, http.MethodPost, srv.URL+path, "", &e); code != http.StatusConflict || e.Code != "not_clustered" || e.Error == "" {
			t.Errorf("POST %s on a single node: %d %+v, want 409 not_clustered", path, code, e)
		}
	}
}

// statusBody is /cluster/status as the tests read it.
type statusBody struct {
	Node    string `json:"node"`
	Members []struct {
		ID          string `json:"id"`
		HTTP        string `json:"http"`
		Liveness    string `json:"liveness"`
		Status      string `json:"status"`
		RingVersion uint64 `json:"ring_version"`
		Partitions  int    `json:"partitions"`
	} `json:"members"`
	Ring struct {
		Partitions int      `json:"partitions"`
		N          int      `json:"n"`
		Members    []string `json:"members"`
		Version    uint64   `json:"version"`
	} `json:"ring"`
	HintsPending map[string]int     `json:"hints_pending"`
	Transfers    []handoff.Transfer `json:"transfers"`
}

func TestClusterStatusMembershipFields(t *testing.T) {
	// n4 joins n1..n3: the view is changing, n4 receives its partitions.
	cur, next := mustRing(t, "n1", "n2", "n3"), mustRing(t, "n1", "n2", "n3", "n4")
	f := &fakeCluster{view: ring.NewView(cur, next, 9, "c9", nil, nil, nil)}
	for _, m := range []struct {
		id     string
		status gossip.Status
	}{{"n1", gossip.StatusMember}, {"n2", gossip.StatusLeaving}, {"n3", gossip.StatusMember}, {"n4", gossip.StatusJoining}, {"n5", gossip.StatusRemoved}, {"n6", gossip.StatusLeft}} {
		f.members = append(f.members, gossip.Member{ID: m.id, HTTP: m.id + ":8080", Status: m.status, Liveness: gossip.Alive, Applied: 7})
	}
	transfers := fakeTransfers{
		{Partition: 3, From: "n2", To: "n4", State: handoff.StateRunning, Keys: 10, Bytes: 2048},
		{Partition: 17, From: "n1", To: "n4", State: handoff.StateQueued},
	}
	n := clusterServer(t, "n4", f, transfers)
	r := n.do(http.MethodGet, "/cluster/status", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /cluster/status = %v", r)
	}
	var st statusBody
	decodeJSON(t, r, &st)
	if st.Node != "n4" || st.Ring.Version != 9 || st.Ring.Partitions != 64 || st.Ring.N != 3 ||
		!slices.Equal(st.Ring.Members, []string{"n1", "n2", "n3", "n4"}) {
		t.Errorf("status = %+v", st)
	}
	if len(st.Members) != 6 {
		t.Fatalf("members = %+v, want 6", st.Members)
	}
	v := f.view
	for i, m := range st.Members {
		want := f.members[i]
		if m.ID != want.ID || m.Status != string(want.Status) || m.Liveness != "alive" || m.HTTP != want.HTTP ||
			m.Partitions != len(v.Owned(want.ID)) || m.RingVersion != 7 {
			t.Errorf("member %d = %+v, want %+v with %d partitions", i, m, want, len(v.Owned(want.ID)))
		}
	}
	if st.Members[3].Partitions == 0 || st.Members[4].Partitions != 0 {
		t.Errorf("partitions: joining n4 %d (want > 0), removed n5 %d (want 0)", st.Members[3].Partitions, st.Members[4].Partitions)
	}
	if !slices.Equal(st.Transfers, []handoff.Transfer(transfers)) {
		t.Errorf("transfers = %+v, want %+v", st.Transfers, transfers)
	}
	for _, field := range []string{`"partition":3`, `"from":"n2"`, `"to":"n4"`, `"state":"running"`, `"keys":10`, `"bytes":2048`, `"ring_version":7`} {
		if !bytes.Contains(r.body, []byte(field)) {
			t.Errorf("status JSON lacks %s: %s", field, r.body)
		}
	}

	// Without a transfer lister, transfers is an empty list, not null.
	n = clusterServer(t, "n1", newFakeCluster(t), nil)
	r = n.do(http.MethodGet, "/cluster/status", nil, nil)
	if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"transfers":[]`)) {
		t.Errorf("status without transfers: %v, want \"transfers\":[]", r)
	}
}

func TestHealthzFollowsRingStatus(t *testing.T) {
	for _, c := range []struct {
		status gossip.Status
		code   int
		says   string
	}{
		{gossip.StatusMember, http.StatusOK, "ok"},
		{gossip.StatusJoining, http.StatusServiceUnavailable, "joining"},
		{gossip.StatusLeaving, http.StatusOK, "leaving"},
		{gossip.StatusLeft, http.StatusServiceUnavailable, "left"},
		{gossip.StatusRemoved, http.StatusServiceUnavailable, "removed"},
	} {
		f := newFakeCluster(t)
		f.members[1].Status = c.status // n2: this node
		n := clusterServer(t, "n2", f, nil)
		r := n.do(http.MethodGet, "/healthz", nil, nil)
		var got map[string]string
		decodeJSON(t, r, &got)
		if r.status != c.code || got["status"] != c.says || got["node"] != "n2" || len(got) != 2 {
			t.Errorf("healthz of a %s node: %d %v, want %d status %s", c.status, r.status, got, c.code, c.says)
		}
	}
	// Another node's status does not matter.
	f := newFakeCluster(t)
	f.members[0].Status, f.members[2].Status = gossip.StatusLeaving, gossip.StatusJoining
	n := clusterServer(t, "n2", f, nil)
	if r := n.do(http.MethodGet, "/healthz", nil, nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"status":"ok"`) {
		t.Errorf("healthz of a member while others join and leave: %v", r)
	}
}

// plainMetric returns the value of the unlabelled sample name in text.
func plainMetric(t *testing.T, text []byte, name string) float64 {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f
		}
	}
	t.Fatalf("no sample %s in\n%s", name, text)
	return 0
}

func TestRingMetrics(t *testing.T) {
	cur, next := mustRing(t, "n1", "n2", "n3"), mustRing(t, "n1", "n2", "n3", "n4")
	// n4 has received partition 0 of the change, nothing else.
	received := func(p uint32, node string) bool { return p == 0 && node == "n4" }
	f := &fakeCluster{view: ring.NewView(cur, next, 12, "c12", received, nil, nil)}
	f.members = []gossip.Member{{ID: "n4", Status: gossip.StatusJoining, Liveness: gossip.Alive}}
	n := clusterServer(t, "n4", f, nil)
	wantReceiving := 0
	for p := range uint32(64) {
		if slices.Contains(next.Primaries(p), "n4") && p != 0 {
			wantReceiving++
		}
	}
	if wantReceiving == 0 {
		t.Fatal("n4 receives no partition: the test's ring is wrong")
	}
	text := n.metrics()
	if got := plainMetric(t, text, "dotkv_ring_version"); got != 12 {
		t.Errorf("dotkv_ring_version = %v, want 12", got)
	}
	if got, want := metricValue(t, text, "dotkv_partitions", map[string]string{"state": "owned"}), len(f.view.Owned("n4")); got != float64(want) {
		t.Errorf("dotkv_partitions{state=owned} = %v, want %d", got, want)
	}
	if got := metricValue(t, text, "dotkv_partitions", map[string]string{"state": "receiving"}); got != float64(wantReceiving) {
		t.Errorf("dotkv_partitions{state=receiving} = %v, want %d", got, wantReceiving)
	}

	// Read at scrape time: once the change is done, n4 owns its
	// partitions and receives none.
	f.set(func(f *fakeCluster) { f.view = ring.Stable(next, 13) })
	text = n.metrics()
	if got := plainMetric(t, text, "dotkv_ring_version"); got != 13 {
		t.Errorf("dotkv_ring_version after the change = %v, want 13", got)
	}
	if got, want := metricValue(t, text, "dotkv_partitions", map[string]string{"state": "owned"}), len(next.Owned("n4")); got != float64(want) {
		t.Errorf("dotkv_partitions{state=owned} after the change = %v, want %d", got, want)
	}
	if got := metricValue(t, text, "dotkv_partitions", map[string]string{"state": "receiving"}); got != 0 {
		t.Errorf("dotkv_partitions{state=receiving} after the change = %v, want 0", got)
	}
}
