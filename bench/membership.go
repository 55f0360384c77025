package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/dotkv/dotkv/bench/history"
	"github.com/dotkv/dotkv/client"
)

// minMembers is the fewest members the membership nemesis keeps: the
// replication factor, N=3.
const minMembers = 3

// MembershipStepTimeout bounds each change of the membership nemesis,
// from its start until every live member sees it complete.
const MembershipStepTimeout = 5 * time.Minute

// memberChange is a kind of membership change.
type memberChange int

const (
	changeJoin memberChange = iota
	changeLeave
	changeRemove
	changeReplace
)

func (k memberChange) String() string {
	switch k {
	case changeJoin:
		return "join"
	case changeLeave:
		return "leave"
	case changeRemove:
		return "remove"
	case changeReplace:
		return "replace"
	}
	return fmt.Sprintf("memberChange(%d)", int(k))
}

// membershipCycle is the order of the membership nemesis's changes. From
// k members: join (k+1), leave (k), join (k+1), kill and remove (k), kill
// and replace (k), and again.
var membershipCycle = []memberChange{changeJoin, changeLeave, changeJoin, changeRemove, changeReplace}

// membershipFloor is the fewest members the membership nemesis leaves a
// cluster that started with start members: one fewer, and never fewer
// than minMembers.
func membershipFloor(start int) int { return max(start-1, minMembers) }

// nextChange returns change i (from 0) of the membership nemesis, for a
// cluster of members members that started with start: the cycle's,
// except that a leave or remove that would take the cluster below
// membershipFloor(start) becomes a join. A replace keeps the count (its
// old node is dead, though, until the replacement has taken over).
func nextChange(i, members, start int) memberChange {
	k := membershipCycle[i%len(membershipCycle)]
	if (k == changeLeave || k == changeRemove) && members-1 < membershipFloor(start) {
		return changeJoin
	}
	return k
}

// membershipStep makes the next membership change and waits until every
// live member sees it complete, within the nemesis's step timeout. The
// change is one phase, named "join n4", "leave n2", "remove n3" or
// "replace n1 by n6" (Fault as the Nemesis doc explains). It goes on when
// the run's context ends (so the run ends on a settled cluster) and stops
// only on Abort.
func (n *Nemesis) membershipStep() error {
	ctx, cancel := context.WithTimeout(n.hard, n.stepTimeout)
	defer cancel()
	if err := n.c.CheckRunning(); err != nil {
		return err
	}
	members := n.c.Nodes()
	kind := nextChange(n.changes, len(members), n.startMembers)
	n.changes++
	var err error
	switch kind {
	case changeJoin:
		err = n.join(ctx)
	case changeLeave:
		err = n.leave(ctx, members[n.rng.IntN(len(members))])
	case changeRemove:
		err = n.remove(ctx, members[n.rng.IntN(len(members))])
	case changeReplace:
		err = n.replace(ctx, members[n.rng.IntN(len(members))])
	}
	return err
}

// join starts a new node that joins the cluster, and makes it a member
// of the run once every member sees it a member.
func (n *Nemesis) join(ctx context.Context) error {
	nd, err := n.c.NewNode()
	if err != nil {
		return err
	}
	name := "join " + nd.ID
	n.enter(history.Phase{Name: name})
	slog.Debug("bench: membership change", "change", name)
	if err := n.c.StartJoin(nd, ""); err != nil {
		return err
	}
	if err := n.settle(ctx, name, nd, map[string]string{nd.ID: "member"}); err != nil {
		return err
	}
	n.c.Admit(nd)
	return nil
}

