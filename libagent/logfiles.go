package libagent

import (
	"archive/zip"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/agentfleet/jkframe/compress"

	"github.com/agentfleet/libagent/protocol"
)

// logBlockSize is the size of one log_ddata block (v1: 32 KiB).
const logBlockSize = 32 << 10

// logFile is one of the agent's log files.
type logFile struct {
	protocol.LogFile
	path string
}

// logLister lists the agent's log files; nil when it logs to stdout only.
type logLister func() ([]logFile, error)

// ErrNotLogFile: a requested name is not one of the agent's log files.
var ErrNotLogFile = errors.New("not a log file of this agent")

// builtins registers the handlers every agent has.
func (rt *Runtime) builtins() {
	rt.Handle(protocol.TypeLogLsReq, rt.handleLogList)
	rt.Handle(protocol.TypeLogDownloadReq, rt.handleLogDownload)
	rt.Handle(protocol.TypeUpgrade, rt.handleUpgrade)
}

func (rt *Runtime) logFiles() ([]logFile, error) {
	if rt.logs == nil {
		return nil, nil
	}
	return rt.logs()
}

func (rt *Runtime) handleLogList(ctx context.Context, req *protocol.Msg, w Replier) error {
	files, err := rt.logFiles()
	if err != nil {
		return fmt.Errorf("list log files: %w", err)
	}
	ls := &protocol.LogLs{Files: make([]protocol.LogFile, 0, len(files))}
	for _, f := range files {
		ls.Files = append(ls.Files, f.LogFile)
	}
	return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeLogLsRep, Payload: ls})
}

// handleLogDownload zips the requested log files into a temporary file and
// sends it as log_dinfo then log_ddata blocks. Only names the log lister
// returns are accepted: a path, "..", or any other name is refused.
func (rt *Runtime) handleLogDownload(ctx context.Context, req *protocol.Msg, w Replier) error {
	fail := func(err error) error {
		// Only the request's own mistakes have a kind: a failure to list
		// or zip the files is the agent's, whatever error it wraps.
		var kind protocol.ErrKind
		if ke, ok := errors.AsType[*protocol.KindError](err); ok {
			kind = ke.Kind
		}
		return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeLogDownloadInfo, Payload: &protocol.LogDownloadInfo{Msg: err.Error(), Kind: kind}})
	}
	files, err := rt.logFiles()
	if err != nil {
		return fail(fmt.Errorf("list log files: %w", err))
	}
	chosen, err := pickLogFiles(files, req.LogDReq().Files)
	if err != nil {
		return fail(err)
	}
	tmp, err := os.CreateTemp("", "agent-logs-*.zip")
	if err != nil {
		return fail(fmt.Errorf("log download: %w", err))
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	sum := md5.New()
	if err := writeZip(io.MultiWriter(tmp, sum), chosen); err != nil {
		return fail(fmt.Errorf("log download: %w", err))
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return fail(fmt.Errorf("log download: %w", err))
	}
	info := &protocol.LogDownloadInfo{OK: true, Size: uint64(size), BlockSize: logBlockSize}
	copy(info.MD5[:], sum.Sum(nil))
	if err := w.Reply(ctx, &protocol.Msg{Type: protocol.TypeLogDownloadInfo, Payload: info}); err != nil {
		return err
	}
	buf := make([]byte, logBlockSize)
	for off := int64(0); off < size; {
		n, err := tmp.ReadAt(buf, off)
		if n == 0 && err != nil {
			return fmt.Errorf("log download: read zip: %w", err)
		}
		d := &protocol.LogDownloadData{Offset: uint64(off), Data: compress.Encode(buf[:n])}
		if err := w.Reply(ctx, &protocol.Msg{Type: protocol.TypeLogDownloadData, Payload: d}); err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

// pickLogFiles maps requested base names to the listed files. Every name
// must be listed; a name holding a separator or "..", or unknown, is an
// error.
func pickLogFiles(files []logFile, names []string) ([]logFile, error) {
	if len(names) == 0 {
		return nil, protocol.WithKind(protocol.KindInvalid, errors.New("log download: no file requested"))
	}
	var out []logFile
	for _, n := range names {
		i := slices.IndexFunc(files, func(f logFile) bool { return f.Name == n })
		if i < 0 || n != filepath.Base(n) || n == ".." || n == "." {
			return nil, protocol.WithKind(protocol.KindNotFound, fmt.Errorf("log download %q: %w", n, ErrNotLogFile))
		}
		if !slices.ContainsFunc(out, func(f logFile) bool { return f.Name == n }) {
			out = append(out, files[i])
		}
	}
	return out, nil
}

func writeZip(w io.Writer, files []logFile) error {
	zw := zip.NewWriter(w)
	for _, f := range files {
		if err := addZip(zw, f); err != nil {
			return err
		}
	}
	return zw.Close()
}

func addZip(zw *zip.Writer, f logFile) error {
	in, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	h, err := zip.FileInfoHeader(st)
	if err != nil {
		return err
	}
	h.Name, h.Method = f.Name, zip.Deflate
	out, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	// A log being written grows while we copy: take what was there at Stat.
	_, err = io.Copy(out, io.LimitReader(in, st.Size()))
	return err
}
