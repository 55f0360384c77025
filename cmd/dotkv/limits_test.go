//go:build unix

package main

import (
	"testing"

	"github.com/dotkv/dotkv/node"
)

// serverConfig parses dotkv server's flags as the command does, with an
// ID and a data directory.
func serverConfig(t *testing.T, args ...string) (node.Config, error) {
	t.Helper()
	return parseServer(t, append([]string{"--id", "n1", "--data", t.TempDir()}, args...)...)
}

// TestLimitFlags: --max-siblings, --warn-siblings and --max-record reach
// the node's config, 0 meaning no bound (never), and contradictions or
// records an internode message cannot carry are refused.
func TestLimitFlags(t *testing.T) {
	for _, c := range []struct {
		args            []string
		maxSib, warnSib int
		maxRecord       int64
		wantErr         bool
	}{
		{args: nil, maxSib: 100, warnSib: 0, maxRecord: 16 << 20}, // warn 0: storage's default (25)
		{args: []string{"--max-siblings", "0", "--warn-siblings", "0"}, maxSib: -1, warnSib: -1, maxRecord: 16 << 20},
		{args: []string{"--max-siblings", "10"}, maxSib: 10, warnSib: 0, maxRecord: 16 << 20},
		{args: []string{"--max-siblings", "10", "--warn-siblings", "5", "--max-record", "1MiB"}, maxSib: 10, warnSib: 5, maxRecord: 1 << 20},
		{args: []string{"--max-siblings", "10", "--warn-siblings", "20"}, wantErr: true},
		{args: []string{"--max-siblings", "-1"}, wantErr: true},
		{args: []string{"--max-record", "0"}, wantErr: true},
		{args: []string{"--max-record", "64MiB"}, wantErr: true},
		{args: []string{"--max-record", "lots"}, wantErr: true},
	} {
		cfg, err := serverConfig(t, c.args...)
		if c.wantErr {
			if err == nil {
				t.Errorf("%q accepted", c.args)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if cfg.MaxSiblings != c.maxSib || cfg.WarnSiblings != c.warnSib || cfg.MaxRecordBytes != c.maxRecord {
			t.Errorf("%q: max-siblings %d, warn-siblings %d, max-record %d; want %d, %d, %d", c.args,
				cfg.MaxSiblings, cfg.WarnSiblings, cfg.MaxRecordBytes, c.maxSib, c.warnSib, c.maxRecord)
		}
	}
	if node.MaxRecordLimit != 32<<20 {
		t.Errorf("MaxRecordLimit %d, want 32 MiB (half of transport.MaxMessage)", node.MaxRecordLimit)
	}
}
