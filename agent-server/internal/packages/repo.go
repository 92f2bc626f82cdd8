// Package packages is the server's package repository: the software
// packages (deb, rpm, archives, msi, exe) and agent binaries that installs
// and agent self-updates take from the server rather than from a URL.
//
// A package is a file name, its bytes, and an [Info] (size, sha256, kind,
// time of upload). Everything lives on disk under one directory, with no
// database rows, so a backup is a copy of the directory and the store and
// the files cannot disagree:
//
//	index/<name>      the package's Info, JSON; its rename is the commit
//	blobs/<sha256>    the bytes, content-addressed (names with the same
//	                  content share one blob)
//	tmp/              uploads in progress, emptied at start
//
// An upload streams into tmp/ while its sha256 is computed, is fsync'd and
// renamed into blobs/, then its index entry is written atomically
// (temporary file, fsync, rename, fsync of the directory). A crash before
// the index rename leaves at most an unreferenced blob or temporary file,
// removed when the repository is next opened; a package is listed only once
// both its bytes and its Info are durable.
//
// The index is also held in memory (read at [New]); one server process
// owns a directory. A Repo is safe for concurrent use: uploads stream in
// parallel, commits, deletions and opens are serialised by one mutex held
// for a few file-system calls.
package packages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/jkframe/durable"
	"github.com/agentfleet/jkframe/hashcopy"
	"github.com/agentfleet/jkframe/pkgkind"
	"github.com/agentfleet/jkframe/stat"
	"github.com/agentfleet/libagent/statefile"

	"github.com/agentfleet/agent-server/internal/fault"
)

// Info describes a stored package.
type Info struct {
	// Name is the file name (ValidName).
	Name string `json:"name"`
	Size int64  `json:"size"`
	// SHA256 is the lowercase hex digest of the content.
	SHA256 string `json:"sha256"`
	// Kind is deb, rpm, tar, tar.gz, tar.bz2, zip, msi or exe (from the
	// name's ending, checked against the content's magic bytes), or bin for
	// a raw executable whose name ends in none of them.
	Kind    string    `json:"kind"`
	Created time.Time `json:"created"`
}

// Errors callers branch on (errors.Is). The errors returned are
// *fault.Error instances of these, so the API maps them to a status.
var (
	// ErrNotFound: no package of that name (404).
	ErrNotFound = errors.New("package not found")
	// ErrInvalid: a bad name, sha256 or content (400).
	ErrInvalid = errors.New("invalid package")
	// ErrExists: a different package of that name exists (409).
	ErrExists = errors.New("package exists")
	// ErrChecksum: the content's sha256 is not the one expected (400, in
	// parameter sha256).
	ErrChecksum = errors.New("checksum mismatch")
	// ErrTooLarge: the upload is over the size limit (413).
	ErrTooLarge = errors.New("package too large")
)

// DefaultMaxSize is the upload limit when Options.MaxSize is 0.
const DefaultMaxSize = 2 << 30

// Options configure a Repo.
type Options struct {
	// Dir holds the repository (created if missing).
	Dir string
	// MaxSize bounds a package's size (DefaultMaxSize when 0).
	MaxSize int64
	// Logger gets the recovery at start and the commits; slog.Default when
	// nil.
	Logger *slog.Logger
	// Registry receives the repository's metrics (none when nil).
	Registry prometheus.Registerer
	// Now is the clock of Info.Created (time.Now when nil).
	Now func() time.Time
}

// Repo is a package repository on disk. See the package documentation.
type Repo struct {
	dir, index, blobs, tmp string
	max                    int64
	log                    *slog.Logger
	now                    func() time.Time
	refused                *prometheus.CounterVec // reason

	mu   sync.Mutex
	pkgs map[string]Info
}

// Reasons uploads are refused (agentserver_package_uploads_refused_total).
const (
	refusedInvalid  = "invalid"
	refusedChecksum = "checksum"
	refusedTooLarge = "too_large"
	refusedExists   = "exists"
	refusedIO       = "io"
)

// New opens (or creates) the repository in o.Dir: it reads the index,
// empties tmp/ and removes blobs no index entry refers to.
func New(o Options) (*Repo, error) {
	if o.Dir == "" {
		return nil, errors.New("packages: no directory")
	}
	r := &Repo{
		dir: o.Dir, index: filepath.Join(o.Dir, "index"), blobs: filepath.Join(o.Dir, "blobs"), tmp: filepath.Join(o.Dir, "tmp"),
		max: o.MaxSize, log: o.Logger, now: o.Now, pkgs: map[string]Info{},
	}
	if r.max <= 0 {
		r.max = DefaultMaxSize
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	for _, d := range []string{r.index, r.blobs, r.tmp} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("packages: %w", err)
		}
	}
	if err := r.recover(); err != nil {
		return nil, fmt.Errorf("packages %s: %w", o.Dir, err)
	}
	if err := r.register(o.Registry); err != nil {
		return nil, fmt.Errorf("packages: metrics: %w", err)
	}
	return r, nil
}

