package storage

import (
	"bufio"
	"bytes"
	"os"
	"path"
	"strconv"
	"strings"
)

// The block cache default is an eighth of the machine's memory, within
// these bounds.
const (
	MinDefaultCacheSize = 64 << 20
	MaxDefaultCacheSize = 1 << 30
)

// DefaultCacheSize returns the default block cache size of each of nodes
// stores sharing this machine (dotkv dev runs several): an eighth of the
// memory this process may use — MemTotal, or the cgroup's memory limit
// when one is set and lower — split between them, rounded down to a whole
// MiB and clamped to [MinDefaultCacheSize, MaxDefaultCacheSize]. Where
// the memory cannot be read (not Linux) it is MinDefaultCacheSize.
func DefaultCacheSize(nodes int) int64 {
	meminfo, _ := os.ReadFile("/proc/meminfo")
	return cacheSizeFor(memoryLimit(string(meminfo), cgroupLimits()), nodes)
}

// cacheSizeFor is DefaultCacheSize for mem bytes of memory (0: unknown).
func cacheSizeFor(mem int64, nodes int) int64 {
	if mem <= 0 {
		return MinDefaultCacheSize
	}
	size := mem / 8 / int64(max(nodes, 1))
	size &^= 1<<20 - 1
	return min(max(size, MinDefaultCacheSize), MaxDefaultCacheSize)
}

// memoryLimit returns the memory a process may use: MemTotal from the
// text of /proc/meminfo, or the lowest of the cgroup memory limits (the
// contents of memory.max or memory.limit_in_bytes files) when one is
// lower. It returns 0 when none of them can be read.
func memoryLimit(meminfo string, cgroupLimits []string) int64 {
	limit := memTotal(meminfo)
	for _, c := range cgroupLimits {
		n, err := strconv.ParseInt(strings.TrimSpace(c), 10, 64)
		if err != nil || n <= 0 { // "max" is no limit
			continue
		}
		if limit == 0 || n < limit {
			limit = n
		}
	}
	return limit
}

// memTotal returns MemTotal in bytes from the text of /proc/meminfo, or 0.
func memTotal(meminfo string) int64 {
	sc := bufio.NewScanner(strings.NewReader(meminfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "MemTotal:" {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n <= 0 {
			return 0
		}
		if len(f) > 2 && f[2] == "kB" {
			n *= 1024
		}
		return n
	}
	return 0
}

// cgroupLimits reads the memory limits of this process's cgroup and its
// ancestors: cgroup v2's memory.max along the path /proc/self/cgroup
// names, and cgroup v1's memory.limit_in_bytes.
func cgroupLimits() []string {
	var limits []string
	read := func(file string) {
		if b, err := os.ReadFile(file); err == nil {
			limits = append(limits, string(b))
		}
	}
	dir := "/"
	if self, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		dir = cgroupV2Path(self)
	}
	for ; ; dir = path.Dir(dir) {
		read(path.Join("/sys/fs/cgroup", dir, "memory.max"))
		if dir == "/" {
			break
		}
	}
	read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
	return limits
}

// cgroupV2Path returns the cgroup v2 path in the text of /proc/self/cgroup
// (its "0::/path" line), or "/".
func cgroupV2Path(self []byte) string {
	for line := range bytes.Lines(self) {
		if p, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("0::")); ok && len(p) > 0 && p[0] == '/' {
			return path.Clean(string(p))
		}
	}
	return "/"
}
