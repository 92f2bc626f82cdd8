package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/agentfleet/jkframe/hashcopy"
)

// Fetch limits (Fetcher's zero values).
const (
	DefaultMaxSize      = 2 << 30 // 2 GiB
	DefaultMaxRedirects = 5
	// DefaultFetchTimeout bounds a download when the caller's context has
	// no earlier deadline.
	DefaultFetchTimeout = 30 * time.Minute
)

var (
	// ErrChecksum: the package's sha256 is not the expected one; nothing
	// was installed.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrTooLarge: the package is larger than the size limit.
	ErrTooLarge = errors.New("package too large")
)

// Source is where a package comes from: a URL (http or https) or a file
// the caller already holds (Path), with the sha256 it must have ("": not
// checked).
type Source struct {
	URL    string
	Path   string
	SHA256 string
	// Open, instead of URL or Path, streams the package from elsewhere
	// (the server's repository): the body and its size (-1: unknown).
	// Fetch bounds, hashes and checks it like a download.
	Open func(ctx context.Context) (io.ReadCloser, int64, error)
}

// Fetched is a package copied to a temporary file of the caller's.
type Fetched struct {
	File   string // the temporary file; the caller removes it
	Size   int64
	SHA256 string // hex
}

// Fetcher downloads packages. The zero value is usable.
type Fetcher struct {
	// Client makes the requests; nil: a client without timeout of its own
	// (the context bounds the download). Its CheckRedirect is replaced.
	Client *http.Client
	// MaxSize bounds a package; ≤ 0: DefaultMaxSize.
	MaxSize int64
	// MaxRedirects bounds the redirects followed; 0: DefaultMaxRedirects,
	// < 0: none.
	MaxRedirects int
	// Timeout bounds a download; ≤ 0: DefaultFetchTimeout.
	Timeout time.Duration
}

// CheckSource validates a Source's fields, naming the bad one.
func CheckSource(src Source) error {
	switch {
	case src.URL == "" && src.Path == "" && src.Open == nil:
		return fmt.Errorf("%w: url: neither url nor a package file given", ErrRequest)
	case src.URL != "" && (src.Path != "" || src.Open != nil), src.Path != "" && src.Open != nil:
		return fmt.Errorf("%w: url: both url and a package file given", ErrRequest)
	}
	if src.URL != "" {
		if _, err := parseURL(src.URL); err != nil {
			return err
		}
	}
	if src.SHA256 != "" {
		if b, err := hex.DecodeString(src.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%w: sha256 %q: want 64 hexadecimal digits", ErrRequest, clip(src.SHA256, 80))
		}
	}
	return nil
}

func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: url: %v", ErrRequest, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: url %q: scheme %q: want http or https", ErrRequest, clip(s, 256), u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: url %q: no host", ErrRequest, clip(s, 256))
	}
	return u, nil
}

// Fetch copies the package to a new temporary file in dir whose name ends
// in ext (".deb": apt-get and Windows go by it), streaming and hashing it,
// and checks its size and sha256. On any error the temporary file is
// already removed. note, when not nil, is told the temporary file's name
// before anything is written to it (the journal records it, so that an
// interrupted download is cleaned up).
func (f *Fetcher) Fetch(ctx context.Context, src Source, dir, ext string, note func(tmp string) error) (Fetched, error) {
	if err := CheckSource(src); err != nil {
		return Fetched{}, err
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var body io.ReadCloser
	var length int64 = -1
	switch {
	case src.URL != "":
		resp, err := f.get(ctx, src.URL)
		if err != nil {
			return Fetched{}, err
		}
		body, length = resp.Body, resp.ContentLength
	case src.Open != nil:
		var err error
		if body, length, err = src.Open(ctx); err != nil {
			return Fetched{}, fmt.Errorf("package: %w", err)
		}
	default:
		file, err := os.Open(src.Path)
		if err != nil {
			return Fetched{}, fmt.Errorf("package file: %w", err)
		}
		if info, err := file.Stat(); err == nil {
			if !info.Mode().IsRegular() {
				file.Close()
				return Fetched{}, fmt.Errorf("package file %s: not a regular file", src.Path)
			}
			length = info.Size()
		}
		body = file
	}
	defer body.Close()
	limit := f.maxSize()
	if length > limit {
		return Fetched{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, length, limit)
	}

	tmp, err := os.CreateTemp(dir, ".install-*"+ext)
	if err != nil {
		return Fetched{}, fmt.Errorf("temporary file: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if note != nil {
		if err := note(tmp.Name()); err != nil {
			return Fetched{}, err
		}
	}
	h := sha256.New()
	// Reading one byte more than the limit tells a file at the limit from
	// one beyond it.
	n, err := hashcopy.Copy(tmp, &ctxReader{ctx: ctx, r: io.LimitReader(body, limit+1)}, h, hashcopy.Options{})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("after %d bytes: %w", n, cerr)
		}
		return Fetched{}, fmt.Errorf("download: %w", err)
	}
	if n > limit {
		return Fetched{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	if length >= 0 && n != length {
		return Fetched{}, fmt.Errorf("download: got %d bytes, %d announced", n, length)
	}
	if err := tmp.Sync(); err != nil {
		return Fetched{}, fmt.Errorf("temporary file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Fetched{}, fmt.Errorf("temporary file: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if src.SHA256 != "" && !strings.EqualFold(sum, src.SHA256) {
		return Fetched{}, fmt.Errorf("%w: sha256 %s, expected %s", ErrChecksum, sum, strings.ToLower(src.SHA256))
	}
	ok = true
	return Fetched{File: tmp.Name(), Size: n, SHA256: sum}, nil
}

func (f *Fetcher) maxSize() int64 {
	if f.MaxSize <= 0 {
		return DefaultMaxSize
	}
	return f.MaxSize
}

func (f *Fetcher) get(ctx context.Context, raw string) (*http.Response, error) {
	hops := f.MaxRedirects
	switch {
	case hops == 0:
		hops = DefaultMaxRedirects
	case hops < 0:
		hops = 0
	}
	c := http.Client{}
	if f.Client != nil {
		c = *f.Client
	}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > hops {
			return fmt.Errorf("more than %d redirects", hops)
		}
		switch prev := via[len(via)-1].URL.Scheme; {
		case req.URL.Scheme != "http" && req.URL.Scheme != "https":
			return fmt.Errorf("redirect to scheme %q refused: want http or https", req.URL.Scheme)
		case prev == "https" && req.URL.Scheme == "http":
			return fmt.Errorf("redirect from https to http refused: %s", req.URL.Redacted())
		}
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: url: %v", ErrRequest, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("download: %s", resp.Status)
	}
	return resp, nil
}

// ctxReader stops a copy from a local file when the context ends (an HTTP
// body does so by itself).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
