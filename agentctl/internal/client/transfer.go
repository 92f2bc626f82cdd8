package client

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentfleet/jkframe/hashcopy"
)

// copyBuf is the buffer of file copies: large enough that system calls
// do not dominate.
const copyBuf = 256 << 10

// UploadSpec says where an uploaded file goes.
type UploadSpec struct {
	Dir  string // created (0755) when missing
	Name string
	// Mode of the file; 0: the server's default (0644).
	Mode     fs.FileMode
	OwnUser  string
	OwnGroup string
	// NoChecksum: no checksum is computed, sent or compared (the server
	// still checks what it passes on to the agent).
	NoChecksum bool
}

// UploadResult is what the server wrote.
type UploadResult struct {
	Path   string // full path on the agent
	Size   int64  // bytes sent
	MD5    string // hex, of what the server received (the agent checks its file against it)
	CRC32C string // 8 hex digits, computed while sending; "" with NoChecksum
}

// castagnoli is the CRC-32C table. CRC-32C is the upload's end-to-end
// check (as in iSCSI, ext4 metadata or cloud object stores' upload
// checksums): computed by a hardware instruction on amd64 and arm64, it
// costs a few milliseconds per 200 MB where an MD5 costs a quarter of a
// second of CPU, which on a busy machine slowed uploads by 10-25 %.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Upload streams a file to an agent: the bytes go in one pass, their
// CRC-32C is computed on the way and sent after them, and the server
// refuses the upload when its own CRC-32C of what it received differs
// (400 crc32c mismatch) before the agent's file is replaced. The server's
// reply carries the size and checksums of what it received, and they are
// compared with what was sent too, so that a server that ignored the
// crc32c parameter cannot pass a damaged file off as good (an error
// wrapping ErrChecksum). The agent checks the file against the server's
// MD5 in turn. open returns the source for each attempt; oneShot says the
// source cannot be read twice (stdin), so a refused attempt is not
// retried. progress, when set, is called with the byte count as it grows.
func (c *Client) Upload(ctx context.Context, agent string, spec UploadSpec, open func() (io.Reader, error), oneShot bool, progress func(int64)) (UploadResult, error) {
	var (
		mu     sync.Mutex
		res    UploadResult
		bodies []*formBody
	)
	body := func() (io.Reader, error) {
		src, err := open()
		if err != nil {
			return nil, err
		}
		boundary := multipart.NewWriter(io.Discard).Boundary()
		fb := newFormBody(boundary, func(w io.Writer) error {
			mw := multipart.NewWriter(w)
			if err := mw.SetBoundary(boundary); err != nil {
				return err
			}
			n, sum, err := writeUploadForm(mw, spec, src, progress)
			if err == nil {
				mu.Lock()
				res.Size, res.CRC32C = n, sum
				mu.Unlock()
			}
			return err
		})
		mu.Lock()
		bodies = append(bodies, fb)
		mu.Unlock()
		return fb, nil
	}
	resp, err := c.Do(ctx, Request{Method: http.MethodPost, Path: "/api/file/" + url.PathEscape(agent) + "/upload",
		Stream: true, OneShot: oneShot, Body: body})
	mu.Lock()
	list := bodies
	mu.Unlock()
	for _, b := range list {
		b.finish()
	}
	mu.Lock()
	out := res
	mu.Unlock()
	if err != nil {
		return UploadResult{}, err
	}
	defer resp.Body.Close()
	var rep struct {
		Dir    string `json:"dir"`
		Size   *int64 `json:"size"`
		MD5    string `json:"md5"`
		CRC32C string `json:"crc32c"`
	}
	if err := decodePayload(resp, &rep); err != nil {
		return UploadResult{}, err
	}
	out.Path, out.MD5 = rep.Dir, rep.MD5
	if err := verifyUpload(out, spec.NoChecksum, rep.Size, rep.CRC32C); err != nil {
		return out, err
	}
	return out, nil
}

// verifyUpload compares what the server reports to have received with
// what was sent.
func verifyUpload(sent UploadResult, noChecksum bool, size *int64, crc string) error {
	if noChecksum {
		return nil
	}
	if size == nil || crc == "" {
		return fmt.Errorf("%w: the server did not report the size and CRC-32C of what it received (older than this agentctl?), so the upload %s is not verified; --no-checksum skips the check",
			ErrChecksum, sent.Path)
	}
	if *size != sent.Size {
		return fmt.Errorf("%w: sent %d bytes, the server received %d; %s is damaged", ErrChecksum, sent.Size, *size, sent.Path)
	}
	if !strings.EqualFold(crc, sent.CRC32C) {
		return fmt.Errorf("%w: sent crc32c %s, the server received %s; %s is damaged", ErrChecksum, sent.CRC32C, crc, sent.Path)
	}
	return nil
}

