// Package fullfs gives tests a real file system that runs out of space: a
// small tmpfs mounted for one test (Linux, as root), and a filler file that
// takes all of its free space until the test removes it. The writes of the
// code under test then fail with the kernel's own ENOSPC, through every
// layer of the real code path.
//
// Without root or a tmpfs the test is skipped with the reason; in CI (the
// environment variable CI=true) it fails instead, since CI runs as root.
// On other OSes than Linux it is always skipped.
package fullfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes at dir (created if missing) and
// unmounts it when the test ends (after cleanups registered later, such as
// those stopping the processes that write there).
func Mount(t testing.TB, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mount(dir, size); errors.Is(err, errNotLinux) {
		// Not a missing setup: the test cannot exist on this OS (make
		// wintest runs the suites under Windows with CI=true).
		t.Skipf("needs a real full file system: %v", err)
	} else if err != nil {
		unavailable(t, "mount a tmpfs at "+dir+": "+err.Error())
	}
	t.Cleanup(func() {
		if err := unmount(dir); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// errNotLinux: tmpfs mounts exist on Linux only.
var errNotLinux = errors.New("tmpfs mounts are Linux only")

// unavailable skips the test, or fails it in CI.
func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI runs as root and must run this test)", why)
	}
	t.Skipf("needs a real full file system: %s", why)
}

// Fill writes a filler file in dir until the file system says ENOSPC, and
// returns the function that removes it (also called when the test ends).
// Up to a page of free space can remain (a file system allocates whole
// pages), and writes into the unused end of a page another file already
// holds still succeed.
func Fill(t testing.TB, dir string) (free func()) {
	t.Helper()
	f, err := os.CreateTemp(dir, ".fullfs-filler-*")
	if err != nil {
		t.Fatalf("fullfs: %v", err)
	}
	buf := make([]byte, 64<<10)
	for size := len(buf); size > 0; {
		if _, err = f.Write(buf[:size]); err == nil {
			continue
		}
		if !errors.Is(err, syscall.ENOSPC) {
			f.Close()
			os.Remove(f.Name())
			t.Fatalf("fullfs: filling %s: %v", dir, err)
		}
		size /= 2 // take what a smaller write still gets
	}
	if err := f.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("fullfs: %v", err)
	}
	name := f.Name()
	removed := false
	free = func() {
		if removed {
			return
		}
		removed = true
		if err := os.Remove(name); err != nil {
			t.Errorf("fullfs: free %s: %v", filepath.Dir(name), err)
		}
	}
	t.Cleanup(free)
	return free
}
