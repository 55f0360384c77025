package storage

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// RestoredMarker is the file a backup carries at the top of its data
// directory. A store opened on a directory holding it takes a new
// incarnation (a new actor ID) and then deletes it: the dots a restored
// node issues can never be ones it issued after the backup was taken
// (docs/design.md §7.7).
const RestoredMarker = "DOTKV-RESTORED"

// Backup writes a consistent copy of the store to w, as a tar archive of
// a data directory: a pebble checkpoint taken now, with its WAL flushed,
// while the store keeps serving, plus RestoredMarker. The checkpoint is
// made next to the data directory's files (hard links where the
// filesystem allows) and deleted once written. Restoring is extracting
// the archive into an empty directory and starting the node on it under
// its ID.
func (s *Store) Backup(w io.Writer) (err error) {
	if s.closed.Load() {
		return ErrClosed
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := s.fs.PathJoin(s.dir, "backup-"+hex.EncodeToString(rnd[:]))
	defer func() {
		if rerr := s.fs.RemoveAll(tmp); rerr != nil && err == nil {
			err = fmt.Errorf("backup: remove the checkpoint: %w", rerr)
		}
	}()
	if err := s.db.Checkpoint(tmp, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("backup: checkpoint: %w", err)
	}
	f, err := s.fs.Create(s.fs.PathJoin(tmp, RestoredMarker), vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	_, err = f.Write([]byte("restored from a backup of node " + s.nodeID + ": the store takes a new incarnation when it opens\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	tw := tar.NewWriter(w)
	if err := s.tarDir(tw, tmp, ""); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// tarDir adds the files under dir (named rel in the archive) to tw.
func (s *Store) tarDir(tw *tar.Writer, dir, rel string) error {
	names, err := s.fs.List(dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		p, r := s.fs.PathJoin(dir, name), path.Join(rel, name)
		st, err := s.fs.Stat(p)
		if err != nil {
			return err
		}
		if st.IsDir() {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: r + "/", Mode: 0o755, ModTime: st.ModTime()}); err != nil {
				return err
			}
			if err := s.tarDir(tw, p, r); err != nil {
				return err
			}
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: r, Mode: 0o644, Size: st.Size(), ModTime: st.ModTime()}); err != nil {
			return err
		}
		f, err := s.fs.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, io.NewSectionReader(f, 0, st.Size()))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", r, err)
		}
	}
	return nil
}

// removeStaleBackups deletes the checkpoints of backups that a crash
// interrupted.
func (s *Store) removeStaleBackups() error {
	names, err := s.fs.List(s.dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if len(name) == len("backup-")+12 && name[:len("backup-")] == "backup-" {
			if err := s.fs.RemoveAll(s.fs.PathJoin(s.dir, name)); err != nil {
				return fmt.Errorf("remove an interrupted backup's checkpoint: %w", err)
			}
		}
	}
	return nil
}

// restoredFromBackup reports whether the data directory holds
// RestoredMarker.
func (s *Store) restoredFromBackup() (bool, error) {
	_, err := s.fs.Stat(s.fs.PathJoin(s.dir, RestoredMarker))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("look for %s: %w", RestoredMarker, err)
}

// clearRestoredMarker deletes RestoredMarker, once the new incarnation is
// recorded.
func (s *Store) clearRestoredMarker() error {
	if err := s.fs.Remove(s.fs.PathJoin(s.dir, RestoredMarker)); err != nil {
		return fmt.Errorf("remove %s: %w", RestoredMarker, err)
	}
	return nil
}

// Restore extracts a backup archive (from Backup) into dir on fs, which
// must be empty or absent: a data directory to start the node on (it
// takes a new incarnation when it opens). Names that would leave dir are
// refused, and a truncated archive is an error. It reports the files and
// bytes written.
func Restore(r io.Reader, fs vfs.FS, dir string) (files int, size int64, err error) {
	if names, err := fs.List(dir); err == nil && len(names) > 0 {
		return 0, 0, fmt.Errorf("restore into %s: the directory is not empty", dir)
	}
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		return 0, 0, fmt.Errorf("restore: %w", err)
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, size, nil
		}
		if err != nil {
			return files, size, fmt.Errorf("restore: read the archive: %w", err)
		}
		name := path.Clean(h.Name)
		if !filepath.IsLocal(name) {
			return files, size, fmt.Errorf("restore: archive entry %q leaves the directory", h.Name)
		}
		p := fs.PathJoin(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := fs.MkdirAll(p, 0o700); err != nil {
				return files, size, fmt.Errorf("restore: %w", err)
			}
		case tar.TypeReg:
			n, err := restoreFile(fs, p, tr)
			if err != nil {
				return files, size, fmt.Errorf("restore %s: %w", h.Name, err)
			}
			files, size = files+1, size+n
		default:
			return files, size, fmt.Errorf("restore: archive entry %q: unexpected type %c", h.Name, h.Typeflag)
		}
	}
}

// restoreFile writes r to a new file p and syncs it.
func restoreFile(fs vfs.FS, p string, r io.Reader) (int64, error) {
	if _, err := fs.Stat(p); err == nil {
		return 0, fmt.Errorf("%s exists", p)
	}
	f, err := fs.Create(p, vfs.WriteCategoryUnspecified)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}
