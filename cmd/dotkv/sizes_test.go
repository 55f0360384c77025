package main

import (
	"strings"
	"testing"

	"github.com/dotkv/dotkv/storage"
)

// TestSizeFlagsAgainstBinary: --cache-size and --memtable-size reach
// pebble, and without them the node takes storage's defaults.
func TestSizeFlagsAgainstBinary(t *testing.T) {
	dotkvBin(t)
	t.Parallel()
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--cache-size", "128MiB", "--memtable-size", "33554432"}, `"cache_size":"128MiB","memtable_size":"32MiB"`},
		{nil, `"cache_size":"` + storage.FormatSize(storage.DefaultCacheSize(1)) + `","memtable_size":"64MiB"`},
	} {
		s := startServer(t, "n1", t.TempDir(), c.flags...)
		s.stop()
		if !strings.Contains(s.stderr.String(), c.want) {
			t.Errorf("server %q: log does not say %s:\n%s", c.flags, c.want, s.stderr)
		}
	}
}
