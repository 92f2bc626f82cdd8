//go:build !linux

package fullfs

import "errors"

var errNotLinux = errors.New("tmpfs mounts are Linux only")

func mount(string, int64) error { return errNotLinux }

func unmount(string) error { return errNotLinux }
