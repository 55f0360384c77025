package storage

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1048576", 1 << 20},
		{"256MiB", 256 << 20},
		{"1GiB", 1 << 30},
		{"64MB", 64e6},
		{"2 GB", 2e9},
		{"512kib", 512 << 10},
		{"3KB", 3000},
		{"1TiB", 1 << 40},
		{"17B", 17},
		{" 8MiB ", 8 << 20},
	} {
		got, err := ParseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "-5MiB", "1.5GiB", "12 parsecs", "64M", "0x10", "1GiB2", "9223372036854775808", "8388608TiB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), "size") {
			t.Errorf("ParseSize(%q) error %q does not say what it parsed", in, err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want string
	}{
		{0, "0"},
		{1000, "1000"},
		{1 << 10, "1KiB"},
		{96 << 20, "96MiB"},
		{1 << 30, "1GiB"},
		{3 << 40, "3TiB"},
		{1<<30 + 1<<20, "1025MiB"},
	} {
		if got := FormatSize(c.in); got != c.want {
			t.Errorf("FormatSize(%d) = %q, want %q", c.in, got, c.want)
		}
		if back, err := ParseSize(FormatSize(c.in)); err != nil || back != c.in {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", c.in, back, err)
		}
	}
}

const meminfo = `MemTotal:       24683584 kB
MemFree:        22906244 kB
MemAvailable:   24279484 kB
`

func TestMemoryLimit(t *testing.T) {
	const total = 24683584 << 10
	for _, c := range []struct {
		name    string
		meminfo string
		cgroups []string
		want    int64
	}{
		{"meminfo only", meminfo, nil, total},
		{"cgroup without limit", meminfo, []string{"max\n"}, total},
		{"lower cgroup limit", meminfo, []string{"max\n", "2147483648\n"}, 2 << 30},
		{"lowest of nested limits", meminfo, []string{"4294967296\n", "max\n", "1073741824\n"}, 1 << 30},
		{"cgroup v1 unlimited", meminfo, []string{"9223372036854771712\n"}, total},
		{"cgroup limit above memory", meminfo, []string{"107374182400"}, total},
		{"no meminfo", "", []string{"536870912"}, 512 << 20},
		{"nothing", "", nil, 0},
		{"garbage", "MemTotal: lots kB\n", []string{"plenty"}, 0},
		{"MemTotal not first", "MemFree: 1 kB\nMemTotal: 1024 kB\n", nil, 1 << 20},
	} {
		if got := memoryLimit(c.meminfo, c.cgroups); got != c.want {
			t.Errorf("%s: memoryLimit = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestCacheSizeFor(t *testing.T) {
	for _, c := range []struct {
		mem   int64
		nodes int
		want  int64
	}{
		{0, 1, 64 << 20},         // unknown: the minimum
		{24 << 30, 1, 1 << 30},   // 3 GiB: clamped to 1 GiB
		{24 << 30, 3, 1 << 30},   // 1 GiB each
		{24 << 30, 4, 768 << 20}, // 768 MiB each
		{4 << 30, 1, 512 << 20},
		{4 << 30, 3, 170 << 20}, // 170.67 MiB, rounded down to a MiB
		{1 << 30, 1, 128 << 20},
		{1 << 30, 3, 64 << 20}, // 42.7 MiB: raised to the minimum
		{256 << 20, 1, 64 << 20},
		{8 << 30, 0, 1 << 30}, // nodes < 1 counts as 1
	} {
		if got := cacheSizeFor(c.mem, c.nodes); got != c.want {
			t.Errorf("cacheSizeFor(%s, %d) = %s, want %s", FormatSize(c.mem), c.nodes, FormatSize(got), FormatSize(c.want))
		}
	}
	// On this machine, whatever its memory: within the bounds.
	for _, nodes := range []int{1, 3} {
		if got := DefaultCacheSize(nodes); got < MinDefaultCacheSize || got > MaxDefaultCacheSize || got%(1<<20) != 0 {
			t.Errorf("DefaultCacheSize(%d) = %d", nodes, got)
		}
	}
}

func TestCgroupV2Path(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"0::/\n", "/"},
		{"0::/system.slice/dotkv.service\n", "/system.slice/dotkv.service"},
		{"12:memory:/docker/abc\n0::/docker/abc\n", "/docker/abc"},
		{"12:memory:/docker/abc\n", "/"}, // cgroup v1 only
		{"", "/"},
	} {
		if got := cgroupV2Path([]byte(c.in)); got != c.want {
			t.Errorf("cgroupV2Path(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	def := DefaultOptions()
	if def.Fsync != FsyncAlways || def.MemTableSize != DefaultMemTableSize ||
		def.CacheSize < MinDefaultCacheSize || def.CacheSize > MaxDefaultCacheSize {
		t.Errorf("DefaultOptions() = %+v", def)
	}
	def.NodeID = "n1"
	if err := def.Validate(); err != nil {
		t.Errorf("DefaultOptions() with a node ID: Validate = %v", err)
	}
	if err := (Options{NodeID: "n1"}).Validate(); err != nil {
		t.Errorf("zero sizes: Validate = %v", err)
	}
	for _, c := range []struct {
		name string
		o    Options
		want string
	}{
		{"no node id", Options{}, "node id"},
		{"negative hints", Options{NodeID: "n1", HintLimits: HintLimits{MaxCount: -1}}, "hint limits"},
		{"bad fsync", Options{NodeID: "n1", Fsync: 7}, "fsync"},
		{"negative cache", Options{NodeID: "n1", CacheSize: -1}, "cache size"},
		{"tiny cache", Options{NodeID: "n1", CacheSize: 256}, "cache size"},
		{"tiny memtable", Options{NodeID: "n1", MemTableSize: 64}, "memtable size"},
		{"huge memtable", Options{NodeID: "n1", MemTableSize: 4 << 30}, "memtable size"},
	} {
		err := c.o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate = %v, want an error about %s", c.name, err, c.want)
		}
		if _, err := Open("data", Options{NodeID: c.o.NodeID, Fsync: c.o.Fsync, HintLimits: c.o.HintLimits,
			CacheSize: c.o.CacheSize, MemTableSize: c.o.MemTableSize, FS: vfs.NewMem()}); err == nil {
			t.Errorf("%s: Open succeeded", c.name)
		}
	}
}

// Open uses the sizes it is given, and the defaults for zero ones.
func TestOpenSizes(t *testing.T) {
	for _, c := range []struct {
		name           string
		cache          int64
		memtable       uint64
		wantC, wantMem string
	}{
		{"given", 8 << 20, 32 << 20, "8MiB", "32MiB"},
		{"defaults", 0, 0, FormatSize(DefaultCacheSize(1)), "64MiB"},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		s, err := Open("data", Options{NodeID: "n1", FS: vfs.NewMem(), CacheSize: c.cache, MemTableSize: c.memtable, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		want := "cache_size=" + c.wantC + " memtable_size=" + c.wantMem
		if !strings.Contains(buf.String(), want) {
			t.Errorf("%s: log %q does not say %q", c.name, buf.String(), want)
		}
	}
}
