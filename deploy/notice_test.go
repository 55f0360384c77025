package deploy

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

var updateNotice = flag.Bool("update-notice", false,
	"rewrite ../NOTICE and ../LICENSES-THIRD-PARTY from the licence files of the modules' sources (downloaded into the module cache if missing), then check them")

// thirdPartyFile is the file, beside NOTICE, holding the licence texts of
// the modules compiled into the shipped binaries.
const thirdPartyFile = "../LICENSES-THIRD-PARTY"

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

// compiledIn returns the modules whose packages are linked into the
// shipped binaries, built as the Dockerfile builds them: for each module's
// path, the directories of those packages relative to the module's root
// ("" for the root, slash-separated), sorted.
func compiledIn(t *testing.T) map[string][]string {
	args := append([]string{"list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}} {{$.ImportPath}}{{end}}{{end}}"}, binaryPackages...)
	out := goCmd(t, []string{"CGO_ENABLED=0", "GOOS=linux"}, args...)
	in := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		mod, pkg := f[0], f[1]
		rel, ok := strings.CutPrefix(pkg, mod)
		if !ok || (rel != "" && rel[0] != '/') {
			t.Fatalf("package %s is not under the path of its module %s", pkg, mod)
		}
		rel = strings.TrimPrefix(rel, "/")
		if !slices.Contains(in[mod], rel) {
			in[mod] = append(in[mod], rel)
		}
	}
	for _, dirs := range in {
		slices.Sort(dirs)
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
// shipped binaries in their own section, under permissive licences; and
// that LICENSES-THIRD-PARTY holds exactly the licence texts of the modules
// compiled in (thirdPartyLicenses).
func TestNotice(t *testing.T) {
	mods := buildGraph(t)
	compiled := compiledIn(t)
	licenses := thirdPartyLicenses(t, mods, compiled)
	if *updateNotice {
		writeNotice(t, mods, compiled)
		if err := os.WriteFile(thirdPartyFile, licenses, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	entries := readNotice(t)
	const fix = "(go test ./deploy -run TestNotice -update-notice)"
	checkGenerated(t, thirdPartyFile, licenses, fix)
	for _, m := range mods {
		e, ok := entries[m.Path]
		switch {
		case !ok:
			t.Errorf("NOTICE does not list %s %s", m, fix)
		case e.Version != m.Version:
			t.Errorf("NOTICE lists %s at %s, the build uses %s %s", m.Path, e.Version, m.Version, fix)
		case strings.Contains(e.License, "UNKNOWN"):
			t.Errorf("NOTICE: licence of %s unknown: read its licence and add it to licenseOverrides", m)
		case isCompiled(compiled, m) != e.Compiled:
			t.Errorf("NOTICE lists %s in the wrong section (compiled into dotkv: %v) %s", m, isCompiled(compiled, m), fix)
		}
		if isCompiled(compiled, m) && ok {
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

// isCompiled reports whether compiledIn found packages of m.
func isCompiled(compiled map[string][]string, m module) bool {
	_, ok := compiled[m.Path]
	return ok
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

// licenseFile matches the names of licence files at a module's root (and
// in the directories of its compiled-in packages).
var licenseFile = regexp.MustCompile(`(?i)^(licen[cs]e|copying|unlicense)([._-].*)?$`)

// licenseDir matches the name of a directory at a module's root that
// holds licence files under any name (cockroachdb/crlib's
// licenses/BSD-golang.txt).
var licenseDir = regexp.MustCompile(`(?i)^licen[cs]es$`)

// licenseText is one licence file of a module's source.
type licenseText struct {
	Name string // its path from the module's root, slash-separated (licenseSection: "FILE (section HEADING)")
	Text []byte
}

// licenseFiles reads the licence files at the root of a module's source,
// in the order of their names, and its NOTICE file, if any.
func licenseFiles(dir string) (files []licenseText, notice []byte, err error) {
	files, n, err := dirLicenseFiles(dir)
	return files, n.Text, err
}

// dirLicenseFiles reads the licence files in dir, in the order of their
// names, and its NOTICE file (NOTICE, NOTICE.txt or NOTICE.md, any case;
// the last of them if several), each named by its file name.
func dirLicenseFiles(dir string) (files []licenseText, notice licenseText, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, licenseText{}, err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		if strings.EqualFold(name, "NOTICE") || strings.EqualFold(name, "NOTICE.txt") || strings.EqualFold(name, "NOTICE.md") {
			text, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return nil, licenseText{}, err
			}
			notice = licenseText{name, text}
		}
		if !licenseFile.MatchString(name) {
			continue
		}
		text, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, licenseText{}, err
		}
		files = append(files, licenseText{name, text})
	}
	return files, notice, nil
}

// packageLicenseFiles reads the licence files of a module's source in dir
// that lie outside its root but come with its packages in pkgDirs
// (directories relative to the root, slash-separated): those in each
// package's directory and in every directory between it and the root
// (not the root's own, which licenseFiles reads), and every file of a
// licenses or LICENSES directory at the root (licenseDir), each named by
// its path from the root and all in the order of those paths. It also
// returns the NOTICE files of those package directories, named and
// ordered the same way.
func packageLicenseFiles(dir string, pkgDirs []string) (files, notices []licenseText, err error) {
	dirs := map[string]bool{}
	for _, d := range pkgDirs {
		for ; d != "" && d != "." && d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	seen := map[string]bool{}
	add := func(f licenseText) {
		if !seen[f.Name] {
			seen[f.Name] = true
			files = append(files, f)
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		fs, n, err := dirLicenseFiles(filepath.Join(dir, filepath.FromSlash(d)))
		if err != nil {
			return nil, nil, err
		}
		for _, f := range fs {
			add(licenseText{path.Join(d, f.Name), f.Text})
		}
		if n.Name != "" {
			notices = append(notices, licenseText{path.Join(d, n.Name), n.Text})
		}
	}
	root, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range root {
		if !e.IsDir() || !licenseDir.MatchString(e.Name()) {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, nil, err
		}
		for _, f := range entries {
			if !f.Type().IsRegular() || strings.HasPrefix(f.Name(), ".") {
				continue
			}
			text, err := os.ReadFile(filepath.Join(dir, e.Name(), f.Name()))
			if err != nil {
				return nil, nil, err
			}
			add(licenseText{e.Name() + "/" + f.Name(), text})
		}
	}
	byName := func(a, b licenseText) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(files, byName)
	slices.SortFunc(notices, byName)
	return files, notices, nil
}

// addLicenses returns license (SPDX identifiers joined by " AND ", each
// perhaps followed by a remark) with the licences of files that it does
// not name yet added, joined by " AND ", in the order of the files and
// of their first appearance in each.
func addLicenses(license string, files []licenseText) string {
	var have []string
	for l := range strings.SplitSeq(license, " AND ") {
		if f := strings.Fields(l); len(f) > 0 {
			have = append(have, f[0])
		}
	}
	for _, f := range files {
		for _, l := range classify(string(f.Text)) {
			if !slices.Contains(have, l) {
				have = append(have, l)
				license += " AND " + l
			}
		}
	}
	return license
}

// compiledLicense reads what m, a module compiled into the shipped
// binaries whose source is in dir and whose packages there are in pkgDirs
// (compiledIn), carries: the licence files at its root (or the text its
// licenseOverrides entry points at if it has none: licenseSection), then
// those of its compiled-in packages (packageLicenseFiles); its licence,
// moduleLicense's with the licences of the latter that it does not name
// added (addLicenses); and its NOTICE files, the root's (a name without
// "/") then those of the packages' directories.
func compiledLicense(dir string, m module, pkgDirs []string) (license string, files, notices []licenseText, err error) {
	license, _, err = moduleLicense(dir, m)
	if err != nil {
		return "", nil, nil, err
	}
	files, notice, err := dirLicenseFiles(dir)
	if notice.Name != "" {
		notices = append(notices, notice)
	}
	if err != nil {
		return "", nil, nil, fmt.Errorf("licence files of %s: %w", m, err)
	}
	if o, ok := licenseOverrides[m.Path]; ok && len(files) == 0 {
		f, err := licenseSection(dir, o)
		if err != nil {
			return "", nil, nil, fmt.Errorf("licence text of %s: %w", m, err)
		}
		files = append(files, f)
	}
	extra, extraNotices, err := packageLicenseFiles(dir, pkgDirs)
	if err != nil {
		return "", nil, nil, fmt.Errorf("licence files of the packages of %s: %w", m, err)
	}
	return addLicenses(license, extra), append(files, extra...), append(notices, extraNotices...), nil
}

// licenseOf reads the licence files at the root of a module's source and
// names their licences (SPDX identifiers joined by " AND "), or UNKNOWN.
// It also returns the module's NOTICE file, if any.
func licenseOf(dir string) (license string, notice []byte, err error) {
	files, notice, err := licenseFiles(dir)
	if err != nil {
		return "", nil, err
	}
	var found []string
	for _, f := range files {
		for _, l := range classify(string(f.Text)) {
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

// moduleLicense names the licence of m, whose source is in dir: its entry
// in licenseOverrides, or what licenseOf reads. It also returns the
// module's NOTICE file, if any.
func moduleLicense(dir string, m module) (license string, notice []byte, err error) {
	license, notice, err = licenseOf(dir)
	if err != nil {
		return "", nil, fmt.Errorf("licence of %s: %w", m, err)
	}
	if o, ok := licenseOverrides[m.Path]; ok {
		license = o
	}
	return license, notice, nil
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

// moduleSources returns the module cache (GOMODCACHE), having downloaded
// the source of the modules of mods it lacks (go list -m all needs only
// their go.mod files), from outside this module so that go.sum is left as
// it is.
func moduleSources(t *testing.T, mods []module) (cache string) {
	t.Helper()
	cache = strings.TrimSpace(string(goCmd(t, nil, "env", "GOMODCACHE")))
	if cache == "" {
		t.Fatal("go env GOMODCACHE is empty")
	}
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
	return cache
}

// writeNotice rewrites ../NOTICE from the licence files of every module
// in the module cache, downloading the sources it lacks (moduleSources):
// those at each module's root, and for the modules compiled in those of
// their compiled-in packages too (compiledLicense).
func writeNotice(t *testing.T, mods []module, compiled map[string][]string) {
	cache := moduleSources(t, mods)
	var b bytes.Buffer
	b.WriteString(`dotkv
Copyright 2026 The dotkv Authors

dotkv is licensed under the Apache License, Version 2.0 (see LICENSE).

dotkv is built from the Go modules below: the first list is compiled into
the dotkv and dotkv-kube binaries (and the container image); the second is
the rest of the module graph (go list -m all), which the go command reads
but which dotkv does not compile in (tests and tools of dependencies).
Each line gives the module, its version and its licence (SPDX identifier),
as read from the licence files at the root of the module's source and,
for the modules compiled in, also from those in the directories of their
compiled-in packages and in a licenses directory at the root; "AND" joins
the licences of modules that carry several. The last part reproduces the
NOTICE files of the modules compiled in. The full texts of the licences
of the modules compiled in are in LICENSES-THIRD-PARTY.

This file and LICENSES-THIRD-PARTY are checked by deploy/notice_test.go;
rewrite them with
  go test ./deploy -run TestNotice -update-notice

`)
	type row struct {
		m       module
		license string
		notices []licenseText
	}
	var in, out []row
	for _, m := range mods {
		dir := moduleDir(cache, m)
		if pkgDirs, ok := compiled[m.Path]; ok {
			license, _, notices, err := compiledLicense(dir, m, pkgDirs)
			if err != nil {
				t.Fatal(err)
			}
			in = append(in, row{m, license, notices})
			continue
		}
		license, _, err := moduleLicense(dir, m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, row{m, license, nil})
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
		for _, n := range r.notices {
			if len(bytes.TrimSpace(n.Text)) == 0 {
				continue
			}
			if strings.Contains(n.Name, "/") {
				fmt.Fprintf(&b, "\n--- %s: %s ---\n\n%s\n", r.m, n.Name, bytes.TrimSpace(n.Text))
			} else {
				fmt.Fprintf(&b, "\n--- %s ---\n\n%s\n", r.m, bytes.TrimSpace(n.Text))
			}
		}
	}
	if err := os.WriteFile("../NOTICE", b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// thirdPartyLicenses returns the text of LICENSES-THIRD-PARTY: for each
// module of mods compiled into the shipped binaries, in the order of
// NOTICE's first section, a line "== MODULE VERSION (LICENCE) ==" and the
// licence files at the root of its source (licenseFiles), then those of
// the directories of its compiled-in packages and of a licenses directory
// at its root (packageLicenseFiles), each under a line "--- PATH ---"
// (the file's path from the module's root), verbatim but for line endings
// made LF. A module with no licence file at its root gets the text its
// licenseOverrides entry points at (licenseSection). It reads the
// compiled-in modules' sources, which go list -deps (compiledIn) has
// already needed, from the module cache.
func thirdPartyLicenses(t *testing.T, mods []module, compiled map[string][]string) []byte {
	t.Helper()
	var in []module
	for _, m := range mods {
		if isCompiled(compiled, m) {
			in = append(in, m)
		}
	}
	cache := moduleSources(t, in)
	var b bytes.Buffer
	b.WriteString(`LICENSES-THIRD-PARTY: the licences of the Go modules compiled into the
dotkv and dotkv-kube binaries (and the container image), as listed in the
first section of NOTICE and in the same order. Each module's part starts
with a line "== MODULE VERSION (LICENCE) ==" and reproduces the licence
files at the root of the module's source, then those in the directories
of its packages compiled in (and in those between them and the root) and
in a licenses directory at its root, each under a line "--- PATH ---"
giving its path from the module's root, verbatim but for line endings.
dotkv itself is licensed under the Apache License, Version 2.0 (see
LICENSE).

This file is checked by deploy/notice_test.go; rewrite it with
  go test ./deploy -run TestNotice -update-notice
`)
	for _, m := range in {
		license, files, _, err := compiledLicense(moduleDir(cache, m), m, compiled[m.Path])
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Errorf("%s is compiled into dotkv but its source has no licence file: find its licence and add it to licenseOverrides", m)
		}
		fmt.Fprintf(&b, "\n== %s (%s) ==\n", m, license)
		for _, f := range files {
			text := bytes.ReplaceAll(f.Text, []byte("\r\n"), []byte("\n"))
			text = bytes.TrimRight(text, "\n")
			fmt.Fprintf(&b, "\n--- %s ---\n\n%s\n", f.Name, text)
		}
	}
	return b.Bytes()
}

// overrideFile finds the file a licenseOverrides entry names in
// parentheses at its end ("BSD-3-Clause (README.md)").
var overrideFile = regexp.MustCompile(`\(([^()]+)\)$`)

// markdownHeading matches a Markdown ATX heading: its level and title.
var markdownHeading = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)

// licenseHeading matches the title of a section about the licence.
var licenseHeading = regexp.MustCompile(`(?i)^licen[cs]e`)

// licenseSection returns the licence text a licenseOverrides entry points
// at in the module's source in dir: the section of that Markdown file
// whose heading names a licence, up to the next heading of its level or
// above, named "FILE (section HEADING)".
func licenseSection(dir, override string) (licenseText, error) {
	sm := overrideFile.FindStringSubmatch(override)
	if sm == nil {
		return licenseText{}, fmt.Errorf("licenseOverrides entry %q names no file of the source", override)
	}
	name := sm[1]
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		return licenseText{}, err
	}
	var section []string
	level, heading := 0, ""
	for line := range strings.Lines(strings.ReplaceAll(string(data), "\r\n", "\n")) {
		h := markdownHeading.FindStringSubmatch(strings.TrimRight(line, "\n"))
		if level == 0 {
			if h != nil && licenseHeading.MatchString(h[2]) {
				level, heading = len(h[1]), h[2]
			}
			continue
		}
		if h != nil && len(h[1]) <= level {
			break
		}
		section = append(section, line)
	}
	text := strings.TrimSpace(strings.Join(section, ""))
	if text == "" {
		return licenseText{}, fmt.Errorf("%s: no licence section (a Markdown heading naming a licence followed by text)", name)
	}
	return licenseText{fmt.Sprintf("%s (section %s)", name, heading), []byte(text + "\n")}, nil
}

// checkGenerated reports, if file does not hold exactly want, where it
// first differs and how to regenerate it (fix).
func checkGenerated(t *testing.T, file string, want []byte, fix string) {
	t.Helper()
	have, err := os.ReadFile(file)
	if err != nil {
		t.Errorf("%v %s", err, fix)
		return
	}
	if bytes.Equal(have, want) {
		return
	}
	hl, wl := strings.Split(string(have), "\n"), strings.Split(string(want), "\n")
	i := 0
	for i < len(hl) && i < len(wl) && hl[i] == wl[i] {
		i++
	}
	line := func(ls []string) string {
		if i < len(ls) {
			return fmt.Sprintf("%q", ls[i])
		}
		return "end of file"
	}
	t.Errorf("%s is stale: line %d is %s, should be %s %s", file, i+1, line(hl), line(wl), fix)
}

// TestLicenseSection checks that licenseSection takes the licence section
// of the README a licenseOverrides entry names, up to the next heading of
// its level, and fails on an entry without a file or a README without one.
func TestLicenseSection(t *testing.T) {
	dir := t.TempDir()
	readme := "# schema\r\n\r\nIntro.\r\n\r\n## License\r\n\r\nCopyright (c) 2012 A.\r\n\r\n### Terms\r\n\r\nRedistribution and use...\r\n\r\n## Other\r\n\r\nNot licence.\r\n"
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte(readme), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := licenseSection(dir, "BSD-3-Clause (README.md)")
	if err != nil {
		t.Fatal(err)
	}
	want := "Copyright (c) 2012 A.\n\n### Terms\n\nRedistribution and use...\n"
	if f.Name != "README.md (section License)" || string(f.Text) != want {
		t.Errorf("licenseSection = %q, %q; want %q, %q", f.Name, f.Text, "README.md (section License)", want)
	}
	if _, err := licenseSection(dir, "MIT"); err == nil {
		t.Error("licenseSection of an entry naming no file: no error")
	}
	if err := os.WriteFile(filepath.Join(dir, "NOLICENSE.md"), []byte("# x\n\ntext\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := licenseSection(dir, "MIT (NOLICENSE.md)"); err == nil {
		t.Error("licenseSection of a file without a licence section: no error")
	}
}

// TestPackageLicenseFiles checks that packageLicenseFiles reads the
// licence and NOTICE files of the compiled-in packages' directories and
// of those between them and the root, but not the root's own nor those of
// other directories, and every file of a licenses directory at the root,
// in the order of their paths; and that addLicenses adds only the
// licences a module's licence does not name.
func TestPackageLicenseFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const mit = "Permission is hereby granted, free of charge, to any person"
	const bsd = "Redistribution and use in source and binary forms. Neither the name"
	write("LICENSE", "Apache License, Version 2.0")
	write("NOTICE", "root notice")
	write("a/LICENSE.txt", mit)
	write("a/b/c/LICENSE", bsd)
	write("a/b/c/NOTICE", "c notice")
	write("a/b/c/README.md", "not a licence")
	write("a/b/c/d/LICENSE", "not compiled in")
	write("z/COPYING", "not compiled in")
	write("licenses/BSD-golang.txt", bsd)
	write("licenses/.keep", "")
	files, notices, err := packageLicenseFiles(dir, []string{"", "a/b/c", "a/b"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	want := []string{"a/LICENSE.txt", "a/b/c/LICENSE", "licenses/BSD-golang.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("packageLicenseFiles files = %q, want %q", names, want)
	}
	if len(notices) != 1 || notices[0].Name != "a/b/c/NOTICE" || string(notices[0].Text) != "c notice" {
		t.Errorf("packageLicenseFiles notices = %q, want a/b/c/NOTICE", notices)
	}
	if got, want := addLicenses("Apache-2.0", files), "Apache-2.0 AND MIT AND BSD-3-Clause"; got != want {
		t.Errorf("addLicenses = %q, want %q", got, want)
	}
	if got, want := addLicenses("BSD-3-Clause (README.md) AND MIT", files), "BSD-3-Clause (README.md) AND MIT"; got != want {
		t.Errorf("addLicenses = %q, want %q", got, want)
	}
}
