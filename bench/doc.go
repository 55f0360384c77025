// Package bench drives load against a dotkv cluster and measures it. It
// talks to the cluster only as a client does, over HTTP; it never imports
// server internals.
package bench
