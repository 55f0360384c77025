package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// runVersion runs versionCommand in an app of its own with args and
// returns what it printed.
func runVersion(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{
		Name:           "dotkv",
		Writer:         &out,
		ErrWriter:      &out,
		ExitErrHandler: func(*cli.Context, error) {},
		Commands:       []*cli.Command{versionCommand()},
	}
	err := app.Run(append([]string{"dotkv", "version"}, args...))
	return out.String(), err
}

func TestVersionFromLdflags(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = "v9.8.7-test"

	if got := buildVersion(); got != "v9.8.7-test" {
		t.Fatalf("buildVersion() = %q, want the -X main.version value", got)
	}
	out, err := runVersion(t, "--short")
	if err != nil || out != "v9.8.7-test\n" {
		t.Fatalf("dotkv version --short = %q, %v", out, err)
	}
	out, err = runVersion(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dotkv version: v9.8.7-test\n", "go version:    " + runtime.Version() + "\n",
		"platform:      " + runtime.GOOS + "/" + runtime.GOARCH + "\n", "git revision:  "} {
		if !strings.Contains(out, want) {
			t.Errorf("dotkv version printed %q, want a line %q", out, want)
		}
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = ""

	// A test binary carries no module version and no VCS stamp.
	bi := readBuildInfo()
	if bi.Version == "" || bi.GoVersion != runtime.Version() {
		t.Fatalf("readBuildInfo() = %+v", bi)
	}
	if bi.Revision == "" && bi.Version != "(devel)" {
		t.Errorf("no revision, but version %q (want (devel))", bi.Version)
	}
	if _, err := runVersion(t, "extra"); err == nil {
		t.Error("dotkv version extra: no error")
	}
}

func TestShortRevision(t *testing.T) {
	for rev, want := range map[string]string{
		"":    "",
		"abc": "abc",
		"297e572c0d2f1a9b8c7d6e5f4a3b2c1d0e9f8a7b": "297e572c0d2f",
	} {
		if got := shortRevision(rev); got != want {
			t.Errorf("shortRevision(%q) = %q, want %q", rev, got, want)
		}
	}
}
