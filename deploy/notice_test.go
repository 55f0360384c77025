package deploy

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

var updateNotice = flag.Bool("update-notice", false,
	"rewrite ../NOTICE from the licence files of the modules' sources (downloaded into the module cache if missing), then check it")

// binaryPackages are the commands shipped in the image: NOTICE lists the
// modules compiled into them apart from the rest of the module graph.
var binaryPackages = []string{"./cmd/dotkv", "./deploy/dotkv-kube"}

// permissive are the licences a module compiled into a shipped binary may
// have (MPL-2.0 is file-level copyleft: dotkv changes no MPL file).
var permissive = []string{"Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "ISC", "MPL-2.0"}

// licenseOverrides gives the licence of modules without a licence file
// that licenseOf can read; each says where the licence was found.
var licenseOverrides = map[string]string{
	// No LICENSE file; README.md's "License" section is the 3-clause BSD
	// licence of gorilla/schema, which it clones.
	"github.com/iris-contrib/schema": "BSD-3-Clause (README.md)",
}

// module is one module of the build graph.
type module struct {
	Path, Version string
}

func (m module) String() string { return m.Path + " " + m.Version }

// goCmd runs the go command in the repository's root and returns its
// standard output.
func goCmd(t *testing.T, env []string, args ...string) []byte {
	t.Helper()
	return goCmdIn(t, "..", env, args...)
}

// goCmdIn runs the go command in dir and returns its standard output.
func goCmdIn(t *testing.T, dir string, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// buildGraph returns every module of `go list -m all` but the main one.
func buildGraph(t *testing.T) []module {
	var mods []module
	out := goCmd(t, nil, "list", "-m", "-f", "{{if not .Main}}{{.Path}} {{.Version}}{{end}}", "all")
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) == 2 {
			mods = append(mods, module{f[0], f[1]})
		}
	}
	if len(mods) == 0 {
		t.Fatal("go list -m all listed no module")
	}
	return mods
}

// compiledIn returns the paths of the modules whose packages are linked
// into the shipped binaries, built as the Dockerfile builds them.
func compiledIn(t *testing.T) map[string]bool {
	args := append([]string{"list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}}{{end}}{{end}}"}, binaryPackages...)
	out := goCmd(t, []string{"CGO_ENABLED=0", "GOOS=linux"}, args...)
	in := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		if p := strings.TrimSpace(line); p != "" {
			in[p] = true
		}
	}
	return in
}

// noticeEntry is one module line of NOTICE.
type noticeEntry struct {
	module
	License  string
	Compiled bool // in the section of the modules compiled into dotkv
}

// Section headings of NOTICE.
const (
	compiledHeading = "== Go modules compiled into the dotkv binaries =="
	graphHeading    = "== Other modules of the build graph (go list -m all), not compiled into dotkv =="
	noticesHeading  = "== NOTICE files of the modules compiled into dotkv =="
)

// readNotice parses the module lines of NOTICE ("PATH VERSION LICENCE")
// under the two module headings.
func readNotice(t *testing.T) map[string]noticeEntry {
	data, err := os.ReadFile("../NOTICE")
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]noticeEntry{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "== ") {
			section = line
			continue
		}
		if section != compiledHeading && section != graphHeading {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		e := noticeEntry{module: module{f[0], f[1]}, License: strings.Join(f[2:], " "), Compiled: section == compiledHeading}
		if _, dup := entries[e.Path]; dup {
			t.Errorf("NOTICE lists %s twice", e.Path)
		}
		entries[e.Path] = e
	}
	return entries
}

// TestNotice checks that NOTICE lists every module of go list -m all at
// its version, with a known licence, and the modules compiled into the
// shipped binaries in their own section, under permissive licences.
func TestNotice(t *testing.T) {
	mods := buildGraph(t)
	compiled := compiledIn(t)
	if *updateNotice {
		writeNotice(t, mods, compiled)
	}
	entries := readNotice(t)
	const fix = "(go test ./deploy -run TestNotice -update-notice)"
	for _, m := range mods {
		e, ok := entries[m.Path]
		switch {
		case !ok:
			t.Errorf("NOTICE does not list %s %s", m, fix)
		case e.Version != m.Version:
			t.Errorf("NOTICE lists %s at %s, the build uses %s %s", m.Path, e.Version, m.Version, fix)
		case strings.Contains(e.License, "UNKNOWN"):
			t.Errorf("NOTICE: licence of %s unknown: read its licence and add it to licenseOverrides", m)
		case compiled[m.Path] != e.Compiled:
			t.Errorf("NOTICE lists %s in the wrong section (compiled into dotkv: %v) %s", m, compiled[m.Path], fix)
		}
		if compiled[m.Path] && ok {
			for l := range strings.SplitSeq(e.License, " AND ") {
				if l = strings.Fields(l)[0]; !slices.Contains(permissive, l) {
					t.Errorf("%s is compiled into dotkv under %s, not one of %v: review it", m, e.License, permissive)
				}
			}
		}
	}
	for p := range entries {
		if !slices.ContainsFunc(mods, func(m module) bool { return m.Path == p }) {
			t.Errorf("NOTICE lists %s, which is no longer in the build graph %s", p, fix)
		}
	}
	for p := range compiled {
		if !slices.ContainsFunc(mods, func(m module) bool { return m.Path == p }) {
			t.Errorf("%s is compiled in but not in go list -m all", p)
		}
	}
}

