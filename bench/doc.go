// Package bench drives load against a dotkv cluster and measures it. It
// talks to the cluster only as a client does, through package client; it
// never imports server internals. It holds:
//
//   - the cluster a run drives (Cluster): `dotkv server` processes it
//     spawns, each on its own loopback address with fault injection on
//     (Spawn), or a running cluster given by URL (Attach); spawned nodes
//     can be killed, restarted, paused and resumed, and new ones started
//     to join or replace one; its current members change as they do;
//   - the nemesis (Nemesis), which alternates faults — partitions, through
//     the nodes' fault filter or iptables, kills and pauses — or
//     membership changes (join, leave, remove, replace) with healed
//     stretches, recording each as a phase;
//   - the workload (Workload): concurrent clients that read, write with
//     the context they read, and delete, sending to the current members
//     with the client's failover (a request a node refuses at connection
//     goes to the next, so availability counts what the cluster answered)
//     and recording every operation;
//   - Run, a whole `dotkv bench` run: cluster, workload and nemesis
//     together, the final heal, the wait for convergence, a read of every
//     touched key at r=all, the check, and the report files;
//   - a plain closed-loop load (RunLoad, BareHandler) for `dotkv load`.
//
// What a run records, and the checking and rendering of it, are their own
// packages, which depend on nothing here: history (the ops and phases),
// check (Analyze: the verdicts and statistics, the Report) and render (the
// terminal summary, the HTML page with its SVG charts, the report files).
package bench
