package execsvc

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/agentfleet/jkframe/compress"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/hub"
)

// Errors of file transfers.
var (
	// ErrTooLarge: a body went over its size limit (HTTP 413).
	ErrTooLarge = errors.New("too large")
	// ErrRange: the asked range starts beyond the end of the file (416).
	ErrRange = errors.New("range not satisfiable")
)

// ValidName checks that name is a plain file name: not empty, no path
// separators, not "." or "..", no NUL or other control character (C0,
// DEL, C1: they end up in listings, logs and terminals), valid UTF-8, at
// most 255 bytes.
func ValidName(name string) error {
	var why string
	switch {
	case name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\"):
		why = "is not a plain file name"
	case strings.ContainsFunc(name, unicode.IsControl):
		why = "has a control character"
	case !utf8.ValidString(name):
		why = "is not valid UTF-8"
	case len(name) > 255:
		why = "is longer than 255 bytes"
	default:
		return nil
	}
	return fault.Invalidf(ErrInvalid, "%q %s", name, why)
}

// Ls lists a directory on the agent. An agent-side failure (ok false) is a
// *hub.AgentError with the agent's message and kind.
func (s *Service) Ls(ctx context.Context, agentID, dir string) ([]protocol.FileInfo, error) {
	sess, ok := s.hub.Session(agentID)
	if !ok {
		return nil, fmt.Errorf("ls %s on agent %s: %w", dir, agentID, hub.ErrAgentNotFound)
	}
	rep, err := sess.Call(ctx, &protocol.Msg{Type: protocol.TypeLsReq, Payload: &protocol.LsReq{Dir: dir}})
	if err != nil {
		return nil, fmt.Errorf("ls %s on agent %s: %w", dir, agentID, err)
	}
	if rep.Type != protocol.TypeLsRep || rep.LsRep() == nil {
		return nil, fmt.Errorf("ls %s on agent %s: unexpected reply type %d", dir, agentID, rep.Type)
	}
	if !rep.LsRep().OK {
		return nil, sess.AgentError(rep.TID, rep.LsRep().Msg, rep.LsRep().Kind)
	}
	return rep.LsRep().Files, nil
}