// errBodyClosed stops an upload body whose request is over.
var errBodyClosed = errors.New("upload request ended")

// formBody is an upload's multipart body, written once by write. The
// HTTP/1 transport copies a body with io.Copy: through WriteTo the form
// reaches the connection in copyBuf-sized chunks, where Read would go
// through io.Copy's 32 KiB buffer (more system calls than curl's 64 KiB
// writes, and one more copy). Read (HTTP/2) runs the same writer in a
// goroutine of ours through a pipe. The body is sent without a
// Content-Length (chunked): a length would hide WriteTo behind an
// io.LimitedReader.
type formBody struct {
	write func(io.Writer) error
	ct    string

	mu      sync.Mutex
	started bool
	pr      *io.PipeReader
	done    chan struct{} // closed when write returned
	stop    atomic.Bool
}

func newFormBody(boundary string, write func(io.Writer) error) *formBody {
	return &formBody{write: write, ct: "multipart/form-data; boundary=" + boundary, done: make(chan struct{})}
}

// ContentType is read by send.
func (b *formBody) ContentType() string { return b.ct }

func (b *formBody) begin() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return false
	}
	b.started = true
	return true
}

// WriteTo writes the whole form to w.
func (b *formBody) WriteTo(w io.Writer) (int64, error) {
	if !b.begin() {
		return 0, errors.New("upload body read twice")
	}
	defer close(b.done)
	sw := &stoppableWriter{w: w, stop: &b.stop}
	err := b.write(sw)
	return sw.n, err
}

func (b *formBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.pr == nil {
		if b.started {
			b.mu.Unlock()
			return 0, errors.New("upload body read twice")
		}
		b.started = true
		pr, pw := io.Pipe()
		b.pr = pr
		go func() { // waited for by finish
			defer close(b.done)
			pw.CloseWithError(b.write(&stoppableWriter{w: pw, stop: &b.stop}))
		}()
	}
	pr := b.pr
	b.mu.Unlock()
	return pr.Read(p)
}

// Close stops the writer at its next write.
func (b *formBody) Close() error {
	b.stop.Store(true)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pr != nil {
		b.pr.CloseWithError(errBodyClosed)
	}
	return nil
}

// finish stops the writer and waits until it returned. A WriteTo runs in
// the transport's goroutine and may sit in a write that the transport
// ends by closing the connection: that wait is bounded.
func (b *formBody) finish() {
	_ = b.Close()
	b.mu.Lock()
	started := b.started
	b.mu.Unlock()
	if !started {
		return
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-b.done:
	case <-t.C:
	}
}

// stoppableWriter counts the bytes and fails once stop is set.
type stoppableWriter struct {
	w    io.Writer
	stop *atomic.Bool
	n    int64
}

func (s *stoppableWriter) Write(p []byte) (int, error) {
	if s.stop.Load() {
		return 0, errBodyClosed
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

// writeUploadForm writes the multipart form: the parameters, the file,
// then its CRC-32C (known only at the end: the server accepts values
// after the file part).
func writeUploadForm(mw *multipart.Writer, spec UploadSpec, src io.Reader, progress func(int64)) (int64, string, error) {
	fields := [][2]string{{"dir", spec.Dir}, {"name", spec.Name}}
	if spec.Mode != 0 {
		fields = append(fields, [2]string{"mod", fmt.Sprintf("%04o", spec.Mode.Perm())})
	}
	if spec.OwnUser != "" {
		fields = append(fields, [2]string{"own_user", spec.OwnUser})
	}
	if spec.OwnGroup != "" {
		fields = append(fields, [2]string{"own_group", spec.OwnGroup})
	}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return 0, "", err
		}
	}
	fw, err := mw.CreateFormFile("file", spec.Name)
	if err != nil {
		return 0, "", err
	}
	if spec.NoChecksum {
		n, err := copyPlain(fw, src, progress)
		if err != nil {
			return n, "", err
		}
		return n, "", mw.Close()
	}
	crc := crc32.New(castagnoli)
	n, err := copyPlain(io.MultiWriter(fw, crc), src, progress)
	if err != nil {
		return n, "", err
	}
	sum := fmt.Sprintf("%08x", crc.Sum32())
	if err := mw.WriteField("crc32c", sum); err != nil {
		return n, "", err
	}
	return n, sum, mw.Close()
}

// Download is a file coming from an agent.
type Download struct {
	resp *http.Response
	// Size is the announced length (Content-Length), -1 when unknown.
	Size int64
}

// Download starts the download of path from an agent.
func (c *Client) Download(ctx context.Context, agent, path string) (*Download, error) {
	return c.download(ctx, "/api/file/"+url.PathEscape(agent)+"/download", url.Values{"dir": {path}})
}

