package selfupdate

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxBinary bounds the size of a new binary.
const MaxBinary = 512 << 20

// Want describes the binary the server announced.
type Want struct {
	SHA256 string // hex
	Size   int64
	Sig    string // the .sig text; "" when the package has none
}

// Policy is the agent's configured trust.
type Policy struct {
	Keys          []ed25519.PublicKey
	AllowUnsigned bool
}

// Stage writes the new binary next to exe (StagedPath(exe)), streaming it
// from fetch, which copies the body to the writer it is given. Nothing is
// kept in memory beyond the copy buffer. The size and sha256 must match
// want and the signature must verify under p (an unsigned binary only with
// p.AllowUnsigned); on any failure the staged file is removed and exe is
// untouched. It returns the staged file's path.
func Stage(exe string, want Want, p Policy, fetch func(w io.Writer) error) (string, error) {
	sum, err := hex.DecodeString(want.SHA256)
	if err != nil || len(sum) != sha256.Size {
		return "", fmt.Errorf("%w: sha256 %q is not 64 hex digits", ErrChecksum, want.SHA256)
	}
	if want.Size <= 0 || want.Size > MaxBinary {
		return "", fmt.Errorf("size %d: must be between 1 and %d", want.Size, MaxBinary)
	}
	// Check what can be checked before a byte is downloaded.
	if strings.TrimSpace(want.Sig) == "" {
		if !p.AllowUnsigned {
			return "", ErrUnsigned
		}
	} else if err := Verify(p.Keys, sum, want.Sig); err != nil {
		return "", err
	}
	path := StagedPath(exe)
	_ = os.Remove(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return "", fmt.Errorf("stage %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(path)
		}
	}()
	h := sha256.New()
	lw := &limitWriter{w: io.MultiWriter(f, h), left: want.Size}
	bw := bufio.NewWriterSize(lw, 256<<10)
	if err := fetch(bw); err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return "", fmt.Errorf("stage %s: %w", path, err)
	}
	if lw.over || lw.left != 0 {
		return "", fmt.Errorf("%w: got %d bytes, want %d", ErrChecksum, want.Size-lw.left, want.Size)
	}
	if got := h.Sum(nil); hex.EncodeToString(got) != strings.ToLower(want.SHA256) {
		return "", fmt.Errorf("%w: sha256 %x, want %s", ErrChecksum, got, want.SHA256)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("stage %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("stage %s: %w", path, err)
	}
	ok = true
	return path, nil
}

// limitWriter fails once more than left bytes are written.
type limitWriter struct {
	w    io.Writer
	left int64
	over bool
}

var errTooLong = errors.New("more bytes than announced")

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		l.over = true
		return 0, fmt.Errorf("%w: %w", ErrChecksum, errTooLong)
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}

// Swap puts the staged binary in place of exe and keeps the binary that
// ran until now as PrevPath(exe). It returns the previous binary's path.
func Swap(exe, staged string) (string, error) {
	prev := PrevPath(exe)
	if err := keepPrevious(exe, prev); err != nil {
		return "", fmt.Errorf("keep the previous binary: %w", err)
	}
	if err := replace(staged, exe); err != nil {
		return "", fmt.Errorf("swap in %s: %w", exe, err)
	}
	return prev, nil
}

// Rollback puts prev back in place of exe.
func Rollback(exe, prev string) error {
	if err := restore(prev, exe); err != nil {
		return fmt.Errorf("roll back %s: %w", exe, err)
	}
	return nil
}

// copyFile copies src to dst (mode 0755), through a temporary file renamed
// into place.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		_ = os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
