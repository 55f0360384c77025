package replica

// tally counts one request's replies against its levels. It is pure: the
// coordinator feeds it replies as they arrive and asks whether the levels
// are met, or can no longer be.
//
// A reply comes from a slot (a primary's copy, see plan): an ack from the
// primary itself counts toward both levels (w/r and pw/pr); an ack from a
// fallback standing in for it counts toward w/r only.
type tally struct {
	op           string // "read" or "write", for the error
	need, needP  int    // acks and primary acks the levels require
	acks, pAcks  int
	pending      int // slots that have not replied yet
	pendingPrims int // of those, slots whose reply may still come from a primary
}

// newTally starts counting a request that needs need acks, needP of them
// from primaries, and expects one reply from each slot plan gave a node.
func newTally(op string, need, needP int, p *plan) *tally {
	reach, prims := p.reach()
	return &tally{op: op, need: need, needP: needP, pending: reach, pendingPrims: prims}
}

// add records a slot's reply: ok if it acknowledged, primary if the node
// that answered is the primary itself; direct says whether the slot was
// planned on its primary (so it was counted in pendingPrims).
func (t *tally) add(ok, primary, direct bool) {
	t.pending--
	if direct {
		t.pendingPrims--
	}
	if !ok {
		return
	}
	t.acks++
	if primary {
		t.pAcks++
	}
}

// met reports whether the request's levels are met.
func (t *tally) met() bool { return t.acks >= t.need && t.pAcks >= t.needP }

// hopeless reports whether the levels can no longer be met, even if every
// pending slot acknowledges.
func (t *tally) hopeless() bool {
	return t.acks+t.pending < t.need || t.pAcks+t.pendingPrims < t.needP
}

// err returns the error for a request whose levels were not met: what is
// missing, counted from what it has so far.
func (t *tally) err() *UnavailableError {
	if t.acks+t.pending < t.need || t.pAcks+t.pendingPrims >= t.needP {
		return &UnavailableError{Op: t.op, Kind: "replicas", Acks: t.acks, Required: t.need}
	}
	return &UnavailableError{Op: t.op, Kind: "primaries", Acks: t.pAcks, Required: t.needP}
}

// needs resolves a request's levels against nEff primaries: need acks in
// all, needP of them from primaries. A primary level raises need to at
// least needP.
func needs(nEff int, lvl, primary, def Level) (need, needP int) {
	need = lvl.Required(nEff, def)
	if !primary.IsDefault() {
		needP = primary.Required(nEff, def)
		need = max(need, needP)
	}
	return need, needP
}
