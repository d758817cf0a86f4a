package api

import (
	"bufio"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// backupWriteTimeout bounds how long one write of a backup may wait for a
// slow client: a backup holds a snapshot of the layer it reads (tables and
// value-log files Badger cannot reclaim meanwhile), so a client that stops
// reading is cut off.
const backupWriteTimeout = 2 * time.Minute

func (s *Server) backupRoutes() {
	s.handle("GET /v1/backup", s.backup)
}

// backup streams a backup of every layer (admin token only).
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	if s.opts.Store == nil {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "this server has no store to back up")
		return
	}
	st, ok := s.opts.Store.(store.Backuper)
	if !ok {
		writeError(w, http.StatusNotImplemented, "backup_unsupported", "this store driver has no backup of its own: back up its database with the database's tools (pg_dump for postgres)")
		return
	}
	names, err := st.LayerNames()
	if err != nil {
		s.log.Error("backup failed", "error", err)
		writeError(w, http.StatusInternalServerError, "backup_failed", "the backup could not start; see the server log")
		return
	}
	start := time.Now()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="synclayer-`+start.UTC().Format("20060102T150405Z")+`.backup"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Synclayer-Layers", strings.Join(names, ","))
	h.Set("X-Synclayer-Backup-Encrypted", strconv.FormatBool(st.Encrypted()))
	cw := &backupWriter{w: w, rc: http.NewResponseController(w)}
	bw := bufio.NewWriterSize(cw, 256<<10)
	err = st.Backup(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		if cw.n == 0 {
			s.log.Error("backup failed", "error", err)
			h.Del("Content-Disposition")
			h.Del("X-Synclayer-Layers")
			h.Del("X-Synclayer-Backup-Encrypted")
			writeError(w, http.StatusInternalServerError, "backup_failed", "the backup could not start; see the server log")
			return
		}
		// The answer has started: cut the stream, so that the client
		// sees a transfer error rather than a file that ends early.
		s.log.Error("backup cut short", "error", err, "bytes", cw.n)
		panic(http.ErrAbortHandler)
	}
	s.log.Info("backup sent", "layers", len(names), "bytes", cw.n, "duration", time.Since(start).Round(time.Millisecond).String())
}

// backupWriter counts what it writes and gives each write its own deadline.
type backupWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	n  int64
}

func (b *backupWriter) Write(p []byte) (int, error) {
	if err := b.rc.SetWriteDeadline(time.Now().Add(backupWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	n, err := b.w.Write(p)
	b.n += int64(n)
	return n, err
}