// leave asks nd to leave; it is out of the run's members once its server
// has exited (with status 0, or it is an error).
func (n *Nemesis) leave(ctx context.Context, nd *Node) error {
	name := "leave " + nd.ID
	n.enter(history.Phase{Name: name})
	slog.Debug("bench: membership change", "change", name)
	retried := false
	err := n.wait(ctx, name+": the node to accept it", func() (bool, string, error) {
		_, err := n.c.api.Leave(ctx, client.Via(nd.URL))
		r, answered := client.AsResponse(err)
		switch {
		case err == nil, answered && r.Body.Code == client.CodeNotMember && retried:
			return true, "", nil // (a 409 not_member after a lost answer: the first one started it)
		case !answered:
			retried = true
			return false, err.Error(), nil
		}
		return false, "", err
	})
	if err != nil {
		return err
	}
	nd.ExpectExit()
	err = n.wait(ctx, name+": its server to exit once it has left", func() (bool, string, error) {
		if exited, err := nd.Exited(); exited {
			if err != nil {
				return false, "", fmt.Errorf("%s exited with %v after it was asked to leave, want status 0; its last output:\n%s", nd.ID, err, nd.LogTail())
			}
			return true, "", nil
		}
		return false, nd.ID + " still runs", n.c.CheckRunning()
	})
	if err != nil {
		return err
	}
	n.c.Retire(nd)
	return n.settle(ctx, name, nil, map[string]string{nd.ID: "left"})
}

// remove kills nd and, once the cluster sees it dead, removes it.
func (n *Nemesis) remove(ctx context.Context, nd *Node) error {
	name := "remove " + nd.ID
	n.enter(history.Phase{Name: name, Fault: true})
	slog.Debug("bench: membership change", "change", name)
	if err := n.killForGood(ctx, name, nd); err != nil {
		return err
	}
	members := n.c.Nodes()
	attempt := 0
	err := n.wait(ctx, name+": a member to accept it", func() (bool, string, error) {
		via := members[attempt%len(members)]
		attempt++
		_, err := n.c.api.Remove(ctx, nd.ID, false, client.Via(via.URL))
		r, answered := client.AsResponse(err)
		switch {
		case err == nil:
			return true, "", nil
		case !answered:
			return false, err.Error(), nil
		case r.Body.Code == client.CodeNodeAlive:
			return false, via.ID + " still sees " + nd.ID + " alive", nil
		}
		return false, "", err
	})
	if err != nil {
		return err
	}
	return n.settle(ctx, name, nil, map[string]string{nd.ID: "removed"})
}

// replace kills old and, once the cluster sees it dead, starts a new node
// that replaces it; the new node is a member of the run once every member
// sees it a member and old removed.
func (n *Nemesis) replace(ctx context.Context, old *Node) error {
	nd, err := n.c.NewNode()
	if err != nil {
		return err
	}
	name := "replace " + old.ID + " by " + nd.ID
	n.enter(history.Phase{Name: name, Fault: true})
	slog.Debug("bench: membership change", "change", name)
	if err := n.killForGood(ctx, name, old); err != nil {
		return err
	}
	if err := n.c.StartJoin(nd, old.ID); err != nil {
		return err
	}
	if err := n.settle(ctx, name, nd, map[string]string{nd.ID: "member", old.ID: "removed"}); err != nil {
		return err
	}
	n.c.Admit(nd)
	return nil
}

// killForGood takes nd out of the run's members, kills it and waits until
// every member sees it dead (a remove is refused, and a replacement
// refuses to start, while it is seen alive).
func (n *Nemesis) killForGood(ctx context.Context, name string, nd *Node) error {
	n.c.Retire(nd)
	if err := n.c.Kill(nd); err != nil {
		return err
	}
	return n.wait(ctx, name+": every member to see "+nd.ID+" dead", func() (bool, string, error) {
		for _, m := range n.c.Nodes() {
			st, err := n.c.status(ctx, m.URL)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", m.ID, err), n.c.CheckRunning()
			}
			if e, ok := st.Member(nd.ID); ok && e.Liveness != "dead" {
				return false, fmt.Sprintf("%s sees %s %s", m.ID, nd.ID, e.Liveness), nil
			}
		}
		return true, "", nil
	})
}