func (r *Repo) register(reg prometheus.Registerer) error {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := stat.New(reg, "agentserver")
	s.GaugeFunc("packages", "Packages in the server's package repository.", func() float64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return float64(len(r.pkgs))
	})
	s.GaugeFunc("packages_bytes", "Bytes of the packages in the server's package repository (a blob shared by several names counted once per name).", func() float64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		var n int64
		for _, p := range r.pkgs {
			n += p.Size
		}
		return float64(n)
	})
	r.refused = s.CounterVec("package_uploads_refused_total",
		"Package uploads refused, nothing kept, by reason: invalid (name, type or content), checksum (sha256 mismatch), too_large (over packages.max_size), exists (another package of that name), io (the client went away or the disk failed).", "reason")
	for _, reason := range []string{refusedInvalid, refusedChecksum, refusedTooLarge, refusedExists, refusedIO} {
		r.refused.WithLabelValues(reason)
	}
	return s.Err()
}

// recover loads the index and clears what interrupted uploads left.
func (r *Repo) recover() error {
	tmps, err := os.ReadDir(r.tmp)
	if err != nil {
		return err
	}
	for _, e := range tmps {
		if err := os.RemoveAll(filepath.Join(r.tmp, e.Name())); err != nil {
			return err
		}
	}
	if len(tmps) > 0 {
		r.log.Warn("packages: removed interrupted uploads", "count", len(tmps))
	}
	entries, err := os.ReadDir(r.index)
	if err != nil {
		return err
	}
	var broken int
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(r.index, name)
		if strings.HasPrefix(name, ".") { // an index write cut short
			if err := os.Remove(path); err != nil {
				return err
			}
			continue
		}
		info, err := r.readIndex(name, path)
		if err != nil {
			broken++
			r.log.Error("packages: index entry not loaded (file left in place)", "file", path, "err", err)
			continue
		}
		r.pkgs[name] = info
	}
	blobs, err := os.ReadDir(r.blobs)
	if err != nil {
		return err
	}
	used := map[string]bool{}
	for _, p := range r.pkgs {
		used[p.SHA256] = true
	}
	var orphans int
	for _, e := range blobs {
		if !used[e.Name()] {
			orphans++
			if err := os.Remove(filepath.Join(r.blobs, e.Name())); err != nil {
				return err
			}
		}
	}
	r.log.Info("packages: repository opened", "dir", r.dir, "packages", len(r.pkgs), "broken", broken, "orphan_blobs_removed", orphans)
	return nil
}

// readIndex reads and checks one index entry against its blob.
func (r *Repo) readIndex(name, path string) (Info, error) {
	var info Info
	if err := ValidName(name); err != nil {
		return info, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, err
	}
	if info.Name != name || !validSum(info.SHA256) {
		return info, fmt.Errorf("entry names %q, sha256 %q", info.Name, info.SHA256)
	}
	st, err := os.Stat(filepath.Join(r.blobs, info.SHA256))
	if err != nil {
		return info, fmt.Errorf("content: %w", err)
	}
	if st.Size() != info.Size {
		return info, fmt.Errorf("content is %d bytes, the entry says %d", st.Size(), info.Size)
	}
	return info, nil
}

// MaxSize is the largest package accepted.
func (r *Repo) MaxSize() int64 { return r.max }

// CheckSize refuses (and counts) an upload whose declared size is over
// MaxSize, before its body is read; a negative size is unknown.
func (r *Repo) CheckSize(size int64) error {
	if size <= r.max {
		return nil
	}
	r.refused.WithLabelValues(refusedTooLarge).Inc()
	return r.tooLarge()
}

func (r *Repo) tooLarge() error {
	return fault.New(fault.TooLarge, ErrTooLarge, "package over packages.max_size (%d bytes)", r.max)
}

func notFound(name string) error {
	return fault.New(fault.NotFound, ErrNotFound, "package %q", pkgkind.Clip(name, 64))
}

