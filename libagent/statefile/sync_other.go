//go:build !windows

package statefile

func chmodUnsupported() bool { return false }
