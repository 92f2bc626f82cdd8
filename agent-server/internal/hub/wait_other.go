//go:build !linux

package hub

// Elsewhere the reader waits inside gorilla (a larger idle stack).
const shallowWait = false

func (c *frameConn) waitReadable() error { return nil }
