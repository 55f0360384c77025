package api

import (
	"io"
	"net/http"
	"time"
)

// Backuper writes a consistent backup of the node's store, as a tar
// archive of a data directory (*storage.Store).
type Backuper interface {
	Backup(w io.Writer) error
}

// adminBackup streams a backup of this node's store (GET /admin/backup,
// admin): a tar archive of a data directory, taken while the node serves
// (see storage.Store.Backup). A failure once the archive has started
// aborts the response, so that a client never takes a truncated archive
// for a whole one (it lacks tar's end marker).
func (s *Server) adminBackup(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, "use GET /admin/backup")
		return
	}
	if s.cfg.Backup == nil {
		writeError(w, http.StatusNotFound, codeNotFound, "this node takes no backups")
		return
	}
	name := "dotkv-" + s.cfg.NodeID + "-" + time.Now().UTC().Format("20060102T150405Z") + ".tar"
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	start := time.Now()
	if err := s.cfg.Backup.Backup(w); err != nil {
		s.log.Error("backup failed", "err", err)
		panic(http.ErrAbortHandler)
	}
	s.log.Info("backup sent", "took", time.Since(start).String(), "remote", r.RemoteAddr)
}
