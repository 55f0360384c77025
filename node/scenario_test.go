package node_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/dotkv/dotkv/internal/kvtest"
)

// TestScenarios runs the cluster stories in testdata/scenarios, each in a
// synctest bubble on the in-memory network, so their outputs are exact.
// Rewrite the expected outputs with -rewrite. Commands (nodes are n1, n2,
// …; lists are comma-separated):
//
//	cluster nodes=3 [n=3] [hints=off] [aae=off] [seed=1]
//	partition n1,n2|n3    isolate n3    blackhole n3    heal
//	stop n2               restart n2
//	wait-dead n1,n2 n3    (the first nodes see the second ones dead)
//	converge              (all alive, no hint pending)
//	converge-aae          (all alive, every Merkle root equal)
//	put n1 key value [w=2] [ctx]   (ctx: the context of the last get of key)
//	delete n1 key [w=2]            (with the context of the last get)
//	get n1 key [r=2]
//	dump key [n1,n2]      (each node's own stored state of key)
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, filepath.Join("testdata", "scenarios"), func(t *testing.T, path string) {
		simulate(t, func(t *testing.T) {
			s := &scenario{t: t, ctx: map[string]string{}}
			datadriven.RunTest(t, path, s.run)
		})
	})
}

type scenario struct {
	t   *testing.T
	c   *kvtest.Cluster
	ctx map[string]string // key → context of its last get
}

func (s *scenario) run(t *testing.T, d *datadriven.TestData) string {
	if d.Cmd != "cluster" && s.c == nil {
		d.Fatalf(t, "%s before cluster", d.Cmd)
	}
	switch d.Cmd {
	case "cluster":
		nodes, opts := 3, kvtest.Options{N: 3, MemNet: true, Seed: 1}
		d.MaybeScanArgs(t, "nodes", &nodes)
		d.MaybeScanArgs(t, "n", &opts.N)
		d.MaybeScanArgs(t, "seed", &opts.Seed)
		opts.DisableHints = s.off(d, "hints")
		opts.DisableAAE = s.off(d, "aae")
		s.c = kvtest.NewCluster(t, nodes, opts)
		t.Cleanup(s.c.CloseIdleConnections) // before the cluster's Close
		return fmt.Sprintf("%d nodes alive", nodes)
	case "partition":
		var groups [][]int
		for _, g := range strings.Split(s.word(d, 0), "|") {
			groups = append(groups, s.nodes(d, g))
		}
		s.c.Partition(groups...)
	case "isolate":
		for _, i := range s.nodes(d, s.word(d, 0)) {
			s.c.Isolate(i)
		}
	case "blackhole":
		for _, i := range s.nodes(d, s.word(d, 0)) {
			s.c.Net.Blackhole(s.c.Nodes[i].ID)
		}
	case "heal":
		s.c.Heal()
	case "stop":
		s.c.CloseIdleConnections()
		s.c.Stop(s.node(d, s.word(d, 0)))
	case "restart":
		s.c.Restart(s.node(d, s.word(d, 0)))
	case "wait-dead":
		s.c.WaitDead(s.nodes(d, s.word(d, 0)), s.nodes(d, s.word(d, 1)), waitLimit)
	case "converge":
		s.c.WaitAllAlive()
		s.c.WaitHintsDrained(waitLimit)
	case "converge-aae":
		s.c.WaitAllAlive()
		// Poll once per anti-entropy interval: virtual time makes a finer
		// poll no faster, only costlier (3 × 1024 roots in JSON each).
		deadline := time.Now().Add(waitLimit)
		for {
			ok, detail, err := s.c.RootsAgree()
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Merkle roots still differ after %v: %s", waitLimit, detail)
			}
			time.Sleep(200 * time.Millisecond)
		}
	case "put":
		i, key, value := s.node(d, s.word(d, 0)), s.word(d, 1), s.word(d, 2)
		vctx := ""
		if d.HasArg("ctx") {
			vctx = s.ctx[key]
		}
		return answer(s.c.Put(i, key, value, vctx, s.query(d, "w", "pw")))
	case "delete":
		i, key := s.node(d, s.word(d, 0)), s.word(d, 1)
		return answer(s.c.Delete(i, key, s.ctx[key], s.query(d, "w", "pw")))
	case "get":
		i, key := s.node(d, s.word(d, 0)), s.word(d, 1)
		rd := s.c.Get(i, key, s.query(d, "r", "pr"))
		if rd.Status != http.StatusOK {
			return answer(rd.Response)
		}
		s.ctx[key] = rd.Context
		return "200 " + siblings(rd)
	case "dump":
		key := s.word(d, 0)
		which := make([]int, len(s.c.Nodes))
		for i := range which {
			which[i] = i
		}
		if len(d.CmdArgs) > 1 {
			which = s.nodes(d, s.word(d, 1))
		}
		var out []string
		for _, i := range which {
			if s.c.Nodes[i].Running() == nil {
				out = append(out, s.c.Nodes[i].ID+": stopped")
				continue
			}
			rd := s.c.Replica(i, key)
			if rd.Status != http.StatusOK {
				out = append(out, fmt.Sprintf("%s: %d", s.c.Nodes[i].ID, rd.Status))
				continue
			}
			out = append(out, s.c.Nodes[i].ID+": "+siblings(rd))
		}
		return strings.Join(out, "\n")
	default:
		d.Fatalf(t, "unknown command %s", d.Cmd)
	}
	return "ok"
}

// answer is a write's or a failed read's outcome: the status, and an
// error's code and counts.
func answer(r kvtest.Response) string {
	if r.Status < 300 {
		return strconv.Itoa(r.Status)
	}
	e := r.JSONError()
	out := fmt.Sprintf("%d %s", r.Status, e.Code)
	if e.Required > 0 {
		out += fmt.Sprintf(" acks=%d required=%d", e.Acks, e.Required)
	}
	return out
}

// siblings lists a read's sibling values, sorted, a tombstone as "⌫".
func siblings(rd kvtest.Read) string {
	var vs []string
	for _, sib := range rd.Siblings {
		if sib.Deleted {
			vs = append(vs, "⌫")
		} else {
			vs = append(vs, string(sib.Value))
		}
	}
	slices.Sort(vs)
	return "[" + strings.Join(vs, " ") + "]"
}

// word returns the i-th bare argument.
func (s *scenario) word(d *datadriven.TestData, i int) string {
	if i >= len(d.CmdArgs) || len(d.CmdArgs[i].Vals) > 0 {
		d.Fatalf(s.t, "%s: argument %d missing", d.Cmd, i+1)
	}
	return d.CmdArgs[i].Key
}

func (s *scenario) node(d *datadriven.TestData, id string) int {
	i := s.c.Index(id)
	if i < 0 {
		d.Fatalf(s.t, "no node %s", id)
	}
	return i
}

func (s *scenario) nodes(d *datadriven.TestData, list string) []int {
	var out []int
	for _, id := range strings.Split(list, ",") {
		out = append(out, s.node(d, id))
	}
	return out
}

// off reports whether the command has key=off.
func (s *scenario) off(d *datadriven.TestData, key string) bool {
	var v string
	return d.MaybeScanArgs(s.t, key, &v) && v == "off"
}

// query turns level arguments (w=2, pw=1, …) into a query string.
func (s *scenario) query(d *datadriven.TestData, keys ...string) string {
	var q []string
	for _, k := range keys {
		var v string
		if d.MaybeScanArgs(s.t, k, &v) {
			q = append(q, k+"="+v)
		}
	}
	return strings.Join(q, "&")
}