// Stat returns the package's Info.
func (r *Repo) Stat(_ context.Context, name string) (Info, error) {
	if err := ValidName(name); err != nil {
		return Info{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	info, ok := r.pkgs[name]
	if !ok {
		return Info{}, notFound(name)
	}
	return info, nil
}

// List returns every package, by name.
func (r *Repo) List(context.Context) ([]Info, error) {
	r.mu.Lock()
	out := make([]Info, 0, len(r.pkgs))
	for _, p := range r.pkgs {
		out = append(out, p)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Open returns the package's content and Info. The reader is an *os.File
// (an io.ReadSeeker, for range requests); the caller closes it. A package
// deleted or replaced while it is read keeps its old content for that
// reader on POSIX systems.
func (r *Repo) Open(_ context.Context, name string) (io.ReadCloser, Info, error) {
	if err := ValidName(name); err != nil {
		return nil, Info{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	info, ok := r.pkgs[name]
	if !ok {
		return nil, Info{}, notFound(name)
	}
	f, err := os.Open(filepath.Join(r.blobs, info.SHA256))
	if err != nil {
		return nil, Info{}, fmt.Errorf("open package %s: %w", name, err)
	}
	return f, info, nil
}

// Delete removes the package (its blob too when no other name shares it).
func (r *Repo) Delete(_ context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	info, ok := r.pkgs[name]
	if !ok {
		return notFound(name)
	}
	if err := os.Remove(filepath.Join(r.index, name)); err != nil {
		return fmt.Errorf("delete package %s: %w", name, err)
	}
	if err := durable.SyncDir(r.index); err != nil {
		return fmt.Errorf("delete package %s: %w", name, err)
	}
	delete(r.pkgs, name)
	r.dropBlob(info.SHA256)
	r.log.Info("packages: deleted", "name", name, "sha256", info.SHA256)
	return nil
}

// dropBlob removes a blob no package refers to any more. r.mu is held. A
// failure leaves an orphan that the next New removes.
func (r *Repo) dropBlob(sum string) {
	for _, p := range r.pkgs {
		if p.SHA256 == sum {
			return
		}
	}
	if err := os.Remove(filepath.Join(r.blobs, sum)); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.log.Warn("packages: content not removed, removed at the next start", "sha256", sum, "err", err)
	}
}

// Put stores body as the package name. See put; a package of that name
// with other content is refused (ErrExists): use Replace.
func (r *Repo) Put(ctx context.Context, name string, body io.Reader, wantSHA256 string) (Info, error) {
	return r.put(ctx, name, body, wantSHA256, false)
}

// Replace is Put that replaces a package of the same name. Readers that
// opened the old content keep reading it.
func (r *Repo) Replace(ctx context.Context, name string, body io.Reader, wantSHA256 string) (Info, error) {
	return r.put(ctx, name, body, wantSHA256, true)
}

// put streams body to a temporary file of the repository, computing its
// sha256 as it writes, with at most MaxSize bytes; the kind comes from the
// name and is checked against the first bytes before anything is written.
// The file is fsync'd and renamed into place, then the index entry is
// written. wantSHA256 (optional, hex) must match the content. On any
// error nothing is kept.
//
// Putting the same content again under the same name, with its sha256
// given, is not a conflict: the stored Info is returned as it is, so a
// retry is safe. Without the sha256 the conflict is refused before the
// body is read.
func (r *Repo) put(ctx context.Context, name string, body io.Reader, want string, replace bool) (Info, error) {
	info, err := r.receive(ctx, name, body, want, replace)
	if err != nil {
		reason := refusedIO
		if fe, ok := fault.As(err); ok {
			switch {
			case errors.Is(err, errBody):
			case errors.Is(err, ErrExists):
				reason = refusedExists
			case fe.Kind == fault.TooLarge:
				reason = refusedTooLarge
			case errors.Is(err, ErrChecksum):
				reason = refusedChecksum
			case fe.Kind == fault.Invalid:
				reason = refusedInvalid
			}
		}
		r.refused.WithLabelValues(reason).Inc()
	}
	return info, err
}

func (r *Repo) receive(ctx context.Context, name string, body io.Reader, want string, replace bool) (Info, error) {
	if err := ValidName(name); err != nil {
		return Info{}, err
	}
	if want != "" {
		want = strings.ToLower(want)
		if !validSum(want) {
			return Info{}, fault.Invalidf(ErrInvalid, "%q: want 64 hexadecimal digits", pkgkind.Clip(want, 80)).InParam("sha256")
		}
	}
	// Refuse a conflict before the upload when it is already certain.
	r.mu.Lock()
	err := r.conflict(name, want, replace)
	r.mu.Unlock()
	if err != nil {
		return Info{}, err
	}
	head, err := pkgkind.Head(bodyReader{body})
	if err != nil {
		return Info{}, r.ioError(ctx, name, err)
	}
	kind, err := kindOf(name, head)
	if err != nil {
		return Info{}, err
	}
	tmp, size, sum, err := r.spool(ctx, name, io.MultiReader(bytes.NewReader(head), body))
	if err != nil {
		return Info{}, err
	}
	keep := false
	defer func() {
		if !keep {
			os.Remove(tmp)
		}
	}()
	if want != "" && sum != want {
		return Info{}, fault.Invalidf(ErrChecksum, "the content's sha256 is %s, expected %s", sum, want).InParam("sha256")
	}
	info := Info{Name: name, Size: size, SHA256: sum, Kind: string(kind), Created: r.now().UTC().Truncate(time.Millisecond)}

	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.pkgs[name]
	if had && old.SHA256 == sum {
		return old, nil
	}
	if err := r.conflict(name, sum, replace); err != nil {
		return Info{}, err
	}
	blob := filepath.Join(r.blobs, sum)
	if _, err := os.Stat(blob); err != nil {
		if err := os.Rename(tmp, blob); err != nil {
			return Info{}, fmt.Errorf("store package %s: %w", name, err)
		}
		keep = true
		if err := durable.SyncDir(r.blobs); err != nil {
			return Info{}, fmt.Errorf("store package %s: %w", name, err)
		}
	}
	data, err := json.Marshal(info)
	if err != nil {
		return Info{}, err
	}
	if err := statefile.WriteAtomic(filepath.Join(r.index, name), data, 0o640); err != nil {
		// The blob, if new, is an orphan: removed now or at the next start.
		r.dropBlob(sum)
		return Info{}, fmt.Errorf("store package %s: %w", name, err)
	}
	r.pkgs[name] = info
	if had {
		r.dropBlob(old.SHA256)
	}
	r.log.Info("packages: stored", "name", name, "size", size, "sha256", sum, "kind", info.Kind, "replaced", had)
	return info, nil
}

// conflict refuses name when a package of that name exists with content
// other than sum ("" = unknown yet) and replace is false, or when a
// package's name differs from it only in case (the two would be one file
// on Windows and macOS). r.mu is held.
func (r *Repo) conflict(name, sum string, replace bool) error {
	if old, ok := r.pkgs[name]; ok {
		if replace || sum != "" && old.SHA256 == sum {
			return nil
		}
		return fault.New(fault.Conflict, ErrExists, "package %q exists with sha256 %s: delete it first or replace it (?replace=true)", name, old.SHA256)
	}
	for other := range r.pkgs {
		if strings.EqualFold(other, name) {
			return fault.New(fault.Conflict, ErrExists, "package %q differs from the existing %q only in case", name, other)
		}
	}
	return nil
}

// spool writes src to a new temporary file, at most r.max bytes, and
// returns its path, size and sha256. On error nothing is left.
func (r *Repo) spool(ctx context.Context, name string, src io.Reader) (path string, size int64, sum string, err error) {
	f, err := os.CreateTemp(r.tmp, "upload-*")
	if err != nil {
		return "", 0, "", fmt.Errorf("store package %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	n, err := hashcopy.Copy(f, io.LimitReader(bodyReader{src}, r.max+1), h, hashcopy.Options{FillBuffers: true})
	if err != nil {
		return "", 0, "", r.ioError(ctx, name, err)
	}
	if n > r.max {
		return "", 0, "", r.tooLarge()
	}
	if err = f.Sync(); err != nil {
		return "", 0, "", r.ioError(ctx, name, err)
	}
	if err = f.Close(); err != nil {
		return "", 0, "", r.ioError(ctx, name, err)
	}
	return f.Name(), n, hex.EncodeToString(h.Sum(nil)), nil
}

// errBody: reading the upload failed (the client's side).
var errBody = errors.New("reading the upload")

// bodyReader marks the errors of the upload's source, to tell them from
// the disk's.
type bodyReader struct{ r io.Reader }

type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyError{err}
	}
	return n, err
}

// ioError classifies a failed upload: the caller went away (the
// context's error), its body failed (400), the disk is full (503), or
// else the error with context.
func (r *Repo) ioError(ctx context.Context, name string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("upload package %s: %w", name, cerr)
	}
	var be *bodyError
	if errors.As(err, &be) {
		return fault.Invalidf(errBody, "%v", be.err).InParam("body")
	}
	if errors.Is(err, syscall.ENOSPC) {
		return fault.New(fault.Unavailable, nil, "no space left for package %q in the repository", name)
	}
	return fmt.Errorf("upload package %s: %w", name, err)
}

// kindOf is the package's kind: the one its name ends in, which head must
// match, or else bin when head is an executable's.
func kindOf(name string, head []byte) (pkgkind.Kind, error) {
	if k, ok := pkgkind.Of(name); ok {
		if !pkgkind.Match(head, k) {
			return "", fault.Invalidf(ErrInvalid, "the content is not a %s file (the type the name %q ends in)", k, name).InParam("body")
		}
		return k, nil
	}
	if pkgkind.Match(head, pkgkind.Bin) {
		return pkgkind.Bin, nil
	}
	return "", fault.Invalidf(ErrInvalid, "%q: unknown package type: the name ends in none of .deb, .rpm, .tar, .tar.gz, .tgz, .tar.bz2, .tbz2, .zip, .msi, .exe and the content is not an executable (ELF, PE or Mach-O)", name).InParam("name")
}

func validSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
