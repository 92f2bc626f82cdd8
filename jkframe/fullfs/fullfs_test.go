package fullfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestFillThenFree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mnt")
	Mount(t, dir, 256<<10)
	free := Fill(t, dir)
	err := os.WriteFile(filepath.Join(dir, "x"), make([]byte, 64<<10), 0o600)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write on a full tmpfs: %v, want ENOSPC", err)
	}
	free()
	if err := os.WriteFile(filepath.Join(dir, "x"), make([]byte, 64<<10), 0o600); err != nil {
		t.Fatalf("write after free: %v", err)
	}
}
