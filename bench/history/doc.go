// Package history holds the record of a bench run: every operation the
// workload's clients issued — what each asked, of which node, when, and
// what it got (Op) — the nemesis's phases, each a stretch of the run with
// one fault state (Phase), a History that collects both from concurrent
// goroutines, and its JSON-lines form, history.jsonl (History.WriteJSONL,
// ReadJSONL).
//
// It depends on nothing else in bench. Package bench's workload and
// nemesis append to a History, package check analyses it, and package
// render draws it.
package history
