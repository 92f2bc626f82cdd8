package api

import (
	"encoding/base64"
	"encoding/hex"
	"mime"
	"net/http"
	"strconv"
	"strings"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/packages"
)

// ChecksumHeader carries a package's sha256 (hex) on upload (optional, as
// ?sha256=) and on download.
const ChecksumHeader = "X-Checksum-Sha256"

// PackageList is the payload of GET /api/packages.
type PackageList struct {
	Packages []packages.Info `json:"packages"`
	// MaxSize is the largest package accepted (packages.max_size).
	MaxSize int64 `json:"max_size"`
}

// RoutesPackages registers the package repository's routes.
func (s *Server) RoutesPackages(repo *packages.Repo) {
	s.Handle("GET /api/packages", func(w http.ResponseWriter, r *http.Request) error {
		list, err := repo.List(r.Context())
		if err != nil {
			return err
		}
		japi.OK(w, r, PackageList{Packages: list, MaxSize: repo.MaxSize()})
		return nil
	}, Scope(authz.PackagesRead))

	s.Handle("GET /api/packages/{name}", func(w http.ResponseWriter, r *http.Request) error {
		info, err := repo.Stat(r.Context(), r.PathValue("name"))
		if err != nil {
			return err
		}
		japi.OK(w, r, info)
		return nil
	}, Scope(authz.PackagesRead))

	s.Handle("GET /api/packages/{name}/download", func(w http.ResponseWriter, r *http.Request) error {
		return s.downloadPackage(w, r, repo)
	}, Scope(authz.PackagesRead))

	// The body is the package, streamed to the repository's disk. A
	// declared Content-Length over the limit is refused before reading;
	// the route's own limit is one byte over the repository's, so that the
	// repository refuses a chunked body that goes over, with its message.
	s.Handle("PUT /api/packages/{name}", func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("name")
		want, err := packageSum(r)
		if err != nil {
			return err
		}
		replace, err := queryBool(r, "replace")
		if err != nil {
			return err
		}
		SetAudit(r, name, map[string]any{"replace": replace, "size": r.ContentLength})
		if err := repo.CheckSize(r.ContentLength); err != nil {
			return err
		}
		put := repo.Put
		if replace {
			put = repo.Replace
		}
		info, err := put(r.Context(), name, r.Body, want)
		if err != nil {
			return err
		}
		SetAudit(r, name, map[string]any{"replace": replace, "size": info.Size, "sha256": info.SHA256, "kind": info.Kind})
		japi.OK(w, r, info)
		return nil
	}, Scope(authz.PackagesWrite), MaxBody(repo.MaxSize()+1))

	s.Handle("DELETE /api/packages/{name}", func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("name")
		SetAudit(r, name, nil)
		info, err := repo.Stat(r.Context(), name)
		if err != nil {
			return err
		}
		if err := repo.Delete(r.Context(), name); err != nil {
			return err
		}
		SetAudit(r, name, map[string]any{"sha256": info.SHA256, "size": info.Size})
		japi.OK(w, r, nil)
		return nil
	}, Scope(authz.PackagesWrite))
}

// queryBool reads a boolean query parameter (false when absent). The
// query string only: japi.Params would parse a form body, and this body is
// a package.
func queryBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, japi.BadParam(name, "want true or false")
	}
	return b, nil
}

// packageSum reads the expected sha256 of an upload: the sha256 query
// parameter or the X-Checksum-Sha256 header (they must agree when both
// are given). The repository checks its form.
func packageSum(r *http.Request) (string, error) {
	q := strings.TrimSpace(r.URL.Query().Get("sha256"))
	h := strings.TrimSpace(r.Header.Get(ChecksumHeader))
	if q != "" && h != "" && !strings.EqualFold(q, h) {
		return "", japi.Errorf(http.StatusBadRequest, "invalid parameter sha256: the query says %.80s, the %s header %.80s", q, ChecksumHeader, h)
	}
	if q == "" {
		q = h
	}
	return q, nil
}

// downloadPackage streams a package with its checksum in X-Checksum-Sha256
// and Repr-Digest (RFC 9530), the sha256 as its ETag, and range and
// conditional requests answered by http.ServeContent.
func (s *Server) downloadPackage(w http.ResponseWriter, r *http.Request, repo *packages.Repo) error {
	rc, info, err := repo.Open(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": info.Name}))
	h.Set(ChecksumHeader, info.SHA256)
	if raw, err := hex.DecodeString(info.SHA256); err == nil {
		h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(raw)+":")
	}
	h.Set("ETag", `"`+info.SHA256+`"`)
	rs, ok := rc.(interface {
		Read([]byte) (int, error)
		Seek(int64, int) (int64, error)
	})
	if !ok {
		return japi.Errorf(http.StatusInternalServerError, "package %s: not seekable", info.Name)
	}
	http.ServeContent(w, r, "", info.Created, rs)
	return nil
}
