// Package check analyses the history of a bench run. Analyze takes the
// run's ops and phases (package history) and the final state of every key
// the workload touched, read at r=all after the last heal, and returns a
// Report — what report.json holds:
//
//   - the verdicts (Check) of the consistency checks: no lost acknowledged
//     writes, reads return only written values, no stale reads in
//     fault-free phases (only under strict quorums), and convergence after
//     the final heal within a limit;
//   - the evidence: each lost write, stale read and invalid read;
//   - statistics: counts, throughput and latency percentiles overall, per
//     phase and per second of the run, availability per partition side and
//     per consistency level, and how many siblings reads returned.
//
// Analyze is pure: it does no I/O, and the harness that gathers its inputs
// (spawning the cluster, running the workload and the nemesis, the final
// reads) lives in package bench.
package check
