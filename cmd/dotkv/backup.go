package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name: "backup",
		Usage: "take a consistent backup of the node at --addr while it serves (GET /admin/backup), into --out DIR: " +
			"a data directory; restore by starting the node (same --id) on a copy of it",
		Before: configureClient,
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "out", Usage: "new `DIR` to write the backup into (must not exist, or be empty)", Required: true},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return cli.Exit("usage: dotkv backup [--addr URL] --out DIR", exitError)
			}
			out := c.String("out")
			if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
				return cli.Exit(fmt.Sprintf("--out %s: the directory is not empty", out), exitError)
			}
			resp, err := do(http.MethodGet, nodeAddr(c.String("addr"))+"/admin/backup", nil, nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return serverError(resp)
			}
			// Extracted aside and renamed: a failed backup leaves no
			// directory that looks like a good one.
			partial := strings.TrimRight(out, "/") + ".partial"
			if err := os.RemoveAll(partial); err != nil {
				return cli.Exit(err.Error(), exitError)
			}
			files, size, err := extractTar(resp.Body, partial)
			if err != nil {
				_ = os.RemoveAll(partial)
				return cli.Exit("backup: "+err.Error(), exitError)
			}
			_ = os.Remove(out) // an empty directory, if any
			if err := os.Rename(partial, out); err != nil {
				return cli.Exit("backup: "+err.Error(), exitError)
			}
			fmt.Fprintf(c.App.Writer, "backup of %s: %d files, %d bytes in %s\n", c.String("addr"), files, size, out)
			return nil
		},
	}
}

// extractTar writes the archive's directories and regular files under
// dir, refusing names that would leave it, and reports the files and
// bytes written. A truncated archive (no end marker) is an error.
func extractTar(r io.Reader, dir string) (files int, size int64, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, 0, err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, size, nil
		}
		if err != nil {
			return files, size, fmt.Errorf("read the archive: %w", err)
		}
		name := filepath.Clean(h.Name)
		if !filepath.IsLocal(name) {
			return files, size, fmt.Errorf("archive entry %q leaves the directory", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				return files, size, err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return files, size, err
			}
			n, err := io.Copy(f, tr)
			if serr := f.Sync(); err == nil {
				err = serr
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return files, size, fmt.Errorf("%s: %w", h.Name, err)
			}
			files, size = files+1, size+n
		default:
			return files, size, fmt.Errorf("archive entry %q: unexpected type %c", h.Name, h.Typeflag)
		}
	}
}
