//go:build !linux

package fullfs

func mount(string, int64) error { return errNotLinux }

func unmount(string) error { return errNotLinux }
