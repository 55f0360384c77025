// Package render presents a bench run's check.Report: WriteSummary prints
// the terminal summary (overall numbers, one row per phase, availability,
// the checks, PASS or FAIL); WriteHTML renders the report page, a single
// self-contained HTML document with inline CSS and SVG charts (throughput
// and latency over time with the fault windows shaded, the latency
// histogram and distribution, siblings per read) and no scripts; and
// WriteFiles writes a run's report.json, history.jsonl and report.html
// into a directory.
//
// It only formats: the numbers and verdicts come from package check, the
// ops and phases from package history.
package render
