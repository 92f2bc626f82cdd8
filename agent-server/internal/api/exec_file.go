package api

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	japi "github.com/agentfleet/jkframe/api"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/egress"
	"github.com/agentfleet/agent-server/internal/execsvc"
	"github.com/agentfleet/agent-server/internal/fault"
)

// FileEntry is one entry of GET /api/file/{id}/ls: 1.5's fields with its
// JSON types, and the readable forms beside them.
type FileEntry struct {
	Name       string    `json:"name"`
	Auth       uint32    `json:"auth"` // Go os.FileMode as a number, type bits included (a 0700 directory is 2147484096), as 1.5
	Mode       string    `json:"mode"` // the same as text, e.g. drwx------
	Perm       string    `json:"perm"` // permission bits in octal, e.g. 0700
	User       string    `json:"user"`
	Group      string    `json:"group"`
	Size       uint64    `json:"size"`
	ModTime    int64     `json:"mod_time"` // unix seconds, as 1.5
	ModifiedAt time.Time `json:"modified_at"`
	IsDir      bool      `json:"is_dir"`
	IsLink     bool      `json:"is_link"`
	LinkDir    string    `json:"link_dir"`
}

func (x *execRoutes) ls(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	id := p.Path("id")
	dir := p.Required("dir")
	c, err := x.s.startCall(r, p, id, ExecAgent)
	if err != nil {
		return err
	}
	defer c.cancel()
	files, err := x.svc.Ls(c.ctx, id, dir)
	if err != nil {
		return c.fail(err)
	}
	out := make([]FileEntry, 0, len(files))
	for _, f := range files {
		out = append(out, FileEntry{
			Name: f.Name, Auth: uint32(f.Mod), Mode: f.Mod.String(), Perm: fmt.Sprintf("%04o", uint32(f.Mod.Perm())),
			User: f.User, Group: f.Group, Size: f.Size, ModTime: unix(f.ModTime), ModifiedAt: f.ModTime,
			IsDir: f.Mod.IsDir(), IsLink: f.IsLink || f.Mod&os.ModeSymlink != 0, LinkDir: f.LinkDir,
		})
	}
	japi.OK(w, r, out)
	return nil
}

const defaultDownloadTimeout = 600 * time.Second

