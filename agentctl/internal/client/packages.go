package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
)

// Package is a package of the server's repository (GET /api/packages).
type Package struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Kind    string `json:"kind"`
	Created Time   `json:"created"`
}

// PackageList is the payload of GET /api/packages.
type PackageList struct {
	Packages []Package `json:"packages"`
	MaxSize  int64     `json:"max_size"`
}

func packagePath(name string) string { return "/api/packages/" + url.PathEscape(name) }

// Packages lists the server's package repository.
func (c *Client) Packages(ctx context.Context) (PackageList, error) {
	var out PackageList
	_, err := c.Call(ctx, http.MethodGet, "/api/packages", nil, nil, &out)
	return out, err
}

// PackageInfo returns one package's metadata.
func (c *Client) PackageInfo(ctx context.Context, name string) (Package, error) {
	var out Package
	_, err := c.Call(ctx, http.MethodGet, packagePath(name), nil, nil, &out)
	return out, err
}

// DeletePackage removes a package from the repository.
func (c *Client) DeletePackage(ctx context.Context, name string) error {
	_, err := c.Call(ctx, http.MethodDelete, packagePath(name), nil, nil, nil)
	return err
}

// PushSpec describes a package upload.
type PushSpec struct {
	Name string
	// Size of the body (Content-Length), -1 when unknown.
	Size int64
	// SHA256 (hex) the server must find, "" for none.
	SHA256  string
	Replace bool
}

// PushPackage uploads a package: the body, from open (called again for
// a retry), is streamed as it is; progress gets the bytes sent so far.
// The server refuses the package, keeping nothing, when its sha256 is not
// spec.SHA256.
func (c *Client) PushPackage(ctx context.Context, spec PushSpec, open func() (io.Reader, error), progress func(int64)) (Package, error) {
	q := url.Values{}
	if spec.Replace {
		q.Set("replace", "true")
	}
	h := http.Header{"Content-Type": {"application/octet-stream"}}
	if spec.SHA256 != "" {
		h.Set("X-Checksum-Sha256", spec.SHA256)
	}
	resp, err := c.Do(ctx, Request{Method: http.MethodPut, Path: packagePath(spec.Name), Query: q, Header: h, Stream: true,
		ContentLength: spec.Size,
		Body: func() (io.Reader, error) {
			r, err := open()
			if err != nil {
				return nil, err
			}
			return &countingReader{r: r, progress: progress}, nil
		}})
	if err != nil {
		return Package{}, err
	}
	defer resp.Body.Close()
	var out Package
	return out, decodePayload(resp, &out)
}

// countingReader reports the bytes read so far.
type countingReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 && c.progress != nil {
		c.progress(c.n)
	}
	return n, err
}

// DownloadPackage starts the download of a package; CopyTo checks its
// length and its sha256 against the server's Repr-Digest.
func (c *Client) DownloadPackage(ctx context.Context, name string) (*Download, error) {
	return c.download(ctx, packagePath(name)+"/download", nil)
}

// SHA256 is the sha256 (hex) the server announced for a package download
// (X-Checksum-Sha256), "" when none.
func (d *Download) SHA256() string { return d.resp.Header.Get("X-Checksum-Sha256") }
