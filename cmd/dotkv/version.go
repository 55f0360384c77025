package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// version is the release version of this build. Release builds set it
// with -ldflags "-X main.version=v1.2.3" (the Dockerfile does); empty
// means: take it from the build information the Go toolchain embeds.
var version = ""

// buildInfo is what dotkv knows about how it was built.
type buildInfo struct {
	// Version is the release version (main.version), else the main
	// module's version (a tag or a pseudo-version, with "+dirty" for a
	// modified work tree), else "devel-REVISION[-dirty]" from the VCS
	// stamp, else "(devel)".
	Version string
	// Revision is the VCS revision built ("" if not stamped) and Modified
	// reports uncommitted changes in the work tree it was built from.
	Revision string
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// readBuildInfo returns this binary's build information.
func readBuildInfo() buildInfo {
	bi := buildInfo{GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				bi.Revision = s.Value
			case "vcs.modified":
				bi.Modified = s.Value == "true"
			}
		}
	}
	switch {
	case version != "":
		bi.Version = version
	case ok && info.Main.Version != "" && info.Main.Version != "(devel)":
		bi.Version = info.Main.Version
	case bi.Revision != "":
		bi.Version = "devel-" + shortRevision(bi.Revision)
		if bi.Modified {
			bi.Version += "-dirty"
		}
	default:
		bi.Version = "(devel)"
	}
	return bi
}

// buildVersion returns this binary's version, as dotkv version --short
// prints it and /healthz reports it.
func buildVersion() string { return readBuildInfo().Version }

// shortRevision abbreviates a VCS revision to 12 characters.
func shortRevision(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of this binary, its VCS revision and the Go toolchain that built it",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "short", Usage: "print only the version"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return cli.Exit("usage: dotkv version [--short]", exitError)
			}
			bi := readBuildInfo()
			w := c.App.Writer
			if c.Bool("short") {
				fmt.Fprintln(w, bi.Version)
				return nil
			}
			rev := bi.Revision
			switch {
			case rev == "":
				rev = "unknown"
			case bi.Modified:
				rev += " (modified)"
			}
			fmt.Fprintf(w, "dotkv version: %s\ngit revision:  %s\ngo version:    %s\nplatform:      %s/%s\n",
				bi.Version, rev, bi.GoVersion, runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