// settle waits until the change is complete in the view of every member,
// and of joining (a node not yet a member of the run; nil for none): they
// show every ID of want with its status and every member as a live
// member, no change in progress, and one ring version; joining serves.
func (n *Nemesis) settle(ctx context.Context, name string, joining *Node, want map[string]string) error {
	return n.wait(ctx, name+": the change to complete on every member", func() (bool, string, error) {
		if err := n.c.CheckRunning(); err != nil {
			return false, "", err
		}
		nodes := n.c.Nodes()
		wants := map[string]string{}
		for _, m := range nodes {
			wants[m.ID] = "member"
		}
		for id, s := range want {
			wants[id] = s
		}
		if joining != nil {
			if exited, err := joining.Exited(); exited {
				return false, "", fmt.Errorf("%s exited (%v) before it became a member; its last output:\n%s", joining.ID, exitText(err), joining.LogTail())
			}
			nodes = append(nodes, joining)
		}
		views := make([]*client.ClusterStatus, 0, len(nodes))
		for _, m := range nodes {
			st, err := n.c.status(ctx, m.URL)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", m.ID, err), nil
			}
			views = append(views, st)
		}
		if ok, why := changeSettled(views, wants); !ok {
			return false, why + "; views: " + describeViews(views), nil
		}
		if joining != nil && !n.c.healthy(ctx, joining.URL) {
			return false, joining.ID + " does not serve yet (/healthz)", nil
		}
		return true, "", nil
	})
}

// changeSettled reports whether views (each one node's /cluster/status)
// agree that a membership change has completed: each lists every ID of
// want with that status (alive if "member"), none lists an entry that is
// joining or leaving, none has a transfer, and all are at one ring
// version. Otherwise it says what is not so yet.
func changeSettled(views []*client.ClusterStatus, want map[string]string) (bool, string) {
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range want {
			if !yield(id) {
				return
			}
		}
	})
	for _, v := range views {
		for _, id := range ids {
			e, ok := v.Member(id)
			switch {
			case !ok:
				return false, fmt.Sprintf("%s does not list %s", v.Node, id)
			case e.Status != want[id]:
				return false, fmt.Sprintf("%s sees %s %s, want %s", v.Node, id, e.Status, want[id])
			case want[id] == "member" && e.Liveness != "alive":
				return false, fmt.Sprintf("%s sees %s %s", v.Node, id, e.Liveness)
			}
		}
		for _, e := range v.Members {
			if e.Status == "joining" || e.Status == "leaving" {
				return false, fmt.Sprintf("%s sees %s %s", v.Node, e.ID, e.Status)
			}
		}
		if len(v.Transfers) > 0 {
			return false, fmt.Sprintf("%s has %d transfers", v.Node, len(v.Transfers))
		}
		if v.Ring.Version != views[0].Ring.Version {
			return false, fmt.Sprintf("%s is at ring version %d, %s at %d", v.Node, v.Ring.Version, views[0].Node, views[0].Ring.Version)
		}
	}
	return true, ""
}

// describeViews summarises what each view says of the members, for a
// change that does not complete: "n2 (ring version 9, 0 transfers): n1
// leaving dead, n2 member alive, …".
func describeViews(views []*client.ClusterStatus) string {
	var parts []string
	for _, v := range views {
		var ms []string
		for _, m := range v.Members {
			ms = append(ms, m.ID+" "+m.Status+" "+m.Liveness)
		}
		parts = append(parts, fmt.Sprintf("%s (ring version %d, %d transfers): %s", v.Node, v.Ring.Version, len(v.Transfers), strings.Join(ms, ", ")))
	}
	return strings.Join(parts, "; ")
}

// wait polls cond until it reports done or an error, within ctx. On
// timeout the error names what was awaited and why it was not done.
func (n *Nemesis) wait(ctx context.Context, what string, cond func() (done bool, why string, err error)) error {
	start := time.Now()
	for {
		done, why, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if done {
			slog.Debug("bench: done", "what", what, "after", time.Since(start))
			return nil
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			if n.hard.Err() != nil {
				return fmt.Errorf("%s: aborted", what)
			}
			return fmt.Errorf("%s: not done after %v (each change is bounded by %v): %s",
				what, time.Since(start).Round(time.Second), n.stepTimeout, why)
		}
	}
}
