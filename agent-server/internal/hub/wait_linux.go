package hub

import (
	"io"
	"syscall"
)

const shallowWait = true

// waitReadable blocks until the socket has data, EOF or an error, or the
// read deadline passes. What it reads (at most a keepalive frame's worth,
// into a small array, so the wait itself holds no buffer) is buffered.
func (c *frameConn) waitReadable() error {
	var small [64]byte
	n := 0
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			k, err := syscall.Read(int(fd), small[:])
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return false // wait for readiness, then try again
			case err != nil:
				rerr = err
			case k == 0:
				rerr = io.EOF
			default:
				n = k
			}
			return true
		}
	})
	if err != nil {
		return err
	}
	if n > 0 {
		b := frameBufPool.Get().(*[]byte)
		c.buf, c.r, c.w = b, 0, copy(*b, small[:n])
	}
	if rerr != nil {
		c.err = rerr
	}
	return nil
}
