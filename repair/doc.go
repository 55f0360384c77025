// Package repair makes replicas converge after failures. This file set
// holds hinted handoff's delivery side: a node that kept hints for a
// target (because the target did not acknowledge writes) sends them to it
// in batches as soon as gossip no longer sees it dead, and deletes each
// hint only after the target acknowledged it — and only if the hint did
// not change meanwhile (a newer write coalesced into it is delivered on
// the next round). Delivery is idempotent: the target merges what it
// receives with versioning.Sync, so a batch delivered twice (a crash
// between the target's ack and the delete) changes nothing.
package repair