// moduleDir returns where the module cache holds m's source (upper-case
// letters of the path escaped as "!" and the lower-case letter).
func moduleDir(cache string, m module) string {
	var b strings.Builder
	for _, r := range m.Path {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return filepath.Join(cache, filepath.FromSlash(b.String())+"@"+m.Version)
}

// licenseFile matches the names of licence files at a module's root.
var licenseFile = regexp.MustCompile(`(?i)^(licen[cs]e|copying|unlicense)([._-].*)?$`)

// licenseOf reads the licence files at the root of a module's source and
// names their licences (SPDX identifiers joined by " AND "), or UNKNOWN.
// It also returns the module's NOTICE file, if any.
func licenseOf(dir string) (license string, notice []byte, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, err
	}
	var found []string
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && strings.EqualFold(name, "NOTICE") || strings.EqualFold(name, "NOTICE.txt") || strings.EqualFold(name, "NOTICE.md") {
			if notice, err = os.ReadFile(filepath.Join(dir, name)); err != nil {
				return "", nil, err
			}
		}
		if !e.Type().IsRegular() || !licenseFile.MatchString(name) {
			continue
		}
		text, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", nil, err
		}
		for _, l := range classify(string(text)) {
			if !slices.Contains(found, l) {
				found = append(found, l)
			}
		}
	}
	if len(found) == 0 {
		return "UNKNOWN", notice, nil
	}
	return strings.Join(found, " AND "), notice, nil
}

// classify names the licences whose tell-tale sentences a licence text
// contains, in the order of their first appearance.
func classify(text string) []string {
	t := strings.ToLower(strings.Join(strings.Fields(text), " "))
	type match struct {
		at      int
		license string
	}
	var ms []match
	add := func(license string, phrases ...string) {
		for _, p := range phrases {
			if i := strings.Index(t, p); i >= 0 {
				ms = append(ms, match{i, license})
				return
			}
		}
	}
	add("Apache-2.0", "apache license version 2.0", "apache license, version 2.0")
	add("MPL-2.0", "mozilla public license version 2.0", "mozilla public license, version 2.0")
	add("MIT", "permission is hereby granted, free of charge")
	add("ISC", "permission to use, copy, modify, and/or distribute this software for any purpose",
		"permission to use, copy, modify, and distribute this software for any purpose with or without fee")
	add("Unlicense", "this is free and unencumbered software released into the public domain")
	add("CC0-1.0", "cc0 1.0 universal")
	if i := strings.Index(t, "redistribution and use in source and binary forms"); i >= 0 {
		l := "BSD-2-Clause"
		if strings.Contains(t[i:], "neither the name") || strings.Contains(t[i:], "may be used to endorse or promote") {
			l = "BSD-3-Clause"
		}
		ms = append(ms, match{i, l})
	}
	// The MPL names the GPL family as secondary licences; only count them
	// in texts that are not the MPL.
	if !strings.Contains(t, "mozilla public license") {
		add("LGPL", "gnu lesser general public license", "gnu library general public license")
		if !strings.Contains(t, "gnu lesser general public license") {
			add("GPL", "gnu general public license")
		}
	}
	slices.SortFunc(ms, func(a, b match) int { return a.at - b.at })
	var names []string
	for _, m := range ms {
		if !slices.Contains(names, m.license) {
			names = append(names, m.license)
		}
	}
	return names
}

// writeNotice rewrites ../NOTICE from the licence files of every module
// in the module cache. It downloads the modules whose source is not there
// (go list -m all needs only their go.mod files), from outside this
// module so that go.sum is left as it is.
func writeNotice(t *testing.T, mods []module, compiled map[string]bool) {
	cache := strings.TrimSpace(string(goCmd(t, nil, "env", "GOMODCACHE")))
	var missing []string
	for _, m := range mods {
		if _, err := os.Stat(moduleDir(cache, m)); err != nil {
			missing = append(missing, m.Path+"@"+m.Version)
		}
	}
	if len(missing) > 0 {
		t.Logf("downloading the source of %d modules", len(missing))
		goCmdIn(t, t.TempDir(), nil, append([]string{"mod", "download"}, missing...)...)
	}
	var b bytes.Buffer
	b.WriteString(`dotkv
Copyright 2026 The dotkv Authors

dotkv is licensed under the Apache License, Version 2.0 (see LICENSE).

dotkv is built from the Go modules below: the first list is compiled into
the dotkv and dotkv-kube binaries (and the container image); the second is
the rest of the module graph (go list -m all), which the go command reads
but which dotkv does not compile in (tests and tools of dependencies).
Each line gives the module, its version and its licence (SPDX identifier),
as read from the licence files of the module's source; "AND" joins the
licences of modules that carry several. The last part reproduces the
NOTICE files of the modules compiled in.

This file is checked by deploy/notice_test.go; rewrite it with
  go test ./deploy -run TestNotice -update-notice

`)
	type row struct {
		m       module
		license string
		notice  []byte
	}
	var in, out []row
	for _, m := range mods {
		license, notice, err := licenseOf(moduleDir(cache, m))
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if o, ok := licenseOverrides[m.Path]; ok {
			license = o
		}
		r := row{m, license, notice}
		if compiled[m.Path] {
			in = append(in, r)
		} else {
			out = append(out, r)
		}
	}
	width := 0
	for _, r := range append(slices.Clone(in), out...) {
		width = max(width, len(r.m.String()))
	}
	for _, sec := range []struct {
		heading string
		rows    []row
	}{{compiledHeading, in}, {graphHeading, out}} {
		fmt.Fprintf(&b, "%s\n\n", sec.heading)
		for _, r := range sec.rows {
			fmt.Fprintf(&b, "%-*s  %s\n", width, r.m, r.license)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%s\n", noticesHeading)
	for _, r := range in {
		if len(r.notice) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s ---\n\n%s\n", r.m, bytes.TrimSpace(r.notice))
	}
	if err := os.WriteFile("../NOTICE", b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
