//go:build !windows

package spool

import "os"

// syncDir makes a created or deleted file's directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
