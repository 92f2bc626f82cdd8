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
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
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
}

// UploadResult is what the server wrote.
type UploadResult struct {
	Path string // full path on the agent
	Size int64
	MD5  string // hex, computed while sending and checked by the server
}

// Upload streams a file to an agent: the bytes go in one pass, their MD5
// is computed on the way and sent after them, and the server refuses the
// upload when its own MD5 of what it received differs (400 md5
// mismatch); the agent checks the server's in turn. open returns the
// source for each attempt; oneShot says the source cannot be read twice
// (stdin), so a refused attempt is not retried. progress, when set, is
// called with the byte count as it grows.
func (c *Client) Upload(ctx context.Context, agent string, spec UploadSpec, open func() (io.Reader, error), oneShot bool, progress func(int64)) (UploadResult, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		last *io.PipeReader
		res  UploadResult
	)
	body := func() (io.Reader, error) {
		src, err := open()
		if err != nil {
			return nil, err
		}
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		mu.Lock()
		last = pr
		mu.Unlock()
		wg.Go(func() {
			n, sum, err := writeUploadForm(mw, spec, src, progress)
			if err == nil {
				mu.Lock()
				res.Size, res.MD5 = n, sum
				mu.Unlock()
			}
			pw.CloseWithError(err)
		})
		return typedBody{pr, mw.FormDataContentType()}, nil
	}
	resp, err := c.Do(ctx, Request{Method: http.MethodPost, Path: "/api/file/" + url.PathEscape(agent) + "/upload",
		Stream: true, OneShot: oneShot, Body: body})
	mu.Lock()
	if last != nil {
		last.CloseWithError(errors.New("upload finished")) // a writer still blocked ends
	}
	mu.Unlock()
	wg.Wait()
	if err != nil {
		return UploadResult{}, err
	}
	defer resp.Body.Close()
	var rep struct {
		Dir string `json:"dir"`
	}
	if err := decodePayload(resp, &rep); err != nil {
		return UploadResult{}, err
	}
	res.Path = rep.Dir
	return res, nil
}

// typedBody is a request body that knows its Content-Type.
type typedBody struct {
	io.ReadCloser
	contentType string
}

// ContentType is read by send.
func (b typedBody) ContentType() string { return b.contentType }

// writeUploadForm writes the multipart form: the parameters, the file,
// then its MD5 (known only at the end: the server accepts values after
// the file part).
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
	h := md5.New()
	n, err := copyCounting(io.MultiWriter(fw, h), src, progress)
	if err != nil {
		return n, "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := mw.WriteField("md5", sum); err != nil {
		return n, "", err
	}
	return n, sum, mw.Close()
}

// copyCounting copies with a large buffer, reporting the count.
func copyCounting(dst io.Writer, src io.Reader, progress func(int64)) (int64, error) {
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

// Download is a file coming from an agent.
type Download struct {
	resp *http.Response
	// Size is the announced length (Content-Length), -1 when unknown.
	Size int64
}

// Download starts the download of path from an agent.
func (c *Client) Download(ctx context.Context, agent, path string) (*Download, error) {
	resp, err := c.Do(ctx, Request{Method: http.MethodGet, Path: "/api/file/" + url.PathEscape(agent) + "/download",
		Query: url.Values{"dir": {path}}, Stream: true, Header: http.Header{"Accept-Encoding": {"identity"}}})
	if err != nil {
		return nil, err
	}
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
// bytes written and the hex MD5 of them.
func (d *Download) CopyTo(w io.Writer, progress func(int64)) (int64, string, error) {
	defer d.resp.Body.Close()
	h := md5.New()
	want, _ := parseDigests(d.resp.Header)
	var extra hash.Hash
	if want.sha256 != nil {
		extra = sha256.New()
	}
	dst := io.MultiWriter(w, h)
	if extra != nil {
		dst = io.MultiWriter(w, h, extra)
	}
	n, err := copyCounting(dst, d.resp.Body, progress)
	if err != nil {
		return n, "", &ConnError{Server: d.resp.Request.URL.Host, Err: fmt.Errorf("download cut after %d bytes: %w", n, err)}
	}
	if d.Size >= 0 && n != d.Size {
		return n, "", fmt.Errorf("%w: received %d bytes, announced %d", ErrChecksum, n, d.Size)
	}
	if t, ok := parseDigests(d.resp.Trailer); ok {
		want = t
	}
	sum := h.Sum(nil)
	if want.md5 != nil && string(want.md5) != string(sum) {
		return n, "", fmt.Errorf("%w: md5 %x, the server announced %x", ErrChecksum, sum, want.md5)
	}
	if want.sha256 != nil && extra != nil && string(want.sha256) != string(extra.Sum(nil)) {
		return n, "", fmt.Errorf("%w: sha-256 differs from the one the server announced", ErrChecksum)
	}
	return n, hex.EncodeToString(sum), nil
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
