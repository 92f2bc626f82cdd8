package api

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	japi "github.com/agentfleet/jkframe/api"
	"github.com/agentfleet/jkframe/compress"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
)

// LogFile is one entry of GET /api/agents/{id}/logs.
type LogFile struct {
	Name       string    `json:"name"`
	Size       uint64    `json:"size"`
	ModTime    int64     `json:"mod_time"` // unix seconds, as 1.5
	ModifiedAt time.Time `json:"modified_at"`
}

func (s *Server) agentLogs(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	id := p.Path("id")
	c, err := s.startCall(r, p, id, "")
	if err != nil {
		return err
	}
	defer c.cancel()
	rep, err := s.o.Hub.Call(c.ctx, id, &protocol.Msg{Type: protocol.TypeLogLsReq})
	if err != nil {
		return c.fail(err)
	}
	if rep.Type != protocol.TypeLogLsRep || rep.LogLs() == nil {
		return badReply(rep, "log_ls_rep")
	}
	out := make([]LogFile, 0, len(rep.LogLs().Files))
	for _, f := range rep.LogLs().Files {
		out = append(out, LogFile{Name: f.Name, Size: f.Size, ModTime: unix(f.ModTime), ModifiedAt: f.ModTime})
	}
	japi.OK(w, r, out)
	return nil
}

func badReply(m *protocol.Msg, want string) error {
	return &japi.Error{Code: http.StatusServiceUnavailable, Msg: fmt.Sprintf("unexpected reply from the agent: type %d, want %s", m.Type, want)}
}

// Log download limits.
const (
	maxLogFiles   = 100
	maxLogZipSize = 1 << 30
)

// agentLogDownload streams the zip the agent builds of the asked log files.
// Errors before the first byte are envelopes; a failure after it (the agent
// drops, a block is bad, the MD5 differs) aborts the connection, so the
// client never takes a truncated zip for a whole one.
func (s *Server) agentLogDownload(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	id := p.Path("id")
	files := p.Strings("files")
	c, err := s.startCall(r, p, id, "")
	if err != nil {
		return err
	}
	defer c.cancel()
	if len(files) == 0 {
		return japi.MissingParam("files")
	}
	if len(files) > maxLogFiles {
		return japi.BadParam("files", fmt.Sprintf("at most %d files", maxLogFiles))
	}
	for _, f := range files {
		if strings.ContainsAny(f, `/\`) || f == "." || f == ".." {
			return japi.BadParam("files", fmt.Sprintf("%q is not a plain file name", f))
		}
	}
	ctx := c.ctx
	st, err := s.o.Hub.Stream(ctx, id, &protocol.Msg{Type: protocol.TypeLogDownloadReq, Payload: &protocol.LogDownloadReq{Files: files}})
	if err != nil {
		return c.fail(err)
	}
	defer st.Close()
	first, err := st.Recv(ctx)
	if err != nil {
		return c.fail(err)
	}
	if first.Type != protocol.TypeLogDownloadInfo || first.LogDInfo() == nil {
		return badReply(first, "log_download_info")
	}
	info := first.LogDInfo()
	if !info.OK {
		// v1 agents send no kind (a v1 agent's refusal is a 503, as in 1.5).
		return &japi.Error{Code: agentErrStatus(&hub.AgentError{Kind: info.Kind}), Msg: info.Msg}
	}
	if info.Size > maxLogZipSize {
		return &japi.Error{Code: http.StatusServiceUnavailable, Msg: fmt.Sprintf("log zip of %d bytes is over the %d byte limit", info.Size, maxLogZipSize)}
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", `attachment; filename="`+safeName(id)+`-logs.zip"`)
	h.Set("Content-Length", strconv.FormatUint(info.Size, 10))
	abort := func(format string, args ...any) error {
		s.log.Warn("log download aborted", "agent", id, "reqid", japi.RequestIDFrom(r.Context()), "err", fmt.Sprintf(format, args...))
		panic(http.ErrAbortHandler)
	}
	sum := md5.New()
	var off uint64
	started := false
	for off < info.Size {
		m, err := st.Recv(ctx)
		if err != nil {
			if !started {
				return c.fail(err)
			}
			return abort("after %d of %d bytes: %v", off, info.Size, err)
		}
		if m.Type != protocol.TypeLogDownloadData || m.LogDData() == nil {
			if !started {
				return badReply(m, "log_download_data")
			}
			return abort("unexpected message type %d", m.Type)
		}
		if m.LogDData().Offset != off {
			if !started {
				return &japi.Error{Code: http.StatusServiceUnavailable, Msg: fmt.Sprintf("agent sent a block at offset %d, want %d", m.LogDData().Offset, off)}
			}
			return abort("block at offset %d, want %d", m.LogDData().Offset, off)
		}
		b, err := compress.Decode(m.LogDData().Data, int64(info.Size-off))
		if err != nil || len(b) == 0 {
			if !started {
				return &japi.Error{Code: http.StatusServiceUnavailable, Msg: "agent sent a bad block", Err: err}
			}
			return abort("bad block at %d: %v", off, err)
		}
		started = true
		sum.Write(b)
		if _, err := w.Write(b); err != nil {
			return nil // the client left
		}
		off += uint64(len(b))
	}
	if !bytes.Equal(sum.Sum(nil), info.MD5[:]) && info.MD5 != (protocol.MD5{}) {
		return abort("MD5 mismatch")
	}
	if !started { // empty zip: headers only
		w.WriteHeader(http.StatusOK)
	}
	return nil
}

// safeName keeps a file-name-safe form of an agent id for Content-Disposition.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			b[i] = '_'
		}
	}
	return string(b)
}

func itoa(n int) string { return strconv.Itoa(n) }

func atoi64(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.New("not an integer")
	}
	return n, nil
}