func (x *execRoutes) download(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	id := p.Path("id")
	file := p.Required("dir")
	timeout := p.Duration("timeout", defaultDownloadTimeout, time.Second, x.maxTimeout())
	if err := p.Err(); err != nil {
		return err
	}
	rng, ranged, err := parseRange(r.Header.Get("Range"))
	if r.Header.Get("Range") == "" {
		ranged, err = false, nil
	}
	if err != nil {
		return &japi.Error{Code: http.StatusRequestedRangeNotSatisfiable, Msg: err.Error()}
	}
	if err := x.s.agentType(id, ExecAgent); err != nil {
		return err
	}
	if !x.svc.HasCap(id, protocol.CapBulk) && x.s.o.Blocking() {
		return errDiskFull
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	var off, length, total int64 = 0, 0, -1
	if ranged {
		fi, err := x.svc.Stat(ctx, id, file)
		if err != nil {
			return x.err(ctx, timeout, err)
		}
		total = int64(fi.Size)
		var ok bool
		if off, length, ok = rng.resolve(total); !ok {
			w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(total, 10))
			return &japi.Error{Code: http.StatusRequestedRangeNotSatisfiable, Msg: fmt.Sprintf("range not satisfiable: the file has %d bytes", total)}
		}
	}
	d, err := x.svc.Download(ctx, id, file, off, length)
	if err != nil {
		return x.err(ctx, timeout, err)
	}
	defer d.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	_, name := path.Split(strings.ReplaceAll(file, `\`, "/"))
	if name == "" {
		name = "download"
	}
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	if d.Size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(d.Size, 10))
	}
	status := http.StatusOK
	if ranged {
		if total < 0 {
			total = d.Total
		}
		end := off + d.Size - 1
		tot := "*"
		if total >= 0 {
			tot = strconv.FormatInt(total, 10)
		}
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%s", off, end, tot))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	if _, err := d.WriteTo(w); err != nil {
		x.s.log.Warn("download aborted", "agent", id, "file", file, "reqid", japi.RequestIDFrom(r.Context()), "err", err)
		panic(http.ErrAbortHandler) // never let a client take a bad body for a whole one
	}
	return nil
}

// form is a multipart body read as a stream: the file part spooled to the
// cache dir (with its MD5 and CRC-32C), the other parts kept as values.
type form struct {
	spool     *execsvc.Spool
	crc32c    uint32 // of the spool's bytes
	fileName  string
	afterFile bool // a value came after the file part
}

// castagnoli is the CRC-32C table: hardware-computed on amd64 and arm64,
// so checking an upload costs a few milliseconds per 200 MB where an MD5
// costs a quarter of a second.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (f *form) close() {
	if f.spool != nil {
		f.spool.Close()
	}
}

// readForm reads r's multipart body; afterwards japi.Params sees its
// values. The file part is limited to limit bytes.
func (x *execRoutes) readForm(r *http.Request, limit int64) (*form, error) {
	return x.readFormFollowed(r, limit, nil)
}

// readFormFollowed is readForm that lets the file part be followed while
// it is spooled: atFile, when not nil, is called as the file part starts,
// with japi.Params seeing the values before it (and the query), and
// returns the grown callback of execsvc.NewLiveSpool, or nil.
func (x *execRoutes) readFormFollowed(r *http.Request, limit int64, atFile func(fileName string) func(*execsvc.Spool, int64)) (*form, error) {
	mr, err := multipartReader(r)
	if err != nil {
		return nil, &japi.Error{Code: http.StatusBadRequest, Msg: "invalid multipart body: " + err.Error()}
	}
	f := &form{}
	values := map[string][]string{}
	r.MultipartForm = &multipart.Form{Value: values}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.close()
			return nil, bodyErr(err)
		}
		name := part.FormName()
		if name == "file" {
			if f.spool != nil {
				f.close()
				return nil, japi.BadParam("file", "only one file per request")
			}
			f.fileName = part.FileName()
			var grown func(*execsvc.Spool, int64)
			if atFile != nil {
				grown = atFile(f.fileName)
			}
			crc := crc32.New(castagnoli)
			if f.spool, err = execsvc.NewLiveSpool(x.svc.CacheDir(), io.TeeReader(part, crc), limit, grown); err != nil {
				f.close()
				if errors.Is(err, execsvc.ErrTooLarge) {
					return nil, &japi.Error{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("file too large (limit %d bytes)", limit)}
				}
				return nil, bodyErr(err)
			}
			f.crc32c = crc.Sum32()
			continue
		}
		b, err := io.ReadAll(io.LimitReader(part, maxFieldSize+1))
		if err != nil {
			f.close()
			return nil, bodyErr(err)
		}
		if len(b) > maxFieldSize {
			f.close()
			return nil, japi.BadParam(name, fmt.Sprintf("value longer than %d bytes", maxFieldSize))
		}
		values[name] = append(values[name], string(b))
		f.afterFile = f.afterFile || f.spool != nil
	}
	return f, nil
}

// formBuf is the read buffer of multipart bodies. mime/multipart reads
// through a 4 KiB buffer unless given a larger *bufio.Reader: 4 KiB reads
// of a large upload cost more in system calls than the copy itself.
const formBuf = 256 << 10

// multipartReader is r.MultipartReader with a formBuf read buffer.
func multipartReader(r *http.Request) (*multipart.Reader, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil, http.ErrNotMultipart
	}
	if r.MultipartForm != nil {
		return nil, errors.New("http: multipart handled by ParseMultipartForm")
	}
	d, params, err := mime.ParseMediaType(ct)
	if err != nil || d != "multipart/form-data" {
		return nil, http.ErrNotMultipart
	}
	boundary, ok := params["boundary"]
	if !ok {
		return nil, http.ErrMissingBoundary
	}
	return multipart.NewReader(bufio.NewReaderSize(r.Body, formBuf), boundary), nil
}

// bodyErr maps an error reading the request body.
func bodyErr(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &japi.Error{Code: http.StatusRequestEntityTooLarge, Msg: "request body too large (limit " + strconv.FormatInt(mbe.Limit, 10) + " bytes)"}
	}
	var ae *japi.Error
	if errors.As(err, &ae) {
		return err
	}
	if os.IsNotExist(err) || errors.Is(err, os.ErrPermission) {
		return err // cache dir trouble: a server fault
	}
	return &japi.Error{Code: http.StatusBadRequest, Msg: "invalid multipart body: " + err.Error(), Err: err}
}

// checkMD5 compares the spool with the md5 parameter (32 hex digits).
func checkMD5(want string, sp *execsvc.Spool) error {
	if want == "" {
		return nil
	}
	b, err := hex.DecodeString(want)
	if err != nil || len(b) != md5.Size {
		return japi.BadParam("md5", "must be 32 hex digits")
	}
	if [16]byte(b) != sp.MD5 {
		return &japi.Error{Code: http.StatusBadRequest, Msg: "md5 mismatch: the file's md5 is " + hex.EncodeToString(sp.MD5[:])}
	}
	return nil
}

// checkCRC32C compares the CRC-32C of the file with the crc32c parameter
// (8 hex digits, big-endian, as `crc32 -c`-style tools print it).
func checkCRC32C(want string, got uint32) error {
	if want == "" {
		return nil
	}
	b, err := hex.DecodeString(want)
	if err != nil || len(b) != 4 {
		return japi.BadParam("crc32c", "must be 8 hex digits")
	}
	if uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]) != got {
		return &japi.Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf("crc32c mismatch: the file's crc32c is %08x", got)}
	}
	return nil
}

// UploadReply is the payload of POST /api/file/{id}/upload: where the file
// went and the size and checksums of what the server received, so that a
// client can compare them with what it sent.
type UploadReply struct {
	Dir    string `json:"dir"` // full path written
	Size   int64  `json:"size"`
	MD5    string `json:"md5"`    // hex
	CRC32C string `json:"crc32c"` // 8 hex digits (Castagnoli)
}

type uploadAudit struct {
	Dir     string `json:"dir"`
	Name    string `json:"name"`
	URL     string `json:"url,omitempty"`
	Size    int64  `json:"size"`
	MD5     string `json:"md5"`
	Mod     string `json:"mod"`
	OwnUser string `json:"own_user,omitempty"`
	Auth    string `json:"auth,omitempty"`
	User    string `json:"user,omitempty"`
}

// followAfter is how much of an upload must have arrived before the agent
// starts reading it (bulk.v1 agents only): smaller files go after the
// MD5 check, with their size and MD5 announced to the agent.
const followAfter = 4 << 20

// uploadParams are the parameters of an upload but the file.
type uploadParams struct {
	dir, rawURL, md5hex, crc32c, name string
	mod                               uint64
	ownUser, ownGroup                 string
	auth, user, pass                  string
	timeout                           time.Duration
}

// uploadParams reads and checks the parameters; name defaults to the
// file part's name.
func (x *execRoutes) uploadParams(r *http.Request, fileName string) (uploadParams, error) {
	p := japi.Params(r)
	var u uploadParams
	u.dir = p.Required("dir")
	u.rawURL = p.String("url", "")
	u.md5hex = p.String("md5", "")
	u.crc32c = p.String("crc32c", "")
	modText := p.String("mod", "0644")
	u.ownUser, u.ownGroup = p.String("own_user", ""), p.String("own_group", "")
	u.auth = p.OneOf("auth", "", protocol.AuthSu, protocol.AuthSudo)
	u.user, u.pass = p.String("user", ""), p.String("pass", "")
	u.name = p.String("name", "")
	u.timeout = x.s.timeout(p)
	if err := p.Err(); err != nil {
		return u, err
	}
	mod, err := strconv.ParseUint(modText, 8, 32)
	if err != nil || mod > 0o7777 {
		return u, japi.BadParam("mod", "must be an octal file mode like 0644")
	}
	u.mod = mod
	if u.auth != "" && u.user == "" {
		return u, japi.MissingParam("user")
	}
	if u.name == "" && u.rawURL == "" {
		u.name = fileName
	}
	return u, nil
}

func (u uploadParams) spec() execsvc.UploadSpec {
	return execsvc.UploadSpec{
		Dir: u.dir, Name: u.name, Mod: fileMode(u.mod), OwnUser: u.ownUser, OwnGroup: u.ownGroup, Auth: u.auth, User: u.user, Pass: u.pass,
	}
}

// fileMode turns a Unix mode (octal 0–7777) into the os.FileMode of the
// upload message: permission bits, and setuid, setgid and sticky as
// os.ModeSetuid, os.ModeSetgid, os.ModeSticky (os.FileMode(04000) would
// mean nothing, and the bits were silently lost).
func fileMode(m uint64) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// followed is an upload the agent reads while the client still sends it.
type followed struct {
	p      *execsvc.PendingUpload
	sp     *execsvc.Spool
	params uploadParams // those it was started with
}

// errUploadAbandoned breaks a followed upload the server did not accept.
var errUploadAbandoned = errors.New("upload not accepted by the server")

// abandon breaks the agent's transfer and waits (up to timeout) for the
// agent to report its failure, so that its temporary file is gone when
// the client gets the answer.
func (fu *followed) abandon(ctx context.Context, timeout time.Duration) {
	if fu.p == nil {
		return
	}
	fu.sp.Abort(errUploadAbandoned)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	_, _ = fu.p.Wait(ctx)
	fu.p = nil
}

func (x *execRoutes) upload(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := x.s.agentType(id, ExecAgent); err != nil {
		return err
	}
	limit := int64(x.s.o.Config.API.UploadMaxBody)
	var fu followed
	defer fu.abandon(r.Context(), time.Duration(x.s.o.Config.API.Timeout))
	f, err := x.readFormFollowed(r, limit, func(fileName string) func(*execsvc.Spool, int64) {
		return x.follow(r, id, fileName, &fu)
	})
	if err != nil {
		return err
	}
	defer func() {
		fu.abandon(r.Context(), time.Duration(x.s.o.Config.API.Timeout)) // before the spool goes
		f.close()
	}()
	u, err := x.uploadParams(r, f.fileName)
	if err != nil {
		return err
	}
	if fu.p != nil && f.afterFile {
		a, b := u, fu.params
		a.md5hex, a.crc32c, a.timeout, b.md5hex, b.crc32c, b.timeout = "", "", 0, "", "", 0
		if a != b { // changed by values after the file: start again
			fu.abandon(r.Context(), u.timeout)
		}
	}
	switch {
	case f.spool == nil && u.rawURL == "":
		return japi.MissingParam("file")
	case f.spool != nil && u.rawURL != "":
		return japi.BadParam("url", "give either file or url, not both")
	}
	ctx, cancel := context.WithTimeout(r.Context(), u.timeout)
	defer cancel()
	if u.rawURL != "" {
		pu, err := url.Parse(u.rawURL)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return japi.BadParam("url", "must be an http or https URL")
		}
		if u.name == "" {
			_, u.name = path.Split(pu.Path)
		}
		if f.spool, f.crc32c, err = x.fetch(ctx, pu, limit); err != nil {
			return err
		}
	}
	if err := execsvc.ValidName(u.name); err != nil {
		return japi.BadParam("name", fault.Message(err))
	}
	if err := checkMD5(u.md5hex, f.spool); err != nil {
		return err
	}
	if err := checkCRC32C(u.crc32c, f.crc32c); err != nil {
		return err
	}
	SetAudit(r, "", uploadAudit{Dir: u.dir, Name: u.name, URL: u.rawURL, Size: f.spool.Size, MD5: hex.EncodeToString(f.spool.MD5[:]),
		Mod: fmt.Sprintf("%04o", u.mod), OwnUser: u.ownUser, Auth: u.auth, User: u.user})
	var full string
	if fu.p != nil {
		f.spool.Release()
		full, err = fu.p.Wait(ctx)
		fu.p = nil
	} else {
		full, err = x.svc.Upload(ctx, id, u.spec(), f.spool)
	}
	if err != nil {
		return x.err(ctx, u.timeout, err)
	}
	japi.OK(w, r, UploadReply{Dir: full, Size: f.spool.Size, MD5: hex.EncodeToString(f.spool.MD5[:]), CRC32C: fmt.Sprintf("%08x", f.crc32c)})
	return nil
}

// follow returns the grown callback that starts the agent's transfer of a
// file part once followAfter bytes have arrived, when the agent has
// bulk.v1 and the values before the file part make a valid upload;
// otherwise nil (the file goes to the agent after it is whole).
func (x *execRoutes) follow(r *http.Request, id, fileName string, fu *followed) func(*execsvc.Spool, int64) {
	if !x.svc.HasCap(id, protocol.CapBulk) {
		return nil
	}
	u, err := x.uploadParams(r, fileName)
	if err != nil || u.rawURL != "" || execsvc.ValidName(u.name) != nil {
		return nil
	}
	if u.md5hex != "" {
		if b, err := hex.DecodeString(u.md5hex); err != nil || len(b) != md5.Size {
			return nil
		}
	}
	tried := false
	return func(sp *execsvc.Spool, n int64) {
		if tried || n <= followAfter {
			return
		}
		tried = true
		p, err := x.svc.StartUpload(r.Context(), id, u.spec(), sp)
		if err != nil {
			x.s.log.Info("upload: agent cannot follow the spool, sending it whole", "agent", id, "err", err)
			return
		}
		fu.p, fu.sp, fu.params = p, sp, u
	}
}

// fetchClient is the client of upload URLs: it connects only where
// api.url_allow / api.url_deny let it (egress), checked at each dial and
// redirect, never through a proxy.
func fetchClient(c *config.Config) *http.Client {
	allow, deny := []string(nil), egress.DefaultDeny
	if c != nil {
		allow, deny = c.API.URLAllow, c.API.URLDeny
	}
	p, err := egress.New(allow, deny)
	if err != nil { // config.check refuses such lists; stay closed anyway
		p, _ = egress.New(nil, egress.DefaultDeny)
	}
	return p.Client(5, time.Minute)
}

// fetch downloads an upload's url into a spool; it returns the spool's
// CRC-32C too.
func (x *execRoutes) fetch(ctx context.Context, u *url.URL, limit int64) (*execsvc.Spool, uint32, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, japi.BadParam("url", "must be an http or https URL")
	}
	resp, err := x.http.Do(req)
	var denied *egress.DeniedError
	if errors.As(err, &denied) {
		msg := denied.Error()
		if denied.Redirect != "" {
			msg = "a redirect went to a " + msg
		}
		return nil, 0, &japi.Error{Code: http.StatusBadRequest, Msg: "invalid parameter url: " + msg + " (api.url_allow, api.url_deny)", Err: err}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, &japi.Error{Code: http.StatusGatewayTimeout, Msg: "timeout: fetching url", Err: err}
		}
		return nil, 0, &japi.Error{Code: http.StatusBadGateway, Msg: "fetch url: " + err.Error(), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, &japi.Error{Code: http.StatusBadGateway, Msg: "fetch url: HTTP " + resp.Status}
	}
	if resp.ContentLength > limit {
		return nil, 0, &japi.Error{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("file too large (limit %d bytes)", limit)}
	}
	crc := crc32.New(castagnoli)
	sp, err := execsvc.NewSpool(x.svc.CacheDir(), io.TeeReader(resp.Body, crc), limit)
	if err != nil {
		if errors.Is(err, execsvc.ErrTooLarge) {
			return nil, 0, &japi.Error{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("file too large (limit %d bytes)", limit)}
		}
		return nil, 0, &japi.Error{Code: http.StatusBadGateway, Msg: "fetch url: " + err.Error(), Err: err}
	}
	return sp, crc.Sum32(), nil
}
