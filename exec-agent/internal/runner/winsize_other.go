//go:build unix && !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package runner

import "errors"

// resize is not implemented here.
func (pr *proc) resize(uint16, uint16) error { return errors.ErrUnsupported }