// splitPath splits an agent path (Unix or Windows separators) into its
// directory and base name.
func splitPath(p string) (dir, name string) {
	i := strings.LastIndexAny(p, `/\`)
	if i < 0 {
		return ".", p
	}
	dir = p[:i]
	if dir == "" || strings.HasSuffix(dir, ":") {
		dir = p[:i+1]
	}
	return dir, p[i+1:]
}

// Stat returns the listing entry of one file (through ls of its parent).
// A missing file is a *hub.AgentError "no such file: <path>" of kind
// protocol.KindNotFound.
func (s *Service) Stat(ctx context.Context, agentID, path string) (protocol.FileInfo, error) {
	dir, name := splitPath(path)
	files, err := s.Ls(ctx, agentID, dir)
	if err != nil {
		return protocol.FileInfo{}, err
	}
	for _, f := range files {
		if f.Name == name {
			return f, nil
		}
	}
	return protocol.FileInfo{}, &hub.AgentError{AgentID: agentID, Msg: "no such file: " + path, Kind: protocol.KindNotFound}
}

// UploadSpec says where and how a file is written on the agent.
type UploadSpec struct {
	Dir      string // target directory; protocol.UploadTmpDir = the agent's temp dir
	Name     string // plain file name
	Mod      os.FileMode
	OwnUser  string
	OwnGroup string
	Auth     string
	User     string
	Pass     string // never stored or logged
}

// Upload writes src to the agent and returns the full path written. Files
// up to protocol.MaxInlineUpload go inline to agents without bulk.v1;
// everything else by a one-shot URL the agent GETs. An agent-side failure
// is a *hub.AgentError.
func (s *Service) Upload(ctx context.Context, agentID string, spec UploadSpec, src *Spool) (string, error) {
	if err := ValidName(spec.Name); err != nil {
		return "", err
	}
	sess, ok := s.hub.Session(agentID)
	if !ok {
		return "", fmt.Errorf("upload to agent %s: %w", agentID, hub.ErrAgentNotFound)
	}
	up := uploadMsg(spec)
	up.Size, up.MD5, up.MD5Check = uint64(src.Size), src.MD5, src.Size > 0
	if !sess.HasCap(protocol.CapBulk) && src.Size <= protocol.MaxInlineUpload {
		b := make([]byte, src.Size)
		if _, err := src.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("upload to agent %s: read spool: %w", agentID, err)
		}
		up.Data = compress.Encode(b)
	} else {
		t := s.xfers.add(&transfer{src: src, size: src.Size}, s.o.TransferTTL)
		defer s.xfers.remove(t)
		up.URI, up.Token = TransferPath+t.id, t.token
	}
	return s.callUpload(ctx, sess, spec.Name, up)
}

// uploadMsg is the upload message of spec, without the bytes.
func uploadMsg(spec UploadSpec) *protocol.Upload {
	pass := spec.Pass
	if pass != "" && !strings.HasPrefix(pass, "$0$") && !strings.HasPrefix(pass, "$1$") {
		pass = protocol.EncodePass(pass)
	}
	return &protocol.Upload{
		Dir: spec.Dir, Name: spec.Name, Auth: spec.Auth, User: spec.User, Pass: pass, Mod: spec.Mod,
		OwnUser: spec.OwnUser, OwnGroup: spec.OwnGroup,
	}
}

// callUpload sends up and waits for the agent's reply.
func (s *Service) callUpload(ctx context.Context, sess *hub.Session, name string, up *protocol.Upload) (string, error) {
	agentID := sess.ID()
	rep, err := sess.Call(ctx, &protocol.Msg{Type: protocol.TypeUpload, Payload: up})
	if err != nil {
		return "", fmt.Errorf("upload %s to agent %s: %w", name, agentID, err)
	}
	if rep.Type != protocol.TypeUploadRep || rep.UploadRep() == nil {
		return "", fmt.Errorf("upload to agent %s: unexpected reply type %d", agentID, rep.Type)
	}
	if !rep.UploadRep().OK {
		return "", sess.AgentError(rep.TID, rep.UploadRep().Msg, rep.UploadRep().Kind)
	}
	return rep.UploadRep().Dir, nil
}

// PendingUpload is an upload started by StartUpload: the agent is
// reading the spool while it still fills.
type PendingUpload struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when path and err are set
	path   string
	err    error
}

// StartUpload starts writing sp, a spool still being filled by
// NewLiveSpool, to agentID, which must have bulk.v1: the agent GETs a
// one-shot URL whose chunked body follows the spool as it grows, without
// a size or MD5 announced. The body ends only when sp is released (the
// caller found it good); sp.Abort (or Close) breaks it, so the agent
// fails the upload and leaves any existing file as it was. ctx bounds the
// whole upload. Wait for the result.
func (s *Service) StartUpload(ctx context.Context, agentID string, spec UploadSpec, sp *Spool) (*PendingUpload, error) {
	if err := ValidName(spec.Name); err != nil {
		return nil, err
	}
	if sp.live == nil {
		return nil, fmt.Errorf("upload to agent %s: %w", agentID, fault.Invalidf(ErrInvalid, "the spool cannot be followed"))
	}
	sess, ok := s.hub.Session(agentID)
	if !ok {
		return nil, fmt.Errorf("upload to agent %s: %w", agentID, hub.ErrAgentNotFound)
	}
	if !sess.HasCap(protocol.CapBulk) {
		return nil, fmt.Errorf("upload to agent %s: %w", agentID, fault.Invalidf(ErrInvalid, "the agent lacks %s", protocol.CapBulk))
	}
	up := uploadMsg(spec)
	t := s.xfers.add(&transfer{follow: sp}, s.o.TransferTTL)
	up.URI, up.Token = TransferPath+t.id, t.token
	ctx, cancel := context.WithCancel(ctx)
	p := &PendingUpload{cancel: cancel, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(p.done)
		defer s.xfers.remove(t)
		p.path, p.err = s.callUpload(ctx, sess, spec.Name, up)
	}()
	return p, nil
}

// Wait returns the full path written, or why the upload failed (an
// agent-side failure is a *hub.AgentError). When ctx ends first, the
// upload is cancelled and Wait returns ctx's error.
func (p *PendingUpload) Wait(ctx context.Context) (string, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		p.cancel()
		<-p.done
		return "", fmt.Errorf("upload: %w", ctx.Err())
	}
	p.cancel()
	return p.path, p.err
}

// Download is a file coming from an agent. Offset, Size and Total are
// known when Download returns; WriteTo then copies the bytes exactly once.
type Download struct {
	Path    string
	agentID string
	sess    *hub.Session
	Offset  int64 // first byte of the body in the file
	Size    int64 // bytes of the body; -1 when the agent did not say
	Total   int64 // file size; -1 when unknown (a range of a bulk.v1 download)

	svc    *Service
	cancel context.CancelFunc
	st     *hub.Stream
	// bulk.v1
	inc  *incoming
	xfer *transfer
	rep  chan recvResult
	// v1
	spool *Spool

	closeOnce sync.Once
}

type recvResult struct {
	m   *protocol.Msg
	err error
}

// Download asks the agent for path from offset off, length bytes (0: to
// the end). It returns when the bytes start flowing: with bulk.v1 when the
// agent's PUT arrived (the body is piped, nothing is spooled); with v1
// agents after every block was written to a spool file in the cache dir
// and the MD5 checked (ErrChecksum on mismatch). ctx bounds the whole
// transfer, WriteTo included. An offset beyond the end is ErrRange (v1; a
// bulk.v1 agent reports it as an AgentError). Close always.
func (s *Service) Download(ctx context.Context, agentID, path string, off, length int64) (*Download, error) {
	if off < 0 || length < 0 {
		return nil, fault.Invalidf(ErrInvalid, "negative range")
	}
	sess, ok := s.hub.Session(agentID)
	if !ok {
		return nil, fmt.Errorf("download from agent %s: %w", agentID, hub.ErrAgentNotFound)
	}
	ctx, cancel := context.WithCancel(ctx)
	d := &Download{Path: path, agentID: agentID, sess: sess, Offset: off, Size: -1, Total: -1, svc: s, cancel: cancel}
	var err error
	if sess.HasCap(protocol.CapBulk) {
		err = d.startBulk(ctx, sess, off, length)
	} else {
		err = d.startV1(ctx, sess, off, length)
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("download %s from agent %s: %w", path, agentID, err)
	}
	return d, nil
}

func (d *Download) startBulk(ctx context.Context, sess *hub.Session, off, length int64) error {
	s := d.svc
	d.xfer = s.xfers.add(&transfer{put: make(chan *incoming)}, s.o.TransferTTL)
	st, err := sess.Stream(ctx, &protocol.Msg{Type: protocol.TypeDownloadReq, Payload: &protocol.DownloadReq{
		Dir: d.Path, URI: TransferPath + d.xfer.id, Token: d.xfer.token, Offset: uint64(off), Length: uint64(length),
	}})
	if err != nil {
		return err
	}
	d.st = st
	d.rep = make(chan recvResult, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		m, err := st.Recv(ctx)
		d.rep <- recvResult{m, err}
	}()
	select {
	case d.inc = <-d.xfer.put:
	case r := <-d.rep:
		if r.err != nil {
			return r.err
		}
		return repError(sess, r.m)
	case <-ctx.Done():
		return ctx.Err()
	}
	d.Size = d.inc.length
	if d.Size >= 0 && (length == 0 || d.Size < length) {
		d.Total = off + d.Size
	}
	return nil
}

// repError turns a download_rep that is not a success into an error.
func repError(sess *hub.Session, m *protocol.Msg) error {
	if m.Type == protocol.TypeDownloadRep && m.DownloadRep() != nil && !m.DownloadRep().OK {
		return sess.AgentError(m.TID, m.DownloadRep().Msg, m.DownloadRep().Kind)
	}
	if m.Type == protocol.TypeDownloadError && m.DownloadError() != nil {
		return sess.AgentError(m.TID, m.DownloadError().Msg, m.DownloadError().Kind)
	}
	return fmt.Errorf("unexpected reply type %d", m.Type)
}

func (d *Download) startV1(ctx context.Context, sess *hub.Session, off, length int64) error {
	s := d.svc
	st, err := sess.Stream(ctx, &protocol.Msg{Type: protocol.TypeDownloadReq, Payload: &protocol.DownloadReq{Dir: d.Path}})
	if err != nil {
		return err
	}
	d.st = st
	m, err := st.Recv(ctx)
	if err != nil {
		return err
	}
	if m.Type != protocol.TypeDownloadRep || m.DownloadRep() == nil || !m.DownloadRep().OK {
		return repError(sess, m)
	}
	rep := m.DownloadRep()
	size := int64(rep.Size)
	if size < 0 {
		return fmt.Errorf("bad size %d", rep.Size)
	}
	f, err := os.CreateTemp(s.o.CacheDir, "download-*")
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	d.spool = &Spool{f: f, Size: size}
	h := md5.New()
	var inOrder int64 // bytes hashed so far, while blocks come in order
	var got int64
	for got < size {
		m, err := st.Recv(ctx)
		if err != nil {
			return err
		}
		if m.Type != protocol.TypeDownloadData || m.DownloadData() == nil {
			return repError(sess, m)
		}
		bo := int64(m.DownloadData().Offset)
		if bo < 0 || bo >= size {
			return fmt.Errorf("block at offset %d outside the file (%d bytes)", bo, size)
		}
		b, err := compress.Decode(m.DownloadData().Data, size-bo)
		if err != nil {
			return fmt.Errorf("bad block at offset %d: %w", bo, err)
		}
		if len(b) == 0 {
			return fmt.Errorf("empty block at offset %d", bo)
		}
		if _, err := f.WriteAt(b, bo); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if bo == inOrder {
			h.Write(b)
			inOrder += int64(len(b))
		} else {
			inOrder = -1
		}
		got += int64(len(b))
	}
	st.Close()
	if inOrder != size { // out of order: hash the file
		h = md5.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	if !bytes.Equal(h.Sum(nil), rep.MD5[:]) {
		return ErrChecksum
	}
	d.Total = size
	if off > size || off == size && size > 0 {
		return ErrRange
	}
	n := size - off
	if length > 0 && length < n {
		n = length
	}
	d.Size = n
	return nil
}

// WriteTo copies the body to w. For bulk.v1 it then waits for the agent's
// download_rep and checks size and MD5: a mismatch is ErrChecksum (the
// bytes are already written: the caller must abort its response).
func (d *Download) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, copyBuf)
	if d.spool != nil {
		return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{io.NewSectionReader(d.spool.f, d.Offset, d.Size)}, buf)
	}
	if d.inc == nil {
		return 0, fmt.Errorf("download %s: %w", d.Path, ErrTransferAborted)
	}
	h := md5.New()
	hw := &holdBack{w: w}
	n, err := io.CopyBuffer(hw, struct{ io.Reader }{io.TeeReader(d.inc.body, hashWriter{h})}, buf)
	if err == nil && d.Size >= 0 && n != d.Size {
		err = fmt.Errorf("%w: body of %d bytes, announced %d", ErrChecksum, n, d.Size)
	}
	d.inc.done <- err
	d.inc = nil
	if err != nil {
		return n, fmt.Errorf("download %s: %w", d.Path, err)
	}
	r := <-d.rep
	if r.err != nil {
		return n, fmt.Errorf("download %s: %w", d.Path, r.err)
	}
	m := r.m
	if m.Type != protocol.TypeDownloadRep || m.DownloadRep() == nil || !m.DownloadRep().OK {
		return n, fmt.Errorf("download %s: %w", d.Path, repError(d.sess, m))
	}
	if int64(m.DownloadRep().Size) != n || !bytes.Equal(h.Sum(nil), m.DownloadRep().MD5[:]) {
		return n, fmt.Errorf("download %s: %w (%d bytes received, agent sent %d)", d.Path, ErrChecksum, n, m.DownloadRep().Size)
	}
	if err := hw.release(); err != nil {
		return n, fmt.Errorf("download %s: %w", d.Path, err)
	}
	return n, nil
}

// holdBack writes everything but the last byte until release: a body
// found bad after streaming then ends one byte short of its
// Content-Length, so the client cannot take it for a whole one.
type holdBack struct {
	w    io.Writer
	last []byte // 0 or 1 byte
}

func (hb *holdBack) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(hb.last) == 1 {
		if _, err := hb.w.Write(hb.last); err != nil {
			return 0, err
		}
	}
	if _, err := hb.w.Write(p[:len(p)-1]); err != nil {
		return 0, err
	}
	hb.last = append(hb.last[:0], p[len(p)-1])
	return len(p), nil
}

func (hb *holdBack) release() error {
	if len(hb.last) == 0 {
		return nil
	}
	_, err := hb.w.Write(hb.last)
	hb.last = nil
	return err
}

type hashWriter struct{ h hash.Hash }

func (w hashWriter) Write(p []byte) (int, error) { return w.h.Write(p) }

// Close releases the download: the stream, the transfer URL, the spool
// file. A PUT body not consumed is refused.
func (d *Download) Close() {
	d.closeOnce.Do(func() {
		if d.inc != nil {
			d.inc.done <- ErrTransferAborted
		}
		if d.xfer != nil {
			d.svc.xfers.remove(d.xfer)
		}
		d.cancel()
		if d.st != nil {
			d.st.Close()
		}
		if d.spool != nil {
			d.spool.Close()
		}
	})
}
