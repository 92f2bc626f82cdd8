package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/exec-agent/internal/files"
)

// errUploadDone stops a fetch whose body the upload no longer reads.
var errUploadDone = errors.New("upload ended before the body was read")

// ls lists a directory.
func (a *agent) ls(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
	dir := req.LsReq().Dir
	list, err := a.fs.List(dir)
	rep := &protocol.LsRep{Dir: dir, OK: err == nil, Files: list}
	if err != nil {
		rep.Msg, rep.Kind = err.Error(), kindOf(err)
	}
	return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeLsRep, Payload: rep})
}

// upload writes a file sent inline or fetched from the server's uri.
func (a *agent) upload(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
	up := req.Upload()
	spec := files.UploadSpec{
		Dir: up.Dir, Name: up.Name,
		Mode:    wireMode(up.Mod),
		OwnUser: up.OwnUser, OwnGroup: up.OwnGroup,
		Size: up.Size, MD5: up.MD5, MD5Check: up.MD5Check,
	}
	if up.Auth != "" && spec.OwnUser == "" {
		// v1 wrote the file as that user; we write it and hand it over.
		spec.OwnUser = up.User
	}
	path, err := a.uploadBody(ctx, spec, up)
	rep := &protocol.UploadRep{Dir: path, OK: err == nil}
	if err != nil {
		var oe *files.OwnerError
		if errors.As(err, &oe) && oe.Field == "own_user" && up.OwnUser == "" {
			oe.Field = "user" // the owner came from the auth user
			err = fmt.Errorf("upload: %w", oe)
		}
		rep.Msg, rep.Kind = err.Error(), kindOf(err)
		a.rt.Logger().Info("upload failed", "tid", req.TID, "dir", up.Dir, "name", up.Name, "err", err)
	}
	return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeUploadRep, Payload: rep})
}

// wireMode is the mode of an upload message: os.FileMode permission bits
// and os.ModeSetuid, os.ModeSetgid, os.ModeSticky. Servers that sent the
// Unix octal bits 04000, 02000, 01000 instead (bits os.FileMode leaves
// unused) mean the same, and are read so.
func wireMode(m os.FileMode) os.FileMode {
	out := m & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

func (a *agent) uploadBody(ctx context.Context, spec files.UploadSpec, up *protocol.Upload) (string, error) {
	// Refuse a bad name or directory before anything is fetched.
	if err := files.ValidName(spec.Name); err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	if spec.Dir != protocol.UploadTmpDir {
		if _, err := files.CleanPath(spec.Dir); err != nil {
			return "", fmt.Errorf("upload: %w", err)
		}
	}
	switch {
	case up.URI != "":
		return a.uploadFetched(ctx, spec, up.URI, up.Token)
	case up.Data != "":
		b, err := files.DecodeInline(up.Data)
		if err != nil {
			return "", fmt.Errorf("upload %s: %w", spec.Name, err)
		}
		return a.fs.Upload(ctx, spec, bytes.NewReader(b))
	default: // an empty file
		return a.fs.Upload(ctx, spec, bytes.NewReader(nil))
	}
}

// uploadFetched streams the body of GET uri into the upload: no more than
// a pipe's buffer of it is in memory at any time.
func (a *agent) uploadFetched(ctx context.Context, spec files.UploadSpec, uri, token string) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := a.rt.Fetch(ctx, uri, token, pw)
		pw.CloseWithError(err) // nil: EOF
	})
	path, err := a.fs.Upload(ctx, spec, pr)
	cancel()
	pr.CloseWithError(errUploadDone)
	wg.Wait()
	return path, err
}

// download sends a file: PUT to the server's uri with bulk.v1, else v1
// download_data blocks.
func (a *agent) download(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
	dr := req.DownloadReq()
	fail := func(err error) error {
		a.rt.Logger().Info("download failed", "tid", req.TID, "path", dr.Dir, "err", err)
		return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeDownloadRep, Payload: &protocol.DownloadRep{Dir: dr.Dir, Msg: err.Error(), Kind: kindOf(err)}})
	}
	f, err := files.Open(dr.Dir)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	if dr.URI != "" && a.rt.HasCap(protocol.CapBulk) {
		return a.downloadBulk(ctx, req, w, f, fail)
	}

	sum, err := f.Sum(ctx)
	if err != nil {
		return fail(err)
	}
	err = w.Reply(ctx, &protocol.Msg{Type: protocol.TypeDownloadRep, Payload: &protocol.DownloadRep{
		Dir: dr.Dir, OK: true, Size: uint64(f.Size()), BlockSize: protocol.DefaultBlockSize, MD5: sum,
	}})
	if err != nil {
		return err
	}
	var sendErr error
	err = f.Blocks(ctx, protocol.DefaultBlockSize, sum, func(b protocol.DownloadData) error {
		sendErr = w.Reply(ctx, &protocol.Msg{Type: protocol.TypeDownloadData, Payload: &b})
		return sendErr
	})
	if err == nil || sendErr != nil {
		return sendErr // a connection that cannot take blocks cannot take an error either
	}
	a.rt.Logger().Info("download aborted", "tid", req.TID, "path", dr.Dir, "err", err)
	return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeDownloadError, Payload: &protocol.DownloadError{Msg: err.Error(), Kind: kindOf(err)}})
}

// downloadBulk PUTs the requested range to the server, then reports what
// was sent.
func (a *agent) downloadBulk(ctx context.Context, req *protocol.Msg, w libagent.Replier, f *files.Download, fail func(error) error) error {
	dr := req.DownloadReq()
	sec, err := f.Section(int64(dr.Offset), int64(dr.Length))
	if err != nil {
		return fail(err)
	}
	body := &fencedReader{r: sec}
	err = a.rt.Put(ctx, dr.URI, dr.Token, body, sec.Len())
	// net/http may still be reading the body after the response came
	// (a server that answers early): nothing reads the section after this.
	body.fence()
	if err != nil {
		return fail(fmt.Errorf("upload to server: %w", protocol.WithKind("", err)))
	}
	sum, err := sec.Sum()
	if err != nil {
		return fail(err)
	}
	rep := &protocol.DownloadRep{Dir: dr.Dir, OK: true, Size: uint64(sec.Len()), MD5: sum}
	if dr.Offset > 0 || dr.Length > 0 {
		rep.Total = uint64(f.Size())
	}
	return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeDownloadRep, Payload: rep})
}

// errFenced: a read after the transfer that owned the reader was over.
var errFenced = errors.New("transfer over")

// fencedReader lets reads through until fence is called, and none after.
type fencedReader struct {
	mu     sync.Mutex
	r      io.Reader
	closed bool
}

func (f *fencedReader) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, errFenced
	}
	return f.r.Read(p)
}

// fence waits for a read in progress and makes later reads fail.
func (f *fencedReader) fence() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}
