package api

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dotkv/dotkv/client"
	"github.com/dotkv/dotkv/gossip"
)

// post answers 405 and reports false unless r is a POST of the endpoint
// named what.
func post(w http.ResponseWriter, r *http.Request, what string) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", "POST")
	writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, "method "+r.Method+" not allowed on "+what)
	return false
}

// clusterLeave serves POST /cluster/leave: this node starts handing off
// its partitions, and leaves once their new owners hold them.
func (s *Server) clusterLeave(w http.ResponseWriter, r *http.Request) {
	if !post(w, r, "/cluster/leave") {
		return
	}
	if _, ok := changeQuery(w, r, false); !ok {
		return
	}
	if err := s.cfg.Cluster.Leave(); err != nil {
		s.changeError(w, r, s.cfg.NodeID, err)
		return
	}
	s.log.Info("leaving the cluster: handing off partitions", "node", s.cfg.NodeID)
	writeJSON(w, http.StatusAccepted, client.Change{Node: s.cfg.NodeID, Status: string(gossip.StatusLeaving)})
}

// clusterRemove serves POST /cluster/remove/{id}[?force=true]: node id is
// taken out of the ring and the surviving owners re-create its copies.
func (s *Server) clusterRemove(w http.ResponseWriter, r *http.Request, escapedID string) {
	if !post(w, r, "/cluster/remove/{id}") {
		return
	}
	id, err := url.PathUnescape(escapedID)
	if err != nil || id == "" {
		writeError(w, http.StatusBadRequest, codeBadParameter, "POST /cluster/remove/{id} needs a node ID in the path")
		return
	}
	force, ok := changeQuery(w, r, true)
	if !ok {
		return
	}
	if err := s.cfg.Cluster.Remove(id, force); err != nil {
		s.changeError(w, r, id, err)
		return
	}
	s.log.Warn("removing a node from the cluster", "removed", id, "force", force)
	writeJSON(w, http.StatusAccepted, client.Change{Node: id, Status: string(gossip.StatusLeaving)})
}

// changeQuery checks the query of a membership change: no parameters but,
// if allowForce, one force=true|false (also 1|0). It answers 400 and
// reports false on anything else.
func changeQuery(w http.ResponseWriter, r *http.Request, allowForce bool) (force, ok bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadParameter, "malformed query string: "+err.Error())
		return false, false
	}
	for name, vals := range q {
		switch {
		case name != "force" || !allowForce:
			writeError(w, http.StatusBadRequest, codeBadParameter, "unknown query parameter "+strconv.Quote(name)+" for "+r.URL.Path)
			return false, false
		case len(vals) != 1:
			writeError(w, http.StatusBadRequest, codeBadParameter, "query parameter \"force\" given "+strconv.Itoa(len(vals))+" times")
			return false, false
		}
		switch vals[0] {
		case "true", "1":
			force = true
		case "false", "0":
		default:
			writeError(w, http.StatusBadRequest, codeBadParameter, "parameter force: "+strconv.Quote(vals[0])+": want true or false")
			return false, false
		}
	}
	return force, true
}

// changeError maps a membership-change error about node id to a response.
func (s *Server) changeError(w http.ResponseWriter, r *http.Request, id string, err error) {
	switch {
	case errors.Is(err, gossip.ErrUnknownNode):
		writeError(w, http.StatusNotFound, codeUnknownNode, "no node "+strconv.Quote(id)+" in the ring state")
	case errors.Is(err, gossip.ErrNodeAlive):
		writeError(w, http.StatusConflict, codeNodeAlive, "node "+strconv.Quote(id)+
			" is alive: ask it to leave (POST /cluster/leave on it), or remove it with ?force=true (dotkv remove --force)")
	case errors.Is(err, gossip.ErrNotMember):
		writeError(w, http.StatusConflict, codeNotMember, "node "+strconv.Quote(id)+": "+err.Error())
	case errors.Is(err, gossip.ErrLastMember):
		writeError(w, http.StatusConflict, codeLastMember, "node "+strconv.Quote(id)+
			" is the cluster's last member: its data would have nowhere to go")
	case errors.Is(err, ErrNotClustered):
		writeError(w, http.StatusConflict, codeNotClustered, err.Error())
	default:
		s.log.Error("membership change failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, codeInternal, "membership change failed: "+err.Error())
	}
}

// ringCollector exports this node's view of the ring, read at scrape
// time: dotkv_ring_version and dotkv_partitions{state}.
type ringCollector struct {
	self    string
	cluster ClusterView
}

var (
	ringVersionDesc = prometheus.NewDesc("dotkv_ring_version",
		"Epoch of the ring view this node routes by.", nil, nil)
	partitionsDesc = prometheus.NewDesc("dotkv_partitions",
		"Partitions of this node: owned (it is a write owner) and receiving (a transfer to it is pending).",
		[]string{"state"}, nil)
)

func (c ringCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ringVersionDesc
	ch <- partitionsDesc
}

func (c ringCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.cluster.View()
	receiving := 0
	if v.Changing() {
		for p := range uint32(v.Partitions()) {
			if slices.Contains(v.Receiving(p), c.self) {
				receiving++
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(ringVersionDesc, prometheus.GaugeValue, float64(v.Epoch()))
	ch <- prometheus.MustNewConstMetric(partitionsDesc, prometheus.GaugeValue, float64(len(v.Owned(c.self))), "owned")
	ch <- prometheus.MustNewConstMetric(partitionsDesc, prometheus.GaugeValue, float64(receiving), "receiving")
}