// download starts a streamed GET of a file, bounded by an idle timeout.
func (c *Client) download(ctx context.Context, path string, q url.Values) (*Download, error) {
	ctx, idle, cancel := withIdle(ctx, downloadIdle)
	resp, err := c.Do(ctx, Request{Method: http.MethodGet, Path: path, Query: q, Stream: true,
		Header: http.Header{"Accept-Encoding": {"identity"}}})
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = idle(resp.Body)
	return &Download{resp: resp, Size: resp.ContentLength}, nil
}

// Close ends the download (early, when the copy failed).
func (d *Download) Close() error { return d.resp.Body.Close() }

// ErrChecksum is a transfer whose bytes do not match what was announced.
var ErrChecksum = errors.New("checksum mismatch")

// CopyTo copies the file to w and checks it: the byte count against
// Content-Length (the server ends a body it found bad one byte short, so
// a complete length means the server's MD5 check against the agent's
// passed), and a Repr-Digest or Content-Digest header or trailer
// (RFC 9530; sha-256 or md5) when the server sends one. It returns the
// bytes written and, when sum is set or the server announced an MD5,
// their hex MD5 (else ""): hashing 200 MB costs a quarter of a second of
// CPU, spent only when it is used.
func (d *Download) CopyTo(w io.Writer, sum bool, progress func(int64)) (int64, string, error) {
	defer d.resp.Body.Close()
	want, _ := parseDigests(d.resp.Header)
	trailerMD5 := strings.Contains(strings.ToLower(d.resp.Header.Get("Trailer")), "digest")
	var sha hash.Hash
	if want.sha256 != nil {
		sha = sha256.New()
		w = io.MultiWriter(w, sha)
	}
	var n int64
	var md5sum string
	var err error
	if sum || want.md5 != nil || trailerMD5 {
		// The MD5 runs beside the writes (hashcopy), so that it does not
		// slow the download down while a core is free.
		h := md5.New()
		n, err = hashcopy.Copy(w, d.resp.Body, h, hashcopy.Options{BufSize: copyBuf, Progress: progress})
		md5sum = hex.EncodeToString(h.Sum(nil))
	} else {
		n, err = copyPlain(w, d.resp.Body, progress)
	}
	if err != nil {
		return n, "", &ConnError{Server: d.resp.Request.URL.Host, Err: fmt.Errorf("download cut after %d bytes: %w", n, err)}
	}
	if d.Size >= 0 && n != d.Size {
		return n, "", fmt.Errorf("%w: received %d bytes, announced %d", ErrChecksum, n, d.Size)
	}
	if t, ok := parseDigests(d.resp.Trailer); ok {
		want = t
	}
	if want.md5 != nil && md5sum != "" && hex.EncodeToString(want.md5) != md5sum {
		return n, "", fmt.Errorf("%w: md5 %s, the server announced %x", ErrChecksum, md5sum, want.md5)
	}
	if want.sha256 != nil && sha != nil && string(want.sha256) != string(sha.Sum(nil)) {
		return n, "", fmt.Errorf("%w: sha-256 differs from the one the server announced", ErrChecksum)
	}
	return n, md5sum, nil
}

// copyPlain copies with a large buffer, reporting the count.
func copyPlain(dst io.Writer, src io.Reader, progress func(int64)) (int64, error) {
	buf := make([]byte, copyBuf)
	var n int64
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			if _, err := dst.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
			if progress != nil {
				progress(n)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

type digests struct{ md5, sha256 []byte }

// parseDigests reads Repr-Digest / Content-Digest (RFC 9530:
// `sha-256=:<base64>:, md5=:<base64>:`).
func parseDigests(h http.Header) (digests, bool) {
	var d digests
	found := false
	for _, name := range []string{"Repr-Digest", "Content-Digest"} {
		for _, v := range h.Values(name) {
			for alg, sum := range ParseDigestHeader(v) {
				switch alg {
				case "md5":
					d.md5, found = sum, true
				case "sha-256":
					d.sha256, found = sum, true
				}
			}
		}
	}
	return d, found
}

// ParseDigestHeader reads an RFC 9530 digest dictionary into algorithm →
// bytes; malformed members are left out.
func ParseDigestHeader(v string) map[string][]byte {
	out := map[string][]byte{}
	for member := range strings.SplitSeq(v, ",") {
		alg, val, ok := strings.Cut(strings.TrimSpace(member), "=")
		if !ok {
			continue
		}
		alg = strings.ToLower(strings.TrimSpace(alg))
		val = strings.TrimSpace(val)
		if len(val) < 2 || val[0] != ':' || val[len(val)-1] != ':' {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(val[1 : len(val)-1])
		if err != nil {
			continue
		}
		want := map[string]int{"md5": md5.Size, "sha-256": sha256.Size}[alg]
		if want != 0 && len(b) != want {
			continue
		}
		out[alg] = b
	}
	return out
}
