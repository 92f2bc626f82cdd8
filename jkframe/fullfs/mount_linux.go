package fullfs

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

func mount(dir string, size int64) error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	return syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size))
}

func unmount(dir string) error {
	err := syscall.Unmount(dir, 0)
	if errors.Is(err, syscall.EBUSY) {
		// A process the test started still holds a file there: detach, the
		// kernel frees it when the last file closes.
		err = syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	return err
}
