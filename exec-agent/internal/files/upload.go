package files

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/agentfleet/jkframe/compress"
	"github.com/agentfleet/jkframe/durable"
	"github.com/agentfleet/jkframe/hashcopy"
	"github.com/agentfleet/libagent/protocol"
)

// Errors of Upload, for errors.Is.
var (
	// ErrChecksum: the bytes received do not have the expected MD5.
	ErrChecksum = errors.New("md5 mismatch")
	// ErrSize: the bytes received are not the expected size.
	ErrSize = errors.New("size mismatch")
)

// OwnerError reports an own_user or own_group this host does not know
// (Err: the lookup's user.UnknownUserError or user.UnknownGroupError). It
// is found before anything is written.
type OwnerError struct {
	Field string // "own_user" or "own_group" (the upload message's key)
	Name  string
	Err   error
}

func (e *OwnerError) Error() string { return fmt.Sprintf("%s %q: %v", e.Field, e.Name, e.Err) }

func (e *OwnerError) Unwrap() error { return e.Err }

// UploadSpec describes an upload, as the upload message (type 22) does.
type UploadSpec struct {
	// Dir is the target directory (path rule in the package doc), or
	// protocol.UploadTmpDir ("$$TMP$$") for Options.TempDir.
	Dir string
	// Name is a plain file name (ValidName).
	Name string
	// Mode sets the permission bits and setuid/setgid/sticky (os.ModeSetuid,
	// os.ModeSetgid, os.ModeSticky); 0 keeps those of the file being
	// replaced, or 0644 for a new file.
	Mode os.FileMode
	// OwnUser and OwnGroup (names or numeric ids) are applied with chown;
	// "" leaves that part as created (the agent's user/group). A name this
	// host does not know is an *OwnerError before anything is written.
	OwnUser, OwnGroup string
	// Size is the expected size; 0: unknown (no size or MD5 check).
	Size uint64
	// MD5 is checked when Size > 0 and MD5Check is set or MD5 is not all
	// zeros.
	MD5      [16]byte
	MD5Check bool
}

// UploadDirMode is the mode of the directories an upload creates (before
// the umask), as v1 agents used.
const UploadDirMode = 0o755

// copyBuf is the size of the one buffer a transfer streams through.
const copyBuf = 256 << 10

// DecodeInline decodes an upload's inline data (compress $N$ form), bounded
// by protocol.MaxInlineUpload.
func DecodeInline(data string) ([]byte, error) {
	b, err := compress.Decode(data, protocol.MaxInlineUpload)
	if err != nil {
		return nil, fmt.Errorf("upload data: %w", err)
	}
	return b, nil
}

// Upload writes body to Dir/Name and returns the full path written. The
// owner is resolved first (an unknown one is an *OwnerError), before a
// missing Dir is created with its parents (UploadDirMode). The bytes go
// to a temporary file in Dir (MD5 computed on the way), are checked against
// Size and MD5; the owner, then the mode (after chown, which would clear
// setuid and setgid) are applied to that file, which is synced and renamed
// over the target. So the file appears whole with its owner and mode, or
// not at all: a failed upload never touches an existing file and leaves no
// temporary file. Canceling ctx aborts the copy.
func (fs *FS) Upload(ctx context.Context, spec UploadSpec, body io.Reader) (string, error) {
	dir := spec.Dir
	if dir == protocol.UploadTmpDir {
		dir = fs.tmp
		if dir == "" {
			dir = os.TempDir()
		}
	}
	dir, err := CleanPath(dir)
	if err != nil {
		return "", fmt.Errorf("upload: dir: %w", err)
	}
	if err := ValidName(spec.Name); err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	target := filepath.Join(dir, spec.Name)
	uid, gid := -1, -1
	if spec.OwnUser != "" || spec.OwnGroup != "" {
		if uid, gid, err = resolveOwner(spec.OwnUser, spec.OwnGroup); err != nil {
			return "", fmt.Errorf("upload: %w", err)
		}
	}
	// A missing directory is created, with its parents, as v1 agents did.
	if err := os.MkdirAll(dir, UploadDirMode); err != nil {
		return "", fmt.Errorf("upload %s: %w", target, err)
	}
	if fi, err := os.Lstat(target); err == nil && fi.IsDir() {
		return "", fmt.Errorf("upload %s: %w", target, syscall.EISDIR)
	}

	tmp, err := os.CreateTemp(dir, ".upload-*.part")
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", target, err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	src := body
	if spec.Size > 0 {
		// One byte more than expected is enough to tell a longer body.
		src = io.LimitReader(body, int64(spec.Size)+1)
	}
	// The MD5 is computed only when there is one to check: a body of
	// unknown size (our server's streamed upload, whose end it sends only
	// after checking the MD5 itself) has none, and Go's MD5 runs at about
	// 950 MB/s here: 0.2 s of CPU per 200 MB.
	check := spec.Size > 0 && (spec.MD5Check || spec.MD5 != [16]byte{})
	var n int64
	var sum [16]byte
	if check {
		h := md5.New()
		n, err = hashcopy.Copy(tmp, ctxReader{ctx, src}, h, hashcopy.Options{BufSize: copyBuf})
		h.Sum(sum[:0])
	} else {
		n, err = io.CopyBuffer(onlyWriter{tmp}, ctxReader{ctx, src}, make([]byte, copyBuf))
	}
	if err != nil {
		return "", fmt.Errorf("upload %s: after %d bytes: %w", target, n, err)
	}
	if spec.Size > 0 && uint64(n) != spec.Size {
		return "", fmt.Errorf("upload %s: %w: got %d bytes, want %d", target, ErrSize, n, spec.Size)
	}
	if check && sum != spec.MD5 {
		return "", fmt.Errorf("upload %s: %w: got %x, want %x", target, ErrChecksum, sum, spec.MD5)
	}
	mode := spec.Mode & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
	if spec.Mode == 0 {
		mode = 0o644
		if fi, err := os.Stat(target); err == nil {
			mode = fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
		}
	}
	if uid >= 0 || gid >= 0 {
		if err := tmp.Chown(uid, gid); err != nil {
			return "", fmt.Errorf("upload %s: chown: %w", target, err)
		}
	}
	if err := tmp.Chmod(mode); err != nil {
		return "", fmt.Errorf("upload %s: chmod: %w", target, err)
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("upload %s: sync: %w", target, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("upload %s: close: %w", target, err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return "", fmt.Errorf("upload %s: %w", target, err)
	}
	committed = true
	_ = durable.SyncDir(dir) // durability only; the file is in place either way
	return target, nil
}

// onlyWriter hides the file's ReadFrom, so that io.CopyBuffer uses the
// given buffer: *os.File's ReadFrom falls back to a 32 KiB copy for a body
// it cannot splice.
type onlyWriter struct{ io.Writer }

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
